"""Handlers see what Lambda's Python runtime gives them: environment, context, and nothing more."""

from __future__ import annotations

from tests.local.conftest import read_payload

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
