"""The coordinator's spend guard (``max_cost_usd``): a job whose finished tasks have spent more than
its budget is stopped before its next phase, with the spend in the reason; within it, nothing
changes. The real handlers against the local stack's S3; the decisions are pure."""

from __future__ import annotations

import json

from lambda_handlers import coordinator, protocol
from lambda_handlers.coordinator import COMMIT, START_MAP, START_REDUCE, Action
from lambda_handlers.jobspec import JobSpec, StepSpec
from lambda_handlers.plan import Plan


def words(line):
    for w in line.split():
        yield w, 1


def total(k, vs):
    yield k, sum(vs)


SPEC = JobSpec(steps=[StepSpec(mapper=words, combiner=total, reducer=total)])
TWO_STEPS = Plan.from_json({"job_id": "j", "steps": [{"num_map_tasks": 4, "num_reducers": 2},
                                                     {"num_map_tasks": 2, "num_reducers": 0}]})


def test_the_phases_complete_before_each_transition():
    assert coordinator.completed_phases(TWO_STEPS, Action(START_REDUCE, 0)) == [(0, "map")]
    assert coordinator.completed_phases(TWO_STEPS, Action(START_MAP, 1)) == [(0, "map"), (0, "reduce")]
    assert coordinator.completed_phases(TWO_STEPS, Action(COMMIT)) == [(0, "map"), (0, "reduce"), (1, "map")]


def test_a_spend_over_the_budget_names_it_the_limit_and_the_next_phase():
    plan = Plan.from_json({"job_id": "j", "steps": [{"num_map_tasks": 1, "num_reducers": 1}],
                           "options": {"max_cost_usd": 0.5}, "estimate": {"usd": 0.25}})
    assert coordinator.over_budget(plan, 0.5, Action(START_REDUCE, 0)) is None
    reason = coordinator.over_budget(plan, 0.75, Action(START_REDUCE, 0))
    assert reason == ("max_cost_usd=0.5: the job's tasks have spent $0.750000 (their billed GB-s and requests), "
                      "more than the limit; stopped before the reduce phase of step 0 (the planner estimated "
                      "$0.250000)")
    assert coordinator.over_budget(TWO_STEPS, 1e9, Action(COMMIT)) is None  # no budget: no guard


def test_a_job_over_its_budget_is_stopped_before_its_reduce_phase(harness, chain):
    objs = [harness.put("spend/over.txt", b"x y z\n" * 50)]
    plan = harness.submit(SPEC, harness.splits(objs, 100), [2], max_cost_usd=1e-9)
    run = chain()
    run.run(plan["events"])
    job_id, bucket = plan["job_id"], plan["work_bucket"]
    assert harness.state(job_id) == [protocol.FAILED]
    failed = json.loads(harness.s3.get_object(Bucket=bucket, Key=protocol.failed_key(job_id))["Body"].read())
    assert failed["reason"].startswith("max_cost_usd=1e-09: the job's tasks have spent $")
    assert "stopped before the reduce phase of step 0" in failed["reason"]
    assert failed["error"]["error_type"] == "CostLimitError"
    assert not [c for c in run.calls if c[0] == "reduce"]  # no reducer ran
    assert not harness.s3.list_objects_v2(Bucket="smr-data-test", Prefix=plan["output"]["prefix"]).get("KeyCount")


def test_a_job_within_its_budget_runs_as_without_one(harness, chain):
    objs = [harness.put("spend/within.txt", b"x y z\n" * 50)]
    plan = harness.submit(SPEC, harness.splits(objs, 100), [2], max_cost_usd=5.0)
    chain().run(plan["events"])
    assert harness.state(plan["job_id"]) == [protocol.SUCCEEDED]
    lines, _ = harness.output(plan)
    assert {json.loads(x)["key"]: json.loads(x)["value"] for x in lines} == {"x": 50, "y": 50, "z": 50}
