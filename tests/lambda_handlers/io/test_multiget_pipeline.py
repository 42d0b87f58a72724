"""Pipelined small-object GETs over http: several requests leave in one send on one connection,
answers are taken back to back in order, and what the server does to a pipeline (closes the
connection after some answers, says ``Connection: close``, answers 412 in the middle) never loses,
duplicates or mixes up an object: the requests behind are retried on a new connection, the odd
object goes to botocore (``take`` returns None)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials

from lambda_handlers import runtime
from lambda_handlers.io import multiget, signed_get


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.close_after: list[int] = []  # per new connection: close it after this many answers
        self.close_header_at: int | None = None  # say "Connection: close" on the answer to this key
        self.refuse: set[str] = set()  # answer 412 for these keys
        self.most_at_once = 0  # most whole requests found in one receive
        self.connections = 0
        self.lock = threading.Lock()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        srv = self.server
        with srv.lock:
            srv.connections += 1
            limit = srv.close_after.pop(0) if srv.close_after else None
        data, answered = b"", 0
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
            heads = data.split(b"\r\n\r\n")
            data = heads.pop()
            with srv.lock:
                srv.most_at_once = max(srv.most_at_once, len(heads))
            out = b""
            for head in heads:
                path = head.split(b" ", 2)[1].decode()
                key = path.rsplit("/", 1)[1]
                if key in srv.refuse:
                    body, status = b"<Error>PreconditionFailed</Error>", b"412 Precondition Failed"
                else:
                    body, status = f"body of {key}\n".encode() * (int(key) % 3 + 1), b"200 OK"
                close = key == srv.close_header_at
                out += (b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode()
                        + (b"\r\nConnection: close" if close else b"") + b"\r\n\r\n" + body)
                answered += 1
                if close or answered == limit:
                    self.request.sendall(out)
                    return
            self.request.sendall(out)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    with multiget._idle_lock:
        for sock in multiget._idle.pop(("http", "127.0.0.1", srv.server_address[1]), []):
            sock.close()


def _read(srv: _Server, count: int, connections: int = 1) -> tuple[list[bytes | None], int]:
    """Every object of a batch in order, and the GetObject requests the task counted."""
    route = signed_get.Route(f"http://127.0.0.1:{srv.server_address[1]}/bucket/", "s3", "us-east-1",
                             type("Signer", (), {"_credentials": Credentials("AKID", "secret")})())
    items = [multiget.Item(i, str(i), f'"etag{i}"', 10) for i in range(count)]
    metrics = runtime.start_metrics()
    batch = multiget.Batch(route, items, metrics, 1 << 20, 256, connections=connections)
    try:
        got = [batch.take(i) for i in range(count)]
    finally:
        batch.close()
    return got, metrics.requests["GetObject"]


def _body(i: int) -> bytes:
    return f"body of {i}\n".encode() * (i % 3 + 1)


def test_requests_leave_together_and_answers_come_back_in_order(server):
    served = multiget.stats["served"]
    got, counted = _read(server, 40)
    assert got == [_body(i) for i in range(40)]
    assert counted == 40 and multiget.stats["served"] - served == 40
    assert server.connections == 1 and server.most_at_once == multiget.PIPELINE["http"]


def test_a_connection_closed_mid_pipeline_sends_the_rest_again_on_a_new_one(server):
    server.close_after = [5]  # the first connection answers five, then closes
    got, counted = _read(server, 20)
    assert got == [_body(i) for i in range(20)]  # none lost, none twice
    assert counted == 20 and server.connections == 2


def test_connection_close_ends_the_pipeline_after_that_answer(server):
    server.close_header_at = "3"
    got, counted = _read(server, 12)
    assert got == [_body(i) for i in range(12)]
    assert counted == 12 and server.connections == 2


def test_a_refused_object_mid_pipeline_goes_to_botocore_and_the_rest_are_read(server):
    server.refuse = {"2"}
    fallback = multiget.stats["fallback"]
    got, counted = _read(server, 12)
    assert got == [None if i == 2 else _body(i) for i in range(12)]
    assert multiget.stats["fallback"] - fallback == 1
    assert counted == 12  # the 412 was an answer too


def test_over_several_connections_every_object_is_read_once(server):
    got, counted = _read(server, 300, connections=4)
    assert got == [_body(i) for i in range(300)]
    assert counted == 300 and server.connections == 4


def test_a_server_that_closes_every_connection_early_leaves_objects_to_botocore_not_lost(server):
    server.close_after = [2] * 50
    got, _ = _read(server, 30)
    assert all(g is None or g == _body(i) for i, g in enumerate(got))
    assert sum(g is not None for g in got) >= 2
