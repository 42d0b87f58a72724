"""What AWS charges, and the arithmetic of a bill: list prices, billed GB-seconds, cost by item.

List prices are configuration (:class:`Prices`), not constants sprinkled in code; the defaults are
us-east-1 x86_64 list prices, and :func:`prices_for` gives those of a stack's architecture. A bill
counts Lambda compute (GB-seconds of billed duration), Lambda requests and S3 requests by type; it
ignores storage (intermediate objects live for minutes), data transfer (same region is free) and
CloudWatch Logs ingestion. Standard library only: the coordinator prices a running job's spend
(``max_cost_usd``) and the planner its estimate (:mod:`lambda_handlers.costmodel`) with it; the
control plane re-exports it as :mod:`airflow_provider_smr.cost`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: S3 API operations (as botocore and the done markers name them) by request type
S3_OPERATION_TYPES = {"GetObject": "GET", "PutObject": "PUT", "ListObjectsV2": "LIST", "ListObjects": "LIST",
                      "HeadObject": "HEAD", "HeadBucket": "HEAD", "CopyObject": "COPY",
                      "DeleteObject": "DELETE", "DeleteObjects": "DELETE"}


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1_000_000
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    s3_get: float = 0.0004 / 1000  # GET, HEAD and everything else that reads
    s3_request_kinds: dict[str, str] = field(
        default_factory=lambda: {
            "PUT": "put", "COPY": "put", "POST": "put", "LIST": "put",
            "GET": "get", "HEAD": "get", "DELETE": "free",
        }
    )

    def s3_tier(self, kind: str) -> str:
        """``"put"``, ``"get"`` or ``"free"``; unknown request types are priced as reads."""
        return self.s3_request_kinds.get(kind.upper(), "get")


DEFAULT_PRICES = Prices()
# AWS Lambda's published on-demand duration prices, us-east-1, first pricing tier
# (https://aws.amazon.com/lambda/pricing/): x86_64 $0.0000166667 per GB-second (first 6 billion
# GB-s a month), arm64 (Graviton2) $0.0000133334 per GB-second (first 7.5 billion): 20% less.
# Requests cost the same on both ($0.20 per million).
ARM64_PRICES = Prices(lambda_gb_second=0.0000133334)
PRICES_BY_ARCHITECTURE = {"x86_64": DEFAULT_PRICES, "arm64": ARM64_PRICES}


def prices_for(architecture: str = "x86_64") -> Prices:
    """The list prices of a stack's functions' architecture (``x86_64`` or ``arm64``)."""
    try:
        return PRICES_BY_ARCHITECTURE[architecture]
    except KeyError:
        raise ValueError(f"architecture must be one of {', '.join(PRICES_BY_ARCHITECTURE)}, "
                         f"got {architecture!r}") from None


def gb_seconds(duration_s: float, memory_mb: int) -> float:
    """Billed GB-seconds of one invocation (Lambda bills per started millisecond)."""
    billed_ms = max(1, -(-int(duration_s * 1_000_000) // 1000))
    return billed_ms / 1000 * memory_mb / 1024


def total_gb_seconds(invocations: Iterable[tuple[float, int]]) -> float:
    """Billed GB-seconds of many ``(duration_s, memory_mb)`` invocations, each rounded up alone."""
    return sum(gb_seconds(duration, memory) for duration, memory in invocations)


@dataclass(frozen=True)
class CostBreakdown:
    """A job's estimated list-price cost in USD, by what it pays for."""

    lambda_compute: float
    lambda_requests: float
    s3_put: float
    s3_get: float

    @property
    def total(self) -> float:
        return round(self.lambda_compute + self.lambda_requests + self.s3_put + self.s3_get, 8)

    def to_dict(self) -> dict[str, float]:
        return {**{k: round(v, 8) for k, v in asdict(self).items()}, "total": self.total}


def cost_breakdown(
    lambda_gb_seconds: float,
    lambda_requests: int,
    s3_requests: Mapping[str, int],
    prices: Prices = DEFAULT_PRICES,
) -> CostBreakdown:
    """The cost of a job split into Lambda compute, Lambda requests, S3 writes/lists and S3 reads."""
    put = get = 0.0
    for kind, count in s3_requests.items():
        tier = prices.s3_tier(kind)
        if tier == "put":
            put += count * prices.s3_put
        elif tier == "get":
            get += count * prices.s3_get
    return CostBreakdown(
        lambda_compute=lambda_gb_seconds * prices.lambda_gb_second,
        lambda_requests=lambda_requests * prices.lambda_request,
        s3_put=put,
        s3_get=get,
    )


def estimate_cost_usd(
    lambda_gb_seconds: float,
    lambda_requests: int,
    s3_requests: dict[str, int],
    prices: Prices = DEFAULT_PRICES,
) -> float:
    """Estimated list-price cost of a job.

    :param lambda_gb_seconds: billed GB-seconds over all invocations.
    :param lambda_requests: number of Lambda invocations.
    :param s3_requests: request counts by type (``PUT``, ``GET``, ``LIST``, ``HEAD``, ...).
    """
    return cost_breakdown(lambda_gb_seconds, lambda_requests, s3_requests, prices).total


def attempt_usd(marker: Mapping[str, Any], prices: Prices = DEFAULT_PRICES, memory_mb: int = 1024) -> float:
    """What one task attempt cost, from its done marker: its billed GB-seconds (``duration_s`` at
    ``memory_mb``), its S3 requests (``requests`` by operation) and two Lambda requests (the task
    and its coordinator call)."""
    duration = float(marker.get("duration_s") or 0.0)
    memory = int(marker.get("memory_mb") or memory_mb)
    requests = marker.get("requests") or {}
    s3 = {S3_OPERATION_TYPES.get(op, op.upper()): int(n)
          for op, n in requests.items()} if isinstance(requests, Mapping) else {}
    bill = cost_breakdown(gb_seconds(duration, memory), 2, s3, prices)
    return bill.lambda_compute + bill.lambda_requests + bill.s3_put + bill.s3_get  # unrounded: summed
