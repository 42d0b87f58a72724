"""Invoking functions on the local stack runs their code for real, warm, in a Lambda-like sandbox."""

from __future__ import annotations

import json
import time

from tests.local.conftest import read_payload

ECHO = """
import os

def handler(event, context):
    return {"event": event, "pid": os.getpid()}
"""

MARKER = """
import boto3

s3 = boto3.client("s3")

def handler(event, context):
    s3.put_object(Bucket=event["bucket"], Key=event["key"], Body=b"done")
"""


def wait_for_object(s3, bucket, key, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.02)
    raise AssertionError(f"s3://{bucket}/{key} never appeared")


def test_sync_invoke_returns_the_handler_result(lam, deploy):
    name = deploy(ECHO)
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"n": 1}))
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert read_payload(response)["event"] == {"n": 1}


def test_event_invoke_runs_the_handler_later(lam, s3, bucket, deploy):
    name = deploy(MARKER)
    response = lam.invoke(FunctionName=name, InvocationType="Event",
                          Payload=json.dumps({"bucket": bucket, "key": "event/marker"}))
    assert response["StatusCode"] == 202
    assert wait_for_object(s3, bucket, "event/marker") == b"done"


def test_warm_worker_serves_the_second_invocation(lam, deploy):
    name = deploy(ECHO)
    first = read_payload(lam.invoke(FunctionName=name, Payload=b"{}"))
    second = read_payload(lam.invoke(FunctionName=name, Payload=b"{}"))
    assert first["pid"] == second["pid"]


def test_new_code_gets_a_new_worker(lam, deploy):
    from tests.local.conftest import zip_source

    name = deploy(ECHO)
    before = read_payload(lam.invoke(FunctionName=name, Payload=b"{}"))
    lam.update_function_code(FunctionName=name, ZipFile=zip_source({"app.py": ECHO + "\n# v2\n"}))
    after = read_payload(lam.invoke(FunctionName=name, Payload=b"{}"))
    assert before["pid"] != after["pid"]
