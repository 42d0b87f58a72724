"""SMRJobTrigger: serialize() round trip, and run() on markers in the local stack's S3."""

from __future__ import annotations

import importlib
import json
import uuid

import pytest

from airflow_provider_smr.engine import watch
from airflow_provider_smr.triggers.smr import FAILED, NEEDS_ATTENTION, SUCCESS, SMRJobTrigger
from lambda_handlers import protocol


@pytest.fixture
def s3(aws_endpoint, aws_clients, airflow_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SMR_TEST", airflow_conn(aws_endpoint))
    client = aws_clients(aws_endpoint).s3
    client.create_bucket(Bucket="trigger-work")
    return client


def plan_for(job_id, *, map_tasks=2, reducers=1, task_timeout_s=900, deadline_grace_s=30, speculation=False):
    return {"job_id": job_id, "limits": {"task_timeout_s": task_timeout_s},
            "options": {"deadline_grace_s": deadline_grace_s, "speculation": speculation},
            "steps": [{"num_map_tasks": map_tasks, "num_reducers": reducers}]}


def new_job(s3, **plan_args):
    job_id = f"t-{uuid.uuid4().hex[:12]}"
    s3.put_object(Bucket="trigger-work", Key=protocol.plan_key(job_id),
                  Body=json.dumps(plan_for(job_id, **plan_args)))
    return job_id


def put(s3, key, body=b"{}"):
    s3.put_object(Bucket="trigger-work", Key=key, Body=body)


def trigger_for(job_id):
    return SMRJobTrigger(job_id=job_id, work_bucket="trigger-work", poll_interval=0.05,
                         aws_conn_id="smr_test")


async def first_event(trigger):
    events = [event async for event in trigger.run()]
    assert len(events) == 1  # a trigger fires exactly once
    return events[0].payload


def test_serialize_round_trips_every_argument():
    trigger = SMRJobTrigger(job_id="j-1", work_bucket="w", stack_name="s", poll_interval=2,
                            aws_conn_id="c", region_name="eu-west-1", verify=False,
                            botocore_config={"retries": {"max_attempts": 3}})
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs  # the triggerer stores them as JSON


async def test_succeeded_job_yields_success(s3):
    job_id = new_job(s3)
    for task in range(2):
        put(s3, protocol.done_marker_key(job_id, 0, protocol.MAP, task))
    put(s3, protocol.done_marker_key(job_id, 0, protocol.REDUCE, 0))
    put(s3, protocol.job_state_key(job_id, protocol.SUCCEEDED))
    assert await first_event(trigger_for(job_id)) == {"status": SUCCESS, "job_id": job_id,
                                                      "state": protocol.SUCCEEDED}


async def test_failed_job_yields_failure_with_the_remote_error(s3):
    job_id = new_job(s3)
    put(s3, protocol.failed_key(job_id), json.dumps({
        "job_id": job_id, "reason": "map task 1 failed 3 times", "step": 0, "phase": "map", "task": 1,
        "attempt": 2, "error": {"error_type": "ZeroDivisionError", "message": "division by zero",
                                "traceback": "Traceback ...\nZeroDivisionError: division by zero"}}))
    put(s3, protocol.job_state_key(job_id, protocol.FAILED))
    event = await first_event(trigger_for(job_id))
    assert event["status"] == FAILED and event["state"] == protocol.FAILED
    assert "ZeroDivisionError: division by zero" in event["message"]
    assert "map task 1 failed 3 times" in event["message"]


async def test_task_silent_past_its_deadline_yields_needs_attention(s3, monkeypatch):
    job_id = new_job(s3, task_timeout_s=0, deadline_grace_s=0)  # every started attempt is overdue
    put(s3, protocol.done_marker_key(job_id, 0, protocol.MAP, 0))
    put(s3, protocol.start_marker_key(job_id, 0, protocol.MAP, 1, 0), b"")
    event = await first_event(trigger_for(job_id))
    assert event["status"] == NEEDS_ATTENTION
    assert event["overdue"] == [[0, "map", 1, 0]]


async def test_running_job_keeps_the_trigger_waiting(s3):
    import asyncio

    job_id = new_job(s3)
    put(s3, protocol.start_marker_key(job_id, 0, protocol.MAP, 0, 0), b"")
    gen = trigger_for(job_id).run()
    waiting = asyncio.ensure_future(gen.__anext__())
    done, _ = await asyncio.wait([waiting], timeout=0.5)
    assert not done  # no verdict while the job runs
    put(s3, protocol.job_state_key(job_id, protocol.SUCCEEDED))
    assert (await asyncio.wait_for(waiting, 30)).payload["status"] == SUCCESS


async def test_trigger_logs_the_progress_line_once_per_phase_within_ten_seconds(s3, caplog, monkeypatch):
    import asyncio
    import datetime as dt
    import logging

    t0 = 1_800_000_000.0
    monkeypatch.setattr(SMRJobTrigger, "clock", staticmethod(lambda: t0 + 12))  # frozen clock
    caplog.set_level(logging.INFO, logger="smr-test-trigger")
    job_id = f"t-{uuid.uuid4().hex[:12]}"
    plan = {**plan_for(job_id), "created": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat()}
    put(s3, protocol.plan_key(job_id), json.dumps(plan))
    put(s3, protocol.start_marker_key(job_id, 0, protocol.MAP, 1, 0), b"")
    put(s3, protocol.done_marker_key(job_id, 0, protocol.MAP, 0),
        json.dumps({"records_in": 1_200_000, "bytes_in": 340 * 1024**2}))
    trigger = trigger_for(job_id)
    trigger._log = logging.getLogger("smr-test-trigger")  # a stdlib logger caplog sees (not structlog)
    polls = []
    original = trigger._read_done_markers

    async def counted(*args):
        polls.append(1)
        await original(*args)

    trigger._read_done_markers = counted
    waiting = asyncio.ensure_future(trigger.run().__anext__())
    for _ in range(600):  # several polls of the same phase (the first one connects: slow)
        if len(polls) >= 5:
            break
        await asyncio.sleep(0.05)
    assert len(polls) >= 5
    put(s3, protocol.done_marker_key(job_id, 0, protocol.MAP, 1), json.dumps({"records_in": 1, "bytes_in": 1}))
    put(s3, protocol.done_marker_key(job_id, 0, protocol.REDUCE, 0))
    put(s3, protocol.job_state_key(job_id, protocol.SUCCEEDED))
    assert (await asyncio.wait_for(waiting, 30)).payload["status"] == SUCCESS
    label = watch.job_label(job_id)  # the full id is logged once, when the task defers
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"SMR job {label}: ")]
    assert lines == [
        f"SMR job {label}: RUNNING step 1/1 map 1/2 (running 1, failed 0) | 1,200,000 records, "
        "340.0 MiB read, 28.3 MiB/s, 100k records/s | elapsed 0:00:12",
        f"SMR job {label}: SUCCEEDED | 1,200,001 records, 340.0 MiB read, 28.3 MiB/s, 100k records/s "
        "| elapsed 0:00:12",
    ]


async def checks_until_success(s3, job_id, trigger, monkeypatch, wanted=2, within_s=30.0):
    """Run ``trigger`` on a running job until it asked for ``wanted`` deadline checks (or
    ``within_s`` passed), then let the job succeed; return the checks asked (the coordinator call
    itself is recorded, not made)."""
    import asyncio

    put(s3, protocol.start_marker_key(job_id, 0, protocol.MAP, 0, 0), b"")
    asked = []
    monkeypatch.setattr(trigger, "_check_for_stragglers", lambda: asked.append(job_id))
    waiting = asyncio.ensure_future(trigger.run().__anext__())
    for _ in range(int(within_s / 0.05)):
        if len(asked) >= wanted:
            break
        await asyncio.sleep(0.05)
    put(s3, protocol.job_state_key(job_id, protocol.SUCCEEDED))
    assert (await asyncio.wait_for(waiting, 30)).payload["status"] == SUCCESS
    return asked


async def test_speculating_job_gets_straggler_checks_from_the_trigger(s3, monkeypatch):
    monkeypatch.setattr(watch, "SPECULATION_CHECK_INTERVAL_S", 0.0)  # due at every poll
    job_id = new_job(s3, speculation=True)
    assert len(await checks_until_success(s3, job_id, trigger_for(job_id), monkeypatch)) >= 2


async def test_trigger_nudges_the_coordinator_when_nothing_moves(s3, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(watch, "STALL_NUDGE_S", -1.0)  # every poll counts as a stall
    monkeypatch.setattr(watch, "DEADLINE_CHECK_MIN_INTERVAL_S", 0.0)
    caplog.set_level(logging.INFO, logger="smr-test-trigger")
    job_id = new_job(s3)
    trigger = trigger_for(job_id)
    trigger._log = logging.getLogger("smr-test-trigger")  # a stdlib logger caplog sees (not structlog)
    asked = await checks_until_success(s3, job_id, trigger, monkeypatch)
    nudges = [r.getMessage() for r in caplog.records if "check deadlines" in r.getMessage()]
    assert len(asked) >= 2
    label = watch.job_label(job_id)
    assert set(nudges) == {f"SMR job {label}: asking the coordinator to check deadlines (no progress)"}


async def test_trigger_asks_for_no_check_without_speculation_stall_or_overdue_task(s3, monkeypatch):
    monkeypatch.setattr(watch, "SPECULATION_CHECK_INTERVAL_S", 0.0)  # would be due, were it on
    job_id = new_job(s3)
    assert await checks_until_success(s3, job_id, trigger_for(job_id), monkeypatch, within_s=1.5) == []
