"""Request cost of a job's data plane, counted by kind: the shuffle's PUT budget and the coordinator.

The job runs in-process through the real handlers, one event at a time, so every S3 request is
attributed to the function that made it. Two delivery orders: each task's done notification right
after the task ("in order"), and every notification only after all tasks of the phase finished
("late", the worst case for the tally tree: every caller sees its group complete).
"""

from __future__ import annotations

import collections
import re

import pytest

from airflow_provider_smr.cost import shuffle_put_budget
from lambda_handlers import protocol, runtime
from lambda_handlers.jobspec import JobSpec, StepSpec
from lambda_handlers.plan import Plan
from tests.lambda_handlers.conftest import FUNCTIONS

M, R = 30, 3


def words(line):
    for w in line.split():
        yield w, 1


def total(k, vs):
    yield k, sum(vs)


def kind_of(job_id: str, key: str) -> str:
    """What a written key is: map/reduce data, a part, a task marker, a tally, a claim, job-level."""
    rest = key[len(protocol.job_prefix(job_id)):] if key.startswith(protocol.job_prefix(job_id)) else None
    if rest is None:
        return "output"  # the committed output (copies and _SUCCESS)
    if re.fullmatch(r"(map|reduce)/\d+/\d+\.\d+\.data", rest) or rest.startswith("parts/"):
        return "data"
    if rest.startswith("tally/"):
        return "tally"
    if rest.startswith("status/claims/"):
        return "claim"
    parsed = protocol.parse_status_key(job_id, key)
    if parsed is not None and parsed.kind in ("done", "start"):
        return f"{parsed.phase}-{parsed.kind}"
    return "job"  # plan, job.pkl, manifest, done.json, job state


def run_counting(harness, order: str) -> tuple[dict, collections.Counter, collections.Counter]:
    lines = b"".join(b"w%d x\n" % (i % 7) for i in range(M))
    objs = [harness.put(f"reqs/{order}.txt", lines)]
    splits = harness.splits(objs, len(lines) // M)
    assert len(splits) == M
    plan = harness.submit(JobSpec(steps=[StepSpec(mapper=words, combiner=total, reducer=total)]),
                          splits, [R])
    job_id = plan["job_id"]
    current = {"fn": "setup"}
    puts: collections.Counter = collections.Counter()
    requests: collections.Counter = collections.Counter()

    def count(model=None, params=None, **_kw):
        requests[(current["fn"], model.name)] += 1
        if model.name in ("PutObject", "CopyObject"):
            puts[(current["fn"], kind_of(job_id, params["Key"]))] += 1
        if model.name == "ListObjectsV2" and params["Prefix"] == protocol.status_prefix(job_id):
            puts[(current["fn"], "full status LIST")] += 1

    s3 = runtime.s3()
    s3.meta.events.register("before-parameter-build.s3", count)
    queue: collections.deque = collections.deque()
    runtime.set_invoker(lambda name, ev: queue.append((name, ev)))
    queue.extend((runtime.function_for(e["kind"]), e) for e in plan["events"])
    try:
        while queue:
            name, ev = queue.pop() if order == "in order" else queue.popleft()
            current["fn"] = ev["kind"]
            FUNCTIONS[name](ev)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3", count)
        runtime.set_invoker(None)
    assert harness.state(job_id) == ["SUCCEEDED"]
    return plan, puts, requests


@pytest.mark.parametrize("order", ["in order", "late"])
def test_a_step_writes_within_the_shuffle_put_budget_and_the_coordinator_stays_cheap(harness, order):
    plan, puts, requests = run_counting(harness, order)
    by_kind = collections.Counter()
    for (_fn, kind), n in puts.items():
        by_kind[kind] += n
    assert by_kind["data"] == M + R  # one shuffle object per map task, one part per reducer
    shuffle_puts = by_kind["data"] + by_kind["reduce-done"] + by_kind["claim"] + by_kind["job"]
    assert shuffle_puts <= shuffle_put_budget(M, R)
    coordinator = {op: n for (fn, op), n in requests.items() if fn == "coordinate"}
    calls = M + R
    # tallies (~1 per 9 tasks: each group's last finisher only, even when every caller is late),
    # claims, manifest, commit: never one PUT per notification
    assert coordinator["PutObject"] <= calls / 9 + 10, coordinator
    # one small LIST per notification (+ one a level for the climbers), never the whole status/
    assert coordinator.get("ListObjectsV2", 0) <= calls * 1.15 + 5, coordinator
    assert by_kind["full status LIST"] == 0
    # the map manifest and the commit read the root tallies, not every done marker again
    assert coordinator["GetObject"] <= calls * 1.2 + 5, coordinator
    assert coordinator.get("CopyObject", 0) == R


def test_the_root_tally_lists_the_phase_and_a_lost_climb_falls_back_to_the_markers(harness):
    import json

    from lambda_handlers import coordinator

    s3, bucket, job_id, n = harness.s3, "smr-work-test", "tally-summaries", 23
    plan = Plan.from_json({"job_id": job_id, "steps": [{"index": 0, "num_map_tasks": n, "num_reducers": 1}]})
    for t in reversed(range(n)):
        body = {"task": t, "output_key": f"k{t}", "index": [0, t], "duration_s": 1.5, "requests": {}}
        s3.put_object(Bucket=bucket, Key=protocol.done_marker_key(job_id, 0, "map", t), Body=json.dumps(body))
        coordinator.phase_complete(bucket, job_id, plan, 0, "map", t)
    expected = [{"task": t, "output_key": f"k{t}", "index": [0, t]} for t in range(n)]
    root = protocol.tally_key(job_id, 0, "map", 2, 0)
    assert json.loads(s3.get_object(Bucket=bucket, Key=root)["Body"].read()) == expected
    assert coordinator.phase_summaries(bucket, job_id, plan, 0, "map") == expected
    s3.delete_object(Bucket=bucket, Key=root)
    assert coordinator.phase_summaries(bucket, job_id, plan, 0, "map") == expected
