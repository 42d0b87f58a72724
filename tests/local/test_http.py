"""The local stack speaks HTTP/1.1 as SDK clients use it: keep-alive, ``Expect: 100-continue``
(also on empty bodies), chunked uploads, large bodies and many connections at once."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from botocore.config import Config

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"


def _connection(local_stack) -> http.client.HTTPConnection:
    url = urlsplit(local_stack.endpoint_url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)


def test_an_empty_put_expecting_100_continue_is_answered(local_stack, bucket):
    """botocore sends ``Expect: 100-continue`` with ``Content-Length: 0`` for every empty PUT."""
    s3 = local_stack.client("s3", config=Config(read_timeout=5, retries={"max_attempts": 0}))
    began = time.monotonic()
    s3.put_object(Bucket=bucket, Key="http/empty", Body=b"")
    assert time.monotonic() - began < 4
    assert s3.head_object(Bucket=bucket, Key="http/empty")["ContentLength"] == 0


def test_requests_share_one_kept_alive_connection(local_stack, bucket):
    local_stack.client("s3").put_object(Bucket=bucket, Key="http/kept", Body=b"kept")
    conn = _connection(local_stack)
    try:
        for _ in range(3):
            conn.request("GET", f"/{bucket}/http/kept", headers={"Authorization": AUTH})
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"kept")
            assert not response.will_close
        first_socket = conn.sock
        conn.request("GET", f"/{bucket}/http/kept", headers={"Authorization": AUTH})
        conn.getresponse().read()
        assert conn.sock is first_socket
    finally:
        conn.close()


def test_a_chunked_upload_arrives_whole(local_stack, bucket):
    body = bytes(range(256)) * 4096  # 1 MiB in uneven chunks
    chunks = [body[i:i + 70_001] for i in range(0, len(body), 70_001)]
    conn = _connection(local_stack)
    try:
        conn.request("PUT", f"/{bucket}/http/chunked", body=iter(chunks),
                     headers={"Authorization": AUTH, "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    got = local_stack.client("s3").get_object(Bucket=bucket, Key="http/chunked")["Body"].read()
    assert got == body


@pytest.mark.timeout(120)
def test_a_large_object_goes_up_and_down_whole(local_stack, bucket):
    s3 = local_stack.client("s3")
    body = bytes(range(256)) * (96 * 4096)  # 96 MiB
    s3.put_object(Bucket=bucket, Key="http/large", Body=body)
    assert s3.get_object(Bucket=bucket, Key="http/large")["Body"].read() == body
    s3.delete_object(Bucket=bucket, Key="http/large")


def test_many_connections_at_once_are_all_served(local_stack, bucket):
    """Lambda workers and a fan-out's threads each hold their own connections."""
    local_stack.client("s3").put_object(Bucket=bucket, Key="http/many", Body=b"many")
    url = urlsplit(local_stack.endpoint_url)
    request = (f"GET /{bucket}/http/many HTTP/1.1\r\nHost: {url.netloc}\r\n"
               f"Authorization: {AUTH}\r\n\r\n").encode()
    sockets = [socket.create_connection((url.hostname, url.port), timeout=30) for _ in range(200)]
    answers: list[bytes] = []
    lock = threading.Lock()

    def ask(sock: socket.socket) -> None:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"many"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        with lock:
            answers.append(data)

    threads = [threading.Thread(target=ask, args=(sock,)) for sock in sockets]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for sock in sockets:
            sock.close()
    assert len(answers) == 200
    assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b"many") for a in answers)
