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
