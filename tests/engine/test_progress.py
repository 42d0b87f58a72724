"""Progress of a running job: records, bytes, throughput and elapsed time from the done markers.

Pure checks of :class:`ProgressTracker`, then ``JobRunner.wait`` on a scripted job in the local
stack's S3 (markers appear as the injected clock advances): rate-limited log lines, immediate
lines on a phase change, the watch policy's deadline checks and timeout, and each done marker read
once for the wait, the result and the report.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import uuid

import pytest

from airflow_provider_smr.engine import watch
from airflow_provider_smr.engine.runner import JobRunner, JobTimeoutError
from airflow_provider_smr.engine.watch import (
    ProgressTracker,
    WatchPolicy,
    WatchState,
    format_bytes,
    format_elapsed,
    short_count,
    status_from_listing,
    watch_step,
)
from lambda_handlers import protocol
from lambda_handlers.plan import Plan

T0 = 1_800_000_000.0  # the plan's creation time (epoch seconds)
MIB = 1024**2
WORK, DATA = "smr-progress-work", "smr-progress-data"


def plan_for(job_id, maps=4, reducers=2, speculation=False):
    return Plan.from_json(plan_doc(job_id, maps, reducers, speculation))


def plan_doc(job_id, maps=4, reducers=2, speculation=False):
    return {"job_id": job_id, "job_name": "progress",
            "created": dt.datetime.fromtimestamp(T0, dt.timezone.utc).isoformat(),
            "limits": {"task_timeout_s": 60}, "options": {"speculation": speculation},
            "steps": [{"index": 0, "num_map_tasks": maps, "num_reducers": reducers}],
            "inputs": {}, "output": {"uri": f"s3://{DATA}/out/{job_id}/", "format": "jsonl"}}


def listed(*keys):
    return [{"Key": k, "LastModified": dt.datetime.fromtimestamp(T0, dt.timezone.utc)} for k in keys]


def map_body(task, records=1000, nbytes=MIB):
    return {"task": task, "attempt": 0, "step": 0, "phase": "map", "records_in": records,
            "records_out": records * 2, "bytes_in": nbytes, "bytes_out": nbytes // 2,
            "started": T0 + 1, "finished": T0 + 2, "duration_s": 1.0, "memory_mb": 512}


# -- the tracker, pure ----------------------------------------------------------------------------


def test_each_done_marker_is_handed_out_once_and_other_markers_never():
    job = "j-1"
    tracker = ProgressTracker(plan_for(job))
    first = listed(protocol.done_marker_key(job, 0, "map", 0), protocol.start_marker_key(job, 0, "map", 1, 0),
                   protocol.error_marker_key(job, 0, "map", 2, 0), protocol.claim_key(job, "commit"))
    assert tracker.new_done_keys(first) == [protocol.done_marker_key(job, 0, "map", 0)]
    again = first + listed(protocol.done_marker_key(job, 0, "map", 1))
    assert tracker.new_done_keys(again) == [protocol.done_marker_key(job, 0, "map", 1)]
    assert tracker.new_done_keys(again) == []


def test_line_has_phase_tasks_records_bytes_throughput_since_the_first_task_began_and_elapsed():
    job = "j-2"
    plan = plan_for(job)
    tracker = ProgressTracker(plan)
    keys = [protocol.done_marker_key(job, 0, "map", t) for t in range(2)]
    tracker.ingest({keys[0]: map_body(0, 600_000, 170 * MIB), keys[1]: map_body(1, 600_000, 170 * MIB)})
    status = status_from_listing(plan, listed(*keys, protocol.start_marker_key(job, 0, "map", 2, 0)), now=T0)
    assert tracker.line(status, now=T0 + 12) == (
        "RUNNING step 1/1 map 2/4 (running 1, failed 0) | 1,200,000 records, 340.0 MiB read, "
        "30.9 MiB/s, 109k records/s | elapsed 0:00:12")  # the tasks began at T0 + 1: 11 s of work


def test_reduce_line_shows_the_finished_map_phase_too():
    job = "j-3"
    plan = plan_for(job, maps=2, reducers=3)
    keys = [protocol.done_marker_key(job, 0, "map", t) for t in range(2)]
    status = status_from_listing(plan, listed(*keys, protocol.start_marker_key(job, 0, "reduce", 0, 0)), now=T0)
    line = ProgressTracker(plan).line(status, now=T0 + 1)
    assert line.startswith("RUNNING step 1/1 map 2/2, reduce 0/3 (running 1, failed 0) | 0 records")


def test_records_and_bytes_count_the_first_steps_maps_only():
    job = "j-4"
    tracker = ProgressTracker(plan_for(job))
    tracker.ingest({protocol.done_marker_key(job, 0, "map", 0): map_body(0, 10, 100),
                    protocol.done_marker_key(job, 0, "reduce", 0): {"records_in": 7, "bytes_in": 5}})
    assert tracker.totals() == {"records": 10, "bytes": 100}
    assert set(tracker.markers()) == {(0, "map"), (0, "reduce")}


def test_elapsed_counts_from_the_plans_creation_or_first_sight_without_it():
    assert ProgressTracker(plan_for("j-5")).elapsed(T0 + 75) == 75
    bare = {k: v for k, v in plan_doc("j-5").items() if k != "created"}
    assert ProgressTracker(Plan.from_json(bare), now=T0 + 5).elapsed(T0 + 7) == 2


def test_a_line_is_due_every_interval_and_at_once_on_a_phase_change():
    job = "j-6"
    plan = plan_for(job, maps=1, reducers=1)
    tracker = ProgressTracker(plan)
    mapping = status_from_listing(plan, [], now=T0)
    reducing = status_from_listing(plan, listed(protocol.done_marker_key(job, 0, "map", 0)), now=T0)
    state = WatchState.begin(0)

    def due(status, wall):  # the watch policy decides when a line is due (every 10 s)
        nonlocal state
        step = watch_step(WatchPolicy(), state, status, tracker, now=0, wall=wall)
        state = step.state
        return step.line is not None

    due_now = [due(mapping, T0 + t) for t in (0, 2, 4, 9.9, 10, 12)]
    assert due_now == [True, False, False, False, True, False]
    assert due(reducing, T0 + 13)  # the phase changed: no waiting
    assert not due(reducing, T0 + 14)


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (340.2 * MIB, "340.2 MiB"),
                                     (3 * 1024**3, "3.0 GiB")])
def test_bytes_read_in_binary_units(n, text):
    assert format_bytes(n) == text


def test_counts_and_durations_read_short():
    assert [short_count(n) for n in (950, 105_000, 1_234_567, 25_000_000)] == ["950", "105k", "1.2M", "25M"]
    assert format_elapsed(3723.9) == "1:02:03"


# -- wait() on a scripted job ---------------------------------------------------------------------


class Stack:
    stack_name, region, work_bucket, runtime = "progress", "us-east-1", WORK, "python3.11"
    functions = {"mapper": "p-mapper", "reducer": "p-reducer", "coordinator": "p-coordinator"}
    memory_mb, timeout_s = 512, 60
    mapper_memory_mb = reducer_memory_mb = 512
    versions: dict[str, str] = {}  # a stack without published versions: jobs run on $LATEST
    max_running_tasks = 0  # no stack-wide budget
    architecture = "x86_64"


class Clients:
    def __init__(self, s3):
        self.s3 = s3

    @property
    def lambda_(self):
        raise AssertionError("a scripted job invokes nothing")

    dynamodb = logs = property(lambda self: None)


@pytest.fixture(scope="module")
def s3(aws_endpoint, aws_clients):
    client = aws_clients(aws_endpoint).s3
    for bucket in (WORK, DATA):
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture(autouse=True)
def two_second_polls(monkeypatch):
    """The scripted jobs below are polled every 2 s (``poll_interval=2`` and no shorter first
    gap): these tests are about lines and checks; the adaptive schedule has its own tests."""
    monkeypatch.setattr(watch, "FIRST_POLL_DELAY_S", 2.0)
    monkeypatch.setattr(watch, "COMMIT_POLL_DELAY_S", 2.0)


class ScriptedJob:
    """A job whose markers appear as the fake clock advances (one poll every 2 s)."""

    def __init__(self, s3, maps=4, reducers=2, speculation=False):
        self.s3, self.job_id = s3, f"progress-{uuid.uuid4().hex[:8]}"
        self.plan = plan_doc(self.job_id, maps, reducers, speculation)
        self.now = T0
        self.put(protocol.plan_key(self.job_id), self.plan)
        self.script = {
            0: [self.start(0), self.start(1)],
            2: [self.done_map(0)], 4: [self.done_map(1), self.start(2), self.start(3)],
            10: [self.done_map(2)],
            12: [self.done_map(3), *(self.done_reduce(r) for r in range(reducers))],
            14: [self.committed()],
        }
        self.apply()

    def put(self, key, body):
        self.s3.put_object(Bucket=WORK, Key=key, Body=json.dumps(body).encode() if body is not None else b"")

    def start(self, task):
        return protocol.start_marker_key(self.job_id, 0, "map", task, 0), None

    def done_map(self, task):
        return protocol.done_marker_key(self.job_id, 0, "map", task), map_body(task)

    def done_reduce(self, task):
        body = {"task": task, "attempt": 0, "step": 0, "phase": "reduce", "records_in": 500,
                "records_out": 100, "bytes_in": 1000, "bytes_out": 900, "started": T0 + 11,
                "finished": T0 + 12, "duration_s": 1.0, "memory_mb": 512}
        return protocol.done_marker_key(self.job_id, 0, "reduce", task), body

    def committed(self):
        output = self.plan["output"]["uri"]
        self.s3.put_object(Bucket=DATA, Key=f"out/{self.job_id}/_SUCCESS",
                           Body=json.dumps({"records": 200, "parts": []}).encode())
        self.put(protocol.done_key(self.job_id), {"committed": dt.datetime.fromtimestamp(
            T0 + 14, dt.timezone.utc).isoformat(), "manifest": output + "_SUCCESS", "parts": []})
        return protocol.job_state_key(self.job_id, protocol.SUCCEEDED), None

    def apply(self):
        for due in sorted(t for t in self.script if t <= self.now - T0):
            for key, body in self.script.pop(due):
                self.put(key, body)

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.apply()


def get_counter(s3):
    """GetObject calls on ``s3`` by key, from now on."""
    gets = collections.Counter()

    def count(params=None, **_):
        gets[params["Key"]] += 1

    s3.meta.events.register("before-parameter-build.s3.GetObject", count)
    return gets


def progress_lines(caplog, job_id):
    prefix = f"job {watch.job_label(job_id)}: "
    return [r.getMessage()[len(prefix):] for r in caplog.records
            if r.getMessage().startswith(prefix) and " | " in r.getMessage()]


def test_wait_logs_progress_every_ten_seconds_and_at_once_on_a_phase_change(s3, caplog):
    job = ScriptedJob(s3)
    caplog.set_level(logging.INFO, logger="airflow_provider_smr")
    result = JobRunner(Clients(s3), Stack()).wait(job.job_id, poll_interval=2, sleep=job.sleep,
                                                  clock=job.clock)
    assert result["status"] == protocol.SUCCEEDED
    assert progress_lines(caplog, job.job_id) == [
        # t=0: the first poll
        "RUNNING step 1/1 map 0/4 (running 2, failed 0) | 0 records, 0 B read, 0 B/s, 0 records/s "
        "| elapsed 0:00:00",
        # t=2..8: same phase, within 10 s of the last line: nothing; t=10: due again (throughput
        # since the first task began, t=1)
        "RUNNING step 1/1 map 3/4 (running 1, failed 0) | 3,000 records, 3.0 MiB read, 341.3 KiB/s, "
        "333 records/s | elapsed 0:00:10",
        # t=12: every task done, the commit is pending: a new phase, at once
        "RUNNING commit | 4,000 records, 4.0 MiB read, 372.4 KiB/s, 364 records/s | elapsed 0:00:12",
        # t=14: a new state, at once
        "SUCCEEDED | 4,000 records, 4.0 MiB read, 315.1 KiB/s, 308 records/s | elapsed 0:00:14",
    ]


def test_wait_result_and_report_get_each_done_marker_once(s3, caplog):
    job = ScriptedJob(s3)
    gets = get_counter(s3)
    runner = JobRunner(Clients(s3), Stack())
    result = runner.wait(job.job_id, poll_interval=2, sleep=job.sleep, clock=job.clock)
    markers = {k: n for k, n in gets.items()
               if (p := protocol.parse_status_key(job.job_id, k)) and p.kind == "done"}
    assert len(markers) == 6 and set(markers.values()) == {1}  # was 2 each: result, then report
    assert result["counters"]["records_read"] == 4000 and result["counters"]["bytes_read"] == 4 * MIB
    report = s3.get_object(Bucket=DATA, Key=f"out/{job.job_id}/_report.html")["Body"].read().decode()
    assert "<svg" in report


def test_result_in_a_fresh_runner_reads_each_marker_once_for_itself_and_the_report(s3):
    job = ScriptedJob(s3)
    while job.script:
        job.sleep(2)
    gets = get_counter(s3)
    result = JobRunner(Clients(s3), Stack()).result(job.job_id)
    markers = [n for k, n in gets.items()
               if (p := protocol.parse_status_key(job.job_id, k)) and p.kind == "done"]
    assert result["status"] == protocol.SUCCEEDED
    assert len(markers) == 6 and set(markers) == {1}


def checked_runner(s3, monkeypatch):
    """A runner whose deadline checks are recorded (a scripted job has no coordinator)."""
    runner = JobRunner(Clients(s3), Stack())
    asked = []
    monkeypatch.setattr(runner, "check_deadlines", asked.append)
    return runner, asked


def test_wait_asks_the_coordinator_when_nothing_moves_and_logs_why(s3, caplog, monkeypatch):
    monkeypatch.setattr(watch, "STALL_NUDGE_S", -1.0)  # every poll counts as a stall
    monkeypatch.setattr(watch, "DEADLINE_CHECK_MIN_INTERVAL_S", -1.0)
    job = ScriptedJob(s3)
    caplog.set_level(logging.INFO, logger="airflow_provider_smr")
    runner, asked = checked_runner(s3, monkeypatch)
    runner.wait(job.job_id, poll_interval=2, sleep=job.sleep, clock=job.clock)
    assert asked == [job.job_id] * 7  # every poll but the last (t=14, SUCCEEDED)
    nudges = [r.getMessage() for r in caplog.records if "check deadlines" in r.getMessage()]
    assert nudges == [f"job {watch.job_label(job.job_id)}: asking the coordinator to check deadlines (no progress)"] * 7


def test_wait_asks_for_straggler_checks_of_a_speculating_job_quietly(s3, caplog, monkeypatch):
    monkeypatch.setattr(watch, "SPECULATION_CHECK_INTERVAL_S", -1.0)  # due at every poll
    job = ScriptedJob(s3, speculation=True)
    caplog.set_level(logging.INFO, logger="airflow_provider_smr")
    runner, asked = checked_runner(s3, monkeypatch)
    runner.wait(job.job_id, poll_interval=2, sleep=job.sleep, clock=job.clock)
    assert asked == [job.job_id] * 6  # while a step runs: not at t=12 (commit) nor t=14 (done)
    assert not [r for r in caplog.records if "check deadlines" in r.getMessage()]


def test_wait_times_out_naming_where_the_job_is(s3, monkeypatch):
    job = ScriptedJob(s3)
    runner, asked = checked_runner(s3, monkeypatch)
    with pytest.raises(JobTimeoutError, match=r"still RUNNING step 1/1 map 0/4 \(running 2, failed 0\) "
                                              r"after 0s; it keeps running"):
        runner.wait(job.job_id, poll_interval=2, sleep=job.sleep, clock=job.clock, timeout=0)
    assert asked == [] and job.now == T0  # gave up at the first poll, without sleeping


def test_wait_calls_on_progress_on_every_poll_instead_of_the_line(s3, caplog):
    job = ScriptedJob(s3)
    caplog.set_level(logging.INFO, logger="airflow_provider_smr")
    seen = []
    JobRunner(Clients(s3), Stack()).wait(
        job.job_id, poll_interval=2, sleep=job.sleep, clock=job.clock,
        on_progress=lambda status, tracker, now: seen.append((status.state, now - T0)))
    assert seen == [("RUNNING", t) for t in range(0, 14, 2)] + [("SUCCEEDED", 14)]
    assert progress_lines(caplog, job.job_id) == []


@pytest.mark.parametrize("job_id, label", [
    ("smr_word_count.count_words.manual__2026-01-01T00-00-00-00-00.ab34d5571a", "...ab34d5571a"),
    ("smr_word_count.count_words.manual__2026-01-01T00-00-00-00-00.ab34d5571a.2", "...ab34d5571a.2"),
    ("word_count-20260101T000000-995ceed3", "...995ceed3"),
    ("short-id", "short-id"),
])
def test_progress_lines_name_the_job_by_its_unique_tail(job_id, label):
    assert watch.job_label(job_id) == label


def test_wait_polls_tens_of_milliseconds_after_submit_and_backs_off_to_the_poll_interval(s3, monkeypatch):
    monkeypatch.setattr(watch, "FIRST_POLL_DELAY_S", 0.05)  # the real schedule, not two_second_polls
    job = ScriptedJob(s3)
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        job.sleep(seconds)

    result = JobRunner(Clients(s3), Stack()).wait(job.job_id, poll_interval=2, sleep=sleep, clock=job.clock)
    assert result["status"] == protocol.SUCCEEDED
    assert slept[:4] == pytest.approx([0.05, 0.075, 0.1125, 0.16875]) and max(slept) == 2
    assert job.now - T0 < 14 + 2  # committed at t=14: seen within one poll interval


def test_a_job_this_runner_just_submitted_is_first_polled_after_the_first_gap(s3, monkeypatch):
    from airflow_provider_smr.engine import runner as runner_module

    monkeypatch.setattr(watch, "FIRST_POLL_DELAY_S", 0.05)
    job = ScriptedJob(s3)
    events = []
    listing = runner_module.list_status
    monkeypatch.setattr(runner_module, "list_status", lambda *a: events.append("list") or listing(*a))

    def sleep(seconds):
        events.append(seconds)
        job.sleep(seconds)

    runner = JobRunner(Clients(s3), Stack())
    runner._written.add(job.job_id)  # as submit() records the jobs it writes
    assert runner.wait(job.job_id, poll_interval=2, sleep=sleep, clock=job.clock)["status"] == protocol.SUCCEEDED
    assert events[:3] == [0.05, "list", 0.05]  # nothing to list at once: its tasks are only starting
