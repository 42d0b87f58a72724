"""plan.json as types: every field survives the JSON round trip, and readers get typed values."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from lambda_handlers import plan as plan_module
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


_TEXT = st.text(max_size=12)
_PIECE_VALUE = st.one_of(st.integers(-5, 10**12), st.booleans(), st.none(), _TEXT,
                         st.lists(st.integers(0, 9), max_size=2))


@st.composite
def _splits(draw):
    plain = st.fixed_dictionaries({"key": _TEXT, "etag": _TEXT, "start": st.integers(0, 10**12),
                                   "end": st.integers(0, 10**12), "size": st.integers(0, 10**12)})
    other = st.dictionaries(st.sampled_from(["key", "etag", "start", "end", "size", "compression",
                                             "row_groups"]), _PIECE_VALUE, max_size=6)
    split = {"task": draw(st.integers(0, 99)), "input": draw(_TEXT), "bucket": draw(_TEXT),
             "format": draw(st.sampled_from(["text", "csv", "\x00pieces\x00"])),
             "pieces": draw(st.lists(st.one_of(plain, other), max_size=5))}
    if draw(st.booleans()):
        split.pop("pieces")
        split.update(key=draw(_TEXT), start=0, end=1, size=1)
    return split


@given(_splits())
def test_a_stored_split_is_the_encoders_own_bytes(split):
    """Splits stored apart are written fast (plain pieces formatted directly) yet byte for byte
    what the JSON encoder writes, so a chunk's digest names the same bytes either way."""
    assert plan_module._split_json(split) == json.dumps(split, separators=(",", ":"), sort_keys=True).encode()
