"""The planner's cost model and objectives: pure functions, no stack."""

from __future__ import annotations

import pytest

from lambda_handlers import costmodel
from lambda_handlers.costmodel import CostLimitError, Modelled, Objective, Sizing, Workload, choose
from lambda_handlers.options import JobOptions, OptionError, PlanError
from lambda_handlers.prices import attempt_usd


def option(wall_s: float, usd: float, m: int = 1) -> Modelled:
    return Modelled(Sizing(m, 1, 1024, 1000), 0.0, 0.0, wall_s, 0.0, 0.0, 0, {}, {"total": usd})


FAST_DEAR, MIDDLE, SLOW_CHEAP, DOMINATED = option(10, 0.30, 1), option(20, 0.10, 2), option(40, 0.05, 3), \
    option(25, 0.20, 4)
OPTIONS = [FAST_DEAR, MIDDLE, SLOW_CHEAP, DOMINATED]


def test_pareto_front_keeps_what_nothing_beats_on_both_time_and_cost():
    assert costmodel.pareto_front(OPTIONS) == [FAST_DEAR, MIDDLE, SLOW_CHEAP]
    assert costmodel.dominates(MIDDLE, DOMINATED) and not costmodel.dominates(FAST_DEAR, MIDDLE)
    assert not costmodel.dominates(MIDDLE, option(20, 0.10))  # equal is not better


def test_time_keeps_the_default_within_the_limits_and_cost_takes_the_cheapest():
    assert choose(OPTIONS, Objective("time"), default=MIDDLE) is MIDDLE
    assert choose(OPTIONS, Objective("time"), default=None) is FAST_DEAR
    assert choose(OPTIONS, Objective("cost"), default=MIDDLE) is SLOW_CHEAP


def test_a_budget_gives_the_fastest_plan_within_it_and_a_deadline_the_cheapest_in_time():
    assert choose(OPTIONS, Objective("time", max_cost_usd=0.15), default=FAST_DEAR) is MIDDLE
    assert choose(OPTIONS, Objective("cost", deadline_s=30), default=FAST_DEAR) is MIDDLE
    # a deadline nothing meets within the budget: the fastest plan within the budget
    assert choose(OPTIONS, Objective("cost", max_cost_usd=0.06, deadline_s=5)) is SLOW_CHEAP


def test_no_plan_within_the_budget_is_refused_with_the_cheapest_estimate():
    with pytest.raises(CostLimitError, match=r"max_cost_usd=0.01: the job is estimated at \$0.0500 or more") as info:
        choose(OPTIONS, Objective(max_cost_usd=0.01))
    assert "M=3 R=1 at 1024 MB, ~40 s" in str(info.value)
    assert isinstance(info.value, PlanError)


def test_a_job_known_by_its_input_size_shuffles_and_writes_it_all():
    w = Workload.of_input(1e9)
    assert w.map_output_bytes(10, 24.0) == 1e8 and w.output_bytes(1e9) == 1e9
    amplab = Workload()
    assert amplab.output_bytes(123.0) == amplab.groups * amplab.output_bytes_per_group


def test_a_map_only_sizing_has_no_reduce_phase_and_costs_less():
    with_reduce = costmodel.estimate(Workload.of_input(1e9), sizing=Sizing(10, 4, 1024, 100))
    map_only = costmodel.estimate(Workload.of_input(1e9), sizing=Sizing(10, 0, 1024, 100))
    assert map_only.reduce_task_s == 0 and map_only.wall_s < with_reduce.wall_s
    assert map_only.usd < with_reduce.usd and map_only.lambda_requests == 20


def test_an_attempt_costs_its_billed_gb_seconds_its_requests_and_two_invocations():
    marker = {"duration_s": 2.0, "memory_mb": 1024, "requests": {"GetObject": 1000, "PutObject": 1000}}
    expected = 2.0 * 0.0000166667 + 2 * 0.2e-6 + 1000 * 0.0004 / 1000 + 1000 * 0.005 / 1000
    assert attempt_usd(marker) == pytest.approx(expected)
    assert attempt_usd({}) == pytest.approx(0.001 * 0.0000166667 + 0.4e-6)


@pytest.mark.parametrize("given,expected", [("0.10", 0.1), (2, 2.0), (None, None), ("", None)])
def test_cost_and_deadline_options_take_templated_numbers(given, expected):
    assert JobOptions(max_cost_usd=given).max_cost_usd == expected
    assert JobOptions(deadline_s=given).deadline_s == expected


@pytest.mark.parametrize("name,value", [("max_cost_usd", 0), ("max_cost_usd", "-1"), ("deadline_s", "soon"),
                                        ("deadline_s", True), ("max_cost_usd", float("inf"))])
def test_cost_and_deadline_options_must_be_positive_numbers(name, value):
    with pytest.raises(OptionError, match=f"{name} must be a number above 0"):
        JobOptions(**{name: value})


def test_optimize_is_time_or_cost():
    assert JobOptions().optimize == "time" and JobOptions(optimize="cost").optimize == "cost"
    with pytest.raises(OptionError, match="optimize must be one of time, cost, got 'speed'"):
        JobOptions(optimize="speed")
