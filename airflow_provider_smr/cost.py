"""The cost model: what a job costs on AWS, from measured durations and counted requests.

The prices and the bill's arithmetic live in the data plane (:mod:`lambda_handlers.prices`: the
coordinator prices a running job's spend with them) and are re-exported here; the defaults are
us-east-1 x86_64 list prices, and :func:`prices_for` gives those of a stack's architecture. The
model counts Lambda compute (GB-seconds of billed duration), Lambda requests and S3 requests by
type. It ignores storage (intermediate objects live for minutes), data transfer (same region is
free) and CloudWatch Logs ingestion.
"""

from __future__ import annotations

from collections.abc import Iterable

from lambda_handlers.prices import (
    ARM64_PRICES,
    DEFAULT_PRICES,
    PRICES_BY_ARCHITECTURE,
    CostBreakdown,
    Prices,
    cost_breakdown,
    estimate_cost_usd,
    gb_seconds,
    prices_for,
    total_gb_seconds,
)

__all__ = ["ARM64_PRICES", "DEFAULT_PRICES", "PRICES_BY_ARCHITECTURE", "CostBreakdown", "Prices",
           "cost_breakdown", "estimate_cost_usd", "gb_seconds", "lambda_invokes", "prices_for",
           "shuffle_put_budget", "total_gb_seconds"]


def lambda_invokes(attempts: int, done_bodies: Iterable[dict]) -> int:
    """The Lambda invokes of ``attempts`` task attempts: each attempt's own and its coordinator
    call, but not an attempt run in the function of the task before it (``ran_inline``) nor the
    call a task made itself (``coordinated_inline``: a phase of one task), as done markers say."""
    inline = sum(bool(b.get("ran_inline")) + bool(b.get("coordinated_inline")) for b in done_bodies)
    return 2 * attempts - inline


def shuffle_put_budget(num_map_tasks: int, num_reducers: int) -> int:
    """Most S3 writes one MapReduce step may make: ``M + 2R + 10``.

    One data object per map task, a data object and a done marker per reducer, and a constant for
    claims and job-level objects. A design that writes one object per (mapper, reducer) pair
    (M x R) breaks this as soon as both are above a handful.
    """
    if num_map_tasks < 0 or num_reducers < 0:
        raise ValueError("task counts cannot be negative")
    return num_map_tasks + 2 * num_reducers + 10
