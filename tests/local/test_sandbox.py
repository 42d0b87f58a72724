"""Handlers see what Lambda's Python runtime gives them: environment, context, and nothing more."""

from __future__ import annotations

import compileall
from pathlib import Path

from airflow_provider_smr.local.runtime.sandbox import Bytecode, CodeCache
from tests.local.conftest import read_payload, zip_source

INTROSPECT = """
import os, sys

def handler(event, context):
    found = {}
    for module in ("airflow", "moto", "airflow_provider_smr", "boto3", "dateutil", "six"):
        try:
            __import__(module)
            found[module] = True
        except ImportError:
            found[module] = False
    return {
        "env": {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                "GREETING")},
        "context": {"request_id": context.aws_request_id, "name": context.function_name,
                    "memory": context.memory_limit_in_mb,
                    "remaining": context.get_remaining_time_in_millis()},
        "imports": found,
        "path": sys.path,
    }
"""

IMPORTS_AIRFLOW = """
import airflow

def handler(event, context):
    return "unreachable"
"""


def test_handler_gets_lambda_environment_and_context(lam, deploy, local_stack):
    name = deploy(INTROSPECT, MemorySize=256, Timeout=7,
                  Environment={"Variables": {"GREETING": "hi"}})
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    body = read_payload(response)
    assert body["env"].pop("AWS_ACCESS_KEY_ID").startswith("ASIA")  # its role's temporary keys, as on Lambda
    assert body["env"] == {
        "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_ENDPOINT_URL": local_stack.endpoint_url,
        "GREETING": "hi",
    }
    assert body["context"]["name"] == name
    assert body["context"]["memory"] == "256"
    assert response["ResponseMetadata"]["RequestId"] == body["context"]["request_id"]
    assert 0 < body["context"]["remaining"] <= 7000


def test_only_lambda_runtime_packages_are_importable(lam, deploy):
    body = read_payload(lam.invoke(FunctionName=deploy(INTROSPECT), Payload=b"{}"))
    assert body["imports"] == {"airflow": False, "moto": False, "airflow_provider_smr": False,
                               "boto3": True, "dateutil": True, "six": True}
    assert not any("site-packages" in p and "python3" in p and ".venv" in p for p in body["path"])


def test_importing_airflow_at_module_level_fails_like_on_lambda(lam, deploy):
    response = lam.invoke(FunctionName=deploy(IMPORTS_AIRFLOW), Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    error = read_payload(response)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "airflow" in error["errorMessage"]


OWN_BYTECODE = """
import importlib.util

def handler(event, context):
    with open(importlib.util.cache_from_source(__file__), "rb") as pyc:
        return {"flags": int.from_bytes(pyc.read(8)[4:], "little")}  # PEP 552's flags word
"""


def test_a_function_is_compiled_before_its_first_import(lam, deploy):
    # 3: a checked-hash .pyc, which the stack made from the package (a worker's own would be 0)
    body = read_payload(lam.invoke(FunctionName=deploy(OWN_BYTECODE), Payload=b"{}"))
    assert body == {"flags": 3}


def test_a_syntax_error_in_the_package_still_fails_the_import_like_on_lambda(lam, deploy):
    response = lam.invoke(FunctionName=deploy("def handler(event, context):\n    return (\n"),
                          Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert read_payload(response)["errorType"] == "Runtime.UserCodeSyntaxError"


def test_a_package_is_compiled_once_and_its_bytecode_reused_by_later_stacks(tmp_path, monkeypatch):
    package = zip_source({"app.py": "def handler(event, context):\n    return 1\n",
                          "lib/util.py": "VALUE = 2\n"})
    kept = Bytecode(tmp_path / "kept")
    first = Path(CodeCache(tmp_path / "one", kept).task_root(package, compiled=True))
    pycs = sorted(p.relative_to(first) for p in first.rglob("*.pyc"))
    assert [p.parent.parent.as_posix() for p in pycs] == [".", "lib"]

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(compileall, "compile_dir", no_compiling)
    second = Path(CodeCache(tmp_path / "two", kept).task_root(package, compiled=True))
    assert sorted(p.relative_to(second) for p in second.rglob("*.pyc")) == pycs
    assert all((second / p).read_bytes() == (first / p).read_bytes() for p in pycs)
    layer = Path(CodeCache(tmp_path / "three", kept).task_root(package))  # layers: as they are
    assert not list(layer.rglob("*.pyc"))
