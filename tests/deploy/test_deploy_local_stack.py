"""The deployed stack on the local stack: what moto's CloudFormation skips is applied, code runs."""

from __future__ import annotations

import json

import pytest

from airflow_provider_smr.deploy import delete_stack, deploy_stack
from lambda_handlers import protocol
from lambda_handlers.options import StackSettings


@pytest.fixture(scope="module")
def local_clients(aws_endpoint, aws_clients):
    return aws_clients(aws_endpoint)


def test_deployed_functions_run_our_code_with_lambda_retries_off_and_bucket_writable(local_clients):
    info = deploy_stack(local_clients, "smr-deploy-local", StackSettings(memory_mb=256, timeout_s=30))
    try:
        for name in info.functions.values():
            config = local_clients.lambda_.get_function_event_invoke_config(FunctionName=name)
            assert config["MaximumRetryAttempts"] == 0
        # The handlers' own code answers: a malformed event is an error (as Lambda reports a
        # raised exception), without any S3 write.
        response = local_clients.lambda_.invoke(FunctionName=info.functions["coordinator"],
                                                Payload=json.dumps({"kind": "coordinate"}).encode())
        assert response.get("FunctionError") == "Unhandled"
        error = json.loads(response["Payload"].read())
        assert error["errorType"] == "InvalidEventError"
        assert error["errorMessage"] == "invalid coordinate event: invalid bucket name None"
        # The TLS-only bucket policy must not lock the local (loopback, plain http) endpoint out.
        key = protocol.plan_key("deploy-check")
        local_clients.s3.put_object(Bucket=info.work_bucket, Key=key, Body=b"{}")
        assert local_clients.s3.get_object(Bucket=info.work_bucket, Key=key)["Body"].read() == b"{}"
    finally:
        delete_stack(local_clients, "smr-deploy-local")
