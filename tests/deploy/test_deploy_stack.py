"""deploy_stack / describe_stack / delete_stack on the local stack (CloudFormation, S3, IAM, Lambda)."""

from __future__ import annotations

import datetime
import itertools
import json

import pytest

import airflow_provider_smr.deploy.artifacts as artifacts_module
import airflow_provider_smr.deploy.status as status_module
from airflow_provider_smr.deploy import (
    DeployError,
    RuntimeMismatchError,
    StackInfo,
    StackNotFoundError,
    StackSettingsError,
    check_stack_runtime,
    delete_stack,
    deploy_stack,
    describe_stack,
    failure_from_events,
    lambda_package,
    worker_runtime,
)
from lambda_handlers import protocol
from lambda_handlers.options import StackSettings

_names = itertools.count()


@pytest.fixture
def stack_name():
    return f"smr-deploy-{next(_names)}"


def _function(clients, name):
    return clients.lambda_.get_function(FunctionName=name)["Configuration"]


def test_deploy_creates_the_stack_and_functions_with_runtime_env_memory_and_timeout(clients, stack_name):
    info = deploy_stack(clients, stack_name,
        StackSettings(memory_mb=512, timeout_s=60, log_retention_days=7))
    assert info.runtime == worker_runtime()
    assert (info.memory_mb, info.timeout_s) == (512, 60)
    assert info.code_hash == lambda_package().sha256
    assert info.functions == {role: f"{stack_name}-{role}"
                              for role in ("mapper", "reducer", "coordinator", "driver")}
    clients.s3.head_bucket(Bucket=info.work_bucket)
    for role, name in info.functions.items():
        config = _function(clients, name)
        assert config["Runtime"] == worker_runtime()
        assert config["Handler"] == f"lambda_handlers.{role}.handler"
        assert (config["MemorySize"], config["Timeout"]) == (512, 60)
        assert config["Environment"]["Variables"] == {
            protocol.ENV_WORK_BUCKET: info.work_bucket, protocol.ENV_STACK_NAME: stack_name,
            protocol.ENV_MAPPER_FUNCTION: info.functions["mapper"],
            protocol.ENV_REDUCER_FUNCTION: info.functions["reducer"],
            protocol.ENV_COORDINATOR_FUNCTION: info.functions["coordinator"],
            protocol.ENV_DRIVER_FUNCTION: info.functions["driver"],
            protocol.ENV_ROLE_ARN: config["Role"]}
        assert f":role/smr/{clients.region_name}/{stack_name}/" in config["Role"]
        assert config["CodeSha256"] == lambda_package().code_sha256_b64
    groups = clients.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{stack_name}-")["logGroups"]
    assert sorted((g["logGroupName"], g["retentionInDays"]) for g in groups) == sorted(
        (f"/aws/lambda/{name}", 7) for name in info.functions.values())
    encryption = clients.s3.get_bucket_encryption(Bucket=info.work_bucket)
    assert encryption["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_deploy_uploads_the_zip_under_its_hash_in_the_artifacts_bucket(clients, stack_name):
    info = deploy_stack(clients, stack_name)
    account = clients.sts.get_caller_identity()["Account"]
    body = clients.s3.get_object(Bucket=f"smr-artifacts-{account}-us-east-1",
                                 Key=f"smr/lambda/{info.code_hash}.zip")["Body"].read()
    assert body == lambda_package().data


def test_describe_returns_what_deploy_returned_and_round_trips_through_a_dict(clients, stack_name):
    info = deploy_stack(clients, stack_name)
    described = describe_stack(clients, stack_name)
    assert described == info
    assert StackInfo.from_dict(json.loads(json.dumps(described.to_dict()))) == described


def test_redeploy_with_nothing_changed_makes_no_aws_writes(clients, stack_name, call_log):
    first = deploy_stack(clients, stack_name, input_buckets=["in-bucket"])
    assert call_log.writes()  # the first deploy did write (so the hook does see writes)
    call_log.clear()
    again = deploy_stack(clients, stack_name, input_buckets=["in-bucket"])
    assert again == first
    assert call_log.calls  # it did look
    assert call_log.writes() == []


def test_a_changed_setting_updates_the_stack_and_functions(clients, stack_name, call_log):
    first = deploy_stack(clients, stack_name, StackSettings(memory_mb=1024, timeout_s=300))
    # a created stack's functions have no older versions: nothing to collect, nothing listed
    assert "lambda:ListVersionsByFunction" not in call_log.calls
    call_log.clear()
    updated = deploy_stack(clients, stack_name, StackSettings(memory_mb=2048, timeout_s=120))
    assert "cloudformation:UpdateStack" in call_log.writes()
    assert "cloudformation:CreateStack" not in call_log.writes()
    assert "lambda:ListVersionsByFunction" in call_log.calls  # an update's old versions are collected
    assert updated.content_hash != first.content_hash
    assert (updated.memory_mb, updated.timeout_s) == (2048, 120)
    assert updated.work_bucket == first.work_bucket
    for name in updated.functions.values():
        config = _function(clients, name)
        assert (config["MemorySize"], config["Timeout"]) == (2048, 120)


def test_declaring_a_new_output_bucket_updates_the_role_policy(clients, stack_name):
    deploy_stack(clients, stack_name, output_buckets=["first-out"])
    deploy_stack(clients, stack_name, output_buckets=["first-out", "s3://second-out/results/"])
    iam = clients.client("iam")
    role = _function(clients, f"{stack_name}-mapper")["Role"].rsplit("/", 1)[1]
    document = iam.get_role_policy(RoleName=role, PolicyName="smr-functions")["PolicyDocument"]
    text = document if isinstance(document, str) else json.dumps(document)
    assert "second-out/results/*" in text and "first-out" in text


def test_declared_locations_accumulate_so_running_jobs_keep_their_access(clients, stack_name, call_log):
    deploy_stack(clients, stack_name, input_buckets=["in-a"], output_buckets=["s3://out/a/"],
                 tables=["table-a"])
    widened = deploy_stack(clients, stack_name, input_buckets=["in-b"], output_buckets=["s3://out/b/"],
                           tables=["dynamodb://table-b?key=id"])
    assert widened.input_locations == ["s3://in-a/", "s3://in-b/"]
    assert widened.output_locations == ["s3://out/a/", "s3://out/b/"]
    assert widened.tables == ["table-a", "table-b"]
    iam = clients.client("iam")
    role = _function(clients, f"{stack_name}-mapper")["Role"].rsplit("/", 1)[1]
    policy = json.dumps(iam.get_role_policy(RoleName=role, PolicyName="smr-functions")["PolicyDocument"])
    assert ":table/table-a" in policy and ":table/table-b" in policy
    call_log.clear()
    # A job declaring a subset of what is granted changes nothing.
    again = deploy_stack(clients, stack_name, input_buckets=["in-a"], output_buckets=["s3://out/b/"],
                         tables=["table-a"])
    assert again == widened and call_log.writes() == []
    narrowed = deploy_stack(clients, stack_name, input_buckets=["in-b"], replace_locations=True)
    assert (narrowed.input_locations, narrowed.output_locations, narrowed.tables) == (["s3://in-b/"], [], [])


class _HttpStatus:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict = {}


def test_a_deploy_racing_another_update_waits_and_starts_over(clients, stack_name, call_log):
    deploy_stack(clients, stack_name)
    busy = {"Error": {"Code": "ValidationError", "Message": f"Stack:arn:{stack_name} is in "
                      "UPDATE_IN_PROGRESS state and can not be updated."},
            "ResponseMetadata": {"HTTPStatusCode": 400}}
    answers = [(_HttpStatus(400), busy)]  # the first UpdateStack finds another update running
    attempts = []

    def another_update_running(**_kwargs):
        attempts.append("UpdateStack")
        return answers.pop() if answers else None

    clients.cloudformation.meta.events.register("before-call.cloudformation.UpdateStack",
                                                another_update_running)
    info = deploy_stack(clients, stack_name, StackSettings(memory_mb=256))
    assert info.memory_mb == 256
    assert len(attempts) == 2 and not answers


def test_deploy_refuses_to_overwrite_a_stack_that_is_not_an_smr_stack(clients, stack_name):
    other = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    clients.cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(other))
    with pytest.raises(DeployError, match="not an SMR stack"):
        deploy_stack(clients, stack_name)
    assert clients.cloudformation.get_template(StackName=stack_name)["TemplateBody"] == other


def test_invalid_settings_fail_before_any_aws_write(clients, call_log):
    with pytest.raises(StackSettingsError, match="memory_mb"):
        deploy_stack(clients, "smr-invalid", StackSettings(memory_mb=64))
    assert call_log.writes() == []


def test_a_failing_resource_raises_deploy_error_with_the_reason_and_leaves_no_stack(
        clients, stack_name, monkeypatch):
    # The Lambda code bucket does not exist, so creating the functions fails.
    monkeypatch.setattr(artifacts_module, "ensure_bucket", lambda *args: None)
    monkeypatch.setattr(artifacts_module, "upload_code", lambda *args: None)
    with pytest.raises(DeployError) as raised:
        deploy_stack(clients, stack_name, artifacts_bucket="smr-no-such-artifacts-bucket")
    assert "NoSuchBucket" in str(raised.value)
    assert raised.value.stack_name == stack_name
    with pytest.raises(StackNotFoundError):
        describe_stack(clients, stack_name)
    monkeypatch.undo()
    assert deploy_stack(clients, stack_name).status == "CREATE_COMPLETE"


def _event(logical, kind, status, reason=None, minute=0):
    event = {"LogicalResourceId": logical, "ResourceType": kind, "ResourceStatus": status,
             "StackName": "smr", "StackId": "arn:aws:cloudformation:us-east-1:1:stack/smr/x",
             "EventId": f"{logical}-{status}",
             "Timestamp": datetime.datetime(2026, 1, 1, 0, minute, tzinfo=datetime.timezone.utc)}
    if reason:
        event["ResourceStatusReason"] = reason
    return event


STACK = "AWS::CloudFormation::Stack"
# Newest first, as DescribeStackEvents returns them: an earlier successful create, then an update
# where the mapper failed and the reducer's update was cancelled.
EVENTS = [
    _event("smr", STACK, "UPDATE_ROLLBACK_COMPLETE", minute=9),
    _event("ReducerFunction", "AWS::Lambda::Function", "UPDATE_FAILED", "Resource update cancelled", 8),
    _event("MapperFunction", "AWS::Lambda::Function", "UPDATE_FAILED",
           "Layer version arn:aws:lambda:us-east-1:1:layer:x:1 does not exist.", 7),
    _event("smr", STACK, "UPDATE_IN_PROGRESS", "User Initiated", 6),
    _event("smr", STACK, "CREATE_COMPLETE", minute=5),
    _event("WorkBucket", "AWS::S3::Bucket", "CREATE_FAILED", "an older failure", 4),
    _event("smr", STACK, "CREATE_IN_PROGRESS", "User Initiated", 3),
]


def test_failure_from_events_names_the_first_failing_resource_of_the_latest_operation():
    assert failure_from_events(EVENTS) == (
        "MapperFunction", "AWS::Lambda::Function",
        "Layer version arn:aws:lambda:us-east-1:1:layer:x:1 does not exist.")
    assert failure_from_events(EVENTS[4:]) == ("WorkBucket", "AWS::S3::Bucket", "an older failure")
    assert failure_from_events([_event("smr", STACK, "CREATE_COMPLETE")]) is None


def test_a_rolled_back_update_raises_deploy_error_naming_resource_and_reason(aws_clients):
    # Real CloudFormation reports failures asynchronously through the stack's status and events
    # (moto fails the API call instead), so this path runs against a stubbed client.
    from botocore.stub import Stubber

    cf = aws_clients("http://127.0.0.1:9").cloudformation
    stack = {"StackName": "smr", "StackId": EVENTS[0]["StackId"], "StackStatus": "UPDATE_ROLLBACK_COMPLETE",
             "CreationTime": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}
    with Stubber(cf) as stub:
        stub.add_response("describe_stacks", {"Stacks": [{**stack, "StackStatus": "UPDATE_IN_PROGRESS"}]})
        stub.add_response("describe_stacks", {"Stacks": [stack]})
        stub.add_response("describe_stack_events", {"StackEvents": EVENTS})
        with pytest.raises(DeployError) as raised:
            status_module.wait_for_stack(cf, "smr", "update", poll_s=0.01, sleep=lambda _s: None)
    error = raised.value
    assert (error.resource, error.status) == ("MapperFunction", "UPDATE_ROLLBACK_COMPLETE")
    assert "MapperFunction" in str(error) and "does not exist" in str(error)


def test_describe_missing_stack_raises_an_actionable_error(clients):
    with pytest.raises(StackNotFoundError, match="deploy_stack") as raised:
        describe_stack(clients, "smr-never-deployed")
    assert "smr-never-deployed" in str(raised.value) and "us-east-1" in str(raised.value)


def test_delete_empties_a_versioned_work_bucket_and_removes_the_stack(clients, stack_name):
    info = deploy_stack(clients, stack_name)
    s3 = clients.s3
    s3.put_bucket_versioning(Bucket=info.work_bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket=info.work_bucket, Key=protocol.plan_key("job-1"), Body=body)
    s3.put_object(Bucket=info.work_bucket, Key=protocol.done_key("job-1"), Body=b"{}")
    s3.delete_object(Bucket=info.work_bucket, Key=protocol.done_key("job-1"))  # leaves a delete marker

    delete_stack(clients, stack_name)

    with pytest.raises(StackNotFoundError):
        describe_stack(clients, stack_name)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert info.work_bucket not in names
    functions = [f["FunctionName"] for f in clients.lambda_.list_functions()["Functions"]]
    assert not [name for name in functions if name.startswith(f"{stack_name}-")]


def test_delete_of_a_missing_stack_raises_unless_missing_ok(clients):
    with pytest.raises(StackNotFoundError):
        delete_stack(clients, "smr-not-there")
    delete_stack(clients, "smr-not-there", missing_ok=True)


def test_check_stack_runtime_refuses_a_stack_on_another_python():
    info = StackInfo(stack_name="smr", region="us-east-1", work_bucket="b", functions={},
                     runtime="python3.9", memory_mb=1024, timeout_s=300, code_hash="h")
    with pytest.raises(RuntimeMismatchError, match="python3.9") as raised:
        check_stack_runtime(info)
    assert worker_runtime() in str(raised.value)
    check_stack_runtime(StackInfo(**{**info.to_dict(), "runtime": worker_runtime()}))
