"""The soak's pure parts: references, the stack's baseline rule, the faults a parameter plans."""

from __future__ import annotations

from bench.soak import reference, usage_problem
from bench.soak_jobs import _unit

BASE = {"server_rss_mib": 200, "server_fds": 80, "workers": 10, "worker_rss_mib": 600, "max_worker_fds": 13}


def test_references_of_each_kind_of_job():
    lines = ["b a b", "a", ""]
    assert reference("wc-s3", lines) == reference("wc-ddb", lines) == {"a": 2, "b": 2}
    assert reference("maponly-s3", lines) == [["a", 1], ["b", 3]]
    assert reference("two-step-s3", ["b a b", "c"]) == {1: ["a", "c"], 2: ["b"]}


def test_the_stack_is_back_at_its_baseline_unless_something_grew():
    assert usage_problem(BASE, dict(BASE), max_workers=12) is None
    assert usage_problem(BASE, {**BASE, "workers": 12, "server_fds": 102}, max_workers=12) is None
    assert "descriptors" in usage_problem(BASE, {**BASE, "server_fds": 120}, max_workers=12)
    assert "MiB" in usage_problem(BASE, {**BASE, "server_rss_mib": 400}, max_workers=12)
    assert "worker processes" in usage_problem(BASE, {**BASE, "workers": 20}, max_workers=12)
    assert "a worker holds" in usage_problem(BASE, {**BASE, "max_worker_fds": 90}, max_workers=12)


def test_planned_crashes_are_a_stable_share_of_the_attempts():
    draws = [_unit("tag", [0, "map", t], a) for t in range(2000) for a in range(2)]
    assert draws == [_unit("tag", [0, "map", t], a) for t in range(2000) for a in range(2)]
    assert 0.04 < sum(d < 0.05 for d in draws) / len(draws) < 0.06
