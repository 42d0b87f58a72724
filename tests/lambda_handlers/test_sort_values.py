"""Secondary sort (``sort_values``): each key's values reach the reducer in order, streamed, within
the reducer's memory budget (spilling past it), grouped by the key alone."""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from airflow_provider_smr.job import load_job
from lambda_handlers import grouping, protocol, shuffle
from lambda_handlers.jobspec import JobSpec, StepSpec

ROOT = Path(__file__).resolve().parents[2]
JSON = shuffle.serializer("json")


def _groups(sorter: grouping.ValueSorter) -> list[tuple]:
    return [(k, list(vs)) for k, vs in sorter.groups()]


def _expected(pairs, value_key=grouping.value_order) -> list[tuple]:
    by_key = defaultdict(list)
    for k, v in pairs:
        by_key[json.dumps(k)].append(v)
    keys = sorted(by_key, key=lambda enc: shuffle.sort_key(json.loads(enc)))
    return [(json.loads(k), sorted(by_key[k], key=value_key)) for k in keys]


@pytest.mark.parametrize("budget", [1 << 30, 1])
def test_values_come_sorted_per_key_in_memory_and_spilled(tmp_path, budget):
    rnd = random.Random(7)
    pairs = [(rnd.choice("abcde"), rnd.choice([rnd.random(), rnd.randint(-5, 5), f"s{rnd.randint(0, 9)}", None]))
             for _ in range(3000)]
    sorter = grouping.ValueSorter(JSON, budget, tmpdir=str(tmp_path))
    for i in range(0, len(pairs), 100):
        sorter.add_columns([k for k, _ in pairs[i:i + 100]], [v for _, v in pairs[i:i + 100]])
    assert bool(sorter.runs) == (budget == 1)
    assert _groups(sorter) == _expected(pairs)
    assert list(tmp_path.iterdir()) == []  # runs removed once read


@pytest.mark.parametrize("budget", [1 << 30, 1])
def test_mixed_keys_group_by_identity_and_a_value_key_orders_values_stably(tmp_path, budget):
    keys = [None, True, 1, 1.0, "1", "a", [1, "x"], {"k": 2}]
    pairs = [(keys[i % len(keys)], [i % 3, i]) for i in range(400)]
    sorter = grouping.ValueSorter(JSON, budget, value_key=lambda v: v[0], tmpdir=str(tmp_path))
    sorter.add_columns([k for k, _ in pairs[:10]], [v for _, v in pairs[:10]])
    sorter.add_columns([k for k, _ in pairs[10:]], [v for _, v in pairs[10:]])
    got = _groups(sorter)
    assert [k for k, _ in got] == [None, True, 1, 1.0, "1", "a", [1, "x"], {"k": 2}]
    assert got == _expected(pairs, value_key=lambda v: v[0])  # ties keep arrival order (stable)


def test_a_value_key_that_cannot_order_the_values_names_itself(tmp_path):
    def first_item(v):
        return v[0]

    sorter = grouping.ValueSorter(JSON, 1 << 30, value_key=first_item, tmpdir=str(tmp_path))
    sorter.add_columns(["a", "a"], [[1], ["x"]])
    with pytest.raises(grouping.ValueOrderError, match="value_key .*first_item.* comparable"):
        _groups(sorter)


# -- through the handlers ---------------------------------------------------------------------------


def emit_readings(line):
    sensor, reading = line.split()
    yield sensor, float(reading)


def ordered_sum(sensor, readings):
    n, total, last, ordered = 0, 0.0, None, True
    for r in readings:  # an iterator: the values are never held together
        ordered = ordered and (last is None or last <= r)
        n, total, last = n + 1, total + r, r
    yield sensor, [n, total, ordered]


def test_more_values_per_key_than_the_budget_come_sorted_and_sum_exactly(harness, chain):
    rnd = random.Random(3)
    readings = defaultdict(list)
    lines = []
    for _ in range(6000):
        sensor, reading = rnd.choice(["s1", "s2"]), rnd.uniform(-1e6, 1e6) * 10 ** rnd.randint(-8, 8)
        readings[sensor].append(reading)
        lines.append(f"{sensor} {reading!r}\n")
    objs = [harness.put(f"sorted/{i}.txt", "".join(lines[i::3]).encode()) for i in range(3)]
    spec = JobSpec(steps=[StepSpec(mapper=emit_readings, reducer=ordered_sum, sort_values=True)])
    plan = harness.submit(spec, harness.splits(objs, 20_000), [1], memory_budget_bytes=16 << 10)
    chain().run(plan["events"])
    got = {json.loads(x)["key"]: json.loads(x)["value"] for x in harness.output(plan)[0]}
    # each key's values are far more than the reducer's budget: they came in sorted order all the same,
    # so the float sums are the sums of the sorted values, whatever order the map tasks finished in
    assert got == {s: [len(v), sum(sorted(v)), True] for s, v in readings.items()}
    marker = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"], Key=protocol.done_marker_key(
        plan["job_id"], 0, "reduce", 0))["Body"].read())
    assert marker["spilled_bytes"] > 16 << 10


def _next_word_stats_reference(text: str) -> dict:
    pairs: Counter = Counter()
    for line in text.splitlines():
        words = [w.lower() for w in re.findall(r"[\w']+", line)]
        pairs.update(pairwise(words))
    totals: Counter = Counter()
    for (prev, _), n in pairs.items():
        totals[prev] += n
    return {(prev, word): [totals[prev], n, 100.0 * n / totals[prev]] for (prev, word), n in pairs.items()}


def test_next_word_stats_example_matches_a_plain_python_count(harness, chain):
    rnd = random.Random(11)
    vocab = ["the", "The", "fox", "dog's", "jumps", "over", "lazy", "a", "quick", "brown"]
    text = "".join(" ".join(rnd.choice(vocab) for _ in range(rnd.randint(0, 14))) + ".\n" for _ in range(600))
    objs = [harness.put("nws/in.txt", text.encode())]
    job = load_job(f"{ROOT}/dags_examples/jobs/next_word_stats.py:next_word_stats")
    plan = harness.submit(job.to_spec(), harness.splits(objs, 2000), [3, 2], memory_budget_bytes=8 << 10)
    chain().run(plan["events"])
    got = {}
    for line in harness.output(plan)[0]:
        rec = json.loads(line)
        got[tuple(rec["key"])] = rec["value"]
    assert got == _next_word_stats_reference(text)


def test_identity_and_fold_reducers_get_sorted_values_too(harness, chain):
    from lambda_handlers.jobspec import IDENTITY, Fold

    rnd = random.Random(5)
    values = [rnd.uniform(0, 1) * 10 ** rnd.randint(-9, 9) for _ in range(500)]
    objs = [harness.put(f"sorted-id/{i}.txt", "".join(f"k {v!r}\n" for v in values[i::2]).encode())
            for i in range(2)]
    for reducer, expected in ((IDENTITY, [["k", v] for v in sorted(values)]),
                              (Fold(lambda a, b: a + b), [["k", sum(sorted(values))]])):
        spec = JobSpec(steps=[StepSpec(mapper=emit_readings, reducer=reducer, sort_values=True)])
        plan = harness.submit(spec, harness.splits(objs, 1000), [1], memory_budget_bytes=8 << 10)
        chain().run(plan["events"])
        assert [[r["key"], r["value"]] for r in map(json.loads, harness.output(plan)[0])] == expected
