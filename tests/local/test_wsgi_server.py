"""The local stack's HTTP server reads every shape of request head the same way: a whole head
split at once, one arriving in pieces, bare LF line ends, repeated headers, pipelined requests."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from airflow_provider_smr.local.wsgi_server import WSGIServer


def _echo(environ, start_response):
    """Answers the request's method, path, query, headers and body as JSON."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seen = {k: v for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_"))}
    body = json.dumps({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
                       "query": environ["QUERY_STRING"], "headers": seen,
                       "body": environ["wsgi.input"].read(length).decode()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("x-amz-id-2", "abc"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def port():
    server = WSGIServer(("127.0.0.1", 0), _echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def _read_answers(sock: socket.socket, count: int) -> list[tuple[list[str], dict]]:
    data, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length"))
        while len(data) < length:
            data += sock.recv(65536)
        out.append((lines, json.loads(data[:length])))
        data = data[length:]
    return out


def _exchange(port: int, *pieces: bytes, answers: int = 1) -> list[tuple[list[str], dict]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
        return _read_answers(sock, answers)


REQUEST = (b"PUT /bucket/a%20key?x=1 HTTP/1.1\r\nHost: h\r\nX-Amz-Meta-A: one\r\n"
           b"x-amz-meta-a: two\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
EXPECTED = {"method": "PUT", "path": "/bucket/a key", "query": "x=1", "body": "hello",
            "headers": {"HTTP_HOST": "h", "HTTP_X_AMZ_META_A": "one,two", "CONTENT_TYPE": "text/plain",
                        "CONTENT_LENGTH": "5"}}


@pytest.mark.parametrize("pieces", [
    [REQUEST],  # the whole head in one segment
    [REQUEST[:20], REQUEST[20:]],  # the head in two segments
    [b"\r\n" + REQUEST],  # an empty line before the request line
    [REQUEST.replace(b"\r\n", b"\n", 2)],  # bare LF line ends (read line by line)
], ids=["whole", "split", "leading-crlf", "bare-lf"])
def test_a_request_head_is_read_the_same_whatever_its_shape(port, pieces):
    [(lines, echoed)] = _exchange(port, *pieces)
    assert lines[0] == "HTTP/1.1 200 OK"
    assert echoed == EXPECTED


def test_pipelined_requests_are_answered_in_order_on_one_connection(port):
    second = b"GET /b/%C3%BC HTTP/1.1\r\nHost: h\r\n\r\n"
    answers = _exchange(port, REQUEST + second + REQUEST, answers=3)
    assert [a[1]["method"] for a in answers] == ["PUT", "GET", "PUT"]
    assert answers[1][1]["path"] == "/b/\u00c3\u00bc"  # PEP 3333: the path's bytes as latin-1
    assert answers[1][1]["body"] == "" and answers[2][1] == EXPECTED


def test_response_headers_are_sent_as_the_app_names_them(port):
    [(lines, _)] = _exchange(port, REQUEST)
    assert "x-amz-id-2: abc" in lines and "Content-Type: application/json" in lines
    assert sum(line.lower().startswith("content-length:") for line in lines) == 1


def test_a_request_line_that_is_not_http_closes_the_connection(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\nHost: h\r\n\r\n")
        assert sock.recv(100) == b""


GET = b"GET /b/k HTTP/1.1\r\nHost: h\r\n\r\n"


def test_answers_to_pipelined_gets_leave_together(port, monkeypatch):
    from airflow_provider_smr.local import wsgi_server

    sends: list[int] = []
    flush = wsgi_server._ConnectionHandler._flush

    def counted(self, more=b""):
        if self._held or more:
            sends.append(len(self._held) + bool(more))
        flush(self, more)

    monkeypatch.setattr(wsgi_server._ConnectionHandler, "_flush", counted)
    answers = _exchange(port, GET * 5, answers=5)
    assert [a[1]["method"] for a in answers] == ["GET"] * 5
    assert sends == [5]  # the five answers in one send


def test_an_answer_never_waits_behind_a_request_still_arriving(port):
    put = b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(GET + put + b"01234")  # the PUT's body is not all there
        [(_, first)] = _read_answers(sock, 1)  # the GET's answer comes anyway
        sock.sendall(b"56789" + GET)
        second, third = _read_answers(sock, 2)
    assert first["method"] == "GET" and second[1]["body"] == "0123456789"
    assert third[1]["method"] == "GET"


def test_a_large_answer_among_pipelined_ones_keeps_their_order(port):
    big = "x" * 300_000
    put = (b"PUT /b/big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(big)) + big.encode()
    answers = _exchange(port, GET + GET + put + GET + GET, answers=5)
    assert [a[1]["method"] for a in answers] == ["GET", "GET", "PUT", "GET", "GET"]
    assert answers[2][1]["body"] == big
