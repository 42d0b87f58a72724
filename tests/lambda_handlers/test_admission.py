"""Admission: ``max_running_tasks`` per job and a stack-wide budget, enforced by the coordinator.

The end-to-end tests run real jobs on the local stack and measure what ran at once from the
tasks' own start and finish times (their done markers), never from durations.
"""

from __future__ import annotations

import collections
import json
import time
import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import admission, protocol
from lambda_handlers.coordinator import JobState
from lambda_handlers.options import JobOptions, OptionError, TaskLimits
from lambda_handlers.plan import OutputPlan, Plan, StepPlan

DATA = "smr-admission-data"
POLL = 0.25
TIMEOUT = 300

pytestmark = pytest.mark.timeout(900)


# ---------------------------------------------------------------------------------------------
# The job: each map task takes a moment, so uncapped tasks would overlap


def slow_words(line):
    time.sleep(0.005)
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


SLOW_COUNT = MapReduceJob(mapper=slow_words, combiner=total, reducer=total, name="slow-count")


def text(seed: int, lines: int) -> str:
    words = [f"w{(seed * 7 + i * 13) % 97}" for i in range(lines * 3)]
    return "".join(" ".join(words[i * 3:i * 3 + 3]) + "\n" for i in range(lines))


def expected_counts(body: str) -> dict[str, int]:
    return dict(collections.Counter(body.split()))


def output_counts(s3, result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines():
            record = json.loads(line)
            counts[record["key"]] = record["value"]
    return counts


def task_intervals(s3, bucket: str, job_id: str) -> list[tuple[float, float]]:
    """(started, finished) of every task of the job, from its done markers."""
    intervals = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                             Prefix=protocol.status_prefix(job_id)):
        for obj in page.get("Contents", []):
            k = protocol.parse_status_key(job_id, obj["Key"])
            if k is not None and k.kind == "done":
                marker = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                intervals.append((marker["started"], marker["finished"]))
    return intervals


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def put_input(s3, splits: int) -> tuple[str, str]:
    """One object of ``splits`` KiB-sized pieces; its URI and its text."""
    prefix = f"in/{uuid.uuid4().hex[:8]}/"
    body = "".join(text(i, 90) for i in range(splits))
    s3.put_object(Bucket=DATA, Key=prefix + "words.txt", Body=body.encode())
    return f"s3://{DATA}/{prefix}", body


@pytest.fixture(scope="module")
def capped(deploy_engine):
    return deploy_engine("smr-admission", input_buckets=[DATA])


@pytest.fixture(scope="module")
def budgeted(deploy_engine):
    return deploy_engine("smr-budget", input_buckets=[DATA], stack_max_running_tasks=3)


# ---------------------------------------------------------------------------------------------
# End to end


def test_max_running_tasks_caps_functions_running_at_once(capped):
    uri, body = put_input(capped.s3, 40)
    runner = capped.runner
    output = f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"
    job_id = runner.submit(SLOW_COUNT, input=uri, output=output,
                           options=JobOptions(split_size="1KiB", num_reducers=3, max_running_tasks=3))
    plan = runner.plan(job_id)
    assert plan.steps[0].num_map_tasks >= 40
    result = runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)

    assert output_counts(capped.s3, result) == expected_counts(body)
    intervals = task_intervals(capped.s3, runner.bucket, job_id)
    assert len(intervals) == plan.steps[0].num_map_tasks + 3
    assert most_at_once(intervals) <= 3
    listed = capped.s3.list_objects_v2(Bucket=runner.bucket, Prefix=protocol.job_slots_prefix(job_id))
    slots = {protocol.parse_slot_key(protocol.job_slots_prefix(job_id), o["Key"])[0]
             for o in listed.get("Contents", [])}
    assert slots <= {0, 1, 2}


def test_the_serverless_driver_hands_a_capped_job_to_the_coordinator(capped):
    uri, body = put_input(capped.s3, 10)
    output = f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"
    result = capped.runner.run(SLOW_COUNT, input=uri, output=output, poll_interval=POLL, timeout=TIMEOUT,
                               options=JobOptions(split_size="1KiB", num_reducers=1, max_running_tasks=2,
                                                  driver="lambda"))
    assert output_counts(capped.s3, result) == expected_counts(body)
    assert most_at_once(task_intervals(capped.s3, capped.runner.bucket, result["job_id"])) <= 2


def test_jobs_share_a_stack_budget_and_neither_starves(budgeted):
    runner = budgeted.runner
    assert budgeted.stack.max_running_tasks == 3
    jobs = []
    for _ in range(2):
        uri, body = put_input(budgeted.s3, 20)
        output = f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"
        job_id = runner.submit(SLOW_COUNT, input=uri, output=output,
                               options=JobOptions(split_size="1KiB", num_reducers=2))
        jobs.append((job_id, body))
    results = [runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT) for job_id, _ in jobs]

    for result, (_, body) in zip(results, jobs, strict=True):
        assert output_counts(budgeted.s3, result) == expected_counts(body)
    first, second = (task_intervals(budgeted.s3, runner.bucket, job_id) for job_id, _ in jobs)
    assert most_at_once(first + second) <= 3
    # Neither waited for the other to finish: each started a task before the other's last ended.
    assert min(s for s, _ in second) < max(e for _, e in first)
    assert min(s for s, _ in first) < max(e for _, e in second)
    leftover = budgeted.s3.list_objects_v2(Bucket=runner.bucket, Prefix=protocol.stack_demand_prefix())
    assert leftover.get("KeyCount", 0) == 0  # no job is left announcing demand


# ---------------------------------------------------------------------------------------------
# The pure parts


def _plan(maps: int, reducers: int, **options) -> Plan:
    return Plan(job_id="j", steps=(StepPlan(0, maps, reducers),),
                output=OutputPlan("s3://b/o/", "b", "o/", "jsonl"), options=JobOptions(**options),
                limits=TaskLimits())


def test_waiting_lists_retries_first_then_open_phases_in_task_order():
    plan = _plan(3, 2, max_running_tasks=2)
    st = JobState()
    st.done[(0, "map")].add(1)
    st.claims[protocol.admit_claim(0, "map", 0, 0)] = 1.0
    st.claims[protocol.retry_claim(0, "map", 0, 1)] = 2.0
    assert admission.waiting(plan, st) == [admission.Attempt(0, "map", 0, 1), admission.Attempt(0, "map", 2, 0)]
    st.claims["reduce-0"] = 3.0
    assert admission.Attempt(0, "reduce", 1, 0) in admission.waiting(plan, st)


def test_a_slot_is_free_only_when_its_latest_generation_says_so():
    prefix = protocol.job_slots_prefix("j")
    objects = [{"Key": protocol.slot_key(prefix, 0, 0)}, {"Key": protocol.slot_key(prefix, 0, 0) + ".free"},
               {"Key": protocol.slot_key(prefix, 0, 1)},  # slot 0: held by generation 1
               {"Key": protocol.slot_key(prefix, 1, 4)}, {"Key": protocol.slot_key(prefix, 1, 4) + ".free"}]
    pool = admission.Pool.listed(prefix, 3, objects, now=100.0, keep_s=10.0)
    assert sorted(pool.free) == [protocol.slot_key(prefix, 1, 5), protocol.slot_key(prefix, 2, 0)]
    # generation 0 of slot 0 is superseded; with no time on it, it may go
    assert set(pool.stale) == {protocol.slot_key(prefix, 0, 0), protocol.slot_key(prefix, 0, 0) + ".free"}


def test_max_running_tasks_must_be_a_positive_whole_number():
    with pytest.raises(OptionError, match="max_running_tasks"):
        JobOptions(max_running_tasks=0)
    assert JobOptions(max_running_tasks="3").max_running_tasks == 3


def test_task_events_only_carry_the_jobs_own_or_the_stacks_slots():
    own = protocol.slot_key(protocol.job_slots_prefix("j"), 0, 0)
    stack = protocol.slot_key(protocol.stack_slots_prefix(), 1, 2)
    assert protocol.task_event("map", "bkt", "j", 0, 0, 0, [own, stack])["slots"] == [own, stack]
    with pytest.raises(protocol.ProtocolError, match="slots"):
        protocol.task_event("map", "bkt", "j", 0, 0, 0, [protocol.slot_key(protocol.job_slots_prefix("k"), 0, 0)])
    with pytest.raises(protocol.ProtocolError, match="slots"):
        protocol.task_event("map", "bkt", "j", 0, 0, 0, ["jobs/j/plan.json"])


# ---------------------------------------------------------------------------------------------
# In process, every event delivered twice and run concurrently (tests/lambda_handlers/conftest.py)

FAILS_ONCE: collections.Counter = collections.Counter()


def words_failing_once(line):
    """Each split's first line "boom" fails its task's first attempt."""
    if line == "boom":
        FAILS_ONCE[line] += 1
        if FAILS_ONCE[line] == 1:
            raise RuntimeError("transient")
    time.sleep(0.002)
    for word in line.split():
        yield word, 1


def test_duplicated_concurrent_calls_never_admit_past_the_cap(harness, chain):
    from lambda_handlers.jobspec import JobSpec, StepSpec

    FAILS_ONCE.clear()
    body = "boom\n" + "".join(text(i, 20) for i in range(12))
    objs = [harness.put(f"admission/{uuid.uuid4().hex[:8]}.txt", body.encode())]
    spec = JobSpec(steps=[StepSpec(mapper=words_failing_once, combiner=total, reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 200), [3], max_running_tasks=2)
    job_id = plan["job_id"]
    runner = chain(duplicate=True, workers=6)
    runner.run([protocol.coordinate_event(plan["work_bucket"], job_id, admission.ADMIT)])

    lines, _ = harness.output(plan)
    counts = {json.loads(line)["key"]: json.loads(line)["value"] for line in lines}
    assert counts == expected_counts(body)
    ran = collections.Counter((e["kind"], e["step"], e["task"], e["attempt"]) for e, r in runner.results
                              if e["kind"] in ("map", "reduce") and not r.get("duplicate"))
    assert ran[("map", 0, 0, 1)] == 1  # the failed first attempt was retried, through admission
    assert max(ran.values()) == 1  # every attempt ran once although every event came twice
    assert len(ran) == len(plan["splits"]) + 3 + 1
    assert most_at_once(task_intervals(harness.s3, plan["work_bucket"], job_id)) <= 2


def test_two_jobs_share_a_stack_budget_under_duplicated_concurrent_calls(harness, chain):
    from lambda_handlers.jobspec import JobSpec, StepSpec

    spec = JobSpec(steps=[StepSpec(mapper=slow_words, combiner=total, reducer=total)])
    plans, bodies = [], []
    for seed in range(2):
        body = "".join(text(seed * 100 + i, 20) for i in range(8))
        objs = [harness.put(f"admission/{uuid.uuid4().hex[:8]}.txt", body.encode())]
        plans.append(harness.submit(spec, harness.splits(objs, 200), [2], stack_max_running_tasks=2))
        bodies.append(body)
    runner = chain(duplicate=True, workers=6)
    runner.run([protocol.coordinate_event(p["work_bucket"], p["job_id"], admission.ADMIT) for p in plans])

    intervals = []
    for plan, body in zip(plans, bodies, strict=True):
        lines, _ = harness.output(plan)
        assert {json.loads(x)["key"]: json.loads(x)["value"] for x in lines} == expected_counts(body)
        intervals.append(task_intervals(harness.s3, plan["work_bucket"], plan["job_id"]))
    assert most_at_once(intervals[0] + intervals[1]) <= 2
    ran = collections.Counter((e["job_id"], e["kind"], e["task"], e["attempt"]) for e, r in runner.results
                              if e["kind"] in ("map", "reduce") and not r.get("duplicate"))
    assert max(ran.values()) == 1
