"""The hand-made SigV4 of a GetObject equals botocore's ``S3SigV4Auth`` for the same request and
time (the local stack does not check signatures, so this is what holds the fast GETs right on AWS)."""

from __future__ import annotations

import datetime
from urllib.parse import quote, urlsplit

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambda_handlers.io import sigv4

KEYS = ["logs/2026-12-07/part 0001.log", "ünï/cödé/ß€.txt", "a+b=c&d/e~f!'()*.json", "x%2Fy/?#[]@$,;",
        "  spaces  /tab\tand\nnewline", "k"]
URLS = ["https://bkt.s3.eu-west-1.amazonaws.com/", "https://s3.us-east-1.amazonaws.com/bkt/",
        "http://127.0.0.1:4566/smr-data/", "https://bkt.s3.amazonaws.com:443/",
        "http://localhost:80/b/", "http://[::1]:9000/b/", "https://BKT.S3.AMAZONAWS.COM/"]
CREDENTIALS = [Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
               Credentials("ASIAEXAMPLE", "c2VjcmV0/+=", token="FwoGZXIvYXdzE//token+with/slash=")]


def _botocore_headers(url: str, etag: str | None, creds: Credentials, region: str) -> dict:
    request = AWSRequest(method="GET", url=url, headers={"If-Match": etag} if etag else {})
    botocore.auth.S3SigV4Auth(creds.get_frozen_credentials(), "s3", region).add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


def _frozen_clock(monkeypatch) -> str:
    """botocore's signing clock held at one second; that second as SigV4's ``X-Amz-Date``."""
    when = datetime.datetime(2026, 12, 7, 23, 59, 58)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    return when.strftime("%Y%m%dT%H%M%SZ")


def _etag(i: int) -> str | None:
    """The ``If-Match`` of the ``i``-th key: none, a multipart ETag, or a plain one."""
    return '"9b2cf535f27731c974343645a3985328"' if i % 3 else ('"d41d8cd98f00b204e9800998ecf8427e-2"' if i else None)


def test_the_signing_key_is_derived_once_per_day_and_secret():
    sigv4._keys.clear()
    a = sigv4.signing_key("secret", "20261207", "us-east-1", "s3")
    assert sigv4.signing_key("secret", "20261207", "us-east-1", "s3") is a
    assert sigv4.signing_key("secret", "20261208", "us-east-1", "s3") != a
    assert sigv4.signing_key("other", "20261207", "us-east-1", "s3") != a
    assert sigv4.amz_date(0) == "19700101T000000Z"


def _parsed(request: bytes) -> tuple[str, dict]:
    head, _, rest = request.decode().partition("\r\n")
    assert request.endswith(b"\r\n\r\n") and head.startswith("GET ") and head.endswith(" HTTP/1.1")
    lines = rest[:-4].split("\r\n")
    return head[4:-9], dict(line.split(": ", 1) for line in lines)


@pytest.mark.parametrize("base", URLS)
@pytest.mark.parametrize("creds", CREDENTIALS, ids=["keys", "session-token"])
def test_a_batch_of_requests_is_signed_as_botocore_signs_each(base, creds, monkeypatch):
    stamp = _frozen_clock(monkeypatch)
    region = "eu-west-1" if "eu-west-1" in base else "us-east-1"
    requests = sigv4.GetRequests(sigv4.host_of(base), region, creds)
    for i, key in enumerate(KEYS):  # one signer, many requests: its shared parts stay right
        etag = _etag(i)
        url = base + quote(key, safe="/~")
        expected = _botocore_headers(url, etag, creds, region)
        host = sigv4.host_of(url)
        assert host == botocore.auth._host_from_url(url)  # signed by botocore, sent by urllib3
        expected["host"] = host
        expected["accept-encoding"] = "identity"
        path, headers = _parsed(requests.request(urlsplit(url).path, etag, stamp=stamp))
        assert path == urlsplit(url).path and headers == expected, key


def test_a_batch_of_requests_signs_with_the_credentials_and_second_of_each_request(monkeypatch):
    """Refreshed credentials (botocore changes them in place) and the next second sign the next
    request, as botocore would sign it then."""
    creds = Credentials("ASIAOLD", "old-secret", token="old-token")
    requests = sigv4.GetRequests("127.0.0.1:4566", "us-east-1", creds)

    def expected(stamp: str) -> dict:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
        headers = _botocore_headers("http://127.0.0.1:4566/b/k", "e", creds, "us-east-1")
        return {**headers, "host": "127.0.0.1:4566", "accept-encoding": "identity"}

    assert _parsed(requests.request("/b/k", "e", stamp="20261207T235959Z"))[1] == expected("20261207T235959Z")
    assert _parsed(requests.request("/b/k", "e", stamp="20261208T000000Z"))[1] == expected("20261208T000000Z")
    creds.access_key, creds.secret_key, creds.token = "ASIANEW", "new-secret", "new-token"
    got = _parsed(requests.request("/b/k", "e", stamp="20261208T000000Z"))[1]
    assert got == expected("20261208T000000Z") and "ASIANEW/" in got["authorization"]
