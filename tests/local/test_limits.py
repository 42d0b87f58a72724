"""Lambda's limits hold locally with Lambda's error shapes: timeout, memory, payload sizes."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import read_payload

SLEEPY = """
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return os.getpid()
"""

HUNGRY = """
import os

def handler(event, context):
    hoard = b"x" * (event["mb"] * 1024 * 1024)
    return len(hoard)
"""

THREADS_WITH_CLIENTS = """
import threading, boto3

def handler(event, context):
    results, lock = [], threading.Lock()

    def work():
        with lock:  # one shared session: its loader parses the S3 model once
            s3 = boto3.client("s3")
        results.append(s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"])

    threads = [threading.Thread(target=work) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results
"""

BIG_REPLY = """
def handler(event, context):
    return "y" * (7 * 1024 * 1024)
"""


def test_timeout_kills_the_worker_and_reports_task_timed_out(lam, deploy):
    name = deploy(SLEEPY, Timeout=1)
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"sleep": 30}))
    assert response["FunctionError"] == "Unhandled"
    error = read_payload(response)
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    # the next invocation gets a fresh worker and works
    assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


def test_exceeding_memory_size_is_an_out_of_memory_error(lam, deploy):
    name = deploy(HUNGRY, MemorySize=128)
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"mb": 400}))
    assert response["FunctionError"] == "Unhandled"
    error = read_payload(response)
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert "out of memory" in error["errorMessage"]


def test_memory_is_measured_resident_so_threads_with_clients_fit_in_128_mb(lam, deploy):
    response = lam.invoke(FunctionName=deploy(THREADS_WITH_CLIENTS, MemorySize=128, Timeout=30),
                          Payload=b"{}")
    assert "FunctionError" not in response, read_payload(response)
    assert read_payload(response) == [200] * 8


def test_sync_request_over_6_mb_is_too_large(lam, deploy):
    name = deploy(SLEEPY)
    payload = json.dumps({"pad": "z" * (6 * 1024 * 1024)})
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName=name, Payload=payload)
    assert caught.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_event_request_over_1_mb_is_too_large(lam, deploy):
    name = deploy(SLEEPY)
    payload = json.dumps({"pad": "z" * (1024 * 1024 + 10)})
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=payload)
    assert caught.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_event_request_under_1_mb_is_accepted(lam, deploy):
    name = deploy(SLEEPY)
    payload = json.dumps({"pad": "z" * (1000 * 1000)})
    assert lam.invoke(FunctionName=name, InvocationType="Event", Payload=payload)["StatusCode"] == 202


def test_response_over_6_mb_is_a_function_error(lam, deploy):
    response = lam.invoke(FunctionName=deploy(BIG_REPLY), Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert read_payload(response)["errorType"] == "Function.ResponseSizeTooLarge"
