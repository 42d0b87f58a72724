"""The S3 fast path's own rendering of what moto would answer: an object's headers, dates and
request ids, and that a GET never answers a replaced object's headers."""

from __future__ import annotations

import datetime
import hashlib
import io
import re

import pytest

from airflow_provider_smr.local.s3_fast import S3FastPath, _iso_8601, _rfc_1123

ACCOUNT = "123456789012"
BUCKET = "fast-headers-bucket"
AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261207/us-east-1/s3/aws4_request, Signature=x"


@pytest.fixture
def fast(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        from moto.s3.models import s3_backends

        s3_backends[ACCOUNT]["global"].create_bucket(BUCKET, "us-east-1")
        yield S3FastPath(ACCOUNT)


def _environ(method: str, key: str, body: bytes = b"", **headers: str) -> dict:
    return {"REQUEST_METHOD": method, "PATH_INFO": f"/{BUCKET}/{key}", "QUERY_STRING": "",
            "HTTP_AUTHORIZATION": AUTH, "HTTP_HOST": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "", "wsgi.input": io.BytesIO(body), **headers}


def _key(fast: S3FastPath, name: str):
    return fast.backend.buckets[BUCKET].keys[name]


def _tag(fast: S3FastPath, key) -> None:
    fast.backend.tagger.tag_resource(key.arn, [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "b"}])


def _checksum(fast: S3FastPath, key) -> None:
    key.checksum_algorithm = "CRC32"


def _metadata(fast: S3FastPath, key) -> None:
    key.set_metadata({"x-amz-meta-owner": "smr", "Content-Type": "text/plain"})


def _sse(fast: S3FastPath, key) -> None:
    key.encryption = "AES256"


def _kms(fast: S3FastPath, key) -> None:
    key.encryption, key.kms_key_id, key.bucket_key_enabled = "aws:kms", "alias/k", True


def _glacier(fast: S3FastPath, key) -> None:
    key.set_storage_class("GLACIER")


def _locked(fast: S3FastPath, key) -> None:
    key.lock_mode, key.lock_until, key.lock_legal_status = "GOVERNANCE", "2030-01-01T00:00:00Z", "ON"


def _redirect(fast: S3FastPath, key) -> None:
    key.website_redirect_location = "/elsewhere"


def _restored(fast: S3FastPath, key) -> None:
    key.restore(3)


def _versioned(fast: S3FastPath, key) -> None:
    key._is_versioned, key._version_id = True, "v1"


@pytest.mark.parametrize("change", [None, _tag, _checksum, _metadata, _sse, _kms, _glacier, _locked,
                                    _redirect, _restored, _versioned],
                         ids=lambda c: c.__name__.strip("_") if c else "plain")
def test_an_objects_headers_are_motos_response_dict(fast, change):
    fast.backend.put_object(BUCKET, "k", b"some bytes")
    key = _key(fast, "k")
    if change is not None:
        change(fast, key)
    assert fast._key_headers(key) == dict(key.response_dict)
    assert list(fast._key_headers(key)) == list(key.response_dict)  # the same order too


def test_a_get_answers_the_tag_count_of_its_object(fast):
    fast.backend.put_object(BUCKET, "tagged", b"x")
    _tag(fast, _key(fast, "tagged"))
    status, headers, _ = fast.handle(_environ("GET", "tagged"))
    assert status.startswith("200") and ("x-amz-tagging-count", "2") in headers


def _headers(answer) -> dict[str, str]:
    return {name.lower(): value for name, value in answer[1]}


@pytest.mark.parametrize("overwrite", ["fast path", "moto"])
def test_after_an_overwrite_get_and_head_answer_the_new_objects_headers(fast, overwrite):
    assert fast.handle(_environ("PUT", "obj", b"old bytes"))[0].startswith("200")
    before = _headers(fast.handle(_environ("HEAD", "obj")))
    new = b"the new, longer bytes"
    if overwrite == "moto":
        fast.backend.put_object(BUCKET, "obj", new)
    else:
        fast.handle(_environ("PUT", "obj", new))
    etag = f'"{hashlib.md5(new, usedforsecurity=False).hexdigest()}"'
    for method in ("HEAD", "GET", "HEAD"):
        answer = fast.handle(_environ(method, "obj"))
        headers = _headers(answer)
        assert headers["etag"] == etag != before["etag"]
        assert headers["content-length"] == str(len(new))
        assert answer[2] == (new if method == "GET" else b"")
    refused = fast.handle(_environ("GET", "obj", HTTP_IF_MATCH=before["etag"]))
    assert refused[0].startswith("412")


@pytest.mark.parametrize("when", [
    datetime.datetime(2026, 12, 7, 9, 5, 3, 123456), datetime.datetime(2024, 2, 29, 23, 59, 59),
    datetime.datetime(2027, 1, 3, 0, 0, 0), datetime.datetime(1999, 7, 31, 12, 30, 1),
], ids=str)
def test_the_last_modified_date_is_formatted_as_moto_does(when):
    from moto.core.utils import iso_8601_datetime_without_milliseconds_s3, rfc_1123_datetime

    assert _rfc_1123(when) == rfc_1123_datetime(when)
    assert _iso_8601(when) == iso_8601_datetime_without_milliseconds_s3(when)
    aware = when.replace(tzinfo=datetime.timezone.utc)
    assert _iso_8601(aware) == iso_8601_datetime_without_milliseconds_s3(aware)


def test_the_last_modified_date_of_each_time_in_a_second_is_motos():
    """Formatted once a second (and kept): every time of that second, and of the next day at the
    same hour, still reads as moto formats it."""
    from moto.core.utils import rfc_1123_datetime

    base = datetime.datetime(2026, 12, 31, 23, 59, 59)
    for when in (base, base.replace(microsecond=1), base.replace(microsecond=999_999),
                 base + datetime.timedelta(seconds=1), base + datetime.timedelta(days=1), base):
        assert _rfc_1123(when) == rfc_1123_datetime(when)


def test_request_ids_keep_motos_shape_and_never_repeat(fast):
    fast.backend.put_object(BUCKET, "k", b"x")
    seen = set()
    for _ in range(2000):
        headers = dict(fast.handle(_environ("HEAD", "k"))[1])
        assert re.fullmatch(r"[0-9A-F]{16}", headers["x-amz-request-id"])
        assert headers["x-amz-id-2"] == headers["x-amz-request-id"]
        seen.add(headers["x-amz-request-id"])
    assert len(seen) == 2000
