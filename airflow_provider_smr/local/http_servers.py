"""The HTTP/1.1 servers the local stack can run behind: its own, and two maintained ones to
compare it with (``bench/local_stack.py --only servers``).

The stack's own server (:mod:`airflow_provider_smr.local.wsgi_server`) stays the default because
the maintained ones lose on what a local job does most. waitress (3.0) never answers a request
with ``Expect: 100-continue`` and ``Content-Length: 0``, which botocore sends for every empty
``PutObject`` (each marker), and spends several times the CPU per small request. cheroot (11.1)
matches its request rate and large-body throughput on an idle machine but spends about twice the
server CPU per request; on a busy machine (worker processes share the cores with the server, the
usual case for a local job) that showed as about half the request rate and fan-out speed.
waitress and cheroot come with the ``bench`` extra.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: S3's limit for one PUT; a pooled server refuses larger request bodies before reading them
MAX_BODY_BYTES = 5 << 30


class Listener(Protocol):
    """A bound HTTP server: ``port`` it listens on, ``run()`` until ``stop()``."""

    port: int

    def run(self) -> None: ...

    def stop(self) -> None: ...


def start(kind: str, host: str, port: int, app: WSGIApplication, *, threads: int,
          memory_body_bytes: int) -> Listener:
    """Bind ``kind``'s server to ``(host, port)`` (port 0: any free one) in front of ``app``.

    :param threads: worker threads of a pooled server (the stack's own server starts one thread
        per connection).
    :param memory_body_bytes: request bodies up to this size stay in memory (waitress).
    """
    if kind == "builtin":
        return _Builtin(host, port, app)
    if kind == "cheroot":
        return _Cheroot(host, port, app, threads)
    if kind == "waitress":
        return _Waitress(host, port, app, threads, memory_body_bytes)
    raise ValueError(f"unknown HTTP server {kind!r}: builtin, cheroot or waitress")


class _Builtin:
    def __init__(self, host: str, port: int, app: WSGIApplication):
        from airflow_provider_smr.local.wsgi_server import WSGIServer

        self._server = WSGIServer((host, port), app)
        self.port = self._server.server_port

    def run(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Cheroot:
    def __init__(self, host: str, port: int, app: WSGIApplication, threads: int):
        from cheroot import wsgi

        self._server = wsgi.Server((host, port), _in_pieces(_dechunk(app)), numthreads=threads,
                                   request_queue_size=1024, timeout=60, shutdown_timeout=1)
        self._server.prepare()
        self.port = self._server.bind_addr[1]

    def run(self) -> None:
        self._server.serve()

    def stop(self) -> None:
        self._server.stop()


class _Waitress:
    def __init__(self, host: str, port: int, app: WSGIApplication, threads: int, memory_body_bytes: int):
        from waitress.server import create_server

        self._server: Any = create_server(
            app, sockets=[_listening_socket(host, port)], threads=threads, connection_limit=4096,
            inbuf_overflow=memory_body_bytes, outbuf_overflow=memory_body_bytes,
            max_request_body_size=MAX_BODY_BYTES, clear_untrusted_proxy_headers=False,
            asyncore_loop_timeout=0.2, ident="smr-local")
        self.port = self._server.effective_port

    def run(self) -> None:
        self._server.run()

    def stop(self) -> None:
        closed = threading.Event()

        def close() -> None:  # on the loop's thread, which select()s on the socket
            self._server.close()
            closed.set()

        self._server.trigger.pull_trigger(close)
        closed.wait(2.0)
        self._server.task_dispatcher.shutdown(timeout=1)


def _listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose connections inherit its options: no Nagle delay, and a 4 MiB
    send buffer (waitress sends a response in pieces of the send buffer's size)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _dechunk(app: WSGIApplication) -> WSGIApplication:
    """cheroot hands a chunked body over as a stream without ``CONTENT_LENGTH``; the gateway and
    the S3 fast path read ``CONTENT_LENGTH`` bytes, so read it whole first."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read()
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]
        return app(environ, start_response)

    return wrapped


def _in_pieces(app: WSGIApplication) -> WSGIApplication:
    """cheroot sends one large response body several times slower than the same bytes in 1 MiB
    pieces (its buffered writer moves the whole body per partial send): hand it pieces."""
    piece = 1 << 20

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        result = app(environ, start_response)
        if isinstance(result, list) and len(result) == 1 and len(result[0]) > piece:
            data = result[0]
            return [data[i:i + piece] for i in range(0, len(data), piece)]
        return result

    return wrapped
