"""Many small whole-object GETs driven by one thread over keep-alive connections.

A map task reading thousands of small objects spends its CPU per GET, not per byte: a thread and
a ``Future`` per object, botocore's signer and an HTTP client that parses headers with
``email.feedparser`` cost about a millisecond of CPU per 2 KB object. A :class:`Batch` fetches a
split's small objects from the reader's own thread instead: a ``selectors`` state machine over
up to :data:`CONNECTIONS` non-blocking keep-alive connections to the bucket's endpoint (TLS for https),
each carrying up to :data:`PIPELINE` requests at a time (HTTP/1.1 pipelining over http: requests
join a connection in groups that leave in one send; its answers come back in the order sent).
A request is one pre-built ``GET`` signed by
:class:`~lambda_handlers.io.sigv4.GetRequests` (the client's credentials, refreshed as botocore
refreshes them);
a response is its status line and headers up to the blank line, then ``Content-Length`` bytes.
The reader takes the bodies in piece order (:meth:`Batch.take`), which is also when the batch
reads what has arrived and sends more, staying at most ``ahead_pieces`` objects and
``ahead_bytes`` bytes ahead of the reader; the requests in flight travel while the mapper works.
(No thread of its own: a second thread would wait for the GIL after each socket call while the
mapper runs, and hand over every body through a lock.)

Where and how to send comes from botocore: the route it took for the bucket's first GET
(:func:`lambda_handlers.io.signed_get.route`: AWS's virtual hosts and regions, the local stack's
path style). Anything unusual is left to botocore, object by object: a status other than 200
(412 changed, 404 deleted, 403, a redirect, a 5xx), a body without ``Content-Length`` or chunked,
a read timeout or a connection lost mid-response (a kept-alive connection the server had closed
before the request is retried once on a new one, and so are the requests pipelined behind a
failed or ``Connection: close`` answer: a GET is safe to repeat, and only answers count).
:meth:`Batch.take` then returns None and the
reader GETs the object through the client, whose retries and error mapping (the URI and both
ETags) stay the one path for errors. A connection that cannot be opened (DNS, refused, a TLS
failure: a proxy or CA bundle only botocore is configured with) marks the batch ``broken``: the
rest of the split goes through the client. Every request carries ``If-Match``; each response
counts as a ``GetObject`` of the task. Idle connections are kept for the next batch of the
process (a warm Lambda worker's next task). Response checksums are not validated (botocore checks
them when S3 sends one); TLS (or the loopback, locally) protects the body in transit.

The reader takes every item, in order: the byte budget counts what it has not taken yet.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from lambda_handlers.io import sigv4

#: connections per batch, by the endpoint's scheme: over https (S3) enough to hide its ~20 ms
#: to first byte; over http (a local or in-VPC endpoint answering in a fraction of a millisecond)
#: two, since more only cost the server (a thread each on the local stack, all under one GIL):
#: with :data:`PIPELINE`, 32 requests in flight
CONNECTIONS = {"https": 32, "http": 2}
#: requests sent ahead on one connection before its first answer arrives (HTTP/1.1 pipelining), by
#: scheme: over http (the local stack, an in-VPC endpoint) a connection's requests leave in one
#: send and the server reads them with one receive, so the syscalls and thread wake-ups of both
#: sides are paid once per 16 objects instead of once per object; over https one (S3's answers
#: take ~20 ms each: more connections, not deeper ones, hide that)
PIPELINE = {"https": 1, "http": 16}
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 120.0
MAX_HEAD_BYTES = 64 << 10
_RECV_BYTES = 256 << 10
GET_OBJECT = "GetObject"

#: what this process's batches did (tests and benchmarks read it): ``served`` bodies,
#: ``fallback`` objects left to botocore, ``connections`` opened, ``reused`` kept-alive ones taken
stats: Counter[str] = Counter()

_idle: dict[tuple[str, str, int], list[Any]] = {}  # (scheme, host, port) -> kept-alive sockets
_idle_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None
os.register_at_fork(after_in_child=_idle.clear)  # a forked worker opens its own


@dataclass(frozen=True)
class Item:
    """One whole object to GET: its piece index in the split, key, pinned ETag and size."""

    index: int
    key: str
    etag: str | None
    size: int


class _Conn:
    __slots__ = ("sock", "state", "items", "head", "body", "got", "deadline", "reused", "out",
                 "close_after", "any_byte", "addr", "writing")

    def __init__(self, sock: Any, state: str, reused: bool, addr: Any = None):
        self.sock, self.state, self.reused, self.addr = sock, state, reused, addr
        self.items: deque[Item] = deque()  # requested, not yet answered, in the order sent
        self.head = bytearray()  # received bytes not yet part of a body (the next answer's head)
        self.body: bytearray | None = None
        self.got = 0
        self.deadline = 0.0
        self.out = b""  # request bytes not yet sent
        self.close_after = False
        self.any_byte = False  # a byte of the answer to items[0] arrived
        self.writing = False  # registered for EVENT_WRITE (requests sent in parts)

    @property
    def item(self) -> Item | None:
        """The object whose answer comes next, if any."""
        return self.items[0] if self.items else None


class _ConnectError(Exception):
    """A new connection could not be opened (to the address ``args[1]``)."""


def _context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        from botocore.httpsession import get_cert_path

        ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True))
        ctx.set_alpn_protocols(["http/1.1"])
        _ssl_context = ctx
    return _ssl_context


def uses_proxy(url: str, client: Any) -> bool:
    """Whether botocore would send ``url`` through a proxy (then only botocore can reach it)."""
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if getattr(getattr(client, "meta", None), "config", None) is not None and client.meta.config.proxies:
        return True
    return bool(getproxies().get(parts.scheme)) and not proxy_bypass(parts.hostname or "")


class Batch:
    """Whole objects fetched ahead of the reader, handed over in piece order.

    The reader's own thread drives the connections: each :meth:`take` first reads what has
    arrived and sends the next requests (a ``select`` that does not wait), then waits only if its
    object has not come yet. Requests stay in flight while the mapper works on what it took.

    :param route: how botocore reached the bucket (:class:`~lambda_handlers.io.signed_get.Route`).
    :param items: the objects, in the order the reader takes them.
    :param metrics: the task's :class:`~lambda_handlers.runtime.TaskMetrics` (requests count there).
    """

    def __init__(self, route: Any, items: list[Item], metrics: Any, ahead_bytes: int,
                 ahead_pieces: int, connections: int | None = None):
        parts = urlsplit(route.base_url)
        self.scheme = parts.scheme
        self.hostname = parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.host = sigv4.host_of(route.base_url)
        self.base_path = parts.path
        self.region, self.service = route.region, route.signing_name
        self.credentials = route.signer._credentials  # botocore refreshes these in place
        self._requests = sigv4.GetRequests(self.host, self.region, self.credentials, self.service)
        self.metrics = metrics
        self.connections = connections or CONNECTIONS.get(self.scheme, CONNECTIONS["https"])
        self.depth = PIPELINE.get(self.scheme, 1)
        self.ahead_bytes, self.ahead_pieces = ahead_bytes, ahead_pieces
        self.items = {item.index: item for item in items}
        self.broken = False
        self._pending: deque[Item] = deque(items)
        self._retried: set[int] = set()
        self._results: dict[int, bytes | None] = {}
        self._reader_at = items[0].index if items else 0  # the piece the reader is at
        self._in_memory = 0  # bytes sent for and not yet taken by the reader
        self._buffer = bytearray(_RECV_BYTES)
        self._sel = selectors.DefaultSelector()
        self._conns: list[_Conn] = []
        self._free: list[_Conn] = []  # open connections without a request
        self._filling: _Conn | None = None  # the connection the next requests join
        self._addrs: list[Any] | None = None  # the endpoint's addresses, resolved once
        self._opened = False  # a connection of this batch opened: the route works
        self._next_check = time.monotonic() + 1.0
        self._closed = False

    def __contains__(self, index: int) -> bool:
        return index in self.items

    def take(self, index: int) -> bytes | None:
        """The body of piece ``index`` (waiting for it), or None: GET it through the client."""
        item = self.items[index]
        self._reader_at = index
        try:
            if not self._closed:
                self._pump(0)
                while index not in self._results and (self._pending or self._busy()):
                    self._pump(0.5)
        except Exception:  # noqa: BLE001 - never lose an object: the rest goes to botocore
            self.broken = True
            self._finish()
        data = self._results.pop(index, None)
        if data is not None:
            self._in_memory -= item.size
        return data

    def close(self) -> None:
        """Stop fetching (the reader is done or failed); keep idle connections for later."""
        if not self._closed:
            self._finish()

    def _busy(self) -> bool:
        return len(self._free) < len(self._conns)

    def _pump(self, timeout: float) -> None:
        """Send what the budget allows, then handle what arrives within ``timeout`` seconds
        (before waiting, also the requests of a pipeline not yet full)."""
        self._issue()
        if not self._conns:
            return
        if timeout and self._filling is not None and self._filling.out and self._filling.state == "open":
            self._flush(self._filling)
        for key, mask in self._sel.select(timeout):
            self._on_event(key.data, mask)
        self._issue()
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + 0.5
            for conn in [c for c in self._conns if c.items and c.deadline < now]:
                if conn.state in ("connecting", "handshake"):
                    self._lost(conn)
                else:
                    self._fail(conn, retry=False)

    def _issue(self) -> None:
        touched: list[_Conn] = []
        while self._pending and not self.broken:
            item = self._pending[0]
            too_far = (item.index - self._reader_at >= self.ahead_pieces
                       or (self._in_memory > 0 and self._in_memory + item.size > self.ahead_bytes))
            if too_far and item.index not in self._retried:
                break
            conn = self._next_conn()
            if conn is None:
                if len(self._conns) >= self.connections:
                    break
                try:
                    conn = self._open()
                except _ConnectError as exc:
                    if self._cannot_connect(exc.args[1]):
                        break
                    continue
                self._filling = conn
            self._pending.popleft()
            self._in_memory += item.size
            if not conn.items:
                conn.deadline = time.monotonic() + (READ_TIMEOUT_S if conn.state == "open" else CONNECT_TIMEOUT_S)
            conn.items.append(item)
            if conn.state == "open":
                conn.out += self._request(item)
                if not touched or touched[-1] is not conn:
                    touched.append(conn)
        for conn in touched:  # full pipelines now; the one being filled waits for more
            if conn.out and conn in self._conns and (conn is not self._filling
                                                     or len(conn.items) >= self.depth):
                self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            self._write(conn)
        except (OSError, ValueError):  # a kept-alive connection the server closed
            self._fail(conn, retry=conn.reused and not conn.any_byte)

    def _next_conn(self) -> _Conn | None:
        """The connection the next request joins: the one being filled while its pipeline has
        room, else a free one (all its answers in): requests leave in groups, one send each.
        None: open a new connection, or (at :attr:`connections`) wait."""
        conn = self._filling
        if conn is not None and 0 < len(conn.items) < self.depth:
            return conn
        if not self._free:
            return None
        conn = self._filling = self._free.pop()
        return conn

    def _open(self) -> _Conn:
        with _idle_lock:
            kept = _idle.get((self.scheme, self.hostname, self.port)) or []
            sock = None
            while kept and sock is None:
                sock = kept.pop()
                # closed meanwhile: a reader dropped without closing is collected with its
                # sockets, whose finalizers may close them after close() kept them here
                if sock.fileno() < 0:
                    sock = None
        if sock is not None:
            stats["reused"] += 1
            self._opened = True
            conn = _Conn(sock, "open", reused=True)
            self._sel.register(sock, selectors.EVENT_READ, conn)
            self._conns.append(conn)
            return conn
        address = None
        try:
            if self._addrs is None:
                self._addrs = socket.getaddrinfo(self.hostname, self.port, type=socket.SOCK_STREAM)
            if not self._addrs:
                raise OSError("no address left to try")
            # in order until one opens (as socket.create_connection), then spread over them
            address = self._addrs[len(self._conns) % len(self._addrs) if self._opened else 0]
            family, kind, proto, _, addr = address
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(addr)
        except OSError as exc:
            raise _ConnectError(str(exc), address) from exc
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise _ConnectError(os.strerror(err), address)
        stats["connections"] += 1
        conn = _Conn(sock, "connecting", reused=False, addr=address)
        conn.deadline = time.monotonic() + CONNECT_TIMEOUT_S
        self._sel.register(sock, selectors.EVENT_WRITE, conn)
        self._conns.append(conn)
        return conn

    def _on_event(self, conn: _Conn, mask: int) -> None:
        try:
            if conn.state == "connecting":
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise _ConnectError(os.strerror(err), conn.addr)
                if self.scheme == "https":
                    conn.sock = _context().wrap_socket(conn.sock, server_hostname=self.hostname,
                                                       do_handshake_on_connect=False)
                    self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
                    conn.state = "handshake"
                    self._handshake(conn)
                else:
                    self._ready(conn)
                return
            if conn.state == "handshake":
                self._handshake(conn)
                return
            if mask & selectors.EVENT_WRITE:
                self._write(conn)
            if mask & selectors.EVENT_READ:
                if not conn.items:  # an idle connection became readable: the server closed it
                    self._discard(conn)
                else:
                    self._read(conn)
        except _ConnectError:
            self._lost(conn)
        except (OSError, ValueError):  # reset, broken pipe, TLS alert, a malformed response
            self._fail(conn, retry=conn.reused and not conn.any_byte)

    def _lost(self, conn: _Conn) -> None:
        """A new connection failed to open: its objects wait for another one."""
        items = list(conn.items)
        conn.items.clear()
        self._discard(conn)
        for item in reversed(items):
            self._in_memory -= item.size
            self._pending.appendleft(item)
        self._cannot_connect(conn.addr)

    def _cannot_connect(self, address: Any) -> bool:
        """After a connection failed to open: whether to stop opening more for now. Before any
        opened, the next address is tried (an IPv6 address without a route, say); with none
        left, or none open any more, the route does not work from here: :meth:`_break`."""
        if not self._opened:
            if self._addrs and address in self._addrs:
                self._addrs.remove(address)
            if self._addrs:
                return False
        elif self._conns:
            self.connections = max(1, len(self._conns))  # as many as the endpoint takes
            return True
        self._break()
        return True

    def _handshake(self, conn: _Conn) -> None:
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        except ssl.SSLWantWriteError:
            self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        except (OSError, ValueError) as exc:
            raise _ConnectError(str(exc), conn.addr) from exc
        self._ready(conn)

    def _ready(self, conn: _Conn) -> None:
        """A new connection is open: send its requests."""
        conn.state = "open"
        self._opened = True
        self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.items:
            conn.out = b"".join(self._request(item) for item in conn.items)
            conn.deadline = time.monotonic() + READ_TIMEOUT_S
            self._write(conn)

    def _request(self, item: Item) -> bytes:
        return self._requests.request(self.base_path + quote(item.key, safe="/~"), item.etag)

    def _write(self, conn: _Conn) -> None:
        """Send what the connection has to send; what the socket does not take waits for
        ``EVENT_WRITE`` (answers are read meanwhile)."""
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                sent = 0
            conn.out = conn.out[sent:]
        if bool(conn.out) != conn.writing:
            conn.writing = not conn.writing
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.writing else 0)
            self._sel.modify(conn.sock, events, conn)

    def _read(self, conn: _Conn) -> None:
        while True:
            body = conn.body
            if body is not None and not conn.head:  # the rest of a body: straight into it
                view = memoryview(body)[conn.got:]
                try:
                    n = conn.sock.recv_into(view)
                except (ssl.SSLWantReadError, BlockingIOError):
                    return
                finally:
                    view.release()
                if n == 0:
                    raise ConnectionResetError("the server closed the connection")
                conn.got += n
            else:
                try:
                    n = conn.sock.recv_into(self._buffer)
                except (ssl.SSLWantReadError, BlockingIOError):
                    return
                if n == 0:
                    raise ConnectionResetError("the server closed the connection")
                conn.head += memoryview(self._buffer)[:n]
            conn.any_byte = True
            if not self._consume(conn):
                return  # the connection is done (closed after its last answer)
            if not isinstance(conn.sock, ssl.SSLSocket) or not conn.sock.pending():
                return

    def _consume(self, conn: _Conn) -> bool:
        """Complete the answers the received bytes hold, in the order their requests were sent;
        False when the connection was closed meanwhile (``Connection: close``)."""
        while conn.items:
            if conn.body is None and not self._parse_head(conn):
                return True
            body = conn.body
            assert body is not None
            if conn.head:
                take = min(len(conn.head), len(body) - conn.got)
                body[conn.got:conn.got + take] = conn.head[:take]
                del conn.head[:take]
                conn.got += take
            if conn.got < len(body):
                return True
            if not self._complete(conn):
                return False
        if conn.head:
            raise ValueError("bytes without a request")
        return True

    def _parse_head(self, conn: _Conn) -> bool:
        """Whether the next answer's head is complete (then it is consumed and ``conn.body`` is
        set); raises on the unusual (handled as a failed object)."""
        end = conn.head.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.head) > MAX_HEAD_BYTES:
                raise ValueError("response head too large")
            return False
        head = bytes(conn.head[:end]).lower()
        status_line, _, fields = head.partition(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        self._count()
        if rest[:3] != b"200" or not version.startswith(b"http/1."):
            raise ValueError(f"status {rest[:3]!r}")
        fields = b"\r\n" + fields
        at = fields.find(b"\r\ncontent-length:")
        if at < 0 or b"\r\ntransfer-encoding:" in fields:
            raise ValueError("no content-length")
        stop = fields.find(b"\r\n", at + 17)
        size = int(fields[at + 17: stop if stop > 0 else len(fields)])  # int() strips the blanks
        conn.close_after = (b"\r\nconnection: close" in fields or version == b"http/1.0")
        del conn.head[:end + 4]
        conn.body = bytearray(size)
        conn.got = 0
        return True

    def _count(self) -> None:
        with self.metrics.lock:
            self.metrics.requests[GET_OBJECT] += 1

    def _complete(self, conn: _Conn) -> bool:
        """The answer to ``conn.items[0]`` is whole: hand it over; False when the connection
        closes with it (the requests behind it go to other connections)."""
        item, data = conn.items.popleft(), bytes(conn.body or b"")
        conn.body, conn.got, conn.reused, conn.any_byte = None, 0, True, bool(conn.head)
        stats["served"] += 1
        self._deliver(item.index, data)
        if conn.close_after:
            self._fail(conn, retry=True)
            return False
        if conn.items:
            conn.deadline = time.monotonic() + READ_TIMEOUT_S
        else:
            self._free.append(conn)
        return True

    def _deliver(self, index: int, data: bytes | None) -> None:
        self._results[index] = data
        if data is None:
            self._in_memory -= self.items[index].size
            stats["fallback"] += 1

    def _fail(self, conn: _Conn, retry: bool) -> None:
        """A connection that went wrong: the object whose answer was coming is retried once on
        another connection when ``retry`` (a kept-alive one the server had closed), else left to
        botocore; the objects requested behind it had no answer yet and are retried once."""
        items = list(conn.items)
        conn.items.clear()
        self._discard(conn)
        again = []
        for i, item in enumerate(items):
            if (retry or i > 0) and item.index not in self._retried:
                self._retried.add(item.index)
                self._in_memory -= item.size
                again.append(item)
            else:
                self._deliver(item.index, None)
        self._pending.extendleft(reversed(again))

    def _discard(self, conn: _Conn) -> None:
        if self._filling is conn:
            self._filling = None
        if conn in self._conns:
            self._conns.remove(conn)
        if conn in self._free:
            self._free.remove(conn)
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _break(self) -> None:
        """A connection could not be opened: everything not yet sent goes to botocore."""
        self.broken = True
        while self._pending:
            item = self._pending.popleft()
            self._in_memory += item.size
            self._deliver(item.index, None)

    def _finish(self) -> None:
        """Close the batch: what was not fetched goes to botocore, idle connections are kept."""
        self._closed = True
        keep = []
        for conn in list(self._conns):
            if (not conn.items and conn.state == "open" and not conn.out and not conn.head
                    and conn.sock.fileno() >= 0):
                self._sel.unregister(conn.sock)
                keep.append(conn.sock)
            else:
                for item in conn.items:
                    self._deliver(item.index, None)
                conn.items.clear()
                self._discard(conn)
        self._conns, self._free, self._filling = [], [], None
        if keep:
            with _idle_lock:
                idle = _idle.setdefault((self.scheme, self.hostname, self.port), [])
                idle.extend(keep)
                while len(idle) > 2 * CONNECTIONS["https"]:
                    idle.pop(0).close()
        while self._pending:
            item = self._pending.popleft()
            self._in_memory += item.size
            self._deliver(item.index, None)
        self._sel.close()
