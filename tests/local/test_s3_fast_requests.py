"""Which requests the S3 fast path answers itself (the rest go to moto, slower but complete)."""

from __future__ import annotations

import io

import pytest

from airflow_provider_smr.local.s3_fast import S3FastPath

ACCOUNT = "123456789012"
AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261127/us-east-1/s3/aws4_request, Signature=x"


@pytest.fixture
def fast(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        from moto.s3.models import s3_backends

        backend = s3_backends[ACCOUNT]["global"]
        backend.create_bucket("fast-path-bucket", "us-east-1")
        backend.put_object("fast-path-bucket", "k", b"value")
        yield S3FastPath(ACCOUNT)


def _environ(method: str, path: str, query: str = "", **headers: str) -> dict:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "HTTP_AUTHORIZATION": AUTH, "HTTP_HOST": "127.0.0.1", "CONTENT_LENGTH": "",
            "CONTENT_TYPE": "", "wsgi.input": io.BytesIO(b""), **headers}


LAMBDA_HEADERS = {"HTTP_X_AMZN_TRACE_ID": "Root=1-abc-def", "HTTP_X_AMZ_SECURITY_TOKEN": "testing"}


@pytest.mark.parametrize("method,path,query", [
    ("GET", "/fast-path-bucket/k", ""), ("HEAD", "/fast-path-bucket/k", ""),
    ("PUT", "/fast-path-bucket/new", ""),
    ("GET", "/fast-path-bucket", "list-type=2&prefix=&encoding-type=url"),
])
def test_requests_from_inside_a_function_are_answered_by_the_fast_path(fast, method, path, query):
    answer = fast.handle(_environ(method, path, query, **LAMBDA_HEADERS))
    assert answer is not None
    assert answer[0].startswith("200")


def test_a_request_with_an_unknown_header_goes_to_moto(fast):
    assert fast.handle(_environ("GET", "/fast-path-bucket/k", HTTP_X_AMZ_REQUEST_PAYER="r")) is None


def test_a_list_asking_for_owners_goes_to_moto(fast):
    query = "list-type=2&fetch-owner=true"
    assert fast.handle(_environ("GET", "/fast-path-bucket", query)) is None


def test_a_ranged_get_reads_only_its_range_of_a_large_object(fast):
    import tracemalloc

    from moto.s3.models import s3_backends

    body = bytes(range(256)) * (64 * 4096)  # 64 MiB
    s3_backends[ACCOUNT]["global"].put_object("fast-path-bucket", "big", body)
    fast.handle(_environ("HEAD", "/fast-path-bucket/big"))  # the ETag, as a PUT through the API has it
    tracemalloc.start()
    try:
        answer = fast.handle(_environ("GET", "/fast-path-bucket/big", HTTP_RANGE="bytes=1000-1999"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    status, headers, data = answer
    assert status.startswith("206") and data == body[1000:2000]
    assert ("content-range", f"bytes 1000-1999/{len(body)}") in headers
    assert peak < 1 << 20  # a 1,000-byte range, not the 64 MiB object (moto's key.value copies it all)


def test_head_and_whole_get_keep_their_length(fast):
    head = fast.handle(_environ("HEAD", "/fast-path-bucket/k"))
    get = fast.handle(_environ("GET", "/fast-path-bucket/k"))
    assert head[2] == b"" and ("content-length", "5") in head[1]
    assert get[2] == b"value" and ("content-length", "5") in get[1]


def test_a_get_pinned_to_the_etag_is_answered_and_a_stale_pin_is_refused(fast):
    etag = dict(fast.handle(_environ("HEAD", "/fast-path-bucket/k"))[1])["ETag"]
    for pin in (etag, etag.strip('"')):
        status, _, data = fast.handle(_environ("GET", "/fast-path-bucket/k", HTTP_IF_MATCH=pin,
                                               HTTP_RANGE="bytes=1-2"))
        assert status.startswith("206") and data == b"al"
    status, _, body = fast.handle(_environ("GET", "/fast-path-bucket/k", HTTP_IF_MATCH='"0123abc"'))
    assert status.startswith("412")
    assert b"<Code>PreconditionFailed</Code>" in body and b"<Condition>If-Match</Condition>" in body


def _encrypt(bucket: str, default: dict) -> None:
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["global"]
    backend.create_bucket(bucket, "us-east-1")
    backend.put_bucket_encryption(bucket, {"Rule": {"ApplyServerSideEncryptionByDefault": default}})


def test_a_bucket_with_sse_s3_default_encryption_takes_the_fast_path_and_keeps_the_header(fast):
    _encrypt("sse-s3-bucket", {"SSEAlgorithm": "AES256"})  # the stack's work bucket
    put = fast.handle(_environ("PUT", "/sse-s3-bucket/k", **LAMBDA_HEADERS))
    assert put is not None and put[0].startswith("200")
    assert ("x-amz-server-side-encryption", "AES256") in put[1]
    get = fast.handle(_environ("GET", "/sse-s3-bucket/k", **LAMBDA_HEADERS))
    assert get is not None and ("x-amz-server-side-encryption", "AES256") in get[1]
    assert fast.handle(_environ("GET", "/sse-s3-bucket", "list-type=2&prefix=")) is not None


def test_a_bucket_with_kms_default_encryption_goes_to_moto(fast):
    _encrypt("sse-kms-bucket", {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/x"})
    assert fast.handle(_environ("PUT", "/sse-kms-bucket/k", **LAMBDA_HEADERS)) is None


def test_a_plain_copy_is_answered_by_the_fast_path_into_an_encrypted_bucket(fast):
    from moto.s3.models import s3_backends

    _encrypt("copy-dest-bucket", {"SSEAlgorithm": "AES256"})
    status, headers, body = fast.handle(_environ("PUT", "/copy-dest-bucket/part-0",
                                                 HTTP_X_AMZ_COPY_SOURCE="fast-path-bucket/k", **LAMBDA_HEADERS))
    assert status.startswith("200") and b"<CopyObjectResult" in body
    assert ("x-amz-server-side-encryption", "AES256") in headers
    backend = s3_backends[ACCOUNT]["global"]
    src, dst = backend.get_object("fast-path-bucket", "k"), backend.get_object("copy-dest-bucket", "part-0")
    assert dst.value == b"value" and dst.etag == src.etag


def test_a_copy_with_a_directive_goes_to_moto(fast):
    assert fast.handle(_environ("PUT", "/fast-path-bucket/k2", HTTP_X_AMZ_COPY_SOURCE="fast-path-bucket/k",
                                HTTP_X_AMZ_METADATA_DIRECTIVE="REPLACE")) is None


def _put(fast, path: str, body: bytes) -> tuple:
    return fast.handle(_environ("PUT", path, CONTENT_LENGTH=str(len(body)),
                                **{"wsgi.input": io.BytesIO(body)}))


def test_a_put_keeps_the_request_bytes_and_answers_their_md5_as_the_etag(fast):
    import hashlib

    from moto.s3.models import s3_backends

    body = bytes(range(256)) * 4096 * 8  # 8 MiB
    status, headers, _ = _put(fast, "/fast-path-bucket/put", body)
    key = s3_backends[ACCOUNT]["global"].get_object("fast-path-bucket", "put")
    assert status.startswith("200") and dict(headers)["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert key.size == len(body) and key.value == body
    _, whole_headers, whole = fast.handle(_environ("GET", "/fast-path-bucket/put"))
    assert whole == body and ("content-length", str(len(body))) in whole_headers
    assert fast.handle(_environ("GET", "/fast-path-bucket/put", HTTP_RANGE="bytes=5-9"))[2] == body[5:10]


def test_a_copy_shares_its_source_bytes_and_neither_changes_when_the_other_is_rewritten(fast, monkeypatch):
    import tracemalloc

    from moto.s3.models import s3_backends

    from airflow_provider_smr.local.server import MEMORY_OBJECT_BYTES

    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(MEMORY_OBJECT_BYTES))  # as the server

    backend = s3_backends[ACCOUNT]["global"]
    body = b"a" * (32 << 20)
    _put(fast, "/fast-path-bucket/src", body)
    tracemalloc.start()
    try:
        status, _, _ = fast.handle(_environ("PUT", "/fast-path-bucket/dst",
                                            HTTP_X_AMZ_COPY_SOURCE="fast-path-bucket/src"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status.startswith("200") and peak < 1 << 20  # the 32 MiB are not copied
    src, dst = backend.get_object("fast-path-bucket", "src"), backend.get_object("fast-path-bucket", "dst")
    assert dst.value == body and dst.etag == src.etag
    src.value = b"changed in place"  # moto's own writer: truncate and write the same buffer
    assert dst.value == body and backend.get_object("fast-path-bucket", "dst").size == len(body)
    _put(fast, "/fast-path-bucket/dst", b"new")
    assert backend.get_object("fast-path-bucket", "src").value == b"changed in place"
    assert fast.handle(_environ("GET", "/fast-path-bucket/dst"))[2] == b"new"


def test_an_object_over_the_spool_size_is_kept_on_disk_and_still_copied_whole(fast, monkeypatch):
    from moto.s3.models import s3_backends

    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(1 << 20))
    body = bytes(range(256)) * 4096 * 3  # 3 MiB: over a 1 MiB spool, so moto writes a temp file
    _put(fast, "/fast-path-bucket/big-src", body)
    fast.handle(_environ("PUT", "/fast-path-bucket/big-dst", HTTP_X_AMZ_COPY_SOURCE="fast-path-bucket/big-src"))
    backend = s3_backends[ACCOUNT]["global"]
    for name in ("big-src", "big-dst"):
        key = backend.get_object("fast-path-bucket", name)
        assert key._value_buffer._rolled and key.value == body
        assert fast.handle(_environ("GET", f"/fast-path-bucket/{name}"))[2] == body


def test_a_reader_sees_an_object_whole_while_it_is_rewritten(fast, monkeypatch):
    """S3 is atomic per object: a GET or HEAD racing a PUT of the same key gets the old object
    or the new one, never an empty or half-made one."""
    import sys
    import threading

    from airflow_provider_smr.local.server import MEMORY_OBJECT_BYTES

    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(MEMORY_OBJECT_BYTES))
    bodies = [b"a" * (1 << 20), b"b" * (1 << 20)]
    _put(fast, "/fast-path-bucket/hot", bodies[0])
    stop, seen = threading.Event(), []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            _put(fast, "/fast-path-bucket/hot", bodies[i % 2])

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3000):
            status, headers, body = fast.handle(_environ("GET", "/fast-path-bucket/hot"))
            seen.append((status[:3], dict(headers)["content-length"], body[:1], len(body)))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
    assert {s for s, *_ in seen} == {"200"}
    assert {(n, first, size) for _, n, first, size in seen} <= {(str(1 << 20), b"a", 1 << 20),
                                                                (str(1 << 20), b"b", 1 << 20)}


def test_a_listing_of_a_bucket_with_sorted_keys_is_answered_from_its_index(fast):
    from moto.s3.models import s3_backends

    from airflow_provider_smr.local.moto_internals import sorted_key_store_class

    backend = s3_backends[ACCOUNT]["global"]
    bucket = backend.buckets["fast-path-bucket"]
    bucket.keys = sorted_key_store_class()(bucket.keys)  # what the stack's buckets have
    for key in ("d/2", "d/1", "e/1/x", "e/2/y"):
        backend.put_object("fast-path-bucket", key, b"v")
    backend.delete_object("fast-path-bucket", "d/2")
    answer = fast.handle(_environ("GET", "/fast-path-bucket", "list-type=2&max-keys=2&delimiter=%2F"))
    assert answer is not None and answer[0].startswith("200")
    body = answer[2].decode()
    assert "<Key>d/1</Key>" not in body and "<Prefix>d/</Prefix>" in body and "<Prefix>e/</Prefix>" in body
    assert "<IsTruncated>true</IsTruncated>" in body and "<KeyCount>2</KeyCount>" in body
    token = body.split("<NextContinuationToken>")[1].split("<")[0]
    answer = fast.handle(_environ("GET", "/fast-path-bucket", f"list-type=2&delimiter=%2F&continuation-token={token}"))
    assert answer is not None
    assert "<Key>k</Key>" in answer[2].decode() and "<Key>e/" not in answer[2].decode()
    # a token the backend never issued: moto's answer, whatever it is
    assert fast.handle(_environ("GET", "/fast-path-bucket", "list-type=2&continuation-token=nope")) is None
