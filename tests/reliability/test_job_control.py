"""Issue 5, faults 6, 7 and 8: the Airflow task killed and retried, cancel mid-job, a failing job
with ``overwrite=True`` over an existing output. The operator runs for real against the local stack
through an Airflow connection; the first try runs in a subprocess that is SIGKILLed mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="smr-rel-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_smr.engine.runner import JobCancelledError, JobFailedError  # noqa: E402
from airflow_provider_smr.job import MapReduceJob  # noqa: E402
from lambda_handlers import protocol  # noqa: E402
from lambda_handlers.options import JobOptions
from tests.reliability import faults  # noqa: E402
from tests.reliability.conftest import DATA, POLL, TIMEOUT  # noqa: E402

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
CONN_ID = "smr_rel"


@pytest.fixture
def rel_conn(aws_endpoint, airflow_conn, monkeypatch):
    """The Airflow connection ``smr_rel`` on the local stack (this test and its subprocesses)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", airflow_conn(aws_endpoint))


class FakeTI:
    dag_id, task_id, map_index = "reliability", "count", -1
    stats_tags: dict = {}

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


class FakeStore(dict):
    def set(self, key, value, **_):
        self[key] = value


def starts(env, job_id: str) -> set[tuple[str, int, int]]:
    out = set()
    for key in env.job_objects(job_id):
        k = protocol.parse_status_key(job_id, key)
        if k and k.kind == "start":
            out.add((k.phase, k.task, k.attempt))
    return out


def slow_input(env, name: str, files: int, lines: int = 3) -> tuple[str, list[str]]:
    prefix = env.fresh(name)
    texts = [faults.words_text(i, lines) for i in range(files)]
    for i, text in enumerate(texts):
        env.put(f"{prefix}/f{i}.txt", text)
    return f"s3://{DATA}/{prefix}/", texts


FIRST_TRY = textwrap.dedent("""
    import sys
    from tests.reliability import faults
    from tests.reliability.test_job_control import FakeStore, FakeTI, operator
    op = operator(sys.argv[1], sys.argv[2])
    op.execute({"ti": FakeTI(sys.argv[3]), "task_state_store": FakeStore()})
""")


def operator(input_uri: str, output: str, **kw):
    from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

    job = MapReduceJob(mapper=faults.slow_mapper(0.7), reducer=faults.total, name="slow-wc")
    return ServerlessMapReduceOperator(task_id="count", job=job, input=input_uri, output=output,
                                       stack_name="smr-rel", deploy=False, aws_conn_id=CONN_ID,
                                       num_reducers=2, poll_interval=POLL, **kw)


def test_airflow_task_killed_mid_job_and_retried_reconnects_to_the_same_job(rel, rel_conn):
    uri, texts = slow_input(rel, "crash", files=4)
    output = rel.output("crash")
    run_id = rel.fresh("manual")
    from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

    job_id = ServerlessMapReduceOperator.task_job_id({"ti": FakeTI(run_id)})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", FIRST_TRY, uri, output, run_id], cwd=ROOT,
                             env=env, start_new_session=True)
    try:  # the worker dies as soon as the job's first map task has started
        deadline = time.monotonic() + 120
        while not any(s[0] == "map" for s in starts(rel, job_id)):
            assert first.poll() is None, "the first try ended before the job ran"
            assert time.monotonic() < deadline, "the first try never started the job"
            time.sleep(0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not rel.objects(DATA, output[len(f"s3://{DATA}/"):])  # killed mid-job

    ti, store = FakeTI(run_id), FakeStore()  # XCom and the state store are empty on the retry
    result = operator(uri, output).execute({"ti": ti, "task_state_store": store})
    assert result["job_id"] == job_id
    assert rel.records(result) == faults.word_count(*texts)
    maps = rel.runner.plan(job_id).num_splits  # the small objects are packed: maps follow the bytes
    assert starts(rel, job_id) == {("map", t, 0) for t in range(maps)} | {("reduce", r, 0) for r in range(2)}
    assert not rel.runner.job_exists(f"{job_id}.2")  # no second generation: one job ran
    assert result["counters"]["attempts"] == maps + 2


def test_cancel_mid_job_starts_nothing_new_and_commits_nothing(rel, rel_conn):
    uri, _ = slow_input(rel, "cancel", files=12)
    output = rel.output("cancel")
    op = operator(uri, output)
    op.job_id = rel.runner.submit(op.job, input=uri, output=output, options=JobOptions(num_reducers=2))
    deadline = time.monotonic() + 60
    while not starts(rel, op.job_id):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    op.on_kill()  # what Airflow calls when the task is killed (``smr cancel`` calls the same)
    with pytest.raises(JobCancelledError):
        rel.runner.wait(op.job_id, poll_interval=POLL, timeout=60)
    time.sleep(4)  # attempts that were running finish; queued ones must not start
    started = starts(rel, op.job_id)
    assert rel.runner.status(op.job_id).state == protocol.CANCELLED
    assert all(phase == "map" for phase, _, _ in started)
    assert len(started) < 12
    objects = rel.job_objects(op.job_id)
    assert protocol.done_key(op.job_id) not in objects
    assert rel.s3.get_object(Bucket=rel.stack.work_bucket,
                             Key=protocol.claim_key(op.job_id, "commit"))["Body"].read() == b"cancelled"
    assert not rel.objects(DATA, output[len(f"s3://{DATA}/"):])  # no parts, no _SUCCESS


def test_failing_job_with_overwrite_leaves_the_previous_output_intact(rel):
    uri, texts = slow_input(rel, "overwrite", files=2, lines=20)
    output = rel.output("kept")
    fast = MapReduceJob(mapper=faults.tokenize, reducer=faults.total)
    first = rel.runner.run(fast, input=uri, output=output, poll_interval=POLL, timeout=TIMEOUT,
                           options=JobOptions(num_reducers=2))
    prefix = output[len(f"s3://{DATA}/"):]
    before = {k: rel.s3.get_object(Bucket=DATA, Key=k)["Body"].read() for k in rel.objects(DATA, prefix)}
    # two parts, the manifest and the job's HTML report
    assert {f"{prefix}_SUCCESS", f"{prefix}_report.html"} <= set(before) and len(before) == 4

    broken = MapReduceJob(mapper=faults.failing_mapper, reducer=faults.total)
    with pytest.raises(JobFailedError, match="this job always fails"):
        rel.runner.run(broken, input=uri, output=output, poll_interval=POLL, timeout=TIMEOUT,
                       options=JobOptions(overwrite=True, num_reducers=3, max_attempts=2))
    after = {k: rel.s3.get_object(Bucket=DATA, Key=k)["Body"].read() for k in rel.objects(DATA, prefix)}
    assert after == before
    assert rel.records(first) == faults.word_count(*texts)


def test_deferred_task_failure_carries_the_remote_traceback_and_the_log_tail(rel, rel_conn):
    from airflow.providers.common.compat.sdk import AirflowException

    from airflow_provider_smr.engine.watch import failure_message

    uri, _ = slow_input(rel, "deferred-fail", files=1)
    op = operator(uri, rel.output("deferred-fail"), deferrable=True)
    broken = MapReduceJob(mapper=faults.failing_mapper, reducer=faults.total)
    job_id = rel.runner.submit(broken, input=uri, output=op.output_uri, options=JobOptions(max_attempts=1))
    with pytest.raises(JobFailedError):
        rel.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    failed = json.loads(rel.s3.get_object(Bucket=rel.stack.work_bucket,
                                          Key=protocol.failed_key(job_id))["Body"].read())
    event = {"status": "failed", "job_id": job_id, "state": protocol.FAILED,
             "message": failure_message(failed)}  # what SMRJobTrigger sends
    with pytest.raises(AirflowException) as err:
        op.execute_complete({"ti": FakeTI(rel.fresh("manual"))}, event)
    message = str(err.value)
    assert "RuntimeError: this job always fails" in message
    assert "remote traceback:" in message and "failing_mapper" in message
    assert "log tail:" in message and job_id in message.split("log tail:")[1]
