"""Checks of a benchmark's output against its floor's answer (pure: records in, verdict out)."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Iterator


class Mismatch(AssertionError):
    """The engine's answer differs from the floor's."""


def jsonl_records(lines: Iterable[bytes | str]) -> Iterator[tuple]:
    for line in lines:
        if line.strip():
            record = json.loads(line)
            yield record["key"], record["value"]


def check_counts(got: dict, expected: dict) -> None:
    """Exact equality of ``{key: count}``."""
    if got != expected:
        missing = [k for k in expected if k not in got][:3]
        extra = [k for k in got if k not in expected][:3]
        wrong = [(k, got[k], v) for k, v in expected.items() if k in got and got[k] != v][:3]
        raise Mismatch(f"{len(got)} keys vs {len(expected)} expected; missing {missing}, extra {extra}, "
                       f"wrong {wrong}")


def check_sums(got: dict, expected: dict, rel: float = 1e-9, abs_tol: float = 1e-6) -> None:
    """Same keys and float sums equal up to summation order."""
    if got.keys() != expected.keys():
        raise Mismatch(f"{len(got)} keys vs {len(expected)} expected "
                       f"(e.g. missing {sorted(expected.keys() - got.keys())[:3]})")
    bad = [(k, got[k], v) for k, v in expected.items()
           if not math.isclose(got[k], v, rel_tol=rel, abs_tol=abs_tol)]
    if bad:
        raise Mismatch(f"{len(bad)} sums differ, e.g. {bad[:3]}")


def record_digest(records: Iterable[str]) -> tuple[int, int]:
    """``(count, sum of crc32)``: equal for equal multisets of records, whatever their order."""
    count = total = 0
    for record in records:
        count += 1
        total += zlib.crc32(record.encode())
    return count, total


def check_globally_sorted(parts: Iterable[Iterable[tuple]], expected: tuple[int, int]) -> int:
    """Keys never decrease across parts taken in order, and the records are the input's records.

    :param parts: per part, its ``(key, value)`` records in file order.
    :param expected: :func:`record_digest` of the input lines (``key + value``).
    :returns: the number of records.
    """
    last = None
    count = total = 0
    for index, part in enumerate(parts):
        for key, value in part:
            if last is not None and key < last:
                raise Mismatch(f"part {index}: key {key!r} after {last!r}: not globally ordered")
            last = key
            count += 1
            total += zlib.crc32((key + value).encode())
    if (count, total) != expected:
        raise Mismatch(f"{count} records (digest {total}) vs {expected[0]} in the input "
                       f"(digest {expected[1]}): records lost, duplicated or changed")
    return count


def step_writes(job_prefix: str, keys: Iterable[str], final_step: int) -> dict[int, dict[str, int]]:
    """Objects a job wrote, per step: shuffle data objects and marker objects.

    ``data`` counts map outputs (``map/<s>/``), reduce outputs of non-final steps (``reduce/<s>/``)
    and, for the final step, staged parts (``parts/``); ``markers`` counts ``status/<s>/...``.
    Claims and job-level objects are counted under step -1. Each object is at least one PUT.
    """
    out: dict[int, dict[str, int]] = {}

    def add(step: int, what: str) -> None:
        out.setdefault(step, {"data": 0, "markers": 0})[what] += 1

    for key in keys:
        rest = key[len(job_prefix):] if key.startswith(job_prefix) else None
        if rest is None:
            continue
        parts = rest.split("/")
        if parts[0] in ("map", "reduce") and len(parts) > 2 and parts[1].isdigit():
            add(int(parts[1]), "data")
        elif parts[0] == "parts":
            add(final_step, "data")
        elif parts[0] == "status" and len(parts) > 2 and parts[1].isdigit():
            add(int(parts[1]), "markers")
        else:
            add(-1, "markers")
    return out
