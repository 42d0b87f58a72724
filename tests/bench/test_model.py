"""The modelled AWS run's arithmetic (no timing: the model is pure)."""

from __future__ import annotations

import math

import pytest

from airflow_provider_smr.cost import estimate_cost_usd
from bench.model import (
    Plan,
    Rates,
    Workload,
    best_plan,
    combined_keys,
    lambda_invocations,
    meets_target,
    model,
    normalized,
    rates_from,
    report,
    requests_per_job,
    required_speedup,
)


def test_combined_keys_grow_with_rows_and_saturate_at_the_number_of_groups():
    assert combined_keys(1, 1e6) == pytest.approx(1, rel=1e-3)
    assert combined_keys(1e6, 1e6) == pytest.approx(1e6 * (1 - math.exp(-1)))
    assert combined_keys(1e9, 1e6) == pytest.approx(1e6)


def test_reducers_make_one_get_per_map_task_and_shuffle_puts_stay_linear():
    small = requests_per_job(10, 4)
    big = requests_per_job(10, 8)
    assert big["GET"] - small["GET"] == 4 * (3 + 10) + 4
    assert big["PUT"] - small["PUT"] == 3 * 4
    assert requests_per_job(1000, 32)["PUT"] < 1000 * 32


def test_notifications_list_a_group_each_and_only_the_watcher_lists_the_status_prefix():
    tallies = 10 + 1  # M=100: ten groups of ten, then the root; R=4: one group
    assert requests_per_job(100, 4)["LIST"] == 1 + 104 + (tallies + 1) + 4 + 1
    grown = requests_per_job(3000, 4, polls=10)["LIST"] - requests_per_job(3000, 4)["LIST"]
    assert grown == 10 * 7  # 6,008 status keys: 7 pages a poll
    assert requests_per_job(3000, 4)["LIST"] < 3004 * 1.2  # not a status LIST per notification


def test_tally_puts_are_about_one_per_nine_tasks():
    base = 2 + 3 + 3 + 1 + 2 + 3  # job.pkl, plan, a map and a reduce task, manifest, claims, commit
    assert requests_per_job(1, 1)["PUT"] == base
    assert requests_per_job(1000, 1)["PUT"] - (base + 3 * 999) == 100 + 10 + 1


def test_model_cost_is_the_cost_model_applied_to_its_counts():
    result = model(Workload(), Rates(), Plan(1000, 32, 1769, 1000))
    expected = estimate_cost_usd(result.lambda_gb_seconds, result.lambda_requests, result.s3_requests)
    assert result.usd == pytest.approx(expected, abs=1e-7)
    assert result.lambda_requests == lambda_invocations(1000, 32) == 2064


def test_a_one_task_phase_makes_no_coordinator_invoke_and_a_small_one_task_job_is_one_invoke():
    assert lambda_invocations(1, 1, map_output_bytes=1 << 20) == 1  # the reducer runs in the mapper
    assert lambda_invocations(1, 1, map_output_bytes=9 << 20) == 2  # too much output: invoked
    assert lambda_invocations(2, 1) == 2 + 2 + 1  # two coordinator calls; the reducer commits itself
    assert lambda_invocations(1, 4) == 1 + 4 + 4 and lambda_invocations(3, 0) == 3 + 3


def test_faster_map_cpu_lowers_cost_and_wall_time():
    slow = model(rates=Rates(map_cpu_mb_s=20))
    fast = model(rates=Rates(map_cpu_mb_s=200))
    assert fast.usd < slow.usd and fast.wall_s < slow.wall_s


def test_overlapping_read_and_compute_takes_the_slower_of_the_two():
    plan = Plan(1000, 32, 1769, 1000)
    serial = model(rates=Rates(overlap=False), plan=plan)
    overlapped = model(rates=Rates(overlap=True), plan=plan)
    split_mb = 126.8e9 / 1000 / 1e6
    saved = min(split_mb / 80.0 + 0.06, split_mb / 40.0)
    assert serial.map_task_s - overlapped.map_task_s == pytest.approx(saved)


def test_map_work_on_half_a_vcpu_takes_twice_as_long():
    full = model(rates=Rates(read_mb_s=1e12, write_mb_s=1e12, request_latency_s=0),
                 plan=Plan(1000, 32, 1769, 1000))
    half = model(rates=Rates(read_mb_s=1e12, write_mb_s=1e12, request_latency_s=0),
                 plan=Plan(1000, 32, 1769 // 2, 1000))
    assert half.map_task_s == pytest.approx(2 * full.map_task_s, rel=1e-3)


def test_small_functions_read_slower_and_planner_plan_follows_the_planner():
    from bench.model import planner_plan

    io_only = Rates(map_cpu_mb_s=1e12, reduce_cpu_mb_s=1e12, request_latency_s=0)
    small = model(rates=io_only, plan=Plan(1000, 32, 512, 1000))
    full = model(rates=io_only, plan=Plan(1000, 32, 1024, 1000))
    assert small.map_task_s == pytest.approx(2 * full.map_task_s, rel=0.01)
    assert planner_plan() == Plan(1000, 120, 1769, 1000)


def test_coordinator_cold_starts_are_billed_per_environment_not_per_call():
    from bench.model import coordinator_environments

    assert coordinator_environments(1000, 100.0, Rates()) == 33  # 1,000 calls over 20 s
    assert coordinator_environments(1000, 0.1, Rates()) == 660  # all within a second
    assert coordinator_environments(3, 0.1, Rates()) == 2 and coordinator_environments(1, 0.1, Rates()) == 1


def test_more_tasks_than_concurrency_run_in_waves():
    one = model(plan=Plan(1000, 32, 1769, 1000))
    two = model(plan=Plan(1000, 32, 1769, 500))
    assert two.wall_s - one.wall_s == pytest.approx(one.map_task_s)


def test_best_plan_meets_the_time_target_when_any_plan_does():
    best = best_plan(rates=Rates(map_cpu_mb_s=100, reduce_cpu_mb_s=60, overlap=True))
    assert best.wall_s < 150
    assert best.sizing.map_tasks <= 1000


def test_measured_rates_replace_only_the_fields_given():
    rates = rates_from({"map_cpu_mb_s": 77.0, "unknown": 1, "read_mb_s": None})
    assert rates.map_cpu_mb_s == 77.0 and rates.read_mb_s == Rates().read_mb_s


def test_report_states_assumptions_and_peers():
    text = report(model(), Rates())
    assert "assumptions" in text and "BigLambda" in text and "Corral" in text and "168.8" in text


def test_normalizing_scales_cpu_rates_by_the_floor_slowdown_only():
    got = normalized({"map_cpu_mb_s": 10.0, "reduce_cpu_mb_s": 2.0, "shuffle_bytes_per_key": 24.0},
                     floor_mb_s_per_core=52.5, reference=105.0)
    assert got == {"map_cpu_mb_s": 20.0, "reduce_cpu_mb_s": 4.0, "shuffle_bytes_per_key": 24.0}
    assert normalized({"map_cpu_mb_s": 10.0}, None) == {"map_cpu_mb_s": 10.0}


def test_required_speedup_is_one_when_the_target_is_already_met_and_more_when_not():
    fast = Rates(map_cpu_mb_s=300, reduce_cpu_mb_s=300, overlap=True)
    assert required_speedup(fast) == 1.0
    slow = Rates(map_cpu_mb_s=3, reduce_cpu_mb_s=0.3)
    needed = required_speedup(slow)
    assert needed is not None and needed > 1
    bumped = Rates(map_cpu_mb_s=3 * needed, reduce_cpu_mb_s=0.3 * needed)
    assert meets_target(best_plan(rates=bumped))


def test_planner_targets_at_rates_near_the_floor():
    from bench.model import planner_report, planner_targets

    targets = planner_targets(Rates(map_cpu_mb_s=105.0, reduce_cpu_mb_s=30.0))
    assert targets["default"]["on_pareto_front"]
    budget = targets["max_cost_usd"]
    assert budget["meets_target"] and budget["usd"] <= 0.10 and budget["wall_s"] <= 100
    assert targets["cost"]["usd"] <= budget["usd"]
    text = planner_report(targets)
    assert "on the Pareto front" in text and "max_cost_usd=0.10" in text and "MET" in text


def test_planner_targets_report_a_refused_budget():
    from bench.model import planner_report, planner_targets

    targets = planner_targets(Rates(map_cpu_mb_s=10.0, reduce_cpu_mb_s=5.0))
    assert targets["default"]["on_pareto_front"] and not targets["max_cost_usd"]["meets_target"]
    assert "refused (max_cost_usd=0.1: the job is estimated at $" in planner_report(targets)
