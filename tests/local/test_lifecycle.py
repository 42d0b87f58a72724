"""A stack of its own: the stack-wide concurrency cap, and a clean shutdown."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_provider_smr.local import LocalStack
from tests.local.conftest import read_payload, zip_source

SLEEPY = """
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return os.getpid()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _session_members(sid: int) -> set[int]:
    """Live processes in session ``sid`` (the stack's server starts its own session)."""
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.add(int(entry))
    return members


@pytest.fixture(scope="module")
def small_stack():
    """A stack with a stack-wide cap of one concurrent invocation."""
    with LocalStack(port=0, max_concurrency=1) as stack:
        lam = stack.client("lambda", config=Config(retries={"max_attempts": 0}, read_timeout=60))
        role = stack.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        for name in ("first", "second"):
            lam.create_function(FunctionName=name, Runtime="python3.11",
                                Role=role["Role"]["Arn"], Handler="app.handler", Timeout=30,
                                Code={"ZipFile": zip_source({"app.py": SLEEPY})})
        yield stack, lam


def test_stack_wide_cap_throttles_sync_calls_across_functions(small_stack):
    stack, lam = small_stack
    slow = threading.Thread(target=lam.invoke, kwargs={
        "FunctionName": "first", "Payload": json.dumps({"sleep": 3})})
    slow.start()
    try:
        time.sleep(1.0)
        with pytest.raises(ClientError) as caught:
            lam.invoke(FunctionName="second", Payload=b"{}")
        assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    finally:
        slow.join()


def test_stop_leaves_no_process_behind(small_stack):
    stack, lam = small_stack
    worker_pid = read_payload(lam.invoke(FunctionName="second", Payload=b"{}"))
    server_pid = stack.pid
    family = _session_members(server_pid)
    assert {worker_pid, server_pid} <= family
    stack.stop()
    assert not stack.running()
    assert not any(_alive(pid) for pid in family)


def test_waiting_for_a_stack_never_launched_says_how_to_start_it():
    from airflow_provider_smr.local import LocalStackError

    with pytest.raises(LocalStackError, match="not launched"):
        LocalStack().wait_ready()


def test_a_stack_told_to_stop_without_waiting_ends_its_processes_itself():
    with LocalStack(port=0) as stack:
        lam = stack.client("lambda", config=Config(retries={"max_attempts": 0}, read_timeout=60))
        role = stack.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        lam.create_function(FunctionName="f", Runtime="python3.11", Role=role["Role"]["Arn"],
                            Handler="app.handler", Code={"ZipFile": zip_source({"app.py": SLEEPY})})
        worker_pid = read_payload(lam.invoke(FunctionName="f", Payload=b"{}"))
        server_pid = stack.pid
        family = _session_members(server_pid)
        assert {worker_pid, server_pid} <= family
        stack.stop(wait=False)
        assert not stack.running()
    deadline = time.monotonic() + 60  # a wait, not a timing: the server ends them on its own
    while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in family)
