"""The CLI's lite S3 and Lambda clients send what botocore sends (same URL, a signature botocore's
signer makes for the same request and time), read what botocore reads (against the local stack),
leave every other case to botocore (its errors, its sessions), and are used only where that is
certain (:func:`lite_aws.lite_session`)."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from airflow_provider_smr.engine import lite_aws
from tests.conftest import FAKE_CREDENTIALS, REGION

KEYS = ["plain.txt", "logs/2026-12-07/part 0001.log", "ünï/cödé/ß€.txt", "a+b=c&d/e~f!'()*.json",
        "x%2Fy/?#[]@$,;"]
WHEN = datetime.datetime(2026, 12, 7, 23, 59, 58)
ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
       "AWS_SESSION_TOKEN": "FwoGZXIvYXdzE//token+with/slash=", "AWS_CONFIG_FILE": "/nonexistent/config",
       "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials"}


class _Sent(Exception):
    pass


_SESSION = botocore.session.Session()
_CLIENTS: dict[tuple, object] = {}
_SENT: list = []


def _capture(request, **_):
    _SENT.append(request)
    raise _Sent


def _botocore_request(region: str, endpoint: str | None, service: str, operation: str, kwargs: dict):
    """The request botocore sends for ``operation`` (captured before it is sent)."""
    client = _CLIENTS.get((region, endpoint, service))
    if client is None:
        client = _CLIENTS[region, endpoint, service] = _SESSION.create_client(
            service, region_name=region, endpoint_url=endpoint, aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"], aws_session_token=ENV["AWS_SESSION_TOKEN"])
        client.meta.events.register("before-send", _capture)
    _SENT.clear()
    with pytest.raises(_Sent):
        getattr(client, operation)(**kwargs)
    return _SENT[0]


def _lite_request(monkeypatch, region: str, endpoint: str | None, service: str, operation: str, kwargs: dict):
    """(method, url, headers, body) the lite client sends for ``operation``."""
    sent = []

    def capture(self, scheme, host, port, method, target, headers, body):
        host = f"[{host}]" if ":" in host else host
        netloc = host if port is None else f"{host}:{port}"
        sent.append((method, f"{scheme}://{netloc}{target}", headers, body))
        raise lite_aws.Fallback("captured")

    monkeypatch.setattr(lite_aws._Connections, "request", capture)
    session = lite_aws.lite_session(endpoint, region, environ=ENV)
    assert session is not None
    client = session.client(service)
    monkeypatch.setattr(client, "_fallback", lambda *a: None)
    getattr(client, operation)(**kwargs)
    return sent[0]


def _calls():
    for key in KEYS:
        yield "s3", "get_object", {"Bucket": "smr-data", "Key": key}
        yield "s3", "put_object", {"Bucket": "smr-data", "Key": key, "Body": b'{"a": 1}', "IfNoneMatch": "*"}
        yield "s3", "list_objects_v2", {"Bucket": "smr-data", "Prefix": key, "MaxKeys": 1}
    yield "s3", "list_objects_v2", {"Bucket": "bkt-2", "Prefix": "jobs/x/status/", "ContinuationToken": "a/b+c=="}
    yield "s3", "put_object", {"Bucket": "bkt-2", "Key": "k", "Body": b""}
    yield "lambda", "invoke", {"FunctionName": "smr-mapper:3", "InvocationType": "Event", "Payload": b'{"x":1}'}
    yield "lambda", "invoke", {"FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:smr-mapper",
                               "InvocationType": "RequestResponse", "Payload": b"{}", "Qualifier": "7"}


@pytest.mark.parametrize("region, endpoint", [("us-east-1", None), ("eu-west-1", None), ("ap-southeast-2", None),
                                              ("us-east-1", "http://127.0.0.1:4566"),
                                              ("eu-central-1", "https://[::1]:9000/")])
def test_requests_go_where_botocore_sends_them_signed_as_botocore_signs_them(region, endpoint, monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN)
    monkeypatch.setattr(lite_aws.sigv4, "amz_date", lambda now=None: WHEN.strftime("%Y%m%dT%H%M%SZ"))
    credentials = Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"], ENV["AWS_SESSION_TOKEN"])
    for service, operation, kwargs in _calls():
        theirs = _botocore_request(region, endpoint, service, operation, kwargs)
        method, url, headers, body = _lite_request(monkeypatch, region, endpoint, service, operation, kwargs)
        ours_url, their_url = urlsplit(url), urlsplit(theirs.url)
        assert (method, ours_url.scheme, ours_url.netloc, ours_url.path) == (
            theirs.method, their_url.scheme, their_url.netloc, their_url.path), (operation, kwargs)
        assert sorted(parse_qsl(ours_url.query)) == sorted(parse_qsl(their_url.query)), (operation, kwargs)
        if theirs.body is None or isinstance(theirs.body, bytes):  # (a PUT over HTTPS: aws-chunked, a trailing CRC)
            assert body == (theirs.body or b"")
        for name in ("If-None-Match", "X-Amz-Invocation-Type"):
            value = theirs.headers.get(name)
            assert headers.get(name.lower()) == (value.decode() if isinstance(value, bytes) else value)
        # botocore's own signer, on the request as the lite client sends it, signs it the same way
        request = AWSRequest(method=method, url=url, data=body,
                             headers={k: v for k, v in headers.items() if k != "authorization"})
        signer = botocore.auth.S3SigV4Auth if service == "s3" else botocore.auth.SigV4Auth
        signer(credentials.get_frozen_credentials(), service, region).add_auth(request)
        assert headers["authorization"] == request.headers["Authorization"], (operation, kwargs)


@pytest.mark.parametrize("change", [{"AWS_PROFILE": "default"}, {"AWS_REGION": "us-east-1"}])
def test_a_plain_environment_is_lite(change, tmp_path):
    assert lite_aws.lite_session(None, "eu-west-1", environ={**ENV, **change}) is not None


@pytest.mark.parametrize("change, config, endpoint, region", [
    ({"AWS_ACCESS_KEY_ID": ""}, None, None, "eu-west-1"),  # the keys come from elsewhere
    ({"AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"}, None, None, "eu-west-1"),
    ({"AWS_USE_FIPS_ENDPOINT": "true"}, None, None, "eu-west-1"),
    ({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"}, None, None, "eu-west-1"),
    ({"HTTPS_PROXY": "http://proxy:3128"}, None, None, "eu-west-1"),
    ({}, "[default]\nregion = eu-west-1\ns3 =\n  addressing_style = path\n", None, "eu-west-1"),
    ({}, "[default]\nendpoint_url = http://127.0.0.1:1\n", None, "eu-west-1"),
    ({}, "[services dev]\ns3 =\n  endpoint_url = http://127.0.0.1:1\n", None, "eu-west-1"),
    ({"AWS_PROFILE": "sso"}, "[profile sso]\nsso_session = x\n", None, "eu-west-1"),
    ({"AWS_PROFILE": "work"}, None, None, "eu-west-1"),  # botocore's ProfileNotFound, or the profile's settings
    ({}, "[profile default]\nregion = eu-west-1\nuse_fips_endpoint = true\n", None, "eu-west-1"),
    ({}, None, "http://localhost:4566", "us-east-1"),  # a host name: botocore may address it virtual-hosted
    ({}, None, "http://127.0.0.1:4566/prefix", "us-east-1"),
    ({}, None, None, "cn-north-1"),
    ({}, None, None, "us-gov-west-1"),
    ({"SMR_LITE_AWS": "0"}, None, None, "eu-west-1"),
])
def test_anything_botocore_might_do_differently_is_botocores(change, config, endpoint, region, tmp_path):
    env = {**ENV, **change}
    if config is not None:
        (tmp_path / "config").write_text(config)
        env["AWS_CONFIG_FILE"] = str(tmp_path / "config")
    assert lite_aws.lite_session(endpoint, region, environ=env) is None


def test_the_region_comes_from_the_profile_when_the_environment_has_none(tmp_path):
    (tmp_path / "config").write_text("[default]\nregion = eu-west-3\noutput = json\n")
    session = lite_aws.lite_session(None, None, environ={**ENV, "AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert session is not None and session.region_name == "eu-west-3"
    assert lite_aws.lite_session(None, None, environ=ENV) is None  # no region anywhere: botocore's default


@pytest.fixture
def pair(aws_endpoint, aws_clients):
    """(lite S3 client, botocore S3 client) on the session's local stack, one fresh bucket."""
    env = {"AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"], "AWS_CONFIG_FILE": "/nonexistent"}
    session = lite_aws.lite_session(aws_endpoint, REGION, environ=env)
    assert session is not None
    theirs = aws_clients(aws_endpoint).s3
    theirs.create_bucket(Bucket="lite-parity")
    return session.client("s3"), theirs


def _plain(response: dict) -> dict:
    return {k: v for k, v in response.items() if k not in ("ResponseMetadata", "Body")}


def test_responses_equal_botocores_on_the_local_stack(pair):
    ours, theirs = pair
    for i, key in enumerate(KEYS):
        ours.put_object(Bucket="lite-parity", Key=f"p/{key}", Body=f"body {i}".encode())
    for kwargs in ({"Prefix": "p/"}, {"Prefix": "p/", "MaxKeys": 2}, {"Prefix": "p/", "Delimiter": "/"},
                   {"Prefix": "nothing/"}, {"Prefix": "p/", "StartAfter": "p/m"}):
        assert _plain(ours.list_objects_v2(Bucket="lite-parity", **kwargs)) == _plain(
            theirs.list_objects_v2(Bucket="lite-parity", **kwargs)), kwargs
    pages = list(ours.get_paginator("list_objects_v2").paginate(Bucket="lite-parity", Prefix="p/"))
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(f"p/{k}" for k in KEYS)
    for i, key in enumerate(KEYS):
        mine, other = ours.get_object(Bucket="lite-parity", Key=f"p/{key}"), theirs.get_object(
            Bucket="lite-parity", Key=f"p/{key}")
        assert mine["Body"].read() == other["Body"].read() == f"body {i}".encode()
        assert _plain(mine) == {k: v for k, v in _plain(other).items() if k in _plain(mine)}
        assert {"ETag", "LastModified", "ContentLength"} <= set(mine)


def test_errors_are_botocores_own(pair):
    ours, theirs = pair
    for call in (lambda c: c.get_object(Bucket="lite-parity", Key="missing"),
                 lambda c: c.list_objects_v2(Bucket="no-such-bucket-here", Prefix=""),
                 lambda c: c.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x")):
        with pytest.raises(ClientError) as mine:
            call(ours)
        with pytest.raises(ClientError) as other:
            call(theirs)
        assert str(mine.value) == str(other.value)
    ours.put_object(Bucket="lite-parity", Key="once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        ours.put_object(Bucket="lite-parity", Key="once", Body=b"2", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert ours.get_object(Bucket="lite-parity", Key="once")["Body"].read() == b"1"
    assert ours.head_object(Bucket="lite-parity", Key="once")["ContentLength"] == 1  # botocore's method


def test_invoke_answers_as_botocore_and_a_missing_function_is_botocores_error(aws_endpoint, aws_clients):
    env = {"AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"], "AWS_CONFIG_FILE": "/nonexistent"}
    session = lite_aws.lite_session(aws_endpoint, REGION, environ=env)
    assert session is not None
    with pytest.raises(ClientError) as mine:
        session.client("lambda").invoke(FunctionName="no-such-function", InvocationType="Event", Payload=b"{}")
    with pytest.raises(ClientError) as other:
        aws_clients(aws_endpoint).lambda_.invoke(FunctionName="no-such-function", InvocationType="Event",
                                                 Payload=b"{}")
    assert str(mine.value) == str(other.value)


@pytest.mark.parametrize("zone", [None, "UTC", "America/New_York", "Europe/Paris"])
def test_timestamps_have_botocores_time_zones(zone, monkeypatch):
    import time

    from botocore.utils import parse_timestamp

    if zone is not None:
        monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for sample in (lite_aws._ISO_SAMPLE, lite_aws._HTTP_SAMPLE, "2026-12-07T05:57:14.123Z",
                       "Mon, 07 Dec 2026 05:57:14 GMT"):
            ours, theirs = lite_aws._zones(), parse_timestamp(sample).tzinfo
            zone_of = ours[lite_aws._ISO_SAMPLE if sample.endswith("Z") else lite_aws._HTTP_SAMPLE]
            assert (type(zone_of), zone_of) == (type(theirs), theirs), sample
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_listing_reads_the_lite_clients_pages_itself_as_botocore_lists_them(pair, monkeypatch):
    """More than a page of keys (awkward ones too) lists the same through the lite client, whose
    pages ``lambda_handlers.io.listing`` reads itself (never through the ElementTree parse), and
    a missing bucket is botocore's error, as before."""
    from concurrent.futures import ThreadPoolExecutor

    from lambda_handlers.io import listing

    ours, theirs = pair
    keys = [f"many/{i:05d}.txt" for i in range(1100)] + [f"many/{key}" for key in KEYS]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: theirs.put_object(Bucket="lite-parity", Key=k, Body=b"x"), keys))

    def no_tree_parse(*args):
        raise AssertionError("a page went through the ElementTree parse")

    monkeypatch.setattr(lite_aws, "_parse_listing", no_tree_parse)
    assert list(listing.list_objects(ours, "lite-parity", "many/")) == list(
        listing.list_objects(theirs, "lite-parity", "many/"))
    assert len(list(listing.list_pages(ours, "lite-parity", "many/"))) == 2
    monkeypatch.undo()
    with pytest.raises(ClientError, match="NoSuchBucket"):
        list(listing.list_objects(ours, "no-such-bucket-here", ""))
