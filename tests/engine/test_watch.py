"""Job status from one listing of the status prefix: states, per-phase progress, deadlines."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from airflow_provider_smr.engine import watch
from airflow_provider_smr.engine.watch import (
    NEEDS_ATTENTION,
    TIMED_OUT,
    ProgressTracker,
    WatchPolicy,
    WatchState,
    failure_message,
    list_status,
    status_from_listing,
    watch_step,
)
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from lambda_handlers.plan import Plan

DEADLINE_GRACE_S = JobOptions().deadline_grace_s

JOB = "job-1"
NOW = 1_000_000.0
PLAN_DOC = {"job_id": JOB, "limits": {"task_timeout_s": 60},
            "steps": [{"index": 0, "num_map_tasks": 3, "num_reducers": 2},
                      {"index": 1, "num_map_tasks": 2, "num_reducers": 1}]}
PLAN = Plan.from_json(PLAN_DOC)


def entry(key, age=0.0):
    when = dt.datetime.fromtimestamp(NOW - age, tz=dt.timezone.utc)
    return {"Key": key, "LastModified": when, "Size": 0}


def start(step, phase, task, attempt, age=0.0):
    return entry(protocol.start_marker_key(JOB, step, phase, task, attempt), age)


def done(step, phase, task):
    return entry(protocol.done_marker_key(JOB, step, phase, task))


def error(step, phase, task, attempt):
    return entry(protocol.error_marker_key(JOB, step, phase, task, attempt))


def test_nothing_listed_is_pending_at_step_zero_map():
    status = status_from_listing(PLAN, [], now=NOW)
    assert (status.state, status.step, status.phase) == ("PENDING", 0, "map")
    assert status.progress()["map"] == {"done": 0, "running": 0, "failed": 0, "total": 3}


def test_map_progress_counts_done_running_and_failed_tasks():
    listed = [start(0, "map", 0, 0), done(0, "map", 0),
              start(0, "map", 1, 0),
              start(0, "map", 2, 0), error(0, "map", 2, 0)]
    status = status_from_listing(PLAN, listed, now=NOW)
    assert status.state == "RUNNING" and status.attempts == 3
    assert status.progress()["map"] == {"done": 1, "running": 1, "failed": 1, "total": 3}
    assert status.describe() == "RUNNING step 1/2 map 1/3 (running 1, failed 1)"


def test_a_retried_attempt_that_started_counts_as_running_not_failed():
    listed = [start(0, "map", 2, 0), error(0, "map", 2, 0), start(0, "map", 2, 1)]
    p = status_from_listing(PLAN, listed, now=NOW).progress()["map"]
    assert (p["running"], p["failed"]) == (1, 0)


def test_a_task_done_by_an_earlier_attempt_is_done_even_if_a_duplicate_failed():
    listed = [start(0, "map", 0, 0), done(0, "map", 0), start(0, "map", 0, 1), error(0, "map", 0, 1)]
    p = status_from_listing(PLAN, listed, now=NOW).progress()["map"]
    assert (p["done"], p["running"], p["failed"]) == (1, 0, 0)


def test_phase_moves_to_reduce_then_next_step_then_commit():
    maps = [done(0, "map", t) for t in range(3)]
    assert status_from_listing(PLAN, maps, now=NOW).phase == "reduce"
    reduces = maps + [done(0, "reduce", t) for t in range(2)]
    status = status_from_listing(PLAN, reduces, now=NOW)
    assert (status.step, status.phase) == (1, "map")
    everything = reduces + [done(1, "map", 0), done(1, "map", 1), done(1, "reduce", 0)]
    status = status_from_listing(PLAN, everything, now=NOW)
    assert (status.state, status.step, status.phase) == ("RUNNING", None, "commit")


def test_terminal_marker_decides_the_state():
    listed = [done(0, "map", 0), entry(protocol.job_state_key(JOB, "FAILED"))]
    status = status_from_listing(PLAN, listed, now=NOW)
    assert status.state == "FAILED" and status.terminal and status.phase is None
    cancelled = status_from_listing(PLAN, [entry(protocol.job_state_key(JOB, "CANCELLED"))], now=NOW)
    assert cancelled.state == "CANCELLED"


def test_attempt_silent_past_timeout_plus_grace_is_overdue():
    late = 60 + DEADLINE_GRACE_S + 1
    listed = [start(0, "map", 0, 0, age=late), start(0, "map", 1, 0, age=late - 2),
              start(0, "map", 2, 0, age=late), done(0, "map", 2)]
    status = status_from_listing(PLAN, listed, now=NOW)
    assert status.overdue == [(0, "map", 0, 0)]
    assert status.needs_attention


def test_claims_are_reported_and_unknown_keys_ignored():
    listed = [entry(protocol.claim_key(JOB, "reduce-0")), entry(protocol.status_prefix(JOB) + "zzz/what"),
              entry("jobs/other-job/status/0/map/00000.json")]
    status = status_from_listing(PLAN, listed, now=NOW)
    assert status.claims == {"reduce-0"} and status.state == "RUNNING"
    assert status.progress()["map"]["done"] == 0


def test_status_dict_is_json_shaped():
    d = status_from_listing(PLAN, [done(0, "map", 1)], now=NOW).to_dict()
    assert set(d) >= {"job_id", "state", "phase", "progress", "error"}
    assert d["progress"]["steps"][1]["reduce"]["total"] == 1


def test_failure_message_names_cause_input_and_traceback():
    failed = {"job_id": JOB, "state": "FAILED", "reason": "map task 3 failed 3 times", "step": 0,
              "phase": "map", "task": 3, "attempt": 2,
              "error": {"error_type": "ValueError", "message": "bad line",
                        "traceback": "Traceback...\nValueError: bad line\n",
                        "input": {"bucket": "b", "key": "k.txt", "start": 0, "end": 64},
                        "record_preview": "oops"}}
    text = failure_message(failed)
    assert "job job-1 failed: map task 3 failed 3 times (step 0, map task 3 attempt 2)" in text
    assert "ValueError: bad line" in text and "s3://b/k.txt bytes 0-64" in text
    assert "record: oops" in text and "remote traceback:\nTraceback..." in text


def test_status_listing_is_paginated_past_one_thousand_markers(aws_clients, aws_endpoint):
    s3 = aws_clients(aws_endpoint).s3
    s3.create_bucket(Bucket="smr-work")
    keys = [protocol.done_marker_key(JOB, 0, protocol.MAP, i) for i in range(1105)]
    for key in keys:
        s3.put_object(Bucket="smr-work", Key=key, Body=b"{}")
    assert sorted(o["Key"] for o in list_status(s3, "smr-work", JOB)) == sorted(keys)


# -- the wait policy: watch_step, pure -------------------------------------------------------------

OVERDUE_AGE = 60 + DEADLINE_GRACE_S + 1
RUNNING = [start(0, "map", 0, 0), start(0, "map", 1, 0)]
OVERDUE = [start(0, "map", 0, 0, age=OVERDUE_AGE), start(0, "map", 1, 0)]


def status_of(listed):
    return status_from_listing(PLAN, listed, now=NOW)


def run_steps(policy, listed_at, times, state=None):
    """Step the watch at each monotonic time in ``times`` (``listed_at(t)`` is what the LIST shows);
    the wall clock reads the same. Return the steps."""
    tracker = ProgressTracker(PLAN, now=NOW)
    state = state or WatchState.begin(times[0])
    steps = []
    for t in times:
        step = watch_step(policy, state, status_of(listed_at(t)), tracker, now=t, wall=NOW + t)
        steps.append(step)
        state = step.state
    return steps


def checks(steps):
    return [(s.check_deadlines, s.check_reason) for s in steps]


@pytest.mark.parametrize("state", [protocol.SUCCEEDED, protocol.FAILED, protocol.CANCELLED])
def test_a_terminal_state_ends_the_watch_with_a_line_and_no_check(state):
    policy = WatchPolicy(speculation=True)
    (step,) = run_steps(policy, lambda t: OVERDUE + [entry(protocol.job_state_key(JOB, state))], [100])
    assert step.outcome == state and step.line.startswith(state)
    assert not step.check_deadlines


def test_overdue_tasks_ask_for_a_deadline_check_at_most_every_ten_seconds():
    steps = run_steps(WatchPolicy(), lambda t: OVERDUE, [0, 5, 10, 10.5, 15, 21])
    assert checks(steps) == [(True, "1 overdue attempts"), (False, None), (False, None),
                             (True, "1 overdue attempts"), (False, None), (True, "1 overdue attempts")]
    assert all(s.outcome is None for s in steps)


def test_overdue_tasks_end_a_deferring_watch_with_needs_attention_at_once():
    policy = WatchPolicy(defer_attention=True)
    (step,) = run_steps(policy, lambda t: OVERDUE, [0], state=WatchState.begin(0, just_checked=True))
    assert step.outcome == NEEDS_ATTENTION and not step.check_deadlines


def test_no_change_for_a_minute_nudges_the_coordinator_once_a_minute():
    times = [0, 30, 60, 61, 62, 100, 121, 122]
    steps = run_steps(WatchPolicy(), lambda t: RUNNING, times)
    assert [t for t, s in zip(times, steps, strict=True) if s.check_deadlines] == [61, 122]
    assert {s.check_reason for s in steps if s.check_deadlines} == {"no progress"}


def test_progress_puts_the_stall_nudge_off():
    growing = lambda t: RUNNING + [done(0, "map", 2)] * (t >= 50)  # noqa: E731
    steps = run_steps(WatchPolicy(), growing, [0, 50, 100, 111])
    assert [s.check_deadlines for s in steps] == [False, False, False, True]


def test_speculation_asks_for_a_straggler_check_every_three_seconds_without_a_log_reason():
    steps = run_steps(WatchPolicy(speculation=True), lambda t: RUNNING, [0, 2, 3.5, 5, 6.6, 7])
    assert checks(steps) == [(True, None), (False, None), (True, None), (False, None), (True, None),
                             (False, None)]


def test_speculation_waits_a_full_interval_after_a_check_just_made():
    state = WatchState.begin(0, just_checked=True)
    steps = run_steps(WatchPolicy(speculation=True), lambda t: RUNNING, [0, 3, 3.1], state=state)
    assert [s.check_deadlines for s in steps] == [False, False, True]


def test_no_straggler_check_without_speculation_or_once_every_task_is_done():
    assert not any(s.check_deadlines for s in run_steps(WatchPolicy(), lambda t: RUNNING, [0, 4, 8]))
    every_task = ([done(0, "map", t) for t in range(3)] + [done(0, "reduce", t) for t in range(2)]
                  + [done(1, "map", t) for t in range(2)] + [done(1, "reduce", 0)])
    steps = run_steps(WatchPolicy(speculation=True), lambda t: every_task, [0, 4, 8])
    assert status_of(every_task).step is None and not any(s.check_deadlines for s in steps)


def test_overdue_or_stalled_jobs_get_the_rate_limited_check_not_the_straggler_check():
    steps = run_steps(WatchPolicy(speculation=True), lambda t: OVERDUE, [0, 4, 8, 10.5])
    assert checks(steps) == [(True, "1 overdue attempts"), (False, None), (False, None),
                             (True, "1 overdue attempts")]


def test_the_timeout_ends_the_watch_after_this_polls_check():
    steps = run_steps(WatchPolicy(timeout=30), lambda t: OVERDUE, [0, 5, 30.5])
    assert [s.outcome for s in steps] == [None, None, TIMED_OUT]
    assert steps[2].check_deadlines  # asked before giving up, as the job keeps running


def test_a_step_leaves_the_state_it_was_given_unchanged():
    state = WatchState.begin(0)
    step = watch_step(WatchPolicy(), state, status_of(OVERDUE), ProgressTracker(PLAN), now=1, wall=NOW)
    assert state == WatchState.begin(0) and step.state != state
    with pytest.raises(AttributeError):
        state.last_check = 5  # frozen


def test_policy_reads_speculation_from_the_plan():
    assert WatchPolicy.for_plan(Plan.from_json({**PLAN_DOC, "options": {"speculation": True}})).speculation
    assert WatchPolicy.for_plan(PLAN, defer_attention=True, timeout=5) == WatchPolicy(False, True, 5)


def test_policy_constants_are_the_documented_intervals():
    assert (watch.PROGRESS_LOG_INTERVAL_S, watch.DEADLINE_CHECK_MIN_INTERVAL_S, watch.STALL_NUDGE_S,
            watch.SPECULATION_CHECK_INTERVAL_S) == (10.0, 10.0, 60.0, 3.0)


# -- adaptive polling: poll_delay and the gap watch_step asks for ------------------------------------


def test_polls_start_tens_of_milliseconds_apart_and_back_off_to_the_waiter_delay():
    delays, previous = [], None
    for _ in range(16):
        previous = watch.poll_delay(5.0, previous)
        delays.append(previous)
    assert delays[0] == watch.FIRST_POLL_DELAY_S == 0.025 and delays[-1] == 5.0
    assert all(b == pytest.approx(min(5.0, a * 1.5)) for a, b in zip(delays, delays[1:], strict=False))
    assert watch.poll_delay(0.01, None) == 0.01  # never longer than the waiter delay


def test_a_poll_comes_when_the_running_tasks_are_due_but_not_sooner_than_the_first_gap():
    assert watch.poll_delay(5.0, 4.0, due_in=1.5) == 1.5
    assert watch.poll_delay(5.0, 4.0, due_in=0.001) == watch.FIRST_POLL_DELAY_S
    assert watch.poll_delay(5.0, 4.0, due_in=-2.0) == 5.0  # past due: the backoff goes on
    assert watch.poll_delay(5.0, 0.1, due_in=3.0) == pytest.approx(0.15)  # the backoff is sooner


def test_watch_steps_back_off_and_start_over_when_the_phase_changes():
    reduce_running = [done(0, "map", t) for t in range(3)] + [start(0, "reduce", 0, 0)]
    phases = lambda t: RUNNING if t < 1 else reduce_running  # noqa: E731
    steps = run_steps(WatchPolicy(waiter_delay=2.0), phases, [0, 0.05, 0.15, 0.35, 0.75, 1.55, 3.55])
    assert [s.delay for s in steps] == pytest.approx([0.025, 0.0375, 0.05625, 0.084375, 0.1265625, 0.025, 0.0375])


def test_the_commit_phase_is_polled_sooner_then_backs_off_as_any_phase():
    all_done = ([done(0, "map", t) for t in range(3)] + [done(0, "reduce", r) for r in range(2)]
                + [done(1, "map", t) for t in range(2)] + [done(1, "reduce", 0)])
    assert status_of(all_done).phase == "commit"
    phases = lambda t: RUNNING if t < 0.1 else all_done  # noqa: E731
    steps = run_steps(WatchPolicy(waiter_delay=2.0), phases, [0, 0.05, 0.15, 0.2, 0.25])
    assert [s.delay for s in steps] == pytest.approx([0.025, 0.0375, 0.015, 0.0225, 0.03375])
    assert watch.poll_delay(5.0, None, first=watch.COMMIT_POLL_DELAY_S) == watch.COMMIT_POLL_DELAY_S


def test_watch_step_polls_when_the_phases_tasks_are_due_from_the_finished_ones_durations():
    tracker = ProgressTracker(PLAN, now=NOW)
    tracker.ingest({protocol.done_marker_key(JOB, 0, "map", 0): {"step": 0, "phase": "map", "duration_s": 4.0}})
    # task 1 started 1 s ago (its start marker's LastModified) and task 0 took 4 s: due in 3 s
    listed = [start(0, "map", 0, 0, age=5), done(0, "map", 0), start(0, "map", 1, 0, age=1)]
    state = dataclasses.replace(WatchState.begin(0), polled_phase=("RUNNING", 0, "map"), delay=4.0)
    step = watch_step(WatchPolicy(waiter_delay=10.0), state, status_of(listed), tracker, now=1, wall=NOW)
    assert step.delay == pytest.approx(3.0)


def test_the_wait_limit_is_waiter_delay_times_attempts_in_seconds_not_a_count_of_polls():
    policy = WatchPolicy(waiter_delay=5.0, timeout=watch.waiter_timeout_s(5.0, 2))
    times = [0, 0.05, 0.15, 0.35, 0.75, 1.55, 3.15, 6.35, 9.9]  # nine polls in 10 s: not timed out
    assert [s.outcome for s in run_steps(policy, lambda t: RUNNING, times)] == [None] * len(times)
    assert run_steps(policy, lambda t: RUNNING, [0, 10.5])[-1].outcome == TIMED_OUT


def _body(step, phase, duration):
    return {"step": step, "phase": phase, "duration_s": duration}


def test_a_phase_with_no_finished_task_is_due_after_the_phase_befores_median_duration():
    tracker = ProgressTracker(PLAN, now=NOW)
    tracker.ingest({protocol.done_marker_key(JOB, 0, "map", t): _body(0, "map", d)
                    for t, d in enumerate((1.0, 3.0, 2.0))})
    listed = ([start(0, "map", t, 0, age=9) for t in range(3)] + [done(0, "map", t) for t in range(3)]
              + [start(0, "reduce", r, 0, age=0.5) for r in range(2)])
    status = status_of(listed)
    assert status.phase == "reduce"
    assert tracker.phase_due(status) == pytest.approx(NOW - 0.5 + 2.0)  # the latest start + 2 s
    assert ProgressTracker(PLAN, now=NOW).phase_due(status_of(RUNNING)) is None  # the first phase


def test_a_start_marker_first_listed_after_a_poll_began_after_that_poll():
    """A listing's LastModified has whole seconds: a marker the previous poll did not list was
    written after it, which places the attempt's start closer than the second."""
    tracker = ProgressTracker(PLAN, now=NOW)
    tracker.ingest({protocol.done_marker_key(JOB, 0, "map", 0): _body(0, "map", 4.0)})
    first = [start(0, "map", 0, 0, age=5), done(0, "map", 0)]
    tracker.observe(status_of(first), NOW - 0.3)
    listed = first + [start(0, "map", 1, 0, age=1)]  # LastModified 1 s ago, unseen 0.3 s ago
    status = status_of(listed)
    tracker.observe(status, NOW)
    assert tracker.phase_due(status) == pytest.approx(NOW - 0.3 + 4.0)
    tracker.observe(status, NOW + 1)  # seen again: the estimate stays
    assert tracker.phase_due(status) == pytest.approx(NOW - 0.3 + 4.0)
    retried = first + [start(0, "map", 1, 0, age=1), error(0, "map", 1, 0), start(0, "map", 1, 1, age=-2)]
    tracker.observe(status_of(retried), NOW + 2.5)  # a new attempt, listed 2 s from now, seen at 2.5
    assert tracker.phase_due(status_of(retried)) == pytest.approx(NOW + 2 + 4.0)


def test_polls_start_over_once_when_the_jobs_last_tasks_are_due_and_still_run():
    before_last = ([start(0, "map", t, 0, age=9) for t in range(3)] + [done(0, "map", t) for t in range(3)]
                   + [start(0, "reduce", r, 0, age=9) for r in range(2)] + [done(0, "reduce", r) for r in range(2)])
    listed = before_last + [start(1, "map", t, 0, age=2) for t in range(2)] + [done(1, "map", 0)]
    last = listed + [done(1, "map", 1), start(1, "reduce", 0, 0, age=2)]
    policy = WatchPolicy(waiter_delay=2.0)

    def delays(listed, phase):
        tracker = ProgressTracker(PLAN, now=NOW)
        tracker.ingest({protocol.done_marker_key(JOB, 1, "map", 0): _body(1, "map", 1.0),
                        protocol.done_marker_key(JOB, 1, "reduce", 0): _body(1, "reduce", 1.0)})
        state = dataclasses.replace(WatchState.begin(0), polled_phase=("RUNNING", 1, phase), delay=1.0)
        out = []
        for t in (0.0, 0.05, 0.5):  # the running task was due 1 s ago (started 2 s ago, took 1 s)
            step = watch_step(policy, state, status_of(listed), tracker, now=t, wall=NOW + t)
            out.append(step.delay)
            state = step.state
        return out

    assert status_of(last).phase == "reduce" and status_of(listed).phase == "map"
    assert delays(last, "reduce") == pytest.approx([0.025, 0.0375, 0.05625])  # once, then backs off
    assert delays(listed, "map") == pytest.approx([1.5, 2.0, 2.0])  # not the last phase: backs off


def test_polls_start_over_each_time_half_of_the_jobs_last_tasks_have_finished():
    """A last wave of reducers sharing fewer cores finishes long before the first wave's durations
    say: the watch polls soon again when half the unfinished tasks are done, not waiter_delay later."""
    plan = Plan.from_json({**PLAN_DOC, "steps": [{"index": 0, "num_map_tasks": 1, "num_reducers": 6}]})
    maps = [start(0, "map", 0, 0, age=20), done(0, "map", 0)]
    first_wave = maps + [start(0, "reduce", r, 0, age=5) for r in range(4)]
    halved = first_wave + [done(0, "reduce", r) for r in range(3)] + [start(0, "reduce", r, 0) for r in (4, 5)]
    last = halved + [done(0, "reduce", 3), done(0, "reduce", 4)]
    tracker = ProgressTracker(plan, now=NOW)
    tracker.ingest({protocol.done_marker_key(JOB, 0, "reduce", r): _body(0, "reduce", 10.0) for r in range(3)})
    policy, state = WatchPolicy(waiter_delay=0.5), WatchState.begin(0)
    delays = []
    polls = [(t / 10, first_wave) for t in range(10)] + [(1.0, halved), (1.1, halved), (1.2, last), (1.3, last)]
    for t, listed in polls:
        step = watch_step(policy, state, status_from_listing(plan, listed, now=NOW + t), tracker, now=t,
                          wall=NOW + t)
        delays.append(step.delay)
        state = step.state
    backing_off = [min(0.025 * 1.5**k, 0.5) for k in range(10)]
    assert backing_off[-1] == 0.5  # the reducers are due 5 s and 10 s after they started: not yet
    assert delays == pytest.approx(backing_off + [0.025, 0.0375, 0.025, 0.0375])  # 6 left, 3, then 1
