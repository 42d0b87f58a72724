"""cancel_on_kill and the waiter arguments: the real trigger and operator against a stack deployed
on the local stack, with a job slow enough to be killed mid-run.

The triggerer's two ways of stopping a trigger are reproduced as it does them
(``airflow/jobs/triggerer_job_runner.py``): a user action cancels the trigger's asyncio task with
the message ``__airflow_user_action__`` and then awaits ``trigger.on_kill()``; a restart cancels
it without a message and calls nothing.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_provider_smr.engine.runner import JobCancelledError, JobNotFoundError
from airflow_provider_smr.engine.watch import DEFAULT_WAITER_DELAY_S, DEFAULT_WAITER_MAX_ATTEMPTS
from airflow_provider_smr.job import MapReduceJob
from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator, deterministic_job_id
from airflow_provider_smr.triggers import smr as trigger_module
from airflow_provider_smr.triggers.smr import TIMED_OUT, SMRJobTrigger
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
STACK, DATA, CONN_ID = "smr-cancel", "smr-cancel-data", "smr_cancel"
USER_ACTION = "__airflow_user_action__"  # airflow.jobs.triggerer_job_runner._USER_ACTION_CANCEL_MSG
LINES = 40


def slow_tokenize(line):
    time.sleep(0.25)  # 40 lines: one map task of ~10 s, long enough to be killed while it runs
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


SLOW_JOB = MapReduceJob(mapper=slow_tokenize, reducer=total, name="slow_count")


@pytest.fixture(scope="module")
def engine(deploy_engine):
    engine = deploy_engine(STACK, input_buckets=[DATA])
    engine.s3.put_object(Bucket=DATA, Key="in/lines.txt",
                         Body="".join(f"w{i % 7} w{i % 3}\n" for i in range(LINES)).encode())
    return engine


@pytest.fixture
def conn(aws_endpoint, airflow_conn, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", airflow_conn(aws_endpoint))


class FakeTI:
    dag_id, task_id, map_index = "cancel", "count", -1
    stats_tags: dict = {}

    def __init__(self):
        self.run_id = f"manual__{uuid.uuid4().hex[:8]}"
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


class FakeStore(dict):
    def set(self, key, value, **_):
        self[key] = value


def output_uri() -> str:
    return f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"


def start_slow_job(engine, job_id=None, output=None) -> tuple[str, str]:
    """Submit the slow job and return ``(job_id, output)`` once its map task runs."""
    output = output or output_uri()
    job_id = engine.runner.submit(SLOW_JOB, input=f"s3://{DATA}/in/", output=output, job_id=job_id,
                                  options=JobOptions(num_reducers=1))
    deadline = time.monotonic() + 60
    while engine.runner.status(job_id).state != protocol.RUNNING:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    return job_id, output


def committed(engine, output: str) -> bool:
    key = output.removeprefix(f"s3://{DATA}/") + "_SUCCESS"
    return "Contents" in engine.s3.list_objects_v2(Bucket=DATA, Prefix=key)


def assert_cancelled_and_never_commits(engine, job_id: str, output: str) -> None:
    deadline = time.monotonic() + 30  # a trigger's cancel may still be on its way from a thread
    while engine.runner.status(job_id).state != protocol.CANCELLED:
        assert time.monotonic() < deadline, f"job {job_id} was not cancelled"
        time.sleep(0.1)
    claim = engine.s3.get_object(Bucket=engine.stack.work_bucket, Key=protocol.claim_key(job_id, "commit"))
    assert claim["Body"].read() == b"cancelled"  # the commit claim is taken: no commit can ever win it
    with pytest.raises(JobCancelledError):
        engine.runner.wait(job_id, poll_interval=0.2, timeout=60)
    assert not committed(engine, output)


def cancel_requested(engine, job_id: str) -> bool:
    return "Contents" in engine.s3.list_objects_v2(Bucket=engine.stack.work_bucket,
                                                   Prefix=protocol.cancel_key(job_id))


def trigger_for(engine, job_id, **kwargs) -> SMRJobTrigger:
    return SMRJobTrigger(job_id=job_id, work_bucket=engine.stack.work_bucket, stack_name=STACK,
                         waiter_delay=0.2, aws_conn_id=CONN_ID, **kwargs)


async def stop_while_watching(trigger: SMRJobTrigger, message: str | None) -> None:
    """Run the trigger until it has polled, then cancel its task as the triggerer does."""
    task = asyncio.create_task(anext(trigger.run()))
    await asyncio.sleep(1.0)  # a few polls; the job runs ~10 s, so no event comes first
    assert not task.done()
    task.cancel(message)
    with pytest.raises(asyncio.CancelledError):
        await task
    if message == USER_ACTION and trigger_module.TRIGGERER_CALLS_ON_KILL:
        kill = asyncio.create_task(trigger.on_kill())
        await asyncio.sleep(0.05)
        # Airflow 3.3 repeats the cancel on every sync until the trigger is gone, on_kill included
        kill.cancel(USER_ACTION)
        with suppress(asyncio.CancelledError):
            await kill


# -- the trigger ------------------------------------------------------------------------------------


async def test_user_killing_the_deferred_task_cancels_the_job_and_nothing_commits(engine, conn):
    job_id, output = start_slow_job(engine)
    await stop_while_watching(trigger_for(engine, job_id, cancel_on_kill=True), USER_ACTION)
    assert_cancelled_and_never_commits(engine, job_id, output)


async def test_without_cancel_on_kill_a_killed_task_leaves_the_job_running(engine, conn):
    job_id, _ = start_slow_job(engine)
    await stop_while_watching(trigger_for(engine, job_id), USER_ACTION)  # the trigger's default: False
    assert not cancel_requested(engine, job_id)
    engine.runner.cancel(job_id)


@pytest.mark.parametrize("triggerer_calls_on_kill", [True, False], ids=["airflow-3.3", "older-airflow"])
@pytest.mark.parametrize(("task_state", "cancels"), [
    ("deferred", False),  # a triggerer restart or redistribution: the task still waits
    ("failed", True), ("success", True), (None, True),  # marked failed or success, cleared
])
async def test_a_cancel_without_the_user_action_message_asks_the_task_state(
        engine, conn, monkeypatch, triggerer_calls_on_kill, task_state, cancels):
    """Older triggerers send no message, and asgiref's sync_to_async can drop Airflow 3.3's."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    monkeypatch.setattr(trigger_module, "TRIGGERER_CALLS_ON_KILL", triggerer_calls_on_kill)
    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states",
                        staticmethod(lambda **query: {query["run_ids"][0]: {query["task_ids"][0]: task_state}}))
    job_id, _ = start_slow_job(engine)
    trigger = trigger_for(engine, job_id, cancel_on_kill=True)
    trigger.task_instance = SimpleNamespace(dag_id="cancel", task_id="count", run_id="r1", map_index=-1)
    await stop_while_watching(trigger, None)
    assert cancel_requested(engine, job_id) is cancels
    if not cancels:
        assert engine.runner.status(job_id).state == protocol.RUNNING
        engine.runner.cancel(job_id)


async def test_the_trigger_gives_up_after_waiter_max_attempts(engine, conn):
    job_id, _ = start_slow_job(engine)
    trigger = trigger_for(engine, job_id, waiter_max_attempts=3)
    event = (await anext(trigger.run())).payload
    assert event["status"] == TIMED_OUT and event["job_id"] == job_id
    assert event["message"].startswith("still RUNNING step 1/1 map")
    assert "after waiter_max_attempts 3 x waiter_delay 0.2s" in event["message"]
    engine.runner.cancel(job_id)


def test_the_trigger_serializes_its_waiter_and_cancel_settings():
    trigger = SMRJobTrigger(job_id="j-1", work_bucket="w", waiter_delay=7, waiter_max_attempts=9,
                            cancel_on_kill=True)
    _, kwargs = trigger.serialize()
    assert (kwargs["waiter_delay"], kwargs["waiter_max_attempts"], kwargs["cancel_on_kill"]) == (7, 9, True)
    assert "poll_interval" not in kwargs
    # a trigger serialized before waiter_delay existed still loads
    assert SMRJobTrigger(job_id="j-1", work_bucket="w", poll_interval=3).waiter_delay == 3


# -- the operator -----------------------------------------------------------------------------------


def operator(**kwargs) -> ServerlessMapReduceOperator:
    args = {"task_id": "count", "job": SLOW_JOB, "input": f"s3://{DATA}/in/", "output": output_uri(),
            "stack_name": STACK, "deploy": False, "aws_conn_id": CONN_ID, "num_reducers": 1}
    return ServerlessMapReduceOperator(**{**args, **kwargs})


def test_a_deferred_task_hands_its_waiter_and_cancel_settings_to_the_trigger(engine, conn):
    op = operator(deferrable=True, waiter_delay=2, waiter_max_attempts=30)
    ti, store = FakeTI(), FakeStore()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti, "task_state_store": store})
    trigger = deferred.value.trigger
    assert (trigger.waiter_delay, trigger.waiter_max_attempts, trigger.cancel_on_kill) == (2, 30, True)
    assert deferred.value.timeout == timedelta(seconds=2 * 30 + 60)
    engine.runner.cancel(store["smr_job_id"])


def test_the_deferral_timeout_stays_within_execution_timeout():
    assert operator().deferral_timeout() == timedelta(
        seconds=DEFAULT_WAITER_DELAY_S * DEFAULT_WAITER_MAX_ATTEMPTS + 60)
    short = operator(execution_timeout=timedelta(minutes=5))
    assert short.deferral_timeout() == timedelta(minutes=5)


def test_a_deferral_timeout_cancels_the_job(engine, conn):
    from airflow.sdk.bases.operator import TriggerFailureReason
    from airflow.sdk.exceptions import TaskDeferralTimeout

    ti = FakeTI()
    job_id, output = start_slow_job(engine, job_id=deterministic_job_id(ti.dag_id, ti.run_id, ti.task_id))
    op = operator(deferrable=True, output=output)
    with pytest.raises(TaskDeferralTimeout):  # what Airflow runs when the deferral timed out
        op.resume_execution("__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT},
                            {"ti": ti, "task_state_store": FakeStore()})  # found by its id in S3
    assert_cancelled_and_never_commits(engine, job_id, output)


def test_a_timed_out_event_cancels_the_job_and_fails_the_task(engine, conn):
    job_id, output = start_slow_job(engine)
    op = operator(deferrable=True, output=output)
    event = {"status": TIMED_OUT, "job_id": job_id, "state": "RUNNING", "message": "still RUNNING after 3 polls"}
    with pytest.raises(AirflowException, match="still RUNNING after 3 polls"):
        op.execute_complete({"ti": FakeTI(), "task_state_store": FakeStore()}, event)
    assert_cancelled_and_never_commits(engine, job_id, output)


def test_a_worker_wait_that_runs_out_cancels_the_job(engine, conn):
    op = operator(waiter_delay=0.2, waiter_max_attempts=3)
    store = FakeStore()
    with pytest.raises(AirflowException, match="did not finish within waiter_max_attempts 3 x waiter_delay 0.2s"):
        op.execute({"ti": FakeTI(), "task_state_store": store})
    assert_cancelled_and_never_commits(engine, store["smr_job_id"], op.output_uri)


def test_a_killed_worker_task_cancels_its_job_unless_told_not_to(engine, conn):
    for cancel_on_kill in (True, False):
        op = operator(cancel_on_kill=cancel_on_kill)
        op.job_id, output = start_slow_job(engine, output=op.output_uri)
        op.on_kill()  # what Airflow calls when the running task is killed, cleared or marked
        assert cancel_requested(engine, op.job_id) is cancel_on_kill
        if cancel_on_kill:
            assert_cancelled_and_never_commits(engine, op.job_id, output)
        else:
            engine.runner.cancel(op.job_id)


def test_poll_interval_still_works_as_a_deprecated_alias_of_waiter_delay():
    with pytest.warns(AirflowProviderDeprecationWarning, match="use `waiter_delay`"):
        op = operator(poll_interval=2)
    assert op.waiter_delay == 2


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"waiter_delay": 0}, "waiter_delay"), ({"waiter_delay": "5"}, "waiter_delay"),
    ({"waiter_max_attempts": 0}, "waiter_max_attempts"), ({"waiter_max_attempts": 2.5}, "waiter_max_attempts"),
])
def test_bad_waiter_settings_are_refused_naming_the_argument(kwargs, named):
    with pytest.raises(ValueError, match=named):
        operator(**kwargs)


# -- the CLI: cancel_on_kill has no flag, Ctrl-C cancels ----------------------------------------------


def test_ctrl_c_on_smr_run_cancels_the_job(engine, aws_endpoint, aws_env):
    job_id, output = f"ctrl-c-{uuid.uuid4().hex[:8]}", output_uri()
    run = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_smr.cli", "run",
         "tests/airflow/standalone_dags/cancel_jobs.py:slow_count", "--input", f"s3://{DATA}/in/",
         "--output", output, "--endpoint-url", aws_endpoint, "--stack-name", STACK, "--job-id", job_id,
         "--param", "sleep_s=0.25", "--num-reducers", "1"],
        cwd=ROOT, env={**aws_env, "PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            assert time.monotonic() < deadline, "smr run never started the job"
            try:
                if engine.runner.status(job_id).state == protocol.RUNNING:
                    break
            except JobNotFoundError:
                pass
            time.sleep(0.2)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    assert f"cancelling job {job_id}" in stderr
    assert_cancelled_and_never_commits(engine, job_id, output)
