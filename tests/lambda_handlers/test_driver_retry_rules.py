"""The pure rules for a serverless driver that died after its claim, and the waiter's limit."""

from __future__ import annotations

from airflow_provider_smr.engine.watch import DEADLINE_CHECK_MIN_INTERVAL_S, driver_wait_limit_s
from lambda_handlers import protocol
from lambda_handlers.driver import DriverVerdict, driver_verdict


def verdict(deadlines, now, requested_at=0.0, attempts=3):
    return driver_verdict(deadlines, requested_at, now, timeout_s=60, grace_s=30, max_attempts=attempts)


def test_a_live_driver_is_waited_for_until_its_deadline_and_grace():
    assert verdict({0: 100.0}, now=130.0) == DriverVerdict("wait", 0)


def test_a_driver_past_its_deadline_gets_the_next_attempt():
    assert verdict({0: 100.0}, now=130.5) == DriverVerdict("retry", 1)
    assert verdict({0: 100.0, 1: 200.0}, now=231.0) == DriverVerdict("retry", 2)


def test_the_last_attempt_dying_fails_the_job_with_the_count():
    v = verdict({0: 100.0, 1: 200.0, 2: 300.0}, now=331.0)
    assert (v.action, v.attempt) == ("fail", 2)
    assert "ended 3 time(s) without planning" in v.reason and "max_attempts=3" in v.reason


def test_a_drive_event_that_never_arrived_is_sent_again_after_a_timeout_and_grace():
    assert verdict({}, now=89.0, requested_at=0.0) == DriverVerdict("wait")
    assert verdict({}, now=91.0, requested_at=0.0) == DriverVerdict("retry", 0)


def test_drive_claims_name_their_attempt():
    assert [protocol.drive_claim(a) for a in range(3)] == ["drive", "drive-1", "drive-2"]
    assert [protocol.drive_attempt(n) for n in ["drive", "drive-2", "retry-drive-2", "map-0"]] == [
        0, 2, None, None]
    assert protocol.drive_event("smr-b", "j1", 2)["attempt"] == 2
    assert "attempt" not in protocol.drive_event("smr-b", "j1")


def test_the_waiter_follows_the_job_not_a_fixed_limit():
    short = driver_wait_limit_s(6, 3, 1)
    assert short == 6 + 3 + DEADLINE_CHECK_MIN_INTERVAL_S + 3
    assert driver_wait_limit_s(900, 30, 3) == 3 * (900 + 30 + DEADLINE_CHECK_MIN_INTERVAL_S) + 30 > 300


def test_a_retried_driver_invokes_only_the_map_tasks_not_started():
    from lambda_handlers.driver import fan_out_events

    events = fan_out_events("smr-b", "j1", 5, tasks=[1, 4])
    assert [(e["kind"], e["task"], e["attempt"]) for e in events] == [("map", 1, 0), ("map", 4, 0)]
    batched = fan_out_events("smr-b", "j1", 5000, threshold=2, batch=2, tasks=[7, 8, 9])
    assert [[t["task"] for t in e["tasks"]] for e in batched] == [[7, 8], [9]]
