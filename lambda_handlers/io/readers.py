"""Record readers: turn a planned split (or a previous step's output) into records for the mapper.

Readers yield raw records (bytes lines) and expose ``offset`` (byte offset of the last record) so
that a record the mapper chokes on can be named exactly; :func:`parser_for` turns a raw line into
the mapper's record, so that parse errors count as bad records just like mapper errors.

Formats: ``text`` (a ``str`` line, UTF-8, invalid bytes replaced), ``jsonl`` (one JSON value per
line; blank lines skipped), ``csv`` (a ``dict`` keyed by the object's header row; the header row
belongs to every split of the object and is read with one ranged GET of the object's start).

CSV rule: a csv record is one line. A quoted field holding a newline would straddle splits and is
not supported: a line with an unbalanced quote fails with :class:`CsvQuotedNewlineError` (a bad
record, so ``max_bad_records`` applies) instead of silently producing broken rows.
"""

from __future__ import annotations

import csv
import json
import zlib
from typing import Any, Callable, Iterator

from lambda_handlers.io import splits

SKIP = object()  # a parser returns SKIP for lines that are not records (blank jsonl/csv lines)
FORMATS = ("text", "csv", "jsonl")


class CsvQuotedNewlineError(ValueError):
    """A csv line with an unbalanced quote: quoted newlines are not supported."""


class InputFormatError(ValueError):
    """An input format this reader does not know."""


def parse_csv_line(text: str) -> list[str]:
    if text.count('"') % 2:
        raise CsvQuotedNewlineError(
            "csv line has an unbalanced quote: quoted fields with embedded newlines are not "
            "supported (csv records are lines); quote-free newlines or jsonl input work")
    return next(csv.reader([text]))


def parser_for(fmt: str, header: list[str] | None = None) -> Callable[[bytes], Any]:
    """A function ``raw line -> record`` (or :data:`SKIP`) for input format ``fmt``."""
    if fmt == "text":
        return lambda raw: raw.decode("utf-8", "replace")
    if fmt == "jsonl":
        def jsonl(raw: bytes) -> Any:
            return json.loads(raw) if raw.strip() else SKIP
        return jsonl
    if fmt == "csv":
        names = header or []

        def row(raw: bytes) -> Any:
            text = raw.decode("utf-8", "replace")
            if not text.strip():
                return SKIP
            fields = parse_csv_line(text)
            if len(fields) != len(names):
                raise ValueError(f"csv row has {len(fields)} fields but the header has {len(names)}")
            return dict(zip(names, fields))
        return row
    raise InputFormatError(f"unknown input format {fmt!r}; use one of {', '.join(FORMATS)}")


def gunzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream chunk by chunk."""
    d = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        while chunk:
            out = d.decompress(chunk)
            if out:
                yield out
            if d.eof:
                chunk = d.unused_data
                d = zlib.decompressobj(wbits=31)
            else:
                chunk = b""
    tail = d.flush()
    if tail:
        yield tail


class SplitInput:
    """The raw records of one planned split, plus the parser for its format."""

    def __init__(self, split: dict, on_bytes: Callable[[int], None] | None = None):
        self.split = split
        self.bucket, self.key = split["bucket"], split["key"]
        self.etag = split.get("etag")
        self.fmt = split.get("format", "text")
        fetch = splits.s3_fetch(self.bucket, self.key, self.etag, on_bytes)
        if split.get("compression") == "gzip":
            body = splits.open_whole(self.bucket, self.key, self.etag)

            def raw() -> Iterator[bytes]:
                for piece in body.iter_chunks(splits.BODY_CHUNK):
                    if on_bytes:
                        on_bytes(len(piece))
                    yield piece
            self.lines = splits.stream_lines(gunzip_chunks(raw()))
        else:
            self.lines = splits.LineReader(fetch, split["start"], split["end"], split["size"])
        self._fetch = fetch
        self._records = iter(self.lines)
        header = None
        if self.fmt == "csv":
            header = self._csv_header()
        self.parse = parser_for(self.fmt, header)

    def _csv_header(self) -> list[str]:
        if self.split.get("compression") == "gzip" or self.split["start"] == 0:
            first = next(self._records, None)  # the header is this split's own first record
        else:
            size = self.split["size"]
            first = next(iter(splits.LineReader(self._fetch, 0, min(size, splits.FIRST_EXTENSION),
                                                size)), None)
        if first is None:
            return []
        return parse_csv_line(first.decode("utf-8", "replace"))

    @property
    def offset(self) -> int:
        return self.lines.offset

    def __iter__(self) -> Iterator[bytes]:
        return self._records

    def where(self) -> dict:
        return {"bucket": self.bucket, "key": self.key, "start": self.split.get("start"),
                "end": self.split.get("end")}

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
