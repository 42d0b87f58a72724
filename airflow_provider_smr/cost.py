"""The cost model: what a job costs on AWS, from measured durations and counted requests.

List prices are configuration (``Prices``), not constants sprinkled in code; the defaults are
us-east-1 x86 list prices. The model counts Lambda compute (GB-seconds of billed duration),
Lambda requests and S3 requests by type. It ignores storage (intermediate objects live for
minutes), data transfer (same region is free) and CloudWatch Logs ingestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


DEFAULT_PRICES = Prices()


def gb_seconds(duration_s: float, memory_mb: int) -> float:
    """Billed GB-seconds of one invocation (Lambda bills per started millisecond)."""
    billed_ms = max(1, -(-int(duration_s * 1_000_000) // 1000))
    return billed_ms / 1000 * memory_mb / 1024


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
    cost = lambda_gb_seconds * prices.lambda_gb_second + lambda_requests * prices.lambda_request
    for kind, count in s3_requests.items():
        tier = prices.s3_request_kinds.get(kind.upper(), "get")
        if tier == "put":
            cost += count * prices.s3_put
        elif tier == "get":
            cost += count * prices.s3_get
    return round(cost, 8)
