"""The planner's objective (optimize, max_cost_usd, deadline_s): which sizing it picks, and the
refusal of a job estimated above its budget. Pure functions: no stack."""

from __future__ import annotations

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import costmodel
from lambda_handlers.costmodel import CostLimitError, Objective, Rates
from lambda_handlers.options import JobOptions, TaskLimits
from lambda_handlers.planning import (
    S3Object,
    build_plan,
    choose_sizing,
    map_task_candidates,
    rules_sizing,
    sizing_options,
)

MiB = 2**20
AMPLAB_BYTES = int(126.8e9)
MEMORY = (512, 1024, 1536, 1769, 2048, 3008)
# AMPLab Q2 (the batch job) at about the floor's per-core rate, as bench/run.py measures it normalized
NEAR_FLOOR = Rates(map_cpu_mb_s=105.0, reduce_cpu_mb_s=30.0)


def amplab(objective: Objective = costmodel.DEFAULT_OBJECTIVE, rates: Rates = NEAR_FLOOR):
    kw = dict(concurrency=1000, memory_mb=1769, memory_options=MEMORY, workload=costmodel.Workload(),
              rates=rates)
    return choose_sizing(AMPLAB_BYTES, objective, **kw), sizing_options(AMPLAB_BYTES, **kw)[1]


def tokenize(line):
    yield from ((w, 1) for w in line.split())


def total(key, values):
    yield key, sum(values)


def plan_of(size: int, options: JobOptions, concurrency: int | None = None):
    return build_plan(job_id="j1", work_bucket="work", job=MapReduceJob(mapper=tokenize, reducer=total),
                      inputs={"default": ["s3://in/a"]}, objects=[S3Object("default", "in", "a", size, "e")],
                      output_uri="s3://out/res", options=options, concurrency=concurrency,
                      limits=TaskLimits(memory_mb=1024))


@pytest.mark.parametrize("total_bytes,concurrency", [(5000, None), (64 * MiB, None), (MiB << 10, None),
                                                     (MiB << 10, 2), (200 * MiB, 8), (AMPLAB_BYTES, 2)])
def test_the_default_keeps_the_sizing_rules_below_scale(total_bytes, concurrency):
    chosen = choose_sizing(total_bytes, concurrency=concurrency).sizing
    assert chosen == rules_sizing(total_bytes, concurrency, task_timeout_s=300, memory_mb=1024)


@pytest.mark.parametrize("rates", [Rates(), NEAR_FLOOR], ids=["default rates", "near the floor"])
def test_the_default_plan_at_scale_is_on_the_models_pareto_front(rates):
    default, options = amplab(rates=rates)
    assert not [o for o in options if costmodel.dominates(o, default)]
    assert default in costmodel.pareto_front(options + [default])
    rules = costmodel.estimate(costmodel.Workload(), rates, rules_sizing(AMPLAB_BYTES, 1000, task_timeout_s=300,
                                                                        memory_mb=1769))
    assert default.wall_s <= rules.wall_s and default.usd <= rules.usd


def test_a_budget_of_ten_cents_gives_the_fastest_plan_within_it_under_100_seconds():
    chosen, options = amplab(Objective(max_cost_usd=0.10))
    assert chosen.usd <= 0.10 and chosen.wall_s <= 100
    assert chosen.wall_s == min(o.wall_s for o in options if o.usd <= 0.10)


def test_cost_takes_the_cheapest_plan_and_a_deadline_the_cheapest_in_time():
    cheapest, options = amplab(Objective("cost"))
    assert cheapest.usd == min(o.usd for o in options)
    in_time, _ = amplab(Objective("cost", deadline_s=100))
    assert in_time.wall_s <= 100 and in_time.usd == min(o.usd for o in options if o.wall_s <= 100)
    assert cheapest.wall_s > 100 >= in_time.wall_s


def test_no_plan_within_the_budget_is_refused_with_the_cheapest_estimate():
    with pytest.raises(CostLimitError, match=r"max_cost_usd=0.01: the job is estimated at \$0\.0\d+ or more"):
        amplab(Objective(max_cost_usd=0.01))


def test_map_task_candidates_stay_within_the_timeout_and_three_waves():
    found = map_task_candidates(AMPLAB_BYTES, 1000, task_timeout_s=300, memory_mb=1769)
    assert found[0] == 119 and found[-1] == 3000 and {1000, 2000} <= set(found)
    assert map_task_candidates(5000, 2, task_timeout_s=300, memory_mb=1024) == [1]


def test_a_plan_carries_its_estimate_and_objective():
    plan = plan_of(64 * MiB, JobOptions(max_cost_usd="0.5", deadline_s=60))
    est = plan.estimate
    assert (est["map_tasks"], est["reducers"], est["memory_mb"]) == (8, 2, 1024)
    assert est["optimize"] == "time" and est["max_cost_usd"] == 0.5 and est["deadline_s"] == 60
    assert 0 < est["usd"] <= 0.5 and est["wall_s"] > 0


def test_optimize_cost_cuts_fewer_tasks_than_the_rules():
    rules = plan_of(MiB << 10, JobOptions(), concurrency=8)
    cheap = plan_of(MiB << 10, JobOptions(optimize="cost"), concurrency=8)
    assert cheap.num_splits < rules.num_splits and cheap.estimate["usd"] < rules.estimate["usd"]
    assert cheap.estimate["optimize"] == "cost"


def test_a_job_estimated_above_its_budget_is_refused_before_it_is_planned():
    with pytest.raises(CostLimitError) as info:
        plan_of(64 * MiB, JobOptions(max_cost_usd=1e-6))
    assert "max_cost_usd=1e-06: the job is estimated at $0.0" in str(info.value)
    with pytest.raises(CostLimitError, match="refused before it started; leave split_size and num_reducers to "
                                             "the planner or raise max_cost_usd"):
        plan_of(64 * MiB, JobOptions(max_cost_usd=1e-6, split_size="1MiB", num_reducers=4))


def test_a_map_only_job_is_priced_without_reducers():
    plan = build_plan(job_id="j1", work_bucket="work", job=MapReduceJob(mapper=tokenize),
                      inputs={"default": ["s3://in/a"]}, objects=[S3Object("default", "in", "a", 64 * MiB, "e")],
                      output_uri="s3://out/res", options=JobOptions(optimize="cost"), limits=TaskLimits())
    assert plan.steps[0].num_reducers == 0 and plan.estimate["reducers"] == 0
    assert plan.estimate["usd"] < plan_of(64 * MiB, JobOptions(optimize="cost")).estimate["usd"]
