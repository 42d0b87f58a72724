"""Cold starts fork from a zygote that preloaded boto3, with a fresh worker's isolation."""

from __future__ import annotations

import json
from pathlib import Path

from tests.local.conftest import read_payload, zip_source

WHO_AM_I = """
import os, sys

import boto3

s3 = boto3.session.Session().client("s3")

def handler(event, context):
    return {"pid": os.getpid(), "ppid": os.getppid(), "path": sys.path,
            "task_root": os.environ["LAMBDA_TASK_ROOT"],
            "modules": sorted(m for m in sys.modules
                              if m.split(".")[0] in ("airflow", "moto", "airflow_provider_smr",
                                                     "pytest", "tests"))}
"""

VENDORED_BOTO3 = {
    "app.py": """
        import os

        import boto3

        def handler(event, context):
            return {"boto3": boto3.VERSION, "ppid": os.getppid()}
        """,
    "boto3/__init__.py": 'VERSION = "vendored"\n',
}


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_cold_start_forks_from_the_zygote_not_from_the_server(lam, deploy, local_stack):
    body = read_payload(lam.invoke(FunctionName=deploy(WHO_AM_I), Payload=b"{}"))
    assert body["ppid"] != local_stack.pid
    assert "--zygote" in _cmdline(body["ppid"])


def test_forked_worker_sees_its_code_first_and_nothing_of_the_server(lam, deploy):
    body = read_payload(lam.invoke(FunctionName=deploy(WHO_AM_I), Payload=b"{}"))
    assert body["path"][0] == body["task_root"]
    assert not any(".venv" in p and "site-packages" in p for p in body["path"])
    assert body["modules"] == []


def test_two_functions_get_two_forked_workers(lam, deploy):
    first = read_payload(lam.invoke(FunctionName=deploy(WHO_AM_I), Payload=b"{}"))
    second = read_payload(lam.invoke(FunctionName=deploy(WHO_AM_I), Payload=b"{}"))
    assert first["pid"] != second["pid"]
    assert first["ppid"] == second["ppid"]


def test_package_with_its_own_boto3_starts_a_fresh_interpreter(lam, role_arn, local_stack):
    lam.create_function(FunctionName="vendors-boto3", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler", Code={"ZipFile": zip_source(VENDORED_BOTO3)})
    body = read_payload(lam.invoke(FunctionName="vendors-boto3", Payload=b"{}"))
    assert body["boto3"] == "vendored"
    assert body["ppid"] == local_stack.pid


def test_a_crashed_forked_worker_is_replaced_by_a_new_fork(lam, deploy):
    name = deploy(WHO_AM_I.replace("def handler(event, context):\n",
                                   "def handler(event, context):\n    if event.get('crash'):\n"
                                   "        os._exit(3)\n"))
    first = read_payload(lam.invoke(FunctionName=name, Payload=b"{}"))
    crashed = lam.invoke(FunctionName=name, Payload=json.dumps({"crash": True}))
    assert json.loads(crashed["Payload"].read())["errorType"] == "Runtime.ExitError"
    again = read_payload(lam.invoke(FunctionName=name, Payload=b"{}"))
    assert again["pid"] != first["pid"]
    assert again["ppid"] == first["ppid"]
