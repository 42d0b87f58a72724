"""The cost model's arithmetic: list prices times measured GB-seconds and counted requests."""

from __future__ import annotations

import pytest

from airflow_provider_smr.cost import (
    DEFAULT_PRICES,
    Prices,
    cost_breakdown,
    estimate_cost_usd,
    gb_seconds,
    shuffle_put_budget,
    total_gb_seconds,
)


def test_gb_seconds_bills_every_started_millisecond():
    assert gb_seconds(1.0, 1024) == 1.0
    assert gb_seconds(0.0001, 1024) == pytest.approx(0.001)  # 0.1 ms is billed as 1 ms
    assert gb_seconds(0.0011, 2048) == pytest.approx(0.004)  # 1.1 ms -> 2 ms at 2 GB
    assert gb_seconds(0.0, 1024) == pytest.approx(0.001)


def test_total_gb_seconds_rounds_each_invocation_alone():
    assert total_gb_seconds([(0.0001, 1024)] * 10) == pytest.approx(0.01)
    assert total_gb_seconds([]) == 0


def test_one_million_gb_seconds_and_requests_cost_list_price():
    cost = estimate_cost_usd(1_000_000, 1_000_000, {})
    assert cost == pytest.approx(16.6667 + 0.20)


def test_s3_writes_and_lists_cost_more_than_reads():
    assert estimate_cost_usd(0, 0, {"PUT": 1000}) == pytest.approx(0.005)
    assert estimate_cost_usd(0, 0, {"LIST": 1000, "COPY": 1000}) == pytest.approx(0.010)
    assert estimate_cost_usd(0, 0, {"GET": 1000, "HEAD": 1000}) == pytest.approx(0.0008)


def test_deletes_are_free_and_unknown_kinds_priced_as_reads():
    assert estimate_cost_usd(0, 0, {"DELETE": 10_000}) == 0
    assert estimate_cost_usd(0, 0, {"select": 1000}) == pytest.approx(0.0004)


def test_request_kinds_are_case_insensitive():
    assert estimate_cost_usd(0, 0, {"put": 2000}) == estimate_cost_usd(0, 0, {"PUT": 2000})


def test_breakdown_parts_sum_to_the_estimate():
    requests = {"PUT": 1234, "GET": 56789, "LIST": 17, "DELETE": 3}
    parts = cost_breakdown(4321.5, 2100, requests)
    assert parts.total == estimate_cost_usd(4321.5, 2100, requests)
    assert parts.s3_put == pytest.approx((1234 + 17) * 0.005 / 1000)
    assert parts.s3_get == pytest.approx(56789 * 0.0004 / 1000)
    assert parts.to_dict()["total"] == parts.total


def test_prices_are_configuration():
    arm = Prices(lambda_gb_second=0.0000133334)
    assert estimate_cost_usd(1000, 0, {}, arm) < estimate_cost_usd(1000, 0, {}, DEFAULT_PRICES)


def test_shuffle_put_budget_is_m_plus_2r_plus_10():
    assert shuffle_put_budget(100, 8) == 126
    assert shuffle_put_budget(0, 0) == 10
    with pytest.raises(ValueError):
        shuffle_put_budget(-1, 2)


def test_arm64_gb_seconds_cost_a_fifth_less_and_requests_the_same():
    from airflow_provider_smr.cost import prices_for

    x86, arm = prices_for("x86_64"), prices_for("arm64")
    assert x86 == DEFAULT_PRICES
    assert estimate_cost_usd(1000, 0, {}, arm) / estimate_cost_usd(1000, 0, {}, x86) == pytest.approx(0.8, rel=1e-4)
    assert estimate_cost_usd(0, 10**6, {"PUT": 10}, arm) == estimate_cost_usd(0, 10**6, {"PUT": 10}, x86)
    with pytest.raises(ValueError, match="architecture"):
        prices_for("aarch64")
