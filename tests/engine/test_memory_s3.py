"""The in-memory S3 of inline runs answers as the local stack's S3 does, call for call."""

from __future__ import annotations

import uuid

from botocore.exceptions import ClientError

from airflow_provider_smr.engine.memory_s3 import MemoryS3

BODY = b"0123456789abcdef"


def outcome(call):
    """What a call gives: the body of a GET, the keys of a LIST, or the error code."""
    try:
        response = call()
    except ClientError as exc:
        return "error", exc.response["Error"]["Code"]
    if "Body" in response:
        return "body", response["Body"].read()
    if "KeyCount" in response:
        return "keys", [o["Key"] for o in response.get("Contents", [])], response["IsTruncated"]
    return "ok", sorted(k for k in response if k in ("ETag", "ContentLength"))


def calls(s3, bucket: str) -> list:
    s3.put_object(Bucket=bucket, Key="a/one", Body=BODY)
    s3.put_object(Bucket=bucket, Key="a/two", Body=b"")
    s3.put_object(Bucket=bucket, Key="b/three", Body=b"x")
    etag = s3.head_object(Bucket=bucket, Key="a/one")["ETag"]
    out = [outcome(lambda r=r: s3.get_object(Bucket=bucket, Key="a/one", Range=r))
           for r in ("bytes=0-3", "bytes=10-", "bytes=14-99", "bytes=-4", "bytes=16-20", "bytes=5-2")]
    out += [outcome(lambda: s3.get_object(Bucket=bucket, Key="a/two", Range="bytes=0-9")),
            outcome(lambda: s3.get_object(Bucket=bucket, Key="a/one", IfMatch=etag)),
            outcome(lambda: s3.get_object(Bucket=bucket, Key="a/one", IfMatch='"0000"')),
            outcome(lambda: s3.get_object(Bucket=bucket, Key="nope")),
            outcome(lambda: s3.head_object(Bucket=bucket, Key="nope")),
            outcome(lambda: s3.head_object(Bucket=bucket, Key="a/one")),
            outcome(lambda: s3.put_object(Bucket=bucket, Key="a/one", Body=b"y", IfNoneMatch="*")),
            outcome(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="a/")),
            outcome(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="", MaxKeys=2)),
            outcome(lambda: s3.list_objects_v2(Bucket=f"{bucket}-missing", Prefix=""))]
    s3.copy_object(Bucket=bucket, Key="c/copy", CopySource={"Bucket": bucket, "Key": "a/one"})
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a/two"}], "Quiet": True})
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="", PaginationConfig={"PageSize": 1})
    out.append([o["Key"] for page in pages for o in page.get("Contents", [])])
    out.append(outcome(lambda: s3.get_object(Bucket=bucket, Key="c/copy")))
    return out


def test_memory_s3_answers_as_the_local_stack(aws_endpoint, aws_clients):
    stack_s3 = aws_clients(aws_endpoint).s3
    bucket = f"memory-s3-{uuid.uuid4().hex[:8]}"
    stack_s3.create_bucket(Bucket=bucket)
    memory = MemoryS3()
    memory.create_bucket(Bucket=bucket)
    assert calls(memory, bucket) == calls(stack_s3, bucket)
