"""CloudFormation on the local stack applies every resource of a template, or refuses it."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import read_payload, zip_source

HANDLER = """
import os

def handler(event, context):
    return {"from": "cloudformation", "bucket": os.environ["DATA_BUCKET"]}
"""


def _template(code_bucket: str, code_key: str) -> dict:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Data": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "cfn-data-bucket"}},
            "DataPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
                "Bucket": {"Ref": "Data"},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["Role", "Arn"]}},
                    "Action": "s3:GetObject", "Resource": "arn:aws:s3:::cfn-data-bucket/*"}]}}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"Service": "lambda.amazonaws.com"}}]}}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "FunctionName": "cfn-function", "Runtime": "python3.11", "Handler": "app.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Timeout": 10, "MemorySize": 256,
                "Code": {"S3Bucket": code_bucket, "S3Key": code_key},
                "Environment": {"Variables": {"DATA_BUCKET": {"Ref": "Data"}}}}},
            "FnAsync": {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
                "FunctionName": {"Ref": "Fn"}, "Qualifier": "$LATEST",
                "MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 120}},
        },
    }


@pytest.fixture(scope="module")
def stack(local_stack, s3, bucket):
    s3.put_object(Bucket=bucket, Key="code/cfn.zip", Body=zip_source({"app.py": HANDLER}))
    cfn = local_stack.client("cloudformation")
    cfn.create_stack(StackName="smr-local-cfn", TemplateBody=json.dumps(_template(bucket, "code/cfn.zip")),
                     Capabilities=["CAPABILITY_IAM"])
    status = cfn.describe_stacks(StackName="smr-local-cfn")["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"
    return "smr-local-cfn"


def test_function_from_s3_code_created_by_a_stack_runs(stack, lam):
    response = lam.invoke(FunctionName="cfn-function", Payload=b"{}")
    assert "FunctionError" not in response
    assert read_payload(response) == {"from": "cloudformation", "bucket": "cfn-data-bucket"}


def test_event_invoke_config_from_a_stack_is_applied(stack, lam):
    config = lam.get_function_event_invoke_config(FunctionName="cfn-function")
    assert config["MaximumRetryAttempts"] == 0
    assert config["MaximumEventAgeInSeconds"] == 120


def test_bucket_policy_from_a_stack_is_applied(stack, s3):
    policy = json.loads(s3.get_bucket_policy(Bucket="cfn-data-bucket")["Policy"])
    assert policy["Statement"][0]["Action"] == "s3:GetObject"


def test_template_with_a_resource_type_the_stack_cannot_apply_is_refused(local_stack):
    template = {"Resources": {"Url": {"Type": "AWS::Lambda::Url", "Properties": {
        "TargetFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:x",
        "AuthType": "NONE"}}}}
    cfn = local_stack.client("cloudformation")
    with pytest.raises(ClientError) as caught:
        cfn.create_stack(StackName="smr-local-unsupported", TemplateBody=json.dumps(template))
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "AWS::Lambda::Url" in caught.value.response["Error"]["Message"]


def test_event_invoke_config_with_destinations_is_refused(local_stack, lam, deploy):
    name = deploy(HANDLER.replace('os.environ["DATA_BUCKET"]', '"none"'))
    template = {"Resources": {"Cfg": {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
        "FunctionName": name, "Qualifier": "$LATEST", "MaximumRetryAttempts": 1,
        "DestinationConfig": {"OnFailure": {
            "Destination": "arn:aws:sqs:us-east-1:123456789012:dead-letters"}}}}}}
    with pytest.raises(ClientError) as caught:
        local_stack.client("cloudformation").create_stack(
            StackName="smr-local-destinations", TemplateBody=json.dumps(template))
    assert "DestinationConfig" in caught.value.response["Error"]["Message"]
