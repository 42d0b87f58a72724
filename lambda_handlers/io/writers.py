"""Part writers: encode sorted ``(key, value)`` pairs in the job's output format.

jsonl: ``{"key": k, "value": v}`` per line; tsv: ``json(k)<TAB>json(v)``; csv: ``k,v`` (scalars
only, csv-module quoting). Records are encoded in batches into one buffer per part.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

OUTPUT_FORMATS = ("jsonl", "tsv", "csv")
_SCALARS = (str, int, float, bool, type(None))
BATCH = 4096


class OutputFormatError(ValueError):
    """A record the output format cannot hold (e.g. a list value in csv)."""


def extension(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise OutputFormatError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


class PartWriter:
    """Accumulate one part in memory; ``getvalue()`` returns its bytes."""

    def __init__(self, fmt: str):
        self.fmt = extension(fmt)
        self.records = 0
        self._chunks: list[bytes] = []
        self._batch: list[tuple[Any, Any]] = []
        self._enc = json.JSONEncoder().encode

    def write(self, key: Any, value: Any) -> None:
        self._batch.append((key, value))
        if len(self._batch) >= BATCH:
            self._flush()

    def write_many(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        for k, v in pairs:
            self.write(k, v)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        self.records += len(batch)
        enc = self._enc
        if self.fmt == "jsonl":
            text = "".join([f'{{"key": {enc(k)}, "value": {enc(v)}}}\n' for k, v in batch])
        elif self.fmt == "tsv":
            text = "".join([f"{enc(k)}\t{enc(v)}\n" for k, v in batch])
        else:
            for k, v in batch:
                if not isinstance(k, _SCALARS) or not isinstance(v, _SCALARS):
                    raise OutputFormatError(
                        f"csv output holds scalar keys and values only, got key {k!r} value {v!r}; "
                        "use output_format='jsonl' or 'tsv'")
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(batch)
            text = buf.getvalue()
        self._chunks.append(text.encode("utf-8", "surrogatepass"))

    def getvalue(self) -> bytes:
        self._flush()
        return b"".join(self._chunks)


def encode_part(fmt: str, pairs: Iterable[tuple[Any, Any]]) -> tuple[bytes, int]:
    """Encode ``pairs`` (already sorted) as one part; return (bytes, record count)."""
    w = PartWriter(fmt)
    w.write_many(pairs)
    data = w.getvalue()
    return data, w.records
