"""Small whole objects by signed GETs: the same bytes as the client's, the client only for the
first GET of a bucket and for errors, IfMatch kept, and a changed or deleted object's clear error."""

from __future__ import annotations

import uuid

import pytest

from lambda_handlers import runtime
from lambda_handlers.io import signed_get, splits

DATA_BUCKET = "smr-data-test"  # the data bucket of tests/lambda_handlers/conftest.py


def _objects(s3, n: int) -> dict[str, tuple[bytes, str]]:
    prefix = f"signed/{uuid.uuid4().hex[:8]}"
    out = {}
    for i in range(n):
        key = f"{prefix}/{i:03d} a+b ü~.log"  # spaces, plus, non-ASCII and a tilde in the path
        body = f"line {i}\n".encode() * (i + 1)
        out[key] = (body, s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)["ETag"])
    return out


def test_only_a_buckets_first_get_goes_through_the_client_and_every_get_is_counted(s3, client_gets):
    objects = _objects(s3, 12)
    metrics = runtime.start_metrics()
    got = {key: signed_get.get_whole(DATA_BUCKET, key, etag) for key, (_, etag) in objects.items()}
    assert got == {key: body for key, (body, _) in objects.items()}
    assert client_gets == [next(iter(objects))]
    assert metrics.requests["GetObject"] == 12


def test_a_changed_object_fails_naming_its_uri_and_both_etags(s3, client_gets):
    objects = _objects(s3, 2)
    (first, (_, etag0)), (key, (_, etag)) = objects.items()
    signed_get.get_whole(DATA_BUCKET, first, etag0)  # the route is known: the next GET is signed
    now = s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=b"rewritten\n")["ETag"].strip('"')
    with pytest.raises(runtime.ObjectChangedError) as err:
        signed_get.get_whole(DATA_BUCKET, key, etag)
    assert f"s3://{DATA_BUCKET}/{key} changed during the job" in str(err.value)
    assert etag in str(err.value) and now in str(err.value)


def test_a_deleted_object_fails_saying_it_disappeared(s3, client_gets):
    objects = _objects(s3, 2)
    (first, (_, etag0)), (key, (_, etag)) = objects.items()
    signed_get.get_whole(DATA_BUCKET, first, etag0)
    s3.delete_object(Bucket=DATA_BUCKET, Key=key)
    with pytest.raises(runtime.ObjectChangedError, match=f"s3://{DATA_BUCKET}/.* disappeared during the job"):
        signed_get.get_whole(DATA_BUCKET, key, etag)


def test_after_a_transport_error_the_buckets_gets_go_through_the_client(s3, client_gets, monkeypatch):
    items = list(_objects(s3, 3).items())
    signed_get.get_whole(DATA_BUCKET, items[0][0], items[0][1][1])
    pool = signed_get._http()

    class Refused:
        def request(self, *args, **kwargs):
            raise ConnectionRefusedError("no route")

    monkeypatch.setattr(signed_get, "_pool", Refused())
    key, (body, etag) = items[1]
    assert signed_get.get_whole(DATA_BUCKET, key, etag) == body
    monkeypatch.setattr(signed_get, "_pool", pool)
    last, (body, etag) = items[2]
    assert signed_get.get_whole(DATA_BUCKET, last, etag) == body  # not tried signed again
    assert client_gets == [items[0][0], key, last]


def test_a_body_served_from_memory_teaches_no_route(s3, client_gets):
    (k0, (b0, e0)), (k1, (b1, e1)), (k2, (b2, e2)) = _objects(s3, 3).items()
    splits.preloading({(DATA_BUCKET, k0, e0): b0})
    try:
        assert signed_get.get_whole(DATA_BUCKET, k0, e0) == b0  # no GET went out
    finally:
        splits.preloading({})
    assert [signed_get.get_whole(DATA_BUCKET, k, e) for k, e in ((k1, e1), (k2, e2))] == [b1, b2]
    assert client_gets == [k1]  # the first real GET learnt the route; the next one was signed
