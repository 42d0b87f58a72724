"""Reserved concurrency throttles synchronous calls and queues Event calls; async retries follow
the function's event-invoke config."""

from __future__ import annotations

import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from tests.local.test_invoke import wait_for_object

RECORD_SPAN = """
import json, time, boto3

s3 = boto3.client("s3")

def handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    s3.put_object(Bucket=event["bucket"], Key=event["key"],
                  Body=json.dumps([start, time.time()]).encode())
"""

FAIL_AND_COUNT = """
import time, uuid, boto3

s3 = boto3.client("s3")

def handler(event, context):
    key = f"{event['prefix']}/{context.aws_request_id}/{uuid.uuid4().hex}"
    s3.put_object(Bucket=event["bucket"], Key=key, Body=b"attempt")
    raise RuntimeError("always fails")
"""


def test_sync_invoke_over_reserved_concurrency_is_throttled(lam, deploy, bucket):
    name = deploy(RECORD_SPAN, Timeout=30)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    slow = threading.Thread(target=lam.invoke, kwargs={
        "FunctionName": name,
        "Payload": json.dumps({"sleep": 3, "bucket": bucket, "key": "throttle/slow"})})
    slow.start()
    try:
        time.sleep(1.0)  # let the slow call occupy the only slot
        with pytest.raises(ClientError) as caught:
            lam.invoke(FunctionName=name,
                       Payload=json.dumps({"bucket": bucket, "key": "throttle/fast"}))
        assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    finally:
        slow.join()


def test_event_invokes_over_reserved_concurrency_queue_and_run_one_at_a_time(lam, s3, bucket,
                                                                              deploy):
    name = deploy(RECORD_SPAN, Timeout=30)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    keys = [f"queue/{i}" for i in range(3)]
    for key in keys:
        response = lam.invoke(FunctionName=name, InvocationType="Event",
                              Payload=json.dumps({"sleep": 0.3, "bucket": bucket, "key": key}))
        assert response["StatusCode"] == 202
    spans = sorted(json.loads(wait_for_object(s3, bucket, key)) for key in keys)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end <= next_start


def _attempts(s3, bucket, prefix):
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return [item["Key"] for item in listing.get("Contents", [])]


def _settled_attempts(s3, bucket, prefix, expected):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_attempts(s3, bucket, prefix)) < expected:
        time.sleep(0.05)
    time.sleep(1.5)  # retries come 0.1 s and 0.2 s apart: any extra one would show by now
    return _attempts(s3, bucket, prefix)


@pytest.mark.parametrize("retries", [0, 1])
def test_failed_event_is_retried_as_the_invoke_config_says(lam, s3, bucket, deploy, retries):
    name = deploy(FAIL_AND_COUNT)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=retries)
    prefix = f"retries-{retries}"
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=json.dumps({"bucket": bucket, "prefix": prefix}))
    attempts = _settled_attempts(s3, bucket, prefix, retries + 1)
    assert len(attempts) == retries + 1
    assert len({key.split("/")[1] for key in attempts}) == 1  # same request id on every attempt


def test_latest_event_invoke_config_is_the_one_in_force(lam, deploy):
    name = deploy(FAIL_AND_COUNT)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert lam.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0


def test_failed_event_is_retried_twice_by_default(lam, s3, bucket, deploy):
    name = deploy(FAIL_AND_COUNT)
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=json.dumps({"bucket": bucket, "prefix": "retries-default"}))
    assert len(_settled_attempts(s3, bucket, "retries-default", 3)) == 3
