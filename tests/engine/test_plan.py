"""The planner: byte-range splits that tile each object, reducer counts, and the plan document."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_smr.engine.inputs import S3Object
from airflow_provider_smr.engine.plan import (
    BYTES_PER_REDUCER,
    PlanError,
    build_plan,
    choose_num_reducers,
    make_splits,
    plan_steps,
    split_object,
)
from airflow_provider_smr.job import MapReduceJob, Step


def tokenize(line):
    yield line, 1


def total(key, values):
    yield key, sum(values)


def obj(key, size, input="default", bucket="in"):
    return S3Object(input, bucket, key, size, f"etag-{key}")


@given(size=st.integers(1, 10_000), split_size=st.integers(1, 3_000))
def test_splits_tile_the_object_exactly(size, split_size):
    splits = split_object(obj("a.txt", size), split_size, "text")
    assert splits[0]["start"] == 0 and splits[-1]["end"] == size
    for left, right in zip(splits, splits[1:]):
        assert left["end"] == right["start"]
    assert all(0 < s["end"] - s["start"] <= split_size for s in splits)


def test_split_ranges_are_pinned_to_the_etag_and_carry_format():
    (first, second) = split_object(obj("a.csv", 100), 64, "csv")
    assert (first["start"], first["end"], second["start"], second["end"]) == (0, 64, 64, 100)
    assert first["etag"] == "etag-a.csv" and first["format"] == "csv" and first["size"] == 100
    assert first["compression"] is None


def test_gzip_object_is_one_split_whatever_its_size():
    (only,) = split_object(obj("logs/x.gz", 10_000), 100, "text")
    assert (only["start"], only["end"], only["compression"]) == (0, 10_000, "gzip")


def test_splits_are_numbered_in_input_then_key_order_and_skip_empty_objects():
    objects = [obj("b", 10, "users"), obj("a", 0, "users"), obj("z", 5, "orders"), obj("c", 25, "users")]
    splits = make_splits(objects, 10, {"users": "csv", "orders": "jsonl"})
    assert [(s["task"], s["input"], s["key"], s["start"]) for s in splits] == [
        (0, "orders", "z", 0), (1, "users", "b", 0), (2, "users", "c", 0), (3, "users", "c", 10),
        (4, "users", "c", 20)]
    assert splits[0]["format"] == "jsonl" and splits[1]["format"] == "csv"


def test_all_empty_input_still_gets_one_empty_split():
    splits = make_splits([obj("a", 0), obj("b", 0)], 10, {"default": "text"})
    assert [(s["key"], s["start"], s["end"]) for s in splits] == [("a", 0, 0)]


def test_split_size_below_one_byte_is_refused():
    with pytest.raises(PlanError, match="split_size"):
        split_object(obj("a", 10), 0, "text")


@pytest.mark.parametrize("total_bytes,maps,expected", [
    (0, 1, 1), (100, 5, 1), (BYTES_PER_REDUCER, 10, 1), (BYTES_PER_REDUCER + 1, 10, 2),
    (40 * BYTES_PER_REDUCER, 10, 10), (10**15, 10**6, 1000)])
def test_reducer_count_grows_with_input_size_within_bounds(total_bytes, maps, expected):
    assert choose_num_reducers(total_bytes, maps) == expected


def test_step_reducers_prefer_step_then_argument_then_job_then_size():
    job = MapReduceJob(steps=[Step(mapper=tokenize, reducer=total),
                              Step(mapper=tokenize, reducer=total, num_reducers=1),
                              Step(mapper=tokenize)], num_reducers=3)
    assert plan_steps(job, 7, 10) == [
        {"index": 0, "num_map_tasks": 7, "num_reducers": 3},
        {"index": 1, "num_map_tasks": 3, "num_reducers": 1},
        {"index": 2, "num_map_tasks": 1, "num_reducers": 0}]
    assert plan_steps(job, 7, 10, num_reducers=5)[0]["num_reducers"] == 5
    assert plan_steps(MapReduceJob(mapper=tokenize, reducer=total), 7, 10)[0]["num_reducers"] == 1


def test_plan_document_follows_the_contract():
    job = MapReduceJob(mapper=tokenize, reducer=total, output_format="tsv")
    plan = build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                      objects=[obj("a", 150)], output_uri="s3://out/res", split_size=100,
                      num_reducers=2, max_attempts=4, memory_mb=2048, task_timeout_s=60,
                      max_bad_records=3, overwrite=True)
    assert plan["v"] == 1 and plan["job_id"] == "j1" and plan["work_bucket"] == "work"
    assert plan["settings"] == {"max_attempts": 4, "memory_budget_bytes": 512 * 2**20,
                                "max_bad_records": 3, "task_timeout_s": 60, "speculation": False,
                                "speculation_threshold": 3.0, "deadline_grace_s": 30}
    assert plan["inputs"] == {"default": {"uris": ["s3://in/a"], "format": "text"}}
    assert [(s["task"], s["start"], s["end"]) for s in plan["splits"]] == [(0, 0, 100), (1, 100, 150)]
    assert plan["steps"] == [{"index": 0, "num_map_tasks": 2, "num_reducers": 2}]
    assert plan["output"] == {"uri": "s3://out/res/", "bucket": "out", "prefix": "res/", "format": "tsv",
                              "overwrite": True, "inputs": ["s3://in/a"]}


def test_plan_refuses_silly_attempts():
    job = MapReduceJob(mapper=tokenize)
    with pytest.raises(PlanError, match="max_attempts"):
        build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                   objects=[obj("a", 1)], output_uri="s3://out/", max_attempts=0)
