"""A small threaded HTTP/1.1 WSGI server with keep-alive, built for many small requests.

moto's werkzeug development server spends most of each request parsing headers with
``email.parser`` and logging a line; SDK clients send a few dozen tiny requests per task, so
that overhead sets the pace of every local job. This server parses the request line and headers
by hand, keeps connections open, handles ``Expect: 100-continue`` and chunked bodies, and hands
the request to a WSGI application on the connection's own thread.

A client may pipeline requests (send several before the first answer: the data plane's small-object
reader does, :mod:`lambda_handlers.io.multiget`). While the next request is a ``GET`` or ``HEAD``
already received whole, an answer waits to leave with the next ones: one send for the group
instead of one per answer, which halves the syscalls and wake-ups of both sides. Nothing waits
behind a read that could block: whatever is held is sent first.
"""

from __future__ import annotations

import io
import socket
import socketserver
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

_MAX_LINE = 65536
_HOLD_BYTES = 256 << 10  # at most this much of pipelined answers held back to leave together
_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 500: "Internal Server Error"}


class _BadRequest(Exception):
    """The client sent something that is not HTTP/1.x."""


class WSGIServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Serve ``app`` on ``(host, port)``; port 0 picks a free port (see ``server_port``)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: WSGIApplication):
        self.app = app
        super().__init__(address, _ConnectionHandler)
        self.server_host, self.server_port = self.socket.getsockname()[:2]

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


class _ConnectionHandler(socketserver.StreamRequestHandler):
    rbufsize = 65536
    wbufsize = 0
    server: WSGIServer

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self._base_environ = self._connection_environ()
        self._held: list[bytes] = []  # answers to pipelined requests, not sent yet
        self._held_bytes = 0
        self._peeked = b""  # the read buffer's bytes when the request's head was taken from it
        self._at = 0  # where the request's body starts in _peeked
        self._next_ready = False  # a GET or HEAD follows, already received whole

    def _connection_environ(self) -> dict[str, Any]:
        """What every request's environ on this connection holds (copied, then completed)."""
        server = self.server
        return {
            "SCRIPT_NAME": "",
            "SERVER_NAME": server.server_host,
            "SERVER_PORT": str(server.server_port),
            "REMOTE_ADDR": self.client_address[0] if self.client_address else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }

    def handle(self) -> None:
        try:
            try:
                while self._handle_one():
                    pass
            finally:
                self._flush()
        except (TimeoutError, ConnectionError, _BadRequest, OSError):
            pass

    def _flush(self, more: bytes = b"") -> None:
        """Send the held answers (and ``more``) in one piece."""
        if self._held:
            self._held.append(more)
            more = b"".join(self._held)
            self._held.clear()
            self._held_bytes = 0
        if more:
            self.connection.sendall(more)

    def _handle_one(self) -> bool:
        self._next_ready = False
        head = self._buffered_head()
        if head is not None:
            line, headers = head
        else:
            self._peeked = b""
            self._flush()  # the line-by-line reading may wait for the client
            raw = self.rfile.readline(_MAX_LINE + 1)
            while raw in (b"\r\n", b"\n"):
                raw = self.rfile.readline(_MAX_LINE + 1)
            if not raw:
                return False
            line, headers = raw.decode("latin-1"), None
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(line[:100])
        method, target, version = parts
        if headers is None:
            headers = self._read_headers()
        if headers.get("HTTP_EXPECT", "").lower() == "100-continue":
            self._flush(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body(headers)
        environ = self._environ(method, target, version, headers, body)
        status, response_headers, chunks = self._call_app(environ)
        keep_alive = _keep_alive(version, headers.get("HTTP_CONNECTION", ""))
        self._write_response(method, status, response_headers, chunks, keep_alive)
        return keep_alive

    def _buffered_head(self) -> tuple[str, dict[str, str]] | None:
        """The request line and headers when the read buffer holds all of them, each line ended
        by CRLF (what every HTTP client sends): one split instead of a readline per header.
        None leaves the request to the line-by-line reading (nothing consumed)."""
        rfile: Any = self.rfile  # a BufferedReader (rbufsize > 0)
        data = rfile.peek(_MAX_LINE)
        end = data.find(b"\r\n\r\n")
        if end <= 0 or data.startswith(b"\r\n") or data.count(b"\n", 0, end) != data.count(b"\r\n", 0, end):
            return None
        lines = rfile.read(end + 4)[:end].decode("latin-1").split("\r\n")
        self._peeked, self._at = data, end + 4
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, sep, value = raw.partition(":")
            if not sep:
                raise _BadRequest(raw[:100])
            key = _ENVIRON_NAMES.get(name) or _environ_name(name)
            value = value.strip()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        return lines[0], headers

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                return headers
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(raw[:100])
            key = _environ_name(name)
            value = value.strip()
            headers[key] = f"{headers[key]},{value}" if key in headers else value

    def _read_body(self, headers: dict[str, str]) -> bytes:
        peeked, self._peeked = self._peeked, b""
        if "chunked" in headers.get("HTTP_TRANSFER_ENCODING", "").lower():
            headers.pop("HTTP_TRANSFER_ENCODING")
            self._flush()
            body = self._read_chunked()
            headers["CONTENT_LENGTH"] = str(len(body))
            return body
        length = int(headers.get("CONTENT_LENGTH") or 0)
        after = self._at + length  # where the next request starts in the peeked bytes
        if after > len(peeked):
            self._flush()  # the body is still arriving: the client may wait for our answers
        elif peeked.startswith((b"GET ", b"HEAD "), after) and peeked.find(b"\r\n\r\n", after) > 0:
            self._next_ready = True  # answered at once: this answer may wait to leave with it
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline(_MAX_LINE + 1).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline(_MAX_LINE + 1)

    def _environ(self, method: str, target: str, version: str, headers: dict[str, str],
                 body: bytes) -> WSGIEnvironment:
        path, _, query = target.partition("?")
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        environ = self._base_environ.copy()
        environ["REQUEST_METHOD"] = method
        # unquote_to_bytes reads a str as UTF-8: an ASCII path without escapes is its own answer
        environ["PATH_INFO"] = (path if "%" not in path and path.isascii()
                                else unquote_to_bytes(path).decode("latin-1"))
        environ["RAW_URI"] = environ["REQUEST_URI"] = target
        environ["QUERY_STRING"] = query
        environ["SERVER_PROTOCOL"] = version
        environ["wsgi.input"] = io.BytesIO(body)
        environ.update(headers)
        environ.setdefault("CONTENT_LENGTH", str(len(body)) if body else "")
        environ.setdefault("CONTENT_TYPE", "")
        return environ

    def _call_app(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: object = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: captured.setdefault("early", []).append(data)

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks = captured.pop("early", []) + [c for c in result if c]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - the app failed: answer 500, keep the connection
            import traceback

            traceback.print_exc()
            msg = f"local stack internal error: {type(exc).__name__}: {exc}".encode()
            return "500 Internal Server Error", [("Content-Type", "text/plain")], [msg]
        return captured["status"], captured["headers"], chunks

    def _write_response(self, method: str, status: str, headers: list[tuple[str, str]],
                        chunks: list[bytes], keep_alive: bool) -> None:
        lines = [f"HTTP/1.1 {status}"]
        has_length = False
        for name, value in headers:
            if len(name) in (10, 14, 17):  # content-length, connection, transfer-encoding
                low = name.lower()
                if low == "content-length":
                    has_length = True
                elif low in ("connection", "transfer-encoding"):
                    continue
            lines.append(f"{name}: {value}")
        code = int(status[:3])
        if not has_length and code not in (204, 304) and code >= 200:
            lines.append(f"Content-Length: {sum(len(c) for c in chunks)}")
        if not keep_alive:
            lines.append("Connection: close")
        lines.append("\r\n")
        head = "\r\n".join(lines).encode("latin-1")
        if method == "HEAD" or code in (204, 304):
            chunks = []
        if not chunks:
            answer = head
        elif len(chunks) == 1 and len(chunks[0]) < 65536:
            answer = head + chunks[0]  # one segment for a small answer
        elif sum(len(c) for c in chunks) < 65536:
            answer = head + b"".join(chunks)
        else:
            self._flush(head)
            for chunk in chunks:
                self.connection.sendall(chunk)  # wbufsize 0: what wfile.write would call
            return
        if keep_alive and self._next_ready and self._held_bytes + len(answer) <= _HOLD_BYTES:
            self._held.append(answer)
            self._held_bytes += len(answer)
        else:
            self._flush(answer)


def _environ_name(name: str) -> str:
    """The environ key of a header's name (``Content-Type`` -> ``CONTENT_TYPE``, others
    ``HTTP_``...), remembered for the names clients send again and again."""
    key = name.strip().upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    if len(_ENVIRON_NAMES) < 4096:
        _ENVIRON_NAMES[name] = key
    return key


_ENVIRON_NAMES: dict[str, str] = {}


def _keep_alive(version: str, connection: str) -> bool:
    connection = connection.lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection
