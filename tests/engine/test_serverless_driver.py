"""The serverless driver: the driver function fans a job out (through an invoke tree when large)."""

from __future__ import annotations

import collections
import json
import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import driver, protocol
from lambda_handlers.options import JobOptions
from lambda_handlers.plan import OutputPlan, Plan, StepPlan

DATA = "smr-sdriver-data"
POLL = 0.25
TIMEOUT = 300

pytestmark = pytest.mark.timeout(600)


def test_2000_tasks_go_through_a_two_level_invoke_tree_each_exactly_once(monkeypatch):
    bucket, job_id = "smr-work", "big-job"
    top = driver.fan_out_events(bucket, job_id, 2000)
    assert len(top) == 10 and {e["kind"] for e in top} == {"invoke"}

    monkeypatch.setenv(protocol.ENV_WORK_BUCKET, bucket)
    monkeypatch.setenv(protocol.ENV_MAPPER_FUNCTION, "smr-mapper")
    monkeypatch.setenv(protocol.ENV_DRIVER_FUNCTION, "smr-driver")
    from lambda_handlers import runtime

    # The job is pinned to mapper version 5: every node of the tree invokes that version.
    pinned = Plan(job_id=job_id, steps=(StepPlan(0, 2000, 0),),
                  output=OutputPlan("s3://out/x/", "out", "x/", "jsonl"), versions={"mapper": "5"})
    monkeypatch.setattr(runtime, "load_plan", lambda b, j: pinned)
    invoked: list[tuple[str, dict]] = []
    runtime.set_invoker(lambda name, event: invoked.append((name, json.loads(json.dumps(event)))))
    try:
        for event in top:  # each invoker node, as Lambda would run it
            assert driver.handler(event) == {"invoked": 200}
    finally:
        runtime.set_invoker(None)
    assert {name for name, _ in invoked} == {"smr-mapper:5"}
    tasks = collections.Counter(e["task"] for _, e in invoked)
    assert sorted(tasks) == list(range(2000)) and set(tasks.values()) == {1}
    assert {(e["step"], e["attempt"]) for _, e in invoked} == {(0, 0)}


def test_small_jobs_are_invoked_directly():
    events = driver.fan_out_events("smr-work", "small", 1999)
    assert len(events) == 1999 and {e["kind"] for e in events} == {"map"}


@pytest.fixture(scope="module")
def engine(deploy_engine):
    """(s3 client, JobRunner) on a stack deployed once for this module."""
    engine = deploy_engine("smr-sdriver", input_buckets=[DATA])
    return engine.s3, engine.runner


def part_bytes(s3, result) -> list[bytes]:
    return [s3.get_object(Bucket=u[5:].split("/", 1)[0], Key=u[5:].split("/", 1)[1])["Body"].read()
            for u in result["parts"]]


def test_serverless_driver_output_is_byte_identical_to_the_worker_driver(engine):
    s3, runner = engine
    words = ["red", "green", "blue", "cyan", "magenta", "yellow", "black"]
    lines = [" ".join(words[(i * k) % 7] for k in range(1, 6)) for i in range(3000)]
    key = f"in/{uuid.uuid4().hex[:8]}/text.txt"
    s3.put_object(Bucket=DATA, Key=key, Body="\n".join(lines).encode())
    job = MapReduceJob(mapper=lambda line: [(w, 1) for w in line.split()],
                       reducer=lambda k, vs: [(k, sum(vs))], num_reducers=3, name="sdriver-wc")
    results = {}
    for mode in ("worker", "lambda"):
        results[mode] = runner.run(job, input=f"s3://{DATA}/{key}",
                                   output=f"s3://{DATA}/out/{mode}-{uuid.uuid4().hex[:8]}/",
                                   poll_interval=POLL, timeout=TIMEOUT,
                                   options=JobOptions(split_size=4096, driver=mode))
    plans = {mode: runner.plan(r["job_id"]) for mode, r in results.items()}
    assert plans["lambda"].driver["where"] == "lambda"  # listed and planned inside Lambda
    assert plans["lambda"].splits == plans["worker"].splits and len(plans["lambda"].splits) > 10
    assert part_bytes(s3, results["lambda"]) == part_bytes(s3, results["worker"])
    counts = dict(json.loads(line).values() for b in part_bytes(s3, results["lambda"])
                  for line in b.decode().splitlines())
    assert counts == dict(collections.Counter(w for ln in lines for w in ln.split()))
    claims = {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(
        Bucket=runner.bucket, Prefix=f"jobs/{results['lambda']['job_id']}/")["Contents"]}
    assert any("drive" in c for c in claims)


def test_unknown_driver_is_refused(engine):
    _, runner = engine
    with pytest.raises(ValueError, match="driver must be"):
        runner.submit(MapReduceJob(mapper=lambda r: [(r, 1)]), input=f"s3://{DATA}/x",
                      output=f"s3://{DATA}/y/", options=JobOptions(driver="cloud"))


def test_a_planning_failure_in_the_driver_fails_the_job_with_the_reason(engine):
    from airflow_provider_smr.engine.runner import JobFailedError

    _, runner = engine
    job = MapReduceJob(mapper=lambda r: [(r, 1)], reducer=lambda k, vs: [(k, len(vs))], name="nope")
    with pytest.raises(JobFailedError, match="matched no objects"):
        runner.run(job, input=f"s3://{DATA}/missing-{uuid.uuid4().hex[:6]}/",
                   output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/", poll_interval=POLL, timeout=TIMEOUT,
                   options=JobOptions(driver="lambda"))


def driver_invocations(logs, function_name: str) -> int:
    """How many times the function ran: one ``REPORT`` line per invocation in its log group."""
    kw, n = {"logGroupName": f"/aws/lambda/{function_name}"}, 0
    while True:
        page = logs.filter_log_events(**kw)
        n += sum(e["message"].startswith("REPORT RequestId:") for e in page["events"])
        if not page.get("nextToken"):
            return n
        kw["nextToken"] = page["nextToken"]


def test_a_job_over_the_tree_threshold_fans_out_through_invokers_on_the_local_stack(engine):
    """The threshold is a plan setting (default 2,000; the 2,000-task tree is tested above without
    a stack): 250 map tasks over a threshold of 100 go through two invokers of 200 and 50."""
    s3, runner = engine
    logs, driver_fn = runner.clients.logs, runner.stack.functions["driver"]
    lines = [f"k{i % 10}" for i in range(250)]
    key = f"in/{uuid.uuid4().hex[:8]}/tiny.txt"
    body = "".join(f"{line}\n" for line in lines).encode()  # 3 bytes per line: one line per split
    s3.put_object(Bucket=DATA, Key=key, Body=body)
    job = MapReduceJob(mapper=lambda line: [(line, 1)], combiner=lambda k, vs: [(k, sum(vs))],
                       reducer=lambda k, vs: [(k, sum(vs))], num_reducers=1, name="tree")
    runs_before = driver_invocations(logs, driver_fn)
    result = runner.run(job, input=f"s3://{DATA}/{key}",
                        output=f"s3://{DATA}/out/tree-{uuid.uuid4().hex[:8]}/", poll_interval=POLL,
                        timeout=TIMEOUT,
                        options=JobOptions(split_size=len(body) // 250, driver="lambda", invoke_tree_threshold=100))
    plan = runner.plan(result["job_id"])
    assert len(plan.splits) == 250 and plan.driver["where"] == "lambda"
    assert plan.options.invoke_tree_threshold == 100
    assert driver_invocations(logs, driver_fn) - runs_before == 1 + 2  # drive, then two invokers
    counts = dict(json.loads(line).values() for b in part_bytes(s3, result)
                  for line in b.decode().splitlines())
    assert counts == {f"k{i}": 25 for i in range(10)}
