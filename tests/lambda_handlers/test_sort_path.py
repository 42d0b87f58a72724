"""A sort job with the engine's built-ins (batch mapper, range partitioner, identity reducer) through
the handler chain on S3: the parts taken in order are the input sorted by key, byte for byte what
the same job written per record gives."""

from __future__ import annotations

import bisect
import random

from lambda_handlers.jobspec import IDENTITY, BatchMapper, JobSpec, RangePartitioner, StepSpec

KEY = 4


def records_block(lines):
    return [(line[:KEY], line[KEY:]) for line in lines]


def record(line):
    yield line[:KEY], line[KEY:]


def values_in_order(key, values):
    for v in values:
        yield key, v


def _input(n: int) -> tuple[bytes, list[str]]:
    rnd = random.Random(11)
    chars = 'ab"\\ c~é'
    lines = ["".join(rnd.choices(chars, k=KEY)) + f" {i:06d} " + rnd.choice(["x", "y\\z", '"q"'])
             for i in range(n)]
    return ("\n".join(lines) + "\n").encode(), lines


def _run(harness, chain, spec, body: bytes, name: str, reducers: int) -> list[bytes]:
    objs = [harness.put(f"sortpath/{name}.txt", body)]
    plan = harness.submit(spec, harness.splits(objs, len(body) // 5 + 1), [reducers])
    chain().run(plan["events"])
    lines, manifest = harness.output(plan)
    assert len(manifest["parts"]) == reducers
    return lines


def test_builtin_sort_job_output_is_the_input_sorted_and_equals_the_per_record_job(harness, chain):
    import json

    body, lines = _input(3000)
    cuts = sorted(line[:KEY] for line in lines[::400])
    builtin = JobSpec(steps=[StepSpec(mapper=BatchMapper(records_block), reducer=IDENTITY,
                                      partitioner=RangePartitioner(cuts))])
    got = _run(harness, chain, builtin, body, "builtin", 4)
    records = [(r["key"], r["value"]) for r in map(json.loads, got)]
    assert [k for k, _ in records] == sorted(line[:KEY] for line in lines)
    assert sorted(k + v for k, v in records) == sorted(lines)
    # each key's records in input order: the sort is stable across map tasks and batches
    assert records == sorted(((line[:KEY], line[KEY:]) for line in lines), key=lambda kv: kv[0])

    per_record = JobSpec(steps=[StepSpec(
        mapper=record, reducer=values_in_order,
        partitioner=lambda key, n: min(bisect.bisect_right(cuts, key), n - 1))])
    assert _run(harness, chain, per_record, body, "per-record", 4) == got
