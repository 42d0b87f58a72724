"""The planner: byte-range splits that tile each object, reducer counts, and the plan document."""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_smr.job import MapReduceJob, Step
from lambda_handlers.options import JobOptions, TaskLimits
from lambda_handlers.plan import Plan, StepPlan
from lambda_handlers.planning import (
    MIN_SPLIT_SIZE,
    TAIL_FRACTION,
    PlanError,
    S3Object,
    build_plan,
    choose_num_reducers,
    choose_split_size,
    gc_paused,
    make_splits,
    max_split_size,
    plan_steps,
    split_object,
    wanted_tasks,
)

MiB = 2**20


def tokenize(line):
    yield line, 1


def total(key, values):
    yield key, sum(values)


def obj(key, size, input="default", bucket="in"):
    return S3Object(input, bucket, key, size, f"etag-{key}")


@given(size=st.integers(1, 10_000), split_size=st.integers(1, 3_000), merge_tail=st.booleans())
def test_splits_tile_the_object_exactly(size, split_size, merge_tail):
    splits = split_object(obj("a.txt", size), split_size, "text", merge_tail=merge_tail)
    assert splits[0]["start"] == 0 and splits[-1]["end"] == size
    for left, right in zip(splits, splits[1:], strict=False):
        assert left["end"] == right["start"]
    if merge_tail:  # no tiny tail: every split but a lone one is at least a quarter of the size
        assert all(0 < s["end"] - s["start"] < (1 + TAIL_FRACTION) * split_size for s in splits)
        assert len(splits) == 1 or splits[-1]["end"] - splits[-1]["start"] >= TAIL_FRACTION * split_size
    else:  # a given split size is exact
        assert all(s["start"] % split_size == 0 and 0 < s["end"] - s["start"] <= split_size for s in splits)


def test_an_automatic_split_size_leaves_no_tiny_tail_a_given_one_is_exact():
    (only,) = split_object(obj("a.txt", 64 * MiB + 1000), 64 * MiB, "text", merge_tail=True)
    assert (only["start"], only["end"]) == (0, 64 * MiB + 1000)
    first, second = split_object(obj("b.txt", 130), 100, "text", merge_tail=True)
    assert (first["end"], second["end"]) == (100, 130)
    assert len(split_object(obj("a.txt", 64 * MiB + 1000), 64 * MiB, "text")) == 2
    plan = build_plan(job_id="j1", work_bucket="work", job=MapReduceJob(mapper=tokenize),
                      inputs={"default": ["s3://in/a"]}, objects=[obj("a", 64 * MiB + 1000)],
                      output_uri="s3://out/res", options=JobOptions())
    assert [s["end"] - s["start"] for s in plan.splits] == [8 * MiB] * 7 + [8 * MiB + 1000]
    assert plan.steps[0].num_map_tasks == 8
    few = build_plan(job_id="j2", work_bucket="work", job=MapReduceJob(mapper=tokenize, reducer=total),
                     inputs={"default": ["s3://in/a"]}, objects=[obj("a", 1024 * MiB)],
                     output_uri="s3://out/res", concurrency=2, options=JobOptions())
    assert few.steps == (StepPlan(index=0, num_map_tasks=8, num_reducers=8),)


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


def _auto(total, concurrency=None, memory_mb=1024):
    size = choose_split_size(total, concurrency, memory_mb=memory_mb)
    m = len(make_splits([obj("a", total)], size, {"default": "text"}, merge_tail=True))
    return m, choose_num_reducers(total, m, memory_mb=memory_mb, concurrency=concurrency)


@pytest.mark.parametrize("total,concurrency,expected", [
    (8 * MiB + 1000, None, (1, 1)), (64 * MiB + 1000, None, (8, 2)), (1024 * MiB, None, (128, 8)),
    (int(126.8e9), None, (1000, 120)), (64 * MiB + 1000, 2, (4, 2)), (1024 * MiB, 2, (8, 8)),
    (200 * MiB, 4, (8, 4)), (1024 * MiB, 4, (16, 16)), (400 * MiB, 4, (13, 12))])
def test_default_sizing_gives_every_worker_work_without_tiny_tasks(total, concurrency, expected):
    assert _auto(total, concurrency) == expected


@given(total=st.integers(1, 10**12), concurrency=st.sampled_from([None, 1, 2, 8, 64, 1000, 3000]),
       memory_mb=st.sampled_from([128, 1024, 1769, 10240]))
def test_default_sizing_rules_hold_for_any_input(total, concurrency, memory_mb):
    size = choose_split_size(total, concurrency, memory_mb=memory_mb)
    m = -(-total // size)
    r = choose_num_reducers(total, m, memory_mb=memory_mb, concurrency=concurrency)
    wanted = wanted_tasks(concurrency)
    assert wanted == max(concurrency or 1000, min(4 * (concurrency or 1000), 64))
    assert MIN_SPLIT_SIZE <= size <= max_split_size(300, memory_mb)
    assert m <= wanted or size == max_split_size(300, memory_mb)  # enough tasks, not more
    p = concurrency or 1000
    # every worker has work: 4 tasks each on a small pool, 2 while splits stay under 32 MiB
    assert m >= 0.9 * min(wanted, max(min(2 * p, total // MIN_SPLIT_SIZE), total // (32 * MiB)))
    assert 1 <= r <= 1000
    assert r >= 2 or total <= 32 * MiB  # more than one core's worth: more than one reducer
    fits = -(-total // (4 * memory_mb * MiB // 4))
    assert r <= max(wanted, fits, 2) and (r == 1000 or r >= fits)  # a partition fits 4x the budget
    if p < 64 and r > p and r > fits:
        assert r % p == 0  # a small pool's reducers beyond its workers come in whole waves


def test_reducers_keep_a_partition_within_the_spill_allowance_of_the_memory_budget():
    assert choose_num_reducers(10 * 2**30, 1, memory_mb=128, concurrency=1) == 80
    assert choose_num_reducers(0, 1) == 1


def test_step_reducers_prefer_step_then_argument_then_job_then_size():
    job = MapReduceJob(steps=[Step(mapper=tokenize, reducer=total),
                              Step(mapper=tokenize, reducer=total, num_reducers=1),
                              Step(mapper=tokenize)], num_reducers=3)
    assert plan_steps(job, 7, 10) == (
        StepPlan(index=0, num_map_tasks=7, num_reducers=3),
        StepPlan(index=1, num_map_tasks=3, num_reducers=1),
        StepPlan(index=2, num_map_tasks=1, num_reducers=0))
    assert plan_steps(job, 7, 10, num_reducers=5)[0].num_reducers == 5
    assert plan_steps(MapReduceJob(mapper=tokenize, reducer=total), 7, 10)[0].num_reducers == 1


def test_plan_document_follows_the_contract():
    job = MapReduceJob(mapper=tokenize, reducer=total, output_format="tsv")
    plan = build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                      objects=[obj("a", 150)], output_uri="s3://out/res",
                      options=JobOptions(split_size=100, num_reducers=2, max_attempts=4, max_bad_records=3,
                                         overwrite=True),
                      limits=TaskLimits(memory_mb=2048, task_timeout_s=60))
    plan = plan.to_json()
    assert plan["v"] == 2 and plan["job_id"] == "j1" and plan["work_bucket"] == "work"
    assert plan["options"] == {"num_reducers": 2, "split_size": 100, "max_concurrency": None,
                               "max_attempts": 4, "max_bad_records": 3, "speculation": False,
                               "speculation_threshold": 3.0, "deadline_grace_s": 30,
                               "driver": "worker", "invoke_tree_threshold": 2000,
                               "create_table": False, "overwrite": True, "encoding": "utf-8",
                               "errors": "strict", "columns": (), "max_running_tasks": None,
                               "optimize": "time", "max_cost_usd": None, "deadline_s": None,
                               "retry_on_user_errors": True}
    assert plan["limits"] == {"memory_mb": 2048, "task_timeout_s": 60,
                              "memory_budget_bytes": 512 * 2**20, "reducer_memory_mb": 2048,
                              "reducer_memory_budget_bytes": 512 * 2**20, "stack_max_running_tasks": 0}
    assert plan["inputs"] == {"default": {"uris": ["s3://in/a"], "format": "text"}}
    assert [(s["task"], s["start"], s["end"]) for s in plan["splits"]] == [(0, 0, 100), (1, 100, 150)]
    assert plan["steps"] == [{"index": 0, "num_map_tasks": 2, "num_reducers": 2}]
    assert plan["output"] == {"uri": "s3://out/res/", "bucket": "out", "prefix": "res/", "format": "tsv",
                              "overwrite": True, "inputs": ["s3://in/a"]}
    assert {k: plan["estimate"][k] for k in ("map_tasks", "reducers", "memory_mb", "optimize")} == {
        "map_tasks": 2, "reducers": 2, "memory_mb": 2048, "optimize": "time"}
    assert plan["estimate"]["usd"] > 0 and plan["estimate"]["wall_s"] > 0


def test_a_plan_names_the_function_versions_its_job_is_pinned_to():
    job = MapReduceJob(mapper=tokenize, reducer=total)
    plan = build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                      objects=[obj("a", 150)], output_uri="s3://out/res", options=JobOptions())
    assert plan.function("mapper", "smr-mapper") == "smr-mapper"  # no pin: $LATEST
    pinned = Plan.from_json(replace(plan, versions={"mapper": "7", "reducer": "8"}).to_json())
    assert pinned.versions == {"mapper": "7", "reducer": "8"}
    assert (pinned.function("mapper", "smr-mapper"), pinned.function("reducer", "smr-reducer"),
            pinned.function("coordinator", "smr-coordinator")) == ("smr-mapper:7", "smr-reducer:8",
                                                                   "smr-coordinator")


def test_the_reduce_phase_is_planned_for_the_reducer_functions_memory():
    job = MapReduceJob(mapper=tokenize, reducer=total)
    big = [obj("a", 2 * 2**30)]
    plans = {mb: build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                            objects=big, output_uri="s3://out/res", concurrency=1000,
                            options=JobOptions(),
                            limits=TaskLimits(memory_mb=1024, reducer_memory_mb=mb))
             for mb in (128, 4096)}
    assert plans[128].steps[0].num_reducers > plans[4096].steps[0].num_reducers
    assert plans[128].steps[0].num_map_tasks == plans[4096].steps[0].num_map_tasks
    limits = plans[128].limits
    assert (limits.phase_memory_mb("map"), limits.phase_memory_mb("reduce")) == (1024, 128)
    assert (limits.budget_bytes("map"), limits.budget_bytes("reduce")) == (256 * 2**20, 32 * 2**20)


def test_plan_refuses_silly_attempts():
    job = MapReduceJob(mapper=tokenize)
    with pytest.raises(PlanError, match="max_attempts"):
        build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                   objects=[obj("a", 1)], output_uri="s3://out/", options=JobOptions(max_attempts=0))


def test_plan_refuses_an_invoke_tree_threshold_below_one_task():
    job = MapReduceJob(mapper=tokenize)
    with pytest.raises(PlanError, match="invoke_tree_threshold"):
        build_plan(job_id="j1", work_bucket="work", job=job, inputs={"default": ["s3://in/a"]},
                   objects=[obj("a", 1)], output_uri="s3://out/", options=JobOptions(invoke_tree_threshold=0))


def test_small_objects_pack_by_bytes_never_across_inputs_or_buckets():
    from lambda_handlers.plan import split_pieces

    objects = [obj(f"s{i}", 30) for i in range(5)] + [obj("big", 250), obj("t", 40), obj("z.gz", 500)]
    objects += [obj("o1", 10, bucket="other"), obj("u1", 10, input="users"), obj("u2", 0, input="users")]
    splits = make_splits(objects, 100, {"default": "text", "users": "csv"}, max_pieces=4)
    shapes = [(s["input"], s["bucket"], [(p["key"], p["start"], p["end"]) for p in split_pieces(s)])
              for s in splits]
    assert shapes == [
        ("default", "in", [("big", 0, 100)]), ("default", "in", [("big", 100, 200)]),
        ("default", "in", [("big", 200, 250), ("s0", 0, 30)]),  # a tail packs with what follows
        ("default", "in", [("s1", 0, 30), ("s2", 0, 30), ("s3", 0, 30)]),
        ("default", "in", [("s4", 0, 30), ("t", 0, 40)]),
        ("default", "in", [("z.gz", 0, 500)]),  # a .gz is never cut
        ("default", "other", [("o1", 0, 10)]), ("users", "in", [("u1", 0, 10)])]
    assert [s["task"] for s in splits] == list(range(8))
    assert "pieces" in splits[2] and "key" not in splits[2] and splits[0]["key"] == "big"
    four = make_splits([obj(f"k{i}", 1) for i in range(10)], 100, {"default": "text"}, max_pieces=4)
    assert [len(split_pieces(s)) for s in four] == [4, 4, 2]  # at most max_pieces objects a task


def test_a_small_pool_packs_more_small_objects_a_task_in_whole_waves():
    """On a pool under 32 workers a task of small objects holds up to 4,000 of them while they
    still make 2 tasks a worker; a large pool keeps 1,000 a task (more tasks run at once)."""
    from lambda_handlers.planning import max_pieces

    assert [max_pieces(n, 4) for n in (2_000, 20_000, 100_000)] == [1_000, 2_500, 4_000]
    assert [max_pieces(20_000, c) for c in (None, 32, 1000)] == [1_000] * 3
    tiny = [obj(f"logs/{i:05d}", 2048) for i in range(20_000)]
    job = MapReduceJob(mapper=tokenize, reducer=total)
    small = build_plan(job=job, job_id="j", work_bucket="w", inputs={"default": ["s3://in/logs/"]}, objects=tiny,
                       output_uri="s3://out/res", concurrency=4, options=JobOptions())
    large = build_plan(job=job, job_id="j", work_bucket="w", inputs={"default": ["s3://in/logs/"]}, objects=tiny,
                       output_uri="s3://out/res", concurrency=1000, options=JobOptions())
    assert len(small.splits) == 8 and len(large.splits) == 20  # 2 waves of 4, not 5 waves


def test_small_objects_that_fit_one_split_are_one_task_on_a_small_pool():
    """2,000 objects of 2 KB fit one split by bytes: one task on a small pool (one invocation for
    the job, as for the same bytes in one object), two on a large pool (1,000 objects a task)."""
    from lambda_handlers.planning import FEW_WORKERS_MAX_PIECES, max_pieces

    job = MapReduceJob(mapper=tokenize, reducer=total)

    def tasks(n: int, concurrency: int, size: int = 2048) -> int:
        objects = [obj(f"logs/{i:05d}", size) for i in range(n)]
        return len(build_plan(job=job, job_id="j", work_bucket="w", inputs={"default": ["s3://in/logs/"]},
                              objects=objects, output_uri="s3://out/res", concurrency=concurrency,
                              options=JobOptions()).splits)

    assert tasks(2_000, 4) == 1 and tasks(4_000, 4) == 1
    assert tasks(4_001, 4) == 5  # more objects than a task holds: 1,000 a task (see above)
    assert tasks(2_000, 4, size=8192) == 2  # 16 MB: more bytes than one split
    assert tasks(2_000, 1000) == 2
    assert max_pieces(2_000, 4, total_bytes=4 << 20, split_size=8 << 20) == FEW_WORKERS_MAX_PIECES
    assert max_pieces(2_000, 4, total_bytes=16 << 20, split_size=8 << 20) == 1_000


def test_gc_paused_holds_the_collector_and_leaves_a_disabled_one_disabled():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("planning failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
