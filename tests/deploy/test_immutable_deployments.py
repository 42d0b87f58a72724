"""Immutable deployments: a job runs on the function versions its own deploy published.

Jobs on one stack report what their tasks see (the function's memory, the layer modules they can
import): each job keeps its own settings while others are deployed and run, a deploy during a
running job changes nothing for it, and garbage collection keeps the versions unfinished jobs pin.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile

import pytest

from airflow_provider_smr.deploy import deploy_stack, function_name
from airflow_provider_smr.deploy.versions import collect_versions, versions_to_delete
from airflow_provider_smr.engine.runner import JobRunner
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions, StackSettings

DATA = "smr-immutable-data"
STACK = "smr-immutable"

pytestmark = pytest.mark.timeout(900)


def what_it_sees(phase: str) -> str:
    """``phase:memory:modules`` as the task running ``phase`` sees them."""
    import importlib.util
    import os

    from lambda_handlers import context

    modules = [m for m in context.job_params()["modules"] if importlib.util.find_spec(m)]
    return f"{phase}:{os.environ['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']}:{','.join(modules)}"


def wait_for_gate():
    """Hold a map task until the test opens the job's gate (an object in the data bucket)."""
    import time

    import boto3

    from lambda_handlers import context

    gate = context.job_params().get("gate")
    if not gate:
        return
    bucket, key = gate
    s3 = boto3.client("s3")  # the function's own role: the gate is not in the job's own prefixes
    for _ in range(400):
        if s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"):
            return
        time.sleep(0.25)
    raise RuntimeError("the gate never opened")


def seen_by_mappers(line):
    wait_for_gate()
    yield "seen", what_it_sees("map")


def seen_by_reducers(key, values):
    yield key, sorted(set(values)) + [what_it_sees("reduce")]


SEEN = MapReduceJob(mapper=seen_by_mappers, reducer=seen_by_reducers, name="seen")


def _layer(clients, module: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"python/{module}/__init__.py", "")
    return clients.lambda_.publish_layer_version(
        LayerName=module.replace("_", "-"), Content={"ZipFile": buffer.getvalue()},
        CompatibleRuntimes=["python3.11"])["LayerVersionArn"]


def _deploy(clients, **settings):
    return deploy_stack(clients, STACK, StackSettings(timeout_s=90, **settings),
                        input_buckets=[DATA], output_buckets=[DATA])


def _seen(clients, result) -> list[str]:
    lines = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        lines += clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    [record] = [json.loads(line) for line in lines]
    return record["value"]


def _wait_until_a_map_task_started(clients, bucket: str, job_id: str) -> None:
    prefix = protocol.phase_status_prefix(job_id, 0, protocol.MAP)
    for _ in range(600):
        listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if any(o["Key"].endswith(".start") for o in listed):
            return
        time.sleep(0.25)
    raise AssertionError(f"no map task of {job_id} started")


def test_jobs_keep_their_own_deployment_while_others_deploy_and_run(aws_endpoint, aws_clients):
    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    clients.s3.put_object(Bucket=DATA, Key="in/lines.txt", Body=b"one\ntwo\nthree\n")
    tag = uuid.uuid4().hex[:6]
    module_a, module_b = f"smr_layer_a_{tag}", f"smr_layer_b_{tag}"
    layer_a, layer_b = _layer(clients, module_a), _layer(clients, module_b)
    params = {"modules": [module_a, module_b]}

    # Two deploys, then two submits: each job pins what its own deploy published.
    stack_a = _deploy(clients, memory_mb=512, mapper_memory_mb=384, reducer_memory_mb=640,
                      layers=[layer_a])
    stack_b = _deploy(clients, memory_mb=768, layers=[layer_b])
    assert stack_a.versions and stack_b.versions
    assert all(stack_a.versions[role] != stack_b.versions[role] for role in ("mapper", "reducer"))
    gate = f"gates/{tag}"
    runner_a = JobRunner(clients, stack_a)
    job_a = runner_a.submit(SEEN, input=f"s3://{DATA}/in/", output=f"s3://{DATA}/out/{tag}-a/",
                            job_params={**params, "gate": [DATA, gate]})
    _wait_until_a_map_task_started(clients, stack_a.work_bucket, job_a)
    pin = clients.s3.get_object(Bucket=stack_a.work_bucket, Key=protocol.pin_key(job_a))["Body"].read()
    assert json.loads(pin)["versions"] == stack_a.versions  # kept from collection while A runs

    # Job B (serverless driver) runs to its end on B's deployment while A's map tasks wait.
    runner_b = JobRunner(clients, stack_b)
    result_b = runner_b.run(SEEN, input=f"s3://{DATA}/in/", output=f"s3://{DATA}/out/{tag}-b/",
                            options=JobOptions(driver="lambda"), job_params=params,
                            poll_interval=0.25, timeout=600)
    assert _seen(clients, result_b) == [f"map:768:{module_b}", f"reduce:768:{module_b}"]

    # A deploy while A runs: A's reduce tasks, invoked after it, still run on A's versions.
    _deploy(clients, memory_mb=896)
    latest = clients.lambda_.get_function_configuration(FunctionName=function_name(STACK, "reducer"))
    assert latest["MemorySize"] == 896 and not latest.get("Layers")
    clients.s3.put_object(Bucket=DATA, Key=gate, Body=b"open")
    result_a = runner_a.wait(job_a, poll_interval=0.25, timeout=600)
    assert _seen(clients, result_a) == [f"map:384:{module_a}", f"reduce:640:{module_a}"]

    plan_a = runner_a.plan(job_a)
    assert dict(plan_a.versions) == stack_a.versions
    assert (plan_a.limits.memory_mb, plan_a.limits.reducer_memory_mb) == (384, 640)
    assert runner_b.plan(result_b["job_id"]).versions == stack_b.versions


def test_versions_no_unfinished_job_pins_are_collected(aws_endpoint, aws_clients):
    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    pinned = _deploy(clients, memory_mb=320)
    ended = _deploy(clients, memory_mb=352)
    current = _deploy(clients, memory_mb=416)
    bucket = current.work_bucket

    def pin(job_id: str, versions: dict[str, str]) -> None:
        clients.s3.put_object(Bucket=bucket, Key=protocol.pin_key(job_id),
                              Body=json.dumps({"job_id": job_id, "versions": versions}).encode())

    running_job, ended_job = f"running-{uuid.uuid4().hex[:6]}", f"ended-{uuid.uuid4().hex[:6]}"
    pin(running_job, pinned.versions)
    pin(ended_job, ended.versions)
    clients.s3.put_object(Bucket=bucket, Key=protocol.job_state_key(ended_job, protocol.SUCCEEDED), Body=b"")

    deleted = collect_versions(clients, STACK, bucket, keep=current.versions, keep_newest=1)

    for role, version in ended.versions.items():
        assert version in deleted[role]
    for role in current.versions:
        name = function_name(STACK, role)
        left = {v["Version"] for v in clients.lambda_.list_versions_by_function(FunctionName=name)["Versions"]}
        assert {pinned.versions[role], current.versions[role]} <= left
        assert ended.versions[role] not in left
    mapper = clients.lambda_.get_function_configuration(
        FunctionName=function_name(STACK, "mapper"), Qualifier=pinned.versions["mapper"])
    assert mapper["MemorySize"] == 320  # the pinned version is intact
    keys = {o["Key"] for o in clients.s3.list_objects_v2(Bucket=bucket, Prefix=protocol.PINS_PREFIX)["Contents"]}
    assert protocol.pin_key(running_job) in keys and protocol.pin_key(ended_job) not in keys


def test_only_unkept_versions_older_than_the_newest_are_deleted():
    assert versions_to_delete(["1", "2", "3", "4", "5", "6"], keep={"2"}, keep_newest=3) == ["1", "3"]
    assert versions_to_delete(["10", "9", "11"], keep=(), keep_newest=1) == ["9", "10"]
    assert versions_to_delete(["1", "2"], keep=(), keep_newest=0) == ["1", "2"]


def test_a_deploy_overtaken_by_another_pins_what_it_published(aws_endpoint, aws_clients, monkeypatch):
    """Another deploy changes the stack between ours and our read of it: ours still returns the
    versions it published (found by their configuration's hash), not the newer deploy's."""
    from airflow_provider_smr.deploy import stack as stack_mod

    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    real_update = stack_mod._update
    overtaken = []

    def update_then_overtaken(cf, stack_name, body, tags, wait):
        real_update(cf, stack_name, body, tags, wait)
        monkeypatch.setattr(stack_mod, "_update", real_update)
        overtaken.append(_deploy(clients, memory_mb=576))  # lands before we read the stack
        return stack_mod.find_stack(cf, stack_name)

    _deploy(clients, memory_mb=448)
    monkeypatch.setattr(stack_mod, "_update", update_then_overtaken)
    ours = _deploy(clients, memory_mb=544)
    [theirs] = overtaken
    assert ours.memory_mb == 544 and theirs.memory_mb == 576
    for role in ("mapper", "reducer", "coordinator", "driver"):
        assert ours.versions[role] != theirs.versions[role]
        config = clients.lambda_.get_function_configuration(FunctionName=function_name(STACK, role),
                                                            Qualifier=ours.versions[role])
        assert config["MemorySize"] == 544
