"""The tasks' S3 client: what it sends to the endpoint."""

from __future__ import annotations

from lambda_handlers import runtime
from tests.lambda_handlers.conftest import WORK_BUCKET


def test_uploads_are_not_sha256_signed_over_plain_http_and_arrive_whole(s3):
    sent = []
    s3.meta.events.register("before-send.s3.PutObject",
                            lambda request, **_: sent.append(dict(request.headers)))
    body = b"shuffle bytes " * 100_000
    runtime.put_bytes(WORK_BUCKET, "client-test/obj", body)
    assert s3.meta.endpoint_url.startswith("http://")
    (headers,) = sent
    assert headers["X-Amz-Content-SHA256"] in ("UNSIGNED-PAYLOAD", b"UNSIGNED-PAYLOAD")
    assert "x-amz-checksum-crc32" in {k.lower() for k in headers}  # the body is still checked
    assert runtime.get_bytes(WORK_BUCKET, "client-test/obj") == body

