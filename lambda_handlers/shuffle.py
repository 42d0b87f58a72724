"""The shuffle: serializers, the stable partitioner, the map-output format and the combiner.

Grouping with spill to ``/tmp`` is in :mod:`lambda_handlers.grouping`.

Map output object (one per map attempt)::

    [partition 0 frames][partition 1 frames]...[partition R-1 frames][index JSON][u64 index length]

A frame is ``<u32 big-endian length><payload>``; a payload is one *batch* of ``[key, value]``
pairs encoded by the job's serializer (one ``json.dumps`` per batch, not per record). The index is
``[[offset, length], ...]`` per partition; it is also in the done marker, so a reducer reads its
slice with one ranged GET and no extra request for the index.

Key identity is the serializer's canonical encoding (so ``1``, ``1.0``, ``True`` and ``"1"`` are
four keys), and key order is :func:`sort_key`: a total order over JSON values of mixed types,
``null < booleans < numbers < strings < arrays < objects`` (then by value; arrays element-wise,
objects by sorted items), with non-JSON keys (pickle serializer) last by type name and repr.
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator

FRAME_HEADER = struct.Struct(">I")
FOOTER = struct.Struct(">Q")
BATCH_PAIRS = 4096
EXPANSION = 4  # in-memory Python objects vs. their encoded bytes, for the memory budget
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


class ShuffleError(ValueError):
    """A key, value or partition the shuffle cannot carry; the message says which."""


# ---------------------------------------------------------------------------------------------
# Serializers


class JsonSerializer:
    name = "json"

    def dumps(self, batch: list) -> bytes:
        try:
            return json.dumps(batch, separators=(",", ":")).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as exc:
            raise ShuffleError(
                f"cannot encode a key or value as JSON ({exc}); return JSON-able keys/values or "
                "set serializer='pickle' on the job") from exc

    def loads(self, payload: bytes) -> list:
        return json.loads(payload)

    def key_bytes(self, key: Any) -> bytes:
        if type(key) is str:
            return key.encode("utf-8", "surrogatepass")
        try:
            return _canonical(key).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as exc:
            raise ShuffleError(f"key {key!r} is not JSON-able; set serializer='pickle'") from exc

    def group_key(self, key: Any) -> Any:
        """A hashable identity: the key itself for str, else its canonical encoding (tagged)."""
        return key if type(key) is str else ("\0", self.key_bytes(key))


class PickleSerializer(JsonSerializer):
    name = "pickle"

    def dumps(self, batch: list) -> bytes:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, payload: bytes) -> list:
        return pickle.loads(payload)

    def key_bytes(self, key: Any) -> bytes:
        try:
            return super().key_bytes(key)
        except ShuffleError:
            return pickle.dumps(key, protocol=4)


SERIALIZERS = {"json": JsonSerializer, "pickle": PickleSerializer}


def serializer(name: str) -> JsonSerializer:
    try:
        return SERIALIZERS[name]()
    except KeyError:
        raise ShuffleError(f"unknown serializer {name!r}; use 'json' or 'pickle'") from None


# ---------------------------------------------------------------------------------------------
# Order and partitioning


def sort_key(key: Any) -> tuple:
    """Total order over keys of mixed JSON types (see module docstring)."""
    t = type(key)
    if t is str:
        return (3, key)
    if t is int or t is float:
        return (2, key, repr(key))
    if key is None:
        return (0,)
    if t is bool:
        return (1, key)
    if t is list or t is tuple:
        return (4, tuple(map(sort_key, key)))
    if t is dict:
        return (5, tuple(sorted((str(k), sort_key(v)) for k, v in key.items())))
    return (6, t.__name__, repr(key))


def partition_function(ser: JsonSerializer, n: int,
                       user: Callable[[Any, int], int] | None = None) -> Callable[[Any], int]:
    """``key -> partition``: the job's partitioner (checked) or the default stable hash, the CRC-32
    of the serializer's key bytes (never Python's salted ``hash()``)."""
    if n <= 1:
        return lambda key: 0
    if user is None:
        kb = ser.key_bytes
        return lambda key: zlib.crc32(kb(key)) % n

    def checked(key: Any) -> int:
        p = user(key, n)
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < n:
            raise ShuffleError(f"partitioner returned {p!r} for key {key!r}; it must be an int in [0, {n})")
        return p
    return checked


# ---------------------------------------------------------------------------------------------
# Frames and the map-output format


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload)) + payload


def iter_frames(data: bytes | memoryview) -> Iterator[bytes]:
    view, pos, n = memoryview(data), 0, len(data)
    while pos < n:
        if pos + 4 > n:
            raise ShuffleError("truncated shuffle frame header")
        (length,) = FRAME_HEADER.unpack_from(view, pos)
        pos += 4
        if pos + length > n:
            raise ShuffleError("truncated shuffle frame")
        yield bytes(view[pos:pos + length])
        pos += length


def iter_pairs(data: bytes, ser: JsonSerializer) -> Iterator[tuple[Any, Any]]:
    for payload in iter_frames(data):
        for k, v in ser.loads(payload):
            yield k, v


class PartitionedOutput:
    """R partition buffers of framed batches; ``finish()`` gives the object bytes and the index.

    :param partitioner: the job's ``partitioner(key, n)``, or None for the default stable hash
        (inlined here: it runs once per map output record).
    """

    def __init__(self, num_partitions: int, ser: JsonSerializer,
                 partitioner: Callable[[Any, int], int] | None = None):
        self.n, self.ser = num_partitions, ser
        self._user = partition_function(ser, num_partitions, partitioner) if partitioner else None
        self._pending: list[list] = [[] for _ in range(num_partitions)]
        self._frames: list[list[bytes]] = [[] for _ in range(num_partitions)]
        self.records = 0

    def add(self, key: Any, value: Any) -> None:
        self.add_many(((key, value),))

    def add_many(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        pending, frames, dumps, n = self._pending, self._frames, self.ser.dumps, self.n
        user, kb, crc = self._user, self.ser.key_bytes, zlib.crc32
        count = 0
        for key, value in pairs:
            if user is not None:
                p = user(key)
            elif n == 1:
                p = 0
            elif type(key) is str:
                p = crc(key.encode("utf-8", "surrogatepass")) % n
            else:
                p = crc(kb(key)) % n
            buf = pending[p]
            buf.append((key, value))
            count += 1
            if len(buf) >= BATCH_PAIRS:
                frames[p].append(frame(dumps(buf)))
                pending[p] = []
        self.records += count

    def finish(self) -> tuple[bytes, list[list[int]]]:
        chunks, index, offset = [], [], 0
        for p in range(self.n):
            if self._pending[p]:
                self._frames[p].append(frame(self.ser.dumps(self._pending[p])))
                self._pending[p] = []
            part = b"".join(self._frames[p])
            self._frames[p] = []
            index.append([offset, len(part)])
            chunks.append(part)
            offset += len(part)
        footer = json.dumps(index).encode()
        chunks.append(footer)
        chunks.append(FOOTER.pack(len(footer)))
        return b"".join(chunks), index


def read_index(data: bytes) -> list[list[int]]:
    """The index stored at the end of a map-output object."""
    (n,) = FOOTER.unpack_from(data, len(data) - FOOTER.size)
    return json.loads(data[len(data) - FOOTER.size - n: len(data) - FOOTER.size])


def encode_pairs(pairs: Iterable[tuple[Any, Any]], ser: JsonSerializer) -> tuple[bytes, int]:
    """One partition's worth of pairs as framed batches (reduce output of a non-final step)."""
    out, batch, n = [], [], 0
    for kv in pairs:
        batch.append(kv)
        if len(batch) >= BATCH_PAIRS:
            out.append(frame(ser.dumps(batch)))
            n += len(batch)
            batch = []
    if batch:
        out.append(frame(ser.dumps(batch)))
        n += len(batch)
    return b"".join(out), n


# ---------------------------------------------------------------------------------------------
# Combining in the mapper (bounded memory)


class Combiner:
    """Group mapper output and run the combiner whenever ``max_values`` values are buffered."""

    def __init__(self, combine: Callable[[Any, Any], Iterable], sink: Callable[[list], None],
                 ser: JsonSerializer, max_values: int = 200_000):
        self.combine, self.sink, self.ser, self.max_values = combine, sink, ser, max_values
        self._groups = _Groups(ser)

    def add_many(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self._groups.add_many(pairs)
        if self._groups.values >= self.max_values:
            self.flush()

    def flush(self) -> None:
        groups, self._groups = self._groups, _Groups(self.ser)
        combine, out = self.combine, []
        for key, values in groups.items():
            res = combine(key, values)
            if res is not None:
                out.extend(res)
                if len(out) >= BATCH_PAIRS:
                    self.sink(out)
                    out = []
        if out:
            self.sink(out)


class _Groups:
    """Values grouped by key identity; str keys (the common case) take a fast path."""

    def __init__(self, ser: JsonSerializer):
        self.gk = ser.group_key
        self.by_str: defaultdict[str, list] = defaultdict(list)
        self.other: dict[Any, tuple[Any, list]] = {}
        self.values = 0

    def add_many(self, pairs: Iterable[tuple[Any, Any]]) -> int:
        by_str, other, gk = self.by_str, self.other, self.gk
        if not isinstance(pairs, list):
            pairs = list(pairs)
        for key, value in pairs:
            if type(key) is str:
                by_str[key].append(value)
                continue
            g = other.get(gk(key))
            if g is None:
                other[gk(key)] = (key, [value])
            else:
                g[1].append(value)
        self.values += len(pairs)
        return len(pairs)

    def items(self) -> Iterator[tuple[Any, list]]:
        yield from self.by_str.items()
        yield from self.other.values()

    def __bool__(self) -> bool:
        return bool(self.by_str or self.other)
