"""SMRHook: clients from the Airflow connection, and job status/cancel through the engine."""

from __future__ import annotations

import json

import pytest

from airflow_provider_smr.hooks.smr import JobNotFoundError, SMRHook
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from lambda_handlers.planning import S3Object, build_plan

WORK = "smr-hook-work"


def mapper(line):
    yield line, 1


@pytest.fixture
def hook(aws_endpoint, aws_clients, airflow_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SMR_HOOK_TEST", airflow_conn(aws_endpoint, region_name="eu-west-1"))
    hook = SMRHook(aws_conn_id="smr_hook_test")
    # A deployed stack's description, so nothing is deployed (tests/engine/test_e2e.py deploys).
    hook._stacks["t"] = {"stack_name": "t", "region": "eu-west-1", "work_bucket": WORK,
                         "functions": {"mapper": "t-mapper", "reducer": "t-reducer",
                                       "coordinator": "t-coordinator", "driver": "t-driver"},
                         "runtime": "python3.11", "memory_mb": 512, "timeout_s": 60, "code_hash": "x"}
    s3 = aws_clients(aws_endpoint, region_name="eu-west-1").s3
    try:
        s3.create_bucket(Bucket=WORK, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    return hook, s3


def plan_job(s3, job_id):
    plan = build_plan(job_id=job_id, work_bucket=WORK, job=MapReduceJob(mapper=mapper, reducer=None),
                      inputs={"default": ["s3://in-bucket/a"]},
                      objects=[S3Object("default", "in-bucket", "a", 10, "e")],
                      output_uri="s3://out-bucket/o/", options=JobOptions())
    s3.put_object(Bucket=WORK, Key=protocol.plan_key(job_id), Body=json.dumps(plan.to_json()).encode())


def test_every_client_uses_the_connections_endpoint_and_region(hook, aws_endpoint):
    h, _ = hook
    for client in (h.clients.s3, h.clients.lambda_, h.clients.cloudformation):
        assert client.meta.endpoint_url == aws_endpoint
        assert client.meta.region_name == "eu-west-1"
    assert h.clients.s3.meta.config.max_pool_connections >= 32


def test_status_of_an_unknown_job_is_job_not_found(hook):
    h, _ = hook
    with pytest.raises(JobNotFoundError, match="no job 'nope'"):
        h.get_job_status("nope", stack_name="t")
    assert not h.job_exists("nope", stack_name="t")


def test_status_reports_progress_from_the_markers(hook):
    h, s3 = hook
    plan_job(s3, "hook-status-1")
    s3.put_object(Bucket=WORK, Key=protocol.start_marker_key("hook-status-1", 0, "map", 0, 0), Body=b"")
    status = h.get_job_status("hook-status-1", stack_name="t")
    assert status["state"] == "RUNNING" and status["phase"] == "map"
    assert status["progress"]["map"] == {"done": 0, "running": 1, "failed": 0, "total": 1}
    assert h.job_exists("hook-status-1", stack_name="t")


def test_cancel_marks_the_job_cancelled_and_blocks_the_commit(hook):
    h, s3 = hook
    plan_job(s3, "hook-cancel-1")
    h.cancel_job("hook-cancel-1", stack_name="t")
    assert h.get_job_status("hook-cancel-1", stack_name="t")["state"] == "CANCELLED"
    claim = s3.get_object(Bucket=WORK, Key=protocol.claim_key("hook-cancel-1", "commit"))["Body"].read()
    assert claim == b"cancelled"
    assert s3.head_object(Bucket=WORK, Key=protocol.cancel_key("hook-cancel-1"))


def test_a_job_outside_the_stacks_grants_is_refused_before_anything_is_written(hook):
    """The role grants exact prefixes: a job on a stack deployed for s3://in-bucket/in and
    s3://out-bucket/out is refused when it writes s3://out-bucket/outage/, naming what is missing,
    before a plan is written (it would otherwise fail with AccessDenied at its first write)."""
    h, s3 = hook
    h._stacks["g"] = {**h._stacks["t"], "stack_name": "g", "input_locations": ["s3://in-bucket/in"],
                      "output_locations": ["s3://out-bucket/out"], "tables": ["soak-*"]}
    from airflow_provider_smr.deploy.errors import GrantsMissingError

    with pytest.raises(GrantsMissingError, match=r"does not grant this job's write s3://out-bucket/outage/: "):
        h.submit_job(MapReduceJob(mapper=mapper, reducer=None), input="s3://in-bucket/in/a.txt",
                     output="s3://out-bucket/outage/", stack_name="g", job_id="hook-grants-1")
    with pytest.raises(GrantsMissingError, match=r"read s3://in-bucket/other/, table orders"):
        h.submit_job(MapReduceJob(mapper=mapper, reducer=None),
                     input={"a": "s3://in-bucket/other/", "b": "dynamodb://orders"},
                     output="s3://out-bucket/out/day=1/", stack_name="g", job_id="hook-grants-2")
    assert "Contents" not in s3.list_objects_v2(Bucket=WORK, Prefix="jobs/hook-grants-")


def test_missing_grants_follow_the_policys_prefix_rules():
    from airflow_provider_smr.deploy.stack import StackInfo, missing_grants

    stack = StackInfo(stack_name="s", region="us-east-1", work_bucket="w", functions={}, runtime="python3.11",
                      memory_mb=512, timeout_s=60, code_hash="x", input_locations=["s3://data-lake", "s3://bkt/in"],
                      output_locations=["s3://bkt/out"], tables=["soak-*", "orders"])
    assert missing_grants(stack, "s3://data-lake/any/where/*.gz", "s3://bkt/out/day=1/") == []
    assert missing_grants(stack, "s3://bkt/in/x.txt", "s3://bkt/outage/") == ["write s3://bkt/outage/"]
    assert missing_grants(stack, "s3://bkt/inbox/", "dynamodb://soak-7") == ["read s3://bkt/inbox/"]
    assert missing_grants(stack, "dynamodb://orders", "dynamodb://users") == ["table users"]
