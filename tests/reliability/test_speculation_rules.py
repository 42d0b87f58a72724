"""The coordinator's straggler rule (pure): when a backup attempt is due, and when it is not."""

from __future__ import annotations

import pytest

from lambda_handlers import coordinator, protocol
from lambda_handlers.plan import Plan

JOB = "spec-job"
T0 = 1_000_000.0


def plan(speculation: bool = True, threshold: float = 3.0, max_attempts: int = 3) -> Plan:
    return Plan.from_json({"job_id": JOB, "steps": [{"index": 0, "num_map_tasks": 4, "num_reducers": 1}],
            "options": {"max_attempts": max_attempts, "speculation": speculation,
                        "speculation_threshold": threshold, "deadline_grace_s": 30},
            "limits": {"task_timeout_s": 300}})


def state(done: int = 3, started: dict[int, float] | None = None, errors: set[int] = frozenset()):
    st = coordinator.JobState()
    st.claims["map-0"] = T0
    for t in range(done):
        st.starts[(0, protocol.MAP, t)][0] = T0
        st.done[(0, protocol.MAP)].add(t)
        st.done_at[(0, protocol.MAP, t)] = T0 + 2.0  # median task: 2 s
    for attempt, at in (started or {0: T0}).items():
        st.starts[(0, protocol.MAP, 3)][attempt] = at
    for attempt in errors:
        st.errors[(0, protocol.MAP, 3)].add(attempt)
    return st


def specs(actions):
    return [a for a in actions if a.kind == "speculate"]


def test_a_task_slower_than_threshold_times_the_median_gets_one_backup():
    actions = coordinator.decide(plan(), state(), T0 + 6.5, check_deadlines=True)
    assert specs(actions) == [coordinator.Action("speculate", 0, protocol.MAP, 3, 1)]


@pytest.mark.parametrize("why, p, st, now, check", [
    ("not slow enough yet", plan(), state(), T0 + 5.5, True),
    ("speculation off", plan(speculation=False), state(), T0 + 100, True),
    ("only a done notification", plan(), state(), T0 + 100, False),
    ("fewer than half of the tasks finished", plan(), state(done=1), T0 + 100, True),
    ("a backup already runs", plan(), state(started={0: T0, 1: T0 + 7}), T0 + 100, True),
    ("no attempt left", plan(max_attempts=1), state(), T0 + 100, True),
])
def test_no_backup(why, p, st, now, check):
    assert specs(coordinator.decide(p, st, now, check_deadlines=check)) == [], why


def test_a_retry_after_a_failure_may_still_get_a_backup():
    st = state(started={0: T0, 1: T0 + 1}, errors={0})
    assert specs(coordinator.decide(plan(), st, T0 + 10, check_deadlines=True)) == [
        coordinator.Action("speculate", 0, protocol.MAP, 3, 2)]

