"""A Parquet file's row groups, read from its footer without pyarrow: what planning splits by.

A Parquet file ends with ``<FileMetaData (Thrift compact protocol)><4-byte little-endian
length>PAR1``. The planner needs only each row group's row count and compressed size, so it reads
the footer with one ranged GET (two when the footer is larger than :data:`TAIL_BYTES`) and decodes
it with the small Thrift compact decoder here: planning stays standard library only, and a job
that reads Parquet needs ``pyarrow`` in its tasks (the layer), not in the Airflow worker.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"PAR1"
TAIL_BYTES = 64 * 1024  # the first read of a footer: most footers fit


class ParquetFileError(ValueError):
    """A file that is not a readable Parquet file; the message names it."""


@dataclass(frozen=True)
class RowGroup:
    """One row group of a file: its rows and its compressed bytes."""

    rows: int
    bytes: int


class _Compact:
    """Decode Thrift's compact protocol into ``{field id: value}`` dicts, lists and scalars."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (1, 2):  # a bool field: its value is its type
            return kind == 1
        if kind == 3:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return struct.unpack_from("<d", self.data, self.pos - 8)[0]
        if kind == 8:
            n = self.varint()
            self.pos += n
            return self.data[self.pos - n:self.pos]
        if kind in (9, 10):
            head = self.byte()
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            if elem in (1, 2):  # bools in a collection: one byte each
                self.pos += n
                return [b == 1 for b in self.data[self.pos - n:self.pos]]
            return [self.value(elem) for _ in range(n)]
        if kind == 11:
            n = self.varint()
            if not n:
                return {}
            kinds = self.byte()
            return dict((self.value(kinds >> 4), self.value(kinds & 0x0F)) for _ in range(n))
        if kind == 12:
            return self.struct()
        raise ValueError(f"unknown Thrift compact type {kind}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            delta, kind = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            fields[fid] = self.value(kind)
            last = fid


def decode_metadata(data: bytes) -> list[RowGroup]:
    """The row groups of a serialized ``FileMetaData`` (field 4; RowGroup fields 1 columns, 3 rows,
    6 compressed size, else the column chunks' ``total_compressed_size``)."""
    meta = _Compact(data).struct()
    groups = []
    for rg in meta.get(4, []):
        size = rg.get(6)
        if size is None:
            size = sum((cc.get(3) or {}).get(7, 0) for cc in rg.get(1, []))
        groups.append(RowGroup(int(rg.get(3, 0)), int(size or rg.get(2, 0))))
    return groups


# fetch(first_byte, last_byte_inclusive) -> those bytes
RangeReader = Callable[[int, int], bytes]


def read_row_groups(read: RangeReader, size: int, uri: str) -> list[RowGroup]:
    """The row groups of the Parquet file ``uri`` of ``size`` bytes, read through ``read``."""
    if size < 12:
        raise ParquetFileError(f"{uri} is not a Parquet file: {size} bytes is too short")
    start = max(0, size - TAIL_BYTES)
    tail = read(start, size - 1)
    if tail[-4:] != MAGIC:
        what = "an encrypted Parquet file (not supported)" if tail[-4:] == b"PARE" else "not a Parquet file"
        raise ParquetFileError(f"{uri} is {what}: it does not end with {MAGIC!r}")
    (length,) = struct.unpack("<I", tail[-8:-4])
    if length + 8 > size:
        raise ParquetFileError(f"{uri} is not a readable Parquet file: its footer length {length} "
                               f"exceeds the file ({size} bytes)")
    if length + 8 > len(tail):
        tail = read(size - 8 - length, start - 1) + tail
    try:
        return decode_metadata(tail[-8 - length:-8])
    except (IndexError, ValueError, struct.error) as exc:
        raise ParquetFileError(f"{uri} is not a readable Parquet file: its footer does not decode "
                               f"({type(exc).__name__}: {exc})") from None
