"""Reading one split's pieces in order: packed small objects, byte ranges of large ones, whole objects.

A split (:class:`~lambda_handlers.plan.Split`) holds one or more pieces
(:func:`~lambda_handlers.plan.split_pieces`): a byte range ``[start, end)`` of an object, pinned to
the ETag listed at planning. :class:`PackedInput` reads them in order, each by the rules of its
format (:class:`~lambda_handlers.io.readers.SplitInput`: the line rule per object, so a packed
object's last line without a newline stays one record, a ``.gz`` read whole, a csv header per
object), and hands the mapper blocks of records. Before the first block of each object it sets
:func:`lambda_handlers.context.input_uri` to that object, so the mapper always knows where its
records come from. A block never spans two objects, except a batch mapper's block of text or jsonl
(``span``): it fills up to its size across the small objects read from memory, one call of the
batch mapper per megabytes rather than per 2 KB object, and :meth:`PackedInput.sources` (in the
context: :func:`lambda_handlers.context.block_sources`) says which records come from which object.

Small objects cost a GET each, so their latency and per-call CPU would dominate a split of
thousands of them: a piece that is a whole object of at most :data:`PRELOAD_MAX_BYTES` is fetched
ahead (at most :data:`PRELOAD_AHEAD_PIECES` objects and :data:`PRELOAD_AHEAD_BYTES` ahead of the
mapper) and read from memory (:func:`lambda_handlers.io.splits.preloading`); larger pieces stream
as before. The first small piece's GET goes through botocore, which shows how it reaches the
bucket (:func:`lambda_handlers.io.signed_get.route`); the following ones are fetched by one
thread's keep-alive GETs (:class:`lambda_handlers.io.multiget.Batch`, hand-signed), about a tenth
of botocore's CPU per object. Where that route is not for us (not plain SigV4, a proxy, a client
that is not botocore) a pool of :data:`PRELOAD_WORKERS` GETs through the client fetches them
instead. An object the batch could not fetch as expected (412, 404, any other status, a lost
connection) is read through the client: every GET carries ``IfMatch``, and an object changed or
deleted since planning fails the task, naming the object and the ETag pair.

Parquet pieces (row groups of a file, or all of it) are read by
:class:`~lambda_handlers.io.parquet.PieceReader`: rows as dicts, or RecordBatches for a batch
mapper, only the job's ``columns``. Text, csv and jsonl records are decoded with the job's
``encoding`` and ``errors``.

``input_format="whole"``: one record per object, the tuple ``(uri, body)`` with ``body`` the
object's bytes, decompressed when ``.gz`` (see :data:`DECOMPRESSORS`). The planner refuses an
object larger than the task's memory budget; a compressed one that inflates beyond it fails the
task naming the object and the limit.
"""

from __future__ import annotations

import bisect
import contextvars
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from lambda_handlers import context
from lambda_handlers.io import multiget, parquet, readers, signed_get, splits
from lambda_handlers.options import JobOptions
from lambda_handlers.plan import Piece, split_pieces
from lambda_handlers.s3uri import S3Uri

WHOLE = "whole"
PRELOAD_MAX_BYTES = 1 << 20  # a whole object up to this size is fetched ahead with one GET
PRELOAD_WORKERS = 32  # GETs in flight ahead of the mapper without a batch (botocore's CPU bounds it)
PRELOAD_AHEAD_BYTES = 32 << 20  # at most this many bytes fetched ahead (and a quarter of the budget)
PRELOAD_AHEAD_PIECES = 256  # ... and at most this many objects


class WholeObjectTooLargeError(ValueError):
    """A whole object (decompressed) larger than what a task may hold in memory."""


def _too_large(uri: str, limit: int) -> WholeObjectTooLargeError:
    return WholeObjectTooLargeError(
        f"object {uri} decompresses to more than a task may hold in memory ({limit:,} bytes) "
        "for input_format='whole': raise the stack's memory or leave this object out")


def _gunzip(data: bytes, limit: int, uri: str) -> bytes:
    """A (possibly multi-member) gzip object's bytes, refused past ``limit`` decompressed bytes."""
    out: list[bytes] = []
    size = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        part = d.decompress(data, limit + 1 - size)
        size += len(part)
        out.append(part)
        if size > limit or d.unconsumed_tail:
            raise _too_large(uri, limit)
        if not d.eof:
            raise zlib.error(f"object {uri}: truncated gzip data")
        data = d.unused_data
    return b"".join(out)


def _bunzip2(data: bytes, limit: int, uri: str) -> bytes:
    """A (possibly multi-stream) bzip2 object's bytes, refused past ``limit`` decompressed bytes."""
    out: list[bytes] = []
    size = 0
    for part in readers.bunzip_chunks(iter([data])):
        size += len(part)
        if size > limit:
            raise _too_large(uri, limit)
        out.append(part)
    return b"".join(out)


#: how a whole object's body is decompressed, by the piece's ``compression`` (the planner's
#: ``compression_of``): ``fn(data, limit, uri) -> bytes``, refusing more than ``limit`` bytes
DECOMPRESSORS: dict[str, Callable[[bytes, int, str], bytes]] = {"gzip": _gunzip, "bz2": _bunzip2}


def _get_whole(bucket: str, key: str, etag: str | None, on_bytes: Callable[[int], None] | None,
               signed: bool = False) -> bytes:
    """One GET of a whole object, pinned to ``etag`` (``signed``: by
    :func:`~lambda_handlers.io.signed_get.get_whole`, for small objects)."""
    if signed:
        data = signed_get.get_whole(bucket, key, etag)
    else:
        body = splits.open_whole(bucket, key, etag)
        try:
            data = body.read()
        finally:
            body.close()
    if on_bytes:
        on_bytes(len(data))
    return data


def _preloadable(piece: Piece) -> bool:
    size = int(piece.get("size") or 0)
    return piece.get("start") == 0 and piece.get("end") == size and 0 < size <= PRELOAD_MAX_BYTES


class _Preloader:
    """Whole small pieces fetched ahead of the reader, in the task's context (requests count into
    the task): by one :class:`~lambda_handlers.io.multiget.Batch` once botocore has shown how it
    reaches the bucket (the first small piece's GET goes through the client), else by a pool of
    GETs through the client."""

    def __init__(self, bucket: str, pieces: list[Piece], on_bytes: Callable[[int], None] | None,
                 ahead_bytes: int = PRELOAD_AHEAD_BYTES):
        self.bucket, self.pieces, self.on_bytes = bucket, pieces, on_bytes
        self.ahead_bytes = ahead_bytes
        self.futures: dict[int, Future[bytes]] = {}
        self.ahead = 0  # bytes of the pieces in self.futures
        self.next = 0  # the next piece to consider submitting
        self.pool: ThreadPoolExecutor | None = None
        self.batch: multiget.Batch | None = None
        self.fast: bool | None = None  # None: not decided before the first small piece

    def take(self, index: int) -> bytes | None:
        """The bytes of piece ``index`` if it is preloaded (waiting for its GET), else None."""
        if self.batch is not None and index in self.batch:
            data = self.batch.take(index)
            if data is None:  # the reader GETs it through the client: its retries, its errors
                if self.batch.broken:
                    self._leave_batch(index)
                return None
            if self.on_bytes:
                self.on_bytes(len(data))
            return data
        if self.fast is None and _preloadable(self.pieces[index]):
            return self._first(index)
        self._submit_ahead(index)
        future = self.futures.pop(index, None)
        if future is None:
            return None
        self.ahead -= int(self.pieces[index].get("size") or 0)
        return future.result()

    def _first(self, index: int) -> bytes | None:
        """The first small piece: learn the bucket's route with its GET if need be, then start
        the batch of the following ones (or the pool, where the route is not for us)."""
        from lambda_handlers import runtime

        client = runtime.s3()
        route = signed_get.route(client, self.bucket)
        data = None
        if route is signed_get.UNKNOWN:
            piece = self.pieces[index]
            data = _get_whole(self.bucket, piece["key"], piece.get("etag"), self.on_bytes, True)
            route = signed_get.route(client, self.bucket)
        self.fast = (isinstance(route, signed_get.Route)
                     and getattr(route.signer, "_credentials", None) is not None  # not anonymous
                     and not multiget.uses_proxy(route.base_url, client))
        start = index + (data is not None)
        if self.fast:
            items = [multiget.Item(i, p["key"], p.get("etag"), int(p["size"]))
                     for i, p in enumerate(self.pieces[start:], start) if _preloadable(p)]
            if items:
                self.batch = multiget.Batch(route, items, runtime.current_metrics(), self.ahead_bytes,
                                            PRELOAD_AHEAD_PIECES)
        else:
            self.next = start
        return data if data is not None else self.take(index)

    def _leave_batch(self, index: int) -> None:
        """The batch's connections failed: the rest through the client, by the pool."""
        from lambda_handlers import runtime

        signed_get.forget(runtime.s3(), self.bucket)
        if self.batch is not None:
            self.batch.close()
        self.batch, self.fast, self.next = None, False, index + 1

    def _submit_ahead(self, index: int) -> None:
        self.next = max(self.next, index)
        while (self.next < len(self.pieces) and self.next - index < PRELOAD_AHEAD_PIECES
               and self.ahead < self.ahead_bytes):
            piece = self.pieces[self.next]
            if _preloadable(piece):
                if self.pool is None:
                    self.pool = ThreadPoolExecutor(PRELOAD_WORKERS, thread_name_prefix="smr-preload")
                run = contextvars.copy_context().run
                self.futures[self.next] = self.pool.submit(run, _get_whole, self.bucket, piece["key"],
                                                           piece.get("etag"), self.on_bytes, True)
                self.ahead += int(piece.get("size") or 0)
            self.next += 1

    def close(self) -> None:
        if self.batch is not None:
            self.batch.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.futures.clear()


class _InMemoryLines:
    """A preloaded whole text or jsonl object read as :class:`~lambda_handlers.io.readers.SplitInput`
    reads it (the same blocks, records and byte offsets for :meth:`locate`), from the bytes in
    hand: without the fetch, line reader and generators a streamed piece needs, which a split of
    thousands of small objects would build once per object."""

    def __init__(self, data: bytes, fmt: str, block_records: int | None, block_bytes: int,
                 encoding: str, errors: str):
        self.data, self.jsonl = data, fmt == "jsonl"
        self.block_records, self.block_bytes = block_records, block_bytes
        self.encoding, self.errors = encoding, errors
        self._block: tuple[int, bytes, int] = (0, b"", 0)
        self._cursor: tuple[bytes, int, int] = (b"", 0, 0)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """:meth:`~lambda_handlers.io.splits.LineReader.blocks` of a whole object that arrives in
        one piece: up to its last newline, then an unterminated last line, a BOM at 0 removed."""
        data = self.data
        nl = data.rfind(b"\n")
        if 0 <= nl < len(data) - 1:
            parts = [(0, data[:nl + 1]), (nl + 1, data[nl + 1:])]
        else:
            parts = [(0, data)]
        for off, block in parts:
            if off == 0 and block.startswith(splits.BOM):
                off, block = 3, block[3:]
                if not block:
                    continue
            yield off, block

    def locate(self, index: int) -> int:
        """Byte offset of record ``index`` of the last block (``SplitInput``'s walk: it reads
        only ``_block`` and ``_cursor``)."""
        return readers.SplitInput.locate(cast(readers.SplitInput, self), index)

    def blocks(self) -> Iterator[list[Any]]:
        cap = self.block_records
        for off, data in readers.joined_blocks(self._lines(), self.block_bytes):
            recs = (splits.records_of(data) if self.jsonl
                    else readers.decoded_records(data, self.encoding, self.errors))
            if cap is None or len(recs) <= cap:
                self._block = (off, data, 0)
                yield recs
                continue
            for i in range(0, len(recs), cap):
                self._block = (off, data, i)
                yield type(recs)(recs[i:i + cap])


class _Segment:
    """The records of one object in a block that spans several: from index ``start`` of the
    block, read from ``piece``; ``_block`` and ``_cursor`` as :class:`_InMemoryLines` keeps them
    for :meth:`~lambda_handlers.io.readers.SplitInput.locate`."""

    __slots__ = ("start", "piece", "uri", "_block", "_cursor")

    def __init__(self, start: int, piece: Piece, uri: str, block: tuple[int, bytes, int]):
        self.start, self.piece, self.uri, self._block = start, piece, uri, block
        self._cursor: tuple[bytes, int, int] = (b"", 0, 0)

    def locate(self, index: int) -> int:
        return readers.SplitInput.locate(cast(readers.SplitInput, self), index - self.start)


class PackedInput:
    """The raw records of a split's pieces in order, for the mapper (the interface of
    :class:`~lambda_handlers.io.readers.SplitInput`: ``blocks``, ``parse``, ``locate``, ``where``).

    :param whole_limit: the task's memory budget: the largest (decompressed) body of an
        ``input_format="whole"`` object; a quarter of it at most is preloaded ahead of the mapper.
    :param options: the job's options (``encoding``, ``errors``, ``columns``).
    :param span: a batch mapper's blocks (``block_bytes``) fill across small objects read from
        memory (text, jsonl): :meth:`sources` says which records come from which object.
    """

    def __init__(self, split: dict[str, Any], on_bytes: Callable[[int], None] | None = None,
                 block_records: int | None = readers.BLOCK_RECORDS, block_bytes: int = 0,
                 read_ahead: int = splits.READ_AHEAD, whole_limit: int = 1 << 62,
                 options: JobOptions | None = None, span: bool = False):
        self.split, self.on_bytes = split, on_bytes
        self.options = options or JobOptions()
        self.block_records, self.block_bytes, self.read_ahead = block_records, block_bytes, read_ahead
        self.whole_limit = whole_limit
        self.bucket: str = split["bucket"]
        self.input: str = split.get("input") or "default"
        self.fmt: str = split.get("format") or "text"
        self.pieces = split_pieces(split)
        self.piece: Piece = self.pieces[0]
        self.current: readers.SplitInput | parquet.PieceReader | _InMemoryLines | None = None
        self._objects: dict[tuple[str, str, str | None], bytes] = {}
        self.span = span and block_bytes > 0 and block_records is None and self.fmt in ("text", "jsonl")
        self._segments: list[_Segment] = []  # the last block's objects, when it spans several
        if self.fmt in (WHOLE, parquet.FORMAT):
            self.parse: Callable[[Any], Any] = readers.identity
        elif self.fmt == "csv":  # each object has its own header row
            self.parse = self._parse_csv
        else:
            self.parse = readers.parser_for(self.fmt, None, self.options.encoding, self.options.errors)

    def _parse_csv(self, raw: Any) -> Any:
        assert isinstance(self.current, readers.SplitInput)  # records are parsed while their object is current
        return self.current.parse(raw)

    def uri(self, piece: Piece | None = None) -> str:
        return str(S3Uri(self.bucket, (piece or self.piece)["key"]))

    def blocks(self) -> Iterator[list[Any]]:
        """Lists of raw records, in piece order; a list spans several objects only with ``span``
        (then :meth:`sources` names them)."""
        splits.preloading(self._objects)
        ahead = min(PRELOAD_AHEAD_BYTES, max(PRELOAD_MAX_BYTES, self.whole_limit // 4))
        preloader = _Preloader(self.bucket, self.pieces, self.on_bytes, ahead)
        spanning: list[Any] = []  # the block being filled across objects (span)
        size = 0
        try:
            for index, piece in enumerate(self.pieces):
                if piece["end"] <= piece["start"] and self.fmt != WHOLE:
                    continue  # an empty range (the one split of an all-empty input) has no records
                pin = (self.bucket, piece["key"], piece.get("etag"))
                data = preloader.take(index)
                if self.span and data is not None and self._in_memory(piece, data):
                    if not spanning:
                        self._segments = []
                    spanning, size = self._fill(spanning, size, piece, data)
                    if size >= self.block_bytes:
                        yield from self._spanning_block(spanning)
                        spanning, size = [], 0
                    continue
                if spanning:
                    yield from self._spanning_block(spanning)
                    spanning, size = [], 0
                self.piece, self.current = piece, None
                if data is not None:
                    self._objects[pin] = data
                context.set_input(self.uri(piece), self.input)
                try:
                    if self.fmt == WHOLE:
                        yield [(self.uri(piece), self._whole_body(piece, data))]
                    else:
                        yield from self._piece_blocks(piece, preloaded=data)
                finally:
                    self._objects.pop(pin, None)
            if spanning:
                yield from self._spanning_block(spanning)
        finally:
            preloader.close()

    def _in_memory(self, piece: Piece, data: bytes) -> bool:
        """Whether a preloaded piece is read from its bytes in hand (:class:`_InMemoryLines`)."""
        return (self.fmt in ("text", "jsonl") and not piece.get("compression")
                and len(data) == piece["size"] <= splits.BODY_CHUNK)

    def _fill(self, block: list[Any], size: int, piece: Piece, data: bytes) -> tuple[list[Any], int]:
        """``block`` with the records of a whole object read from memory appended (an
        :class:`~lambda_handlers.io.readers.UndecodedBlock` once one of them did not decode)."""
        lines = _InMemoryLines(data, self.fmt, None, self.block_bytes, self.options.encoding,
                               self.options.errors)
        uri = self.uri(piece)
        for recs in lines.blocks():
            if not recs:
                continue
            self._segments.append(_Segment(len(block), piece, uri, lines._block))
            if isinstance(recs, readers.UndecodedBlock) and not isinstance(block, readers.UndecodedBlock):
                block = readers.UndecodedBlock(block)
            block.extend(recs)
        return block, size + len(data)

    def _spanning_block(self, block: list[Any]) -> Iterator[list[Any]]:
        """Hand out a block filled across objects: the context says which (one object: its
        ``input_uri()``; several: :func:`~lambda_handlers.context.block_sources`)."""
        segments = self._segments
        if not segments:
            return
        self.piece, self.current = segments[-1].piece, None
        if len(segments) == 1:
            context.set_input(segments[0].uri, self.input)
        else:
            context.set_block([context.BlockSource(g.start, g.uri, self.input) for g in segments])
        try:
            yield block
        finally:
            context.set_input(segments[-1].uri, self.input)
            self._segments = []

    def sources(self) -> list[tuple[int, str]] | None:
        """``(start, uri)`` of each object in the last block when it holds records of several
        (``start``: the index of its first record in the block), else None."""
        if len(self._segments) < 2:
            return None
        return [(g.start, g.uri) for g in self._segments]

    def _piece_blocks(self, piece: Piece, preloaded: bytes | None) -> Iterator[Any]:
        if preloaded is not None and self._in_memory(piece, preloaded):
            self.current = _InMemoryLines(preloaded, self.fmt, self.block_records, self.block_bytes,
                                          self.options.encoding, self.options.errors)
            yield from self.current.blocks()
            return
        on_bytes = None if preloaded is not None else self.on_bytes
        if self.fmt == parquet.FORMAT:
            self.current = parquet.PieceReader(self.bucket, piece, on_bytes, self.block_records is None,
                                               self.options.columns_for(self.input))
            yield from self.current.blocks()
            return
        one: dict[str, Any] = {"input": self.input, "bucket": self.bucket, "format": self.fmt, **piece}
        self.current = readers.SplitInput(one, on_bytes, self.block_records, self.block_bytes,
                                          0 if preloaded is not None else self.read_ahead,
                                          encoding=self.options.encoding, errors=self.options.errors)
        yield from self.current.blocks()

    def _whole_body(self, piece: Piece, data: bytes | None) -> bytes:
        uri = self.uri(piece)
        if data is None:
            if int(piece.get("size") or 0) > self.whole_limit:
                raise WholeObjectTooLargeError(
                    f"object {uri} ({piece.get('size'):,} bytes) is larger than a task may hold in "
                    f"memory ({self.whole_limit:,} bytes) for input_format='whole'")
            data = _get_whole(self.bucket, piece["key"], piece.get("etag"), self.on_bytes)
        compression = piece.get("compression")
        if compression:
            decompress = DECOMPRESSORS.get(compression)
            if decompress is None:
                raise ValueError(f"object {uri}: no decompressor for {compression!r} (known: "
                                 f"{', '.join(DECOMPRESSORS)})")
            data = decompress(data, self.whole_limit, uri)
        return data

    def _segment(self, index: int) -> _Segment | None:
        """The object of record ``index`` of the last block, when it spans several."""
        segments = self._segments
        if not segments:
            return None
        return segments[bisect.bisect_right([g.start for g in segments], index) - 1]

    def locate(self, index: int) -> str:
        """Where record ``index`` of the last block is: a byte offset in its object, or the object.
        In a block that spans objects, that record's object becomes the piece :meth:`where` names."""
        segment = self._segment(index)
        if segment is not None:
            self.piece = segment.piece
            return f"byte {segment.locate(index)} of {segment.uri}"
        if self.fmt == WHOLE or self.current is None:
            return f"object {self.uri()}"
        if isinstance(self.current, parquet.PieceReader):
            return self.current.locate(index)
        unit = " (decompressed)" if self.piece.get("compression") else ""
        return f"byte {self.current.locate(index)}{unit} of {self.uri()}"

    def where(self) -> dict[str, Any]:
        """The piece being read, for an error's ``input``."""
        return {"bucket": self.bucket, "key": self.piece["key"], "start": self.piece.get("start"),
                "end": self.piece.get("end"), "etag": self.piece.get("etag")}

    def __iter__(self) -> Iterator[Any]:
        for recs in self.blocks():
            yield from recs
