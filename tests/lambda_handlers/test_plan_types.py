"""plan.json as types: every field survives the JSON round trip, and readers get typed values."""

from __future__ import annotations

import json

from lambda_handlers.options import JobOptions, TaskLimits
from lambda_handlers.plan import InputPlan, OutputPlan, Plan, StepPlan, TableOutput


def sample_plan(**overrides) -> Plan:
    fields = dict(
        job_id="j1", work_bucket="work", created="2026-01-01T00:00:00+00:00", job_name="wc",
        steps=(StepPlan(0, 2, 3), StepPlan(1, 3, 0)),
        output=OutputPlan("s3://out/res/", "out", "res/", "tsv", overwrite=True, inputs=("s3://in/a",)),
        options=JobOptions(max_attempts=4, speculation=True), limits=TaskLimits(2048, 60),
        inputs={"default": InputPlan(("s3://in/a",), "text")},
        splits=({"task": 0, "input": "default", "bucket": "in", "key": "a", "etag": "e", "start": 0,
                 "end": 100, "size": 150, "format": "text", "compression": None},),
        input_bytes=150, driver={"plan_s": 0.01})
    fields.update(overrides)
    return Plan(**fields)


def test_a_plan_survives_the_json_round_trip():
    plan = sample_plan()
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_table_output_keeps_its_item_mapping():
    out = OutputPlan("dynamodb://T?key=id", "work", "jobs/j1/", "dynamodb",
                     table=TableOutput("T", key_attribute="id", value_attribute="v", key_type="N"))
    plan = sample_plan(output=out)
    back = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert back.output.table == TableOutput("T", "id", "v", "N", False)


def test_steps_answer_task_counts_per_phase():
    plan = sample_plan()
    assert (plan.tasks(0, "map"), plan.tasks(0, "reduce"), plan.tasks(1, "reduce")) == (2, 3, 0)
    assert plan.last_step == 1 and plan.output.extension == "tsv"
    assert plan.with_driver(where="lambda").driver == {"plan_s": 0.01, "where": "lambda"}
