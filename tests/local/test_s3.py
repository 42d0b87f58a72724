"""S3 through the local stack behaves like moto (and S3) on the calls jobs make most."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_put_then_get_round_trips_bytes_and_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="s3/plain ü+key", Body=b"hello", ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="s3/plain ü+key")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/plain"
    assert got["ContentLength"] == 5
    assert s3.head_object(Bucket=bucket, Key="s3/plain ü+key")["ETag"] == got["ETag"]


def test_range_get_returns_the_requested_bytes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="s3/range", Body=b"0123456789")
    assert s3.get_object(Bucket=bucket, Key="s3/range", Range="bytes=2-4")["Body"].read() == b"234"
    assert s3.get_object(Bucket=bucket, Key="s3/range", Range="bytes=-3")["Body"].read() == b"789"
    assert s3.get_object(Bucket=bucket, Key="s3/range", Range="bytes=8-")["Body"].read() == b"89"


def test_put_if_absent_fails_when_the_key_exists(s3, bucket):
    s3.put_object(Bucket=bucket, Key="s3/marker", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=bucket, Key="s3/marker", Body=b"2", IfNoneMatch="*")
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="s3/marker")["Body"].read() == b"1"


def test_missing_key_is_no_such_key_and_head_is_404(s3, bucket):
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="s3/missing")
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=bucket, Key="s3/missing")
    assert caught.value.response["Error"]["Code"] == "404"


def test_metadata_and_listing_still_work(s3, bucket):
    s3.put_object(Bucket=bucket, Key="s3/list/a", Body=b"a", Metadata={"stage": "map"})
    s3.put_object(Bucket=bucket, Key="s3/list/b", Body=b"bb")
    assert s3.head_object(Bucket=bucket, Key="s3/list/a")["Metadata"] == {"stage": "map"}
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="s3/list/")
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [("s3/list/a", 1), ("s3/list/b", 2)]


def test_missing_bucket_is_no_such_bucket(s3):
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.get_object(Bucket="no-such-bucket-here", Key="k")


def test_large_object_round_trips(s3, bucket):
    body = bytes(range(256)) * (5 * 4096)  # 5 MiB
    s3.put_object(Bucket=bucket, Key="s3/large", Body=body)
    assert s3.get_object(Bucket=bucket, Key="s3/large")["Body"].read() == body


def test_bucket_policy_deny_is_enforced_like_moto(s3):
    import json

    s3.create_bucket(Bucket="smr-local-denied")
    s3.put_object(Bucket="smr-local-denied", Key="secret", Body=b"x")
    s3.put_bucket_policy(Bucket="smr-local-denied", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::smr-local-denied/*"}]}))
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="smr-local-denied", Key="secret")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_get_if_match_serves_the_pinned_version_and_refuses_a_changed_object(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="s3/pinned", Body=b"first")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="s3/pinned", IfMatch=etag, Range="bytes=0-1")["Body"].read() == b"fi"
    s3.put_object(Bucket=bucket, Key="s3/pinned", Body=b"second")
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="s3/pinned", IfMatch=etag)
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_copy_object_copies_bytes_metadata_and_etag_and_a_missing_source_is_no_such_key(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="s3/copy-src", Body=b"x" * 100_000, ContentType="text/csv",
                        Metadata={"origin": "test"})
    copied = s3.copy_object(Bucket=bucket, Key="s3/copy-dst", CopySource={"Bucket": bucket, "Key": "s3/copy-src"})
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
    got = s3.get_object(Bucket=bucket, Key="s3/copy-dst")
    assert got["Body"].read() == b"x" * 100_000
    assert got["ContentType"] == "text/csv" and got["Metadata"] == {"origin": "test"}
    assert got["ETag"] == put["ETag"]
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket=bucket, Key="s3/copy-dst2", CopySource={"Bucket": bucket, "Key": "s3/nope"})
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
