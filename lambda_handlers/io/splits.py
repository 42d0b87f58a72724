"""Line-exact split reader over S3 ranged GETs, pinned to the planned ETag.

The rule: a split ``[start, end)`` owns the records whose first byte lies in it. A record starts at
offset 0 and after every ``\\n``. So a split with ``start > 0`` skips everything up to and including
the first ``\\n`` at or after ``start - 1`` (the record starting at ``start`` is owned only if byte
``start - 1`` is ``\\n``), and reads the record straddling ``end`` to its end with further ranged
GETs (growing sizes, no fixed overshoot). A last line without ``\\n`` is a record; ``\\r\\n`` is one
terminator (a ``\\r`` elsewhere is data); a UTF-8 BOM is stripped at offset 0 only. Gzip objects
are one split, streamed whole; offsets then count decompressed bytes.

Every GET carries ``IfMatch=<etag>``: an object rewritten during the job fails the task with
:class:`~lambda_handlers.runtime.ObjectChangedError` (naming the object, the planned ETag and the
current one) instead of mixing two versions.

Preloaded objects: a packed split's small whole objects are fetched ahead by a pool of GETs
(:mod:`lambda_handlers.io.packed`) and handed over with :func:`preloading`; :func:`s3_fetch` and
:func:`open_whole` then serve them from memory (same bytes, same ETag pin, no further request).

Read-ahead: with ``read_ahead=n`` the body GET of a split is read by a background thread at most
``n`` chunks ahead of the mapper (:func:`prefetched`), so a map task takes max(read, compute)
rather than their sum; the bytes, and so every offset, are the same as without it. Extension GETs
(the record straddling ``end``) stay on demand: reading them ahead would fetch bytes no one needs.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.response import StreamingBody

BOM = b"\xef\xbb\xbf"
BODY_CHUNK = 1 << 20
FIRST_EXTENSION = 64 * 1024
MAX_EXTENSION = 8 << 20
READ_AHEAD = 2  # body chunks held ahead of the mapper (BODY_CHUNK each)
_POLL_S = 0.05  # how often a blocked read-ahead thread checks that its reader still wants data

# fetch(first_byte, last_byte_inclusive) -> iterator of byte chunks
Fetch = Callable[[int, int], Iterator[bytes]]

# (bucket, key, etag) -> the whole object's bytes, fetched ahead for the running task
_preloaded: contextvars.ContextVar[dict[tuple[str, str, str | None], bytes] | None] = \
    contextvars.ContextVar("smr_preloaded", default=None)


def preloading(objects: dict[tuple[str, str, str | None], bytes]) -> None:
    """Serve the objects of ``objects`` (filled and emptied by the caller as it reads) from memory
    in this context: :func:`s3_fetch` and :func:`open_whole` look there first."""
    _preloaded.set(objects)


def _preloaded_body(bucket: str, key: str, etag: str | None) -> bytes | None:
    objects = _preloaded.get()
    return None if objects is None else objects.get((bucket, key, etag))


class _MemoryBody:
    """A preloaded object as the streaming body :func:`open_whole` returns."""

    def __init__(self, data: bytes):
        self.data = data

    def iter_chunks(self, chunk: int = BODY_CHUNK) -> Iterator[bytes]:
        for i in range(0, len(self.data), chunk):
            yield self.data[i:i + chunk]

    def read(self, amt: int | None = None) -> bytes:
        data, self.data = (self.data, b"") if amt is None else (self.data[:amt], self.data[amt:])
        return data

    def close(self) -> None:
        self.data = b""


class LineReader:
    """Iterate the records ``(bytes without terminator)`` a split owns; ``offset`` is the last one's.

    Pure over ``fetch`` so the boundary logic is tested without S3; :func:`s3_fetch` binds it to
    ranged GETs.
    """

    def __init__(self, fetch: Fetch, start: int, end: int, size: int, read_ahead: int = 0):
        self.fetch, self.start, self.end, self.size = fetch, start, min(end, size), size
        self.read_ahead = read_ahead
        self.offset = start  # byte offset of the record last yielded

    def _chunks(self) -> Iterator[bytes]:
        """The body ``[b0, end)`` as one ranged GET (read ahead by a thread if ``read_ahead``),
        then extension GETs until the object ends."""
        b0 = self.start - 1 if self.start > 0 else 0
        body = self.fetch(b0, self.end - 1)
        if self.read_ahead > 0:
            body = prefetched(body, self.read_ahead)
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        pos, n = self.end, FIRST_EXTENSION
        while pos < self.size:
            last = min(self.size, pos + n) - 1
            yield from self.fetch(pos, last)
            pos, n = last + 1, min(n * 2, MAX_EXTENSION)

    def __iter__(self) -> Iterator[bytes]:
        for off, data in self.blocks():
            recs = records_of(data)
            self.offset = off
            for rec in recs:
                yield rec
                self.offset += len(rec) + 1  # approximate past a CRLF; exact offsets: offset_in()

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, data)``: runs of whole records the split owns, in order, as they arrive.

        ``data`` is a slice of the object starting at byte ``offset``, ending with ``\\n`` except
        for an unterminated last record of the object (a UTF-8 BOM at offset 0 is removed and
        ``offset`` moves past it). Cut only after ``\\n``, so decoding a block never splits a
        multi-byte character; :func:`records_of` splits it into records.
        """
        if self.start >= self.end:
            return
        chunks = self._chunks()
        if self.start > 0:
            buf_off, buf = self.start - 1, b""
            while True:  # skip the tail of the record that began before this split
                i = buf.find(b"\n")
                if i >= 0:
                    buf, buf_off = buf[i + 1:], buf_off + i + 1
                    break
                if buf_off + len(buf) >= self.end:
                    return  # no record starts inside [start, end)
                buf_off, buf = buf_off + len(buf), next(chunks, b"")
        else:
            buf_off, buf = 0, b""
        for off, data in self._blocks(chunks, buf, buf_off):
            if off == 0 and data.startswith(BOM):
                off, data = 3, data[3:]
                if not data:
                    continue
            yield off, data

    def _blocks(self, chunks: Iterator[bytes], buf: bytes, off: int) -> Iterator[tuple[int, bytes]]:
        end = self.end
        while off < end:
            nl = buf.rfind(b"\n")
            if nl < 0:
                parts = [buf]
                for nxt in chunks:
                    parts.append(nxt)
                    if b"\n" in nxt:
                        break
                buf = b"".join(parts)
                nl = buf.rfind(b"\n")
                if nl < 0:  # end of object: a last line without newline is a record
                    if buf:
                        yield off, buf
                    return
            limit = end - off  # records starting before `limit` in buf are this split's
            if nl >= limit:
                j = buf.find(b"\n", limit - 1)
                yield off, buf[: j + 1]
                return
            yield off, buf[: nl + 1]
            off, buf = off + nl + 1, buf[nl + 1:]

    def offset_in(self, off: int, data: bytes, index: int) -> int:
        """Byte offset of record ``index`` of the block ``(off, data)``."""
        pos = 0
        for _ in range(index):
            pos = data.index(b"\n", pos) + 1
        return off + pos


def records_of(data: bytes) -> list[bytes]:
    """The records of one block from :meth:`LineReader.blocks` (``\\r\\n`` is one terminator)."""
    recs = data.split(b"\n")
    tail = recs.pop()  # b"" after a final newline, else the unterminated last record
    if b"\r" in data:
        recs = [r[:-1] if r.endswith(b"\r") else r for r in recs]
    if tail:
        recs.append(tail)
    return recs


def split_lines(fetch: Fetch, start: int, end: int, size: int) -> list[bytes]:
    """All records of a split, as a list (tests and small reads)."""
    return list(LineReader(fetch, start, end, size))


def reference_lines(data: bytes) -> list[bytes]:
    """The records of a whole object by the same rule, without any splitting (the oracle)."""
    if data.startswith(BOM):
        data = data[3:]
    lines = data.split(b"\n")
    last = lines.pop()  # b"" after a final newline, else the unterminated last line
    out = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if last:
        out.append(last)
    return out


# ---------------------------------------------------------------------------------------------
# S3 binding


def s3_fetch(bucket: str, key: str, etag: str | None, on_bytes: Callable[[int], None] | None = None,
             chunk: int = BODY_CHUNK) -> Fetch:
    """A :data:`Fetch` doing ranged GETs of ``s3://bucket/key`` pinned to ``etag``."""
    from lambda_handlers import runtime

    def fetch(first: int, last: int) -> Iterator[bytes]:
        whole = _preloaded_body(bucket, key, etag)
        if whole is not None:
            if first == 0 and last + 1 >= len(whole):
                yield whole  # a preloaded small object read whole: no copy
            elif first < len(whole):
                yield whole[first:last + 1]
            return
        kw = {"IfMatch": etag} if etag else {}
        try:
            resp = runtime.s3().get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}", **kw)
        except Exception as exc:
            raise _changed(exc, bucket, key, etag) from exc
        body = resp["Body"]
        try:
            for piece in body.iter_chunks(chunk):
                if on_bytes:
                    on_bytes(len(piece))
                yield piece
        finally:  # a record may end early in an extension GET: release the connection anyway
            body.close()

    return fetch


def open_whole(bucket: str, key: str, etag: str | None) -> StreamingBody:
    """The streaming body of a whole object pinned to ``etag`` (gzip inputs)."""
    from lambda_handlers import runtime

    whole = _preloaded_body(bucket, key, etag)
    if whole is not None:
        return _MemoryBody(whole)  # duck-typed: the StreamingBody methods the readers use
    kw = {"IfMatch": etag} if etag else {}
    try:
        body: StreamingBody = runtime.s3().get_object(Bucket=bucket, Key=key, **kw)["Body"]
    except Exception as exc:
        raise _changed(exc, bucket, key, etag) from exc
    return body


def _changed(exc: Exception, bucket: str, key: str, etag: str | None) -> Exception:
    from lambda_handlers import runtime
    from lambda_handlers.aws_errors import is_not_found, is_precondition_failed

    if is_precondition_failed(exc):
        return runtime.ObjectChangedError(
            f"object s3://{bucket}/{key} changed during the job: planned ETag {etag}, now "
            f"{_current_etag(bucket, key)}; re-run the job on a stable input")
    if is_not_found(exc):
        return runtime.ObjectChangedError(
            f"object s3://{bucket}/{key} disappeared during the job: planned ETag {etag}, now none "
            "(deleted); re-run the job on a stable input")
    return exc


def _current_etag(bucket: str, key: str) -> str:
    """The object's ETag now (for the error of a changed object), or why it cannot be told."""
    from lambda_handlers import runtime

    try:
        return str(runtime.s3().head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    except Exception as exc:  # noqa: BLE001 - only for the message: the task fails either way
        return f"unknown ({type(exc).__name__})"


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class _End:
    """Offered after the last chunk."""


_END = _End()


def prefetched(chunks: Iterator[bytes], depth: int = READ_AHEAD) -> Iterator[bytes]:
    """The items of ``chunks``, pulled by a background thread at most ``depth`` ahead of the caller.

    The thread runs in a copy of the caller's context (request counting follows the task). An
    error in the thread is raised here, where the chunk would have been; closing this generator
    (the reader stopped early) makes the thread stop within ``_POLL_S`` and close ``chunks``.
    """
    slots: queue.Queue[bytes | _Failed | _End] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def offer(item: bytes | _Failed | _End) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for chunk in chunks:
                if not offer(chunk):
                    return
            offer(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            offer(_Failed(exc))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(pump,),
                              name="smr-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()


def stream_lines(chunks: Iterator[bytes]) -> LineReader:
    """Records of a whole stream (already-fetched chunks, e.g. decompressed gzip)."""
    it = iter(chunks)
    return LineReader(lambda first, last: it, 0, 1 << 62, 1 << 62)
