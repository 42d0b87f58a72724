"""Read a finished job's output parts back (for the example DAGs' downstream tasks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def part_uris(result: dict[str, Any]) -> list[str]:
    """``s3://`` URIs of the parts listed in an operator's result dict."""
    output = result["output"].rstrip("/") + "/"
    uris = []
    for part in result.get("parts") or []:
        name = part if isinstance(part, str) else (part.get("uri") or part.get("key") or part["name"])
        uris.append(name if name.startswith("s3://") else output + name.rsplit("/", 1)[-1])
    return uris


def read_pairs(result: dict[str, Any], aws_conn_id: str | None = "aws_default") -> Iterator[tuple[Any, Any]]:
    """Every ``(key, value)`` in the job's jsonl parts."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    s3 = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3").conn
    for uri in part_uris(result):
        bucket, key = _split(uri)
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines():
            if line:
                record = json.loads(line)
                yield record["key"], record["value"]


def top(pairs: Iterator[tuple[Any, Any]], n: int = 10) -> list[tuple[Any, Any]]:
    """The ``n`` largest values, ties broken by key."""
    return sorted(pairs, key=lambda kv: (-kv[1], str(kv[0])))[:n]
