"""The driver with the real handlers in process: Lambda's async invoke is a thread pool here.

Fast checks of plan -> fan-out -> watch -> result against the local stack's S3. The same flows run
with the local stack's Lambda emulation in ``test_e2e.py``.
"""

from __future__ import annotations

import collections
import gc
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_smr.engine.runner import JobFailedError, JobRunner, OutputExistsError
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import coordinator, mapper, protocol, reducer, runtime
from lambda_handlers.options import JobOptions
from lambda_handlers.planning import InputNotFoundError

WORK, DATA = "smr-engine-work", "smr-engine-data"
FUNCTIONS = {"t-mapper": mapper.handler, "t-reducer": reducer.handler,
             "t-coordinator": coordinator.handler}
STACK_ENV = {protocol.ENV_WORK_BUCKET: WORK, protocol.ENV_STACK_NAME: "t",
             protocol.ENV_MAPPER_FUNCTION: "t-mapper", protocol.ENV_REDUCER_FUNCTION: "t-reducer",
             protocol.ENV_COORDINATOR_FUNCTION: "t-coordinator", protocol.ENV_DRIVER_FUNCTION: "t-driver"}


class InProcessLambda:
    """``invoke(InvocationType="Event")`` runs the handler on a pool thread, as Lambda would."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="fake-lambda")
        self.invokes = collections.Counter()
        self.lock = threading.Lock()

    def run(self, name, event):
        with self.lock:
            self.invokes[name] += 1
        self.pool.submit(FUNCTIONS[name], event)

    def invoke(self, FunctionName, InvocationType, Payload):
        assert InvocationType == "Event"
        self.run(FunctionName, json.loads(Payload))
        return {"StatusCode": 202}


class Stack:
    stack_name, region, work_bucket, runtime = "t", "us-east-1", WORK, "python3.11"
    functions = {"mapper": "t-mapper", "reducer": "t-reducer", "coordinator": "t-coordinator",
                 "driver": "t-driver"}
    memory_mb, timeout_s = 512, 60
    mapper_memory_mb = reducer_memory_mb = 512
    versions: dict[str, str] = {}  # a stack without published versions: jobs run on $LATEST
    max_running_tasks = 0  # no stack-wide budget
    architecture = "x86_64"


class Clients:
    """The two clients these jobs need; any other service is a test failure."""

    region_name = "us-east-1"

    def __init__(self, s3, lambda_):
        self.s3, self.lambda_ = s3, lambda_

    def client(self, service):
        raise AssertionError(f"unexpected {service} client")

    dynamodb = logs = property(lambda self: None)


@pytest.fixture(scope="module")
def endpoint(aws_endpoint, aws_env, aws_clients):
    """The handlers' environment (this module only) on the local stack's S3, buckets created."""
    with pytest.MonkeyPatch.context() as patch:
        for k, v in {**aws_env, **STACK_ENV}.items():
            patch.setenv(k, v)
        runtime.reset()
        s3 = aws_clients(aws_endpoint).s3
        for b in (WORK, DATA):
            s3.create_bucket(Bucket=b)
        yield aws_endpoint
        runtime.reset()


@pytest.fixture
def env(endpoint, aws_clients):
    fake = InProcessLambda()
    runtime.set_invoker(fake.run)
    s3 = aws_clients(endpoint).s3
    yield s3, fake, JobRunner(Clients(s3, fake), Stack())
    runtime.set_invoker(None)
    fake.pool.shutdown(wait=True)


def tokenize(line):
    for word in line.split():
        yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


def read_records(s3, result):
    records = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
            rec = json.loads(line)
            records.append((rec["key"], rec["value"]))
    return records


TEXT = "\n".join(f"the quick brown fox {i % 7} jumps over the lazy dog {i % 3}" for i in range(300))


def test_word_count_runs_to_a_result_dict(env):
    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="wc/in/a.txt", Body=TEXT.encode())
    s3.put_object(Bucket=DATA, Key="wc/in/b.txt", Body=TEXT[:1000].encode())
    job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total)
    result = runner.run(job, input=f"s3://{DATA}/wc/in/", output=f"s3://{DATA}/wc/out", poll_interval=0.2,
                        timeout=120, options=JobOptions(split_size=2000, num_reducers=3))
    expected = collections.Counter(w.lower() for t in (TEXT, TEXT[:1000]) for w in t.split())
    assert dict(read_records(s3, result)) == dict(expected)
    assert result["status"] == "SUCCEEDED" and result["output"] == f"s3://{DATA}/wc/out/"
    assert result["manifest"] == f"s3://{DATA}/wc/out/_SUCCESS" and len(result["parts"]) == 3
    counters = result["counters"]
    assert counters["records_read"] == 300 + TEXT[:1000].count("\n") + 1
    # a.txt's tail is packed with b.txt: the task count follows the bytes, ceil(15,399 / 2,000)
    assert counters["map_tasks"] == 8 and counters["reduce_tasks"] == 3
    assert counters["output_records"] == len(expected)
    assert result["requests"]["s3_driver"]["LIST"] >= 2 and result["requests"]["lambda_invokes"] > 0
    assert result["estimated_cost_usd"] > 0 and result["lambda_gb_seconds"] > 0
    assert set(result["timings"]) == {"plan_s", "map_s", "reduce_s", "commit_s", "total_s"}
    json.dumps(result)
    # A second submit of the same id starts nothing and returns the cached result.
    invokes = sum(fake.invokes.values())
    assert runner.submit(job, input=f"s3://{DATA}/wc/in/", output=f"s3://{DATA}/wc/out",
                         job_id=result["job_id"]) == result["job_id"]
    assert sum(fake.invokes.values()) == invokes
    assert runner.result(result["job_id"]) == result


def test_committed_output_is_refused_without_overwrite_before_anything_runs(env):
    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="ow/in.txt", Body=b"a b\n")
    job = MapReduceJob(mapper=tokenize, reducer=total)
    runner.run(job, input=f"s3://{DATA}/ow/in.txt", output=f"s3://{DATA}/ow/out/", poll_interval=0.2)
    before = sum(fake.invokes.values())
    with pytest.raises(OutputExistsError, match="already holds a committed result"):
        runner.submit(job, input=f"s3://{DATA}/ow/in.txt", output=f"s3://{DATA}/ow/out/")
    assert sum(fake.invokes.values()) == before
    result = runner.run(job, input=f"s3://{DATA}/ow/in.txt", output=f"s3://{DATA}/ow/out/", poll_interval=0.2,
                        options=JobOptions(overwrite=True))
    assert dict(read_records(s3, result)) == {"a": 1, "b": 1}


def test_missing_input_fails_before_any_write(env):
    s3, fake, runner = env
    job = MapReduceJob(mapper=tokenize, reducer=total)
    with pytest.raises(InputNotFoundError, match="matched no objects"):
        runner.submit(job, input=f"s3://{DATA}/nothing-here/", output=f"s3://{DATA}/x/", job_id="nothing-1")
    assert not runner.job_exists("nothing-1") and not fake.invokes


def test_inputs_are_listed_and_planned_with_the_collector_paused(env):
    """Every listed object lives through planning; the collector, paused meanwhile, never runs a
    full collection of the process over them, and runs again once the plan is built."""
    s3, fake, runner = env
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=DATA, Key=f"gc/in/{name}.txt", Body=TEXT.encode())
    listed = []

    def note(params, **_):
        listed.append((params.get("Prefix"), gc.isenabled()))

    s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", note)
    try:
        job_id = runner.submit(MapReduceJob(mapper=tokenize, reducer=total), input=f"s3://{DATA}/gc/in/",
                               output=f"s3://{DATA}/gc/out/", options=JobOptions(overwrite=True))
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.ListObjectsV2", note)
    assert gc.isenabled()
    assert [enabled for prefix, enabled in listed if prefix == "gc/in/"] == [False]
    assert runner.wait(job_id, poll_interval=0.2, timeout=120)["status"] == "SUCCEEDED"


def explode(line):
    raise ValueError(f"cannot parse {line!r}")


def test_failed_job_raises_with_the_remote_traceback(env):
    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="fail/in.txt", Body=b"poison\n")
    job = MapReduceJob(mapper=explode, reducer=total)
    job_id = runner.submit(job, input=f"s3://{DATA}/fail/in.txt", output=f"s3://{DATA}/fail/out/",
                           options=JobOptions(max_attempts=2))
    with pytest.raises(JobFailedError) as info:
        runner.wait(job_id, poll_interval=0.2, timeout=120)
    text = str(info.value)
    assert "ValueError: cannot parse 'poison'" in text and "Traceback" in text
    assert runner.status(job_id).state == "FAILED"
    assert not s3.list_objects_v2(Bucket=DATA, Prefix="fail/out/").get("KeyCount")


def test_cancel_stops_a_job_before_commit(env):
    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="cancel/in.txt", Body=b"a\n")
    job = MapReduceJob(mapper=tokenize, reducer=total)
    fake.pool.submit(lambda: threading.Event().wait(0.5))  # keep the single task queued briefly
    job_id = runner.submit(job, input=f"s3://{DATA}/cancel/in.txt", output=f"s3://{DATA}/cancel/out/")
    assert runner.cancel(job_id)
    fake.pool.shutdown(wait=True)
    assert runner.status(job_id).state == "CANCELLED"
    assert not s3.list_objects_v2(Bucket=DATA, Prefix="cancel/out/").get("KeyCount")


@pytest.mark.parametrize("case", ["unpicklable", "output-inside-input", "no-bucket", "runtime"])
def test_bad_submissions_fail_with_one_error_and_nothing_written_or_invoked(env, case):
    from airflow_provider_smr.job import JobPicklingError, JobRuntimeError
    from lambda_handlers.s3uri import InputError

    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="bad/in/a.txt", Body=b"a\n")
    lock = threading.Lock()
    job = MapReduceJob(mapper=(lambda line: [(lock.locked(), 1)]) if case == "unpicklable" else tokenize,
                       reducer=total)
    if case == "unpicklable":
        kw, error = {}, JobPicklingError
    elif case == "output-inside-input":
        kw, error = {"output": f"s3://{DATA}/bad/in/out/"}, InputError
    elif case == "no-bucket":
        kw, error = {"input": "s3://no-such-bucket-smr/x/"}, InputNotFoundError
    else:
        runner.stack = type("Old", (Stack,), {"runtime": "python3.9"})()
        kw, error = {}, JobRuntimeError
    args = {"input": f"s3://{DATA}/bad/in/", "output": f"s3://{DATA}/bad/out/", **kw}
    with pytest.raises(error):
        runner.submit(job, job_id=f"bad-{case}", **args)
    assert not runner.job_exists(f"bad-{case}") and not fake.invokes
    assert not s3.list_objects_v2(Bucket=WORK, Prefix=f"jobs/bad-{case}/").get("KeyCount")


def test_resubmitting_after_a_crash_mid_fan_out_finishes_it_without_duplicates(env, monkeypatch):
    from airflow_provider_smr.engine import submit as submit_mod

    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="crash/in.txt", Body=TEXT.encode())
    job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total)
    real_fan_out = submit_mod.fan_out

    def crash_after_two(lambda_client, function, events, **kw):
        real_fan_out(lambda_client, function, list(events)[:2], **kw)
        raise KeyboardInterrupt("worker killed mid fan-out")

    monkeypatch.setattr(submit_mod, "fan_out", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        runner.submit(job, input=f"s3://{DATA}/crash/in.txt", output=f"s3://{DATA}/crash/out/",
                      job_id="crash-1", options=JobOptions(split_size=3000))
    monkeypatch.setattr(submit_mod, "fan_out", real_fan_out)
    fake.pool.submit(lambda: None).result()  # let the two invoked tasks start
    assert runner.submit(job, input=f"s3://{DATA}/crash/in.txt", output=f"s3://{DATA}/crash/out/",
                         job_id="crash-1") == "crash-1"
    result = runner.wait("crash-1", poll_interval=0.2, timeout=120)
    assert dict(read_records(s3, result)) == dict(collections.Counter(TEXT.lower().split()))
    maps = result["counters"]["map_tasks"]
    assert fake.invokes["t-mapper"] <= maps + 2  # only never-started tasks were invoked again


def test_a_job_estimated_above_max_cost_usd_is_refused_before_anything_is_written(env):
    from lambda_handlers.costmodel import CostLimitError

    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="budget/in.txt", Body=TEXT.encode())
    job = MapReduceJob(mapper=tokenize, reducer=total)
    with pytest.raises(CostLimitError, match=r"max_cost_usd=1e-07: the job is estimated at \$0\.\d+ on AWS"):
        runner.submit(job, input=f"s3://{DATA}/budget/in.txt", output=f"s3://{DATA}/budget/out/",
                      job_id="budget-1", options=JobOptions(max_cost_usd=1e-7))
    assert not runner.job_exists("budget-1") and not fake.invokes


def test_the_result_shows_the_planners_estimate_next_to_the_actual(env):
    s3, fake, runner = env
    s3.put_object(Bucket=DATA, Key="estimate/in.txt", Body=TEXT.encode())
    job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total)
    result = runner.run(job, input=f"s3://{DATA}/estimate/in.txt", output=f"s3://{DATA}/estimate/out/",
                        poll_interval=0.2, timeout=120, options=JobOptions(max_cost_usd="0.5", optimize="cost"))
    estimate = result["estimate"]
    assert estimate["actual_usd"] == result["estimated_cost_usd"] > 0
    assert estimate["actual_wall_s"] == result["timings"]["total_s"]
    assert 0 < estimate["usd"] <= 0.5 and estimate["wall_s"] > 0
    assert (estimate["map_tasks"], estimate["reducers"]) == (result["counters"]["map_tasks"],
                                                             result["counters"]["reduce_tasks"])
    assert estimate["optimize"] == "cost" and estimate["max_cost_usd"] == 0.5
