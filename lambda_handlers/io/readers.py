"""Record readers: turn a planned split (or a previous step's output) into records for the mapper.

Readers hand out records in *blocks* (lists of up to :data:`BLOCK_RECORDS` raw records) decoded
from big chunks at once, never one ``bytes -> str`` per line; ``locate(i)`` names record ``i`` of
the last block by its byte offset, so that a record the mapper chokes on can be named exactly.
:func:`parser_for` turns a raw record into the mapper's record (:func:`identity` for text, whose
raw records are already ``str``), so that parse errors count as bad records just like mapper errors.

Formats: ``text`` (a ``str`` line), ``jsonl`` (one JSON value per line; blank lines skipped),
``csv`` (a ``dict`` keyed by the object's header row; the header row belongs to every split of the
object and is read with one ranged GET of the object's start). ``.gz`` and ``.bz2`` objects are
streamed whole and decompressed.

Decoding: the job's ``encoding`` (UTF-8 by default; any encoding that keeps ASCII as it is, so
records are still cut at ``\\n`` bytes) and ``errors``. With ``errors="strict"`` (the default) a
record holding bytes invalid in the encoding is a bad record (:class:`RecordDecodeError`, counted
against ``max_bad_records``), the others of its block are read as usual: a block is decoded in one
call, and only a block that fails is decoded again record by record, its invalid records becoming
:class:`Undecodable` placeholders that the mapper's parser (:func:`checked_parser`) raises on.

CSV rule: a csv record is one line. A quoted field holding a newline would straddle splits and is
not supported: a line with an unbalanced quote fails with :class:`CsvQuotedNewlineError` (a bad
record, so ``max_bad_records`` applies) instead of silently producing broken rows.
"""

from __future__ import annotations

import bz2
import csv
import json
import zlib
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from lambda_handlers.io import splits
from lambda_handlers.s3uri import S3Uri

SKIP = object()  # a parser returns SKIP for lines that are not records (blank jsonl/csv lines)
FORMATS = ("text", "csv", "jsonl", "whole")  # whole: lambda_handlers.io.packed
BLOCK_RECORDS = 1024  # records per block: the mapper's batch stays small enough to be cache-hot
# A batch mapper's block: whole records of about this many bytes, however many records that is.
# Larger blocks amortise the in-mapper combining dict a batch mapper returns per block (fewer
# distinct keys per byte to fold); see batch_block_bytes() for the memory bound.
BATCH_BLOCK_BYTES = 16 << 20
# ... unless the step has no combiner: then there is nothing to fold, and a smaller block's records
# are made and freed in memory the process has already touched (a 16 MiB block's ~70 MB of line,
# key and value objects come and go in fresh pages: a sort map task spent ~25% of its CPU in page
# faults); see batch_block_bytes().
UNFOLDED_BLOCK_BYTES = 2 << 20
BATCH_BLOCK_RECORDS = 1 << 16  # the same for sources counted in records (tables, earlier steps)


class CsvQuotedNewlineError(ValueError):
    """A csv line with an unbalanced quote: quoted newlines are not supported."""


class InputFormatError(ValueError):
    """An input format this reader does not know."""


class RecordDecodeError(ValueError):
    """A record holding bytes that are invalid in the job's encoding (``errors="strict"``)."""


class Undecodable:
    """A record of a block that did not decode: its bytes and why (see :func:`checked_parser`)."""

    __slots__ = ("encoding", "error", "raw")

    def __init__(self, raw: bytes, encoding: str, error: UnicodeDecodeError):
        self.raw, self.encoding, self.error = raw, encoding, error

    def exception(self) -> RecordDecodeError:
        e = self.error
        return RecordDecodeError(
            f"the record is not valid {self.encoding}: byte 0x{self.raw[e.start]:02x} at position "
            f"{e.start} of the record ({e.reason}); set encoding= to the data's encoding, or "
            "errors='replace' to read invalid bytes as U+FFFD")

    def __repr__(self) -> str:
        return f"Undecodable({self.raw!r})"


class UndecodedBlock(list):  # type: ignore[type-arg]
    """A block of records some of which are :class:`Undecodable` (the mapper checks such blocks)."""


def checked_parser(parse: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """``parse`` (None: identity) that raises :class:`RecordDecodeError` on an :class:`Undecodable`."""
    def checked(rec: Any) -> Any:
        if type(rec) is Undecodable:
            raise rec.exception()
        return rec if parse is None else parse(rec)
    return checked


def decode_record(raw: bytes, encoding: str = "utf-8", errors: str = "strict") -> str:
    """One record's bytes as ``str``; :class:`RecordDecodeError` when they are invalid."""
    try:
        return raw.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        raise Undecodable(raw, encoding, exc).exception() from None


def parse_csv_line(text: str) -> list[str]:
    if text.count('"') % 2:
        raise CsvQuotedNewlineError(
            "csv line has an unbalanced quote: quoted fields with embedded newlines are not "
            "supported (csv records are lines); quote-free newlines or jsonl input work")
    return next(csv.reader([text]))


def identity(record: Any) -> Any:
    """The parser of formats whose raw records are already the mapper's records (text)."""
    return record


def decoded_records(data: bytes, encoding: str = "utf-8", errors: str = "strict") -> list[Any]:
    """The records of a block as ``str``, decoded in one call.

    A block ends after ``\\n`` (or at the end of the object), and ``\\n`` is one byte that is never
    part of a multi-byte sequence in the encodings allowed, so this equals decoding each line on its
    own. If the block does not decode (``errors="strict"``), it is decoded record by record into an
    :class:`UndecodedBlock`.
    """
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError:
        return _decoded_one_by_one(data, encoding)
    recs = text.split("\n")
    tail = recs.pop()
    if "\r" in text:
        recs = [r[:-1] if r.endswith("\r") else r for r in recs]
    if tail:
        recs.append(tail)
    return recs


def _decoded_one_by_one(data: bytes, encoding: str) -> UndecodedBlock:
    out = UndecodedBlock()
    for raw in splits.records_of(data):
        try:
            out.append(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            out.append(Undecodable(raw, encoding, exc))
    return out


def parser_for(fmt: str, header: list[str] | None = None, encoding: str = "utf-8",
               errors: str = "strict") -> Callable[[Any], Any]:
    """A function ``raw record -> record`` (or :data:`SKIP`) for input format ``fmt``.

    Raw records are ``str`` for text and csv, ``bytes`` for jsonl (decoded here, one record each).
    """
    if fmt == "text":
        return identity
    if fmt == "jsonl":
        def jsonl(raw: bytes | str) -> Any:
            if not raw.strip():
                return SKIP
            return json.loads(raw if isinstance(raw, str) else decode_record(raw, encoding, errors))
        return jsonl
    if fmt == "csv":
        names = header or []

        def row(text: str) -> Any:
            if not text.strip():
                return SKIP
            fields = parse_csv_line(text)
            if len(fields) != len(names):
                raise ValueError(f"csv row has {len(fields)} fields but the header has {len(names)}")
            return dict(zip(names, fields, strict=True))
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


def bunzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a (possibly multi-stream) bzip2 stream chunk by chunk."""
    d, fed = bz2.BZ2Decompressor(), False
    for chunk in chunks:
        while chunk:
            out = d.decompress(chunk)
            fed = True
            if out:
                yield out
            if d.eof:
                chunk, d, fed = d.unused_data, bz2.BZ2Decompressor(), False
            else:
                chunk = b""
    if fed:
        raise EOFError("the bzip2 stream ends before its end-of-stream marker (a truncated .bz2 object)")


DECOMPRESSORS: dict[str, Callable[[Iterator[bytes]], Iterator[bytes]]] = {
    "gzip": gunzip_chunks, "bz2": bunzip_chunks}


def batch_block_bytes(memory_budget_bytes: int, combining: bool = True) -> int:
    """A batch mapper's block size for a task's memory budget: a sixteenth of it (a block's records
    as ``str`` take about 2.5x its bytes), between 1 MiB and :data:`BATCH_BLOCK_BYTES`, or
    :data:`UNFOLDED_BLOCK_BYTES` when its step has no combiner (``combining`` False)."""
    top = BATCH_BLOCK_BYTES if combining else UNFOLDED_BLOCK_BYTES
    return max(1 << 20, min(top, int(memory_budget_bytes) // 16))


def joined_blocks(blocks: Iterator[tuple[int, bytes]], min_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Consecutive ``(offset, data)`` blocks of whole records joined until at least ``min_bytes``
    (the last one may be shorter); ``min_bytes <= 0`` passes them through."""
    if min_bytes <= 0:
        yield from blocks
        return
    parts: list[bytes] = []
    start = size = 0
    for off, data in blocks:
        if parts and off != start + size:  # not contiguous (a BOM was dropped): cut here
            yield start, b"".join(parts)
            parts, size = [], 0
        if not parts:
            start = off
        parts.append(data)
        size += len(data)
        if size >= min_bytes:
            yield start, b"".join(parts) if len(parts) > 1 else data
            parts, size = [], 0
    if parts:
        yield start, b"".join(parts)


class SplitInput:
    """The raw records of one planned split, plus the parser for its format.

    :param block_records: at most this many records per block (None: no limit).
    :param block_bytes: join what arrives into blocks of at least this many bytes (0: hand out
        records as they arrive). Batch mappers use :data:`BATCH_BLOCK_BYTES`.
    :param read_ahead: chunks of the body read ahead by a background thread (0: none).
    :param encoding: the records' character encoding (see the module doc).
    :param errors: ``strict``, ``replace`` or ``surrogateescape``.
    """

    def __init__(self, split: dict[str, Any], on_bytes: Callable[[int], None] | None = None,
                 block_records: int | None = BLOCK_RECORDS, block_bytes: int = 0,
                 read_ahead: int = splits.READ_AHEAD, encoding: str = "utf-8", errors: str = "strict"):
        self.split = split
        self.encoding, self.errors = encoding, errors
        self.block_records, self.block_bytes = block_records, block_bytes
        self.bucket, self.key = split["bucket"], split["key"]
        self.etag = split.get("etag")
        self.fmt = split.get("format", "text")
        fetch = splits.s3_fetch(self.bucket, self.key, self.etag, on_bytes)
        decompress = DECOMPRESSORS.get(split.get("compression") or "")
        if decompress is not None:
            body = splits.open_whole(self.bucket, self.key, self.etag)

            def raw() -> Iterator[bytes]:
                for piece in body.iter_chunks(splits.BODY_CHUNK):
                    if on_bytes:
                        on_bytes(len(piece))
                    yield piece
            compressed = splits.prefetched(raw(), read_ahead) if read_ahead > 0 else raw()
            self.lines = splits.stream_lines(decompress(compressed))
        else:
            self.lines = splits.LineReader(fetch, split["start"], split["end"], split["size"],
                                           read_ahead)
        self._fetch = fetch
        self._block: tuple[int, bytes, int] = (split.get("start") or 0, b"", 0)
        self._cursor: tuple[bytes, int, int] = (b"", 0, 0)  # (block data, record, its position)
        self._blocks = self._read_blocks()
        header = None
        if self.fmt == "csv":
            header = self._csv_header()
        self.parse = parser_for(self.fmt, header, encoding, errors)

    def _read_blocks(self) -> Iterator[tuple[list[Any], tuple[int, bytes, int]]]:
        encoding, errors = self.encoding, self.errors
        jsonl = self.fmt == "jsonl"
        cap = self.block_records
        for off, data in joined_blocks(self.lines.blocks(), self.block_bytes):
            recs = splits.records_of(data) if jsonl else decoded_records(data, encoding, errors)
            if cap is None or len(recs) <= cap:
                yield recs, (off, data, 0)
                continue
            for i in range(0, len(recs), cap):
                yield type(recs)(recs[i:i + cap]), (off, data, i)

    def _csv_header(self) -> list[str]:
        if self.split.get("compression") or self.split["start"] == 0:
            got = next(self._blocks, None)  # the header is this split's own first record
            if got is None:
                return []
            recs, (off, data, base) = got
            rest = [(type(recs)(recs[1:]), (off, data, base + 1))] if len(recs) > 1 else []
            self._blocks = chain(rest, self._blocks)
            return parse_csv_line(checked_parser(None)(recs[0]))
        size = self.split["size"]
        reader = splits.LineReader(self._fetch, 0, min(size, splits.FIRST_EXTENSION), size)
        first = next(iter(reader), None)
        if first is None:
            return []
        return parse_csv_line(decode_record(first, self.encoding, self.errors))

    def blocks(self) -> Iterator[list[Any]]:
        """Lists of raw records, in order; :meth:`locate` names a record of the last one."""
        for recs, where in self._blocks:
            self._block = where
            yield recs

    def locate(self, index: int) -> int:
        """Byte offset (decompressed for .gz and .bz2) of record ``index`` of the last block.

        Walks the block's newlines from the last record located in it (bad records are located
        in order), so skipping many bad records of a big block stays linear in its size.
        """
        off, data, base = self._block
        if not data:
            return off
        k = base + index
        seen, i, pos = self._cursor
        if seen is not data or i > k:
            i, pos = 0, 0
        find = data.index
        while i < k:
            pos, i = find(b"\n", pos) + 1, i + 1
        self._cursor = (data, k, pos)
        return off + pos

    def __iter__(self) -> Iterator[Any]:
        for recs in self.blocks():
            yield from recs

    def where(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "start": self.split.get("start"),
                "end": self.split.get("end")}

    def describe(self) -> str:
        return str(S3Uri(self.bucket, self.key))
