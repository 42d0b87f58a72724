"""The local stack enforces the functions' role (and their jobs' session policies) as AWS would.

A stack deployed with exact prefixes runs a map-only job whose mapper tries S3 calls with the
function's own credentials (what plain ``boto3`` finds in a Lambda environment) and with the task's
per-job session (``lambda_handlers.runtime.s3()``), recording each answer: what the declaration
covers is allowed, the rest is AccessDenied, as on AWS.
"""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers.options import JobOptions

DATA = "smr-iam-data"
OTHER = "smr-iam-other"
pytestmark = pytest.mark.timeout(600)


def probe(line):
    """``<client> <op> <bucket> <key>`` -> ``(line, "ok" | error code)``."""
    import boto3

    from lambda_handlers import runtime

    who, op, bucket, key = line.split(" ", 3)
    s3 = boto3.client("s3") if who == "role" else runtime.s3()
    try:
        if op == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        elif op == "get":
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        elif op == "delete":
            s3.delete_object(Bucket=bucket, Key=key)
        elif op == "list":
            s3.list_objects_v2(Bucket=bucket, Prefix=key.strip("-"))
        yield line, "ok"
    except Exception as exc:  # noqa: BLE001 - the error code is the answer
        yield line, getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)


@pytest.fixture(scope="module")
def stack(deploy_engine):
    engine = deploy_engine("smr-iam", input_buckets=[f"s3://{DATA}/in/", f"s3://{DATA}/shared-in/"],
                           output_buckets=[f"s3://{DATA}/out/"], create_buckets=[OTHER])
    engine.s3.put_object(Bucket=DATA, Key="in/data.txt", Body=b"x\n")
    engine.s3.put_object(Bucket=DATA, Key="shared-in/other-job.txt", Body=b"secret\n")
    engine.s3.put_object(Bucket=DATA, Key="outage/x", Body=b"x")
    return engine


def run_probes(engine, probes: list[str], run: str | None = None) -> dict[str, str]:
    run = run or uuid.uuid4().hex[:8]
    key = f"in/probes-{run}.txt"
    engine.s3.put_object(Bucket=DATA, Key=key, Body="\n".join(probes).encode() + b"\n")
    result = engine.runner.run(MapReduceJob(mapper=probe), input=f"s3://{DATA}/{key}",
                               output=f"s3://{DATA}/out/{run}", poll_interval=0.25, timeout=300,
                               options=JobOptions(max_attempts=1))
    import json

    answers = {}
    for uri in result["parts"]:
        bucket, part = uri[5:].split("/", 1)
        for line in engine.s3.get_object(Bucket=bucket, Key=part)["Body"].read().decode().splitlines():
            record = json.loads(line)
            answers[record["key"]] = record["value"]
    return answers


def test_the_functions_role_reaches_exactly_the_declared_prefixes(stack):
    answers = run_probes(stack, [
        f"role get {DATA} in/data.txt", f"role list {DATA} in/", f"role put {DATA} out/extra/x",
        f"role put {DATA} outage/x", f"role put {DATA} in/overwritten", f"role delete {DATA} in/data.txt",
        f"role get {DATA} outage/x", f"role list {DATA} -", f"role list {DATA} out",
        f"role put {OTHER} x", f"role get {OTHER} x",
    ])
    assert answers == {
        f"role get {DATA} in/data.txt": "ok", f"role list {DATA} in/": "ok", f"role put {DATA} out/extra/x": "ok",
        f"role put {DATA} outage/x": "AccessDenied",  # out/ is declared, outage/ is not
        f"role put {DATA} in/overwritten": "AccessDenied",  # an input is read-only
        f"role delete {DATA} in/data.txt": "AccessDenied",
        f"role get {DATA} outage/x": "AccessDenied",
        f"role list {DATA} -": "AccessDenied",  # the bucket's root is not declared
        f"role list {DATA} out": "AccessDenied",  # the listing would name outage/ too
        f"role put {OTHER} x": "AccessDenied", f"role get {OTHER} x": "AccessDenied",
    }
    assert stack.s3.get_object(Bucket=DATA, Key="in/data.txt")["Body"].read() == b"x\n"


def test_the_callers_own_keys_are_left_alone(stack):
    stack.s3.put_object(Bucket=OTHER, Key="mine", Body=b"1")  # the test's keys: not a function's
    assert stack.s3.get_object(Bucket=OTHER, Key="mine")["Body"].read() == b"1"


def test_a_task_works_with_its_own_jobs_session_only(stack):
    run, work = uuid.uuid4().hex[:8], stack.stack.work_bucket
    answers = run_probes(stack, [
        f"task get {DATA} in/probes-{run}.txt", f"task put {DATA} out/{run}/extra", f"task list {DATA} out/{run}/",
        f"task get {DATA} in/data.txt",  # in/ is granted to the stack, this job reads one file of it
        # What the stack's role grants another job on the same stack: this job's session may not.
        f"task get {DATA} shared-in/other-job.txt", f"role get {DATA} shared-in/other-job.txt",
        f"task put {DATA} out/another-run/part-00000.jsonl", f"role put {DATA} out/another-run/x",
        f"task list {DATA} out/another-run/", f"task put {work} jobs/another-job/cancel",
        f"task list {work} jobs/", f"task put {DATA} outage/x",
    ], run=run)
    assert answers == {
        f"task get {DATA} in/probes-{run}.txt": "ok", f"task put {DATA} out/{run}/extra": "ok",
        f"task list {DATA} out/{run}/": "ok", f"task get {DATA} in/data.txt": "AccessDenied",
        f"task get {DATA} shared-in/other-job.txt": "AccessDenied", f"role get {DATA} shared-in/other-job.txt": "ok",
        f"task put {DATA} out/another-run/part-00000.jsonl": "AccessDenied", f"role put {DATA} out/another-run/x": "ok",
        f"task list {DATA} out/another-run/": "AccessDenied",
        f"task put {work} jobs/another-job/cancel": "AccessDenied", f"task list {work} jobs/": "AccessDenied",
        f"task put {DATA} outage/x": "AccessDenied",
    }


def test_a_job_whose_session_policy_cannot_fit_is_refused_before_anything_runs(stack):
    from lambda_handlers.grants import GrantError

    inputs = [f"s3://input-bucket-number-{i:03d}/in/" for i in range(40)]
    with pytest.raises(GrantError, match="declare fewer, wider input prefixes"):
        stack.runner.submit(MapReduceJob(mapper=probe), input=inputs, output=f"s3://{DATA}/out/too-wide/")
