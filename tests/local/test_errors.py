"""Errors look like AWS's: handler errors, CloudWatch lines, and bad requests."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import read_payload

FAILING = """
def handler(event, context):
    print("about to fail")
    raise ValueError("boom")
"""

CHATTY = """
def handler(event, context):
    print("hello from the handler")
    return "ok"
"""


def test_handler_exception_has_aws_error_shape(lam, deploy):
    response = lam.invoke(FunctionName=deploy(FAILING), Payload=b"{}")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = read_payload(response)
    assert error["errorMessage"] == "boom"
    assert error["errorType"] == "ValueError"
    assert isinstance(error["stackTrace"], list) and error["stackTrace"]


def test_log_type_tail_returns_the_invocation_log(lam, deploy):
    response = lam.invoke(FunctionName=deploy(CHATTY), Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {request_id}" in tail
    assert "hello from the handler" in tail
    assert f"END RequestId: {request_id}" in tail
    assert f"REPORT RequestId: {request_id}" in tail


def test_invocation_is_logged_to_cloudwatch(lam, deploy, local_stack):
    name = deploy(CHATTY, MemorySize=192)
    request_id = lam.invoke(FunctionName=name, Payload=b"{}")["ResponseMetadata"]["RequestId"]
    events = local_stack.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")
    messages = [event["message"] for event in events["events"]]
    assert f"START RequestId: {request_id} Version: $LATEST" in messages
    assert "hello from the handler" in messages
    assert f"END RequestId: {request_id}" in messages
    report = next(m for m in messages if m.startswith(f"REPORT RequestId: {request_id}"))
    for field in ("Duration: ", "Billed Duration: ", "Memory Size: 192 MB", "Max Memory Used: "):
        assert field in report


def test_unknown_function_is_resource_not_found(lam):
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_non_json_payload_is_invalid_request_content(lam, deploy):
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName=deploy(CHATTY), Payload=b"not json {")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_broken_zip_is_refused_at_create_function(lam, role_arn):
    with pytest.raises(ClientError) as caught:
        lam.create_function(FunctionName="broken-zip", Runtime="python3.11", Role=role_arn,
                            Handler="app.handler", Code={"ZipFile": b"this is not a zip"})
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"


@pytest.mark.timeout(60)
def test_broken_zip_from_s3_fails_the_invoke_instead_of_hanging(lam, s3, bucket, role_arn):
    s3.put_object(Bucket=bucket, Key="code/broken.zip", Body=b"PK\x03\x04 truncated")
    lam.create_function(FunctionName="broken-from-s3", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler",
                        Code={"S3Bucket": bucket, "S3Key": "code/broken.zip"})
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName="broken-from-s3", Payload=json.dumps({}))
    assert caught.value.response["Error"]["Code"] == "InvalidZipFileException"
