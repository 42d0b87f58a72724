"""Reducers the engine runs without a call per key: ``identity`` (sorted pairs written as they are)
and a ``fold`` (one accumulator per key). Their parts are byte for byte what calling them per key
gives, in memory or spilled, and with keys that are not ``str`` (the general path)."""

from __future__ import annotations

import operator
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import reducer, runtime, shuffle
from lambda_handlers.jobspec import IDENTITY, Fold, JobSpec, StepSpec
from lambda_handlers.plan import Plan

JSON = shuffle.serializer("json")


def per_key_identity(key, values):
    return [(key, v) for v in values]


def per_key_sum(key, values):
    return [(key, sum(values))]


def run_reduce(monkeypatch, map_tasks: list[list[tuple]], job_reducer, fmt: str = "jsonl",
               budget: int = 64 << 20, last: bool = True) -> tuple[bytes, dict]:
    """Reduce task 0 of a one-partition shuffle of ``map_tasks`` (each a list of pairs, in the
    batches given) with the real ``reduce_task``; S3 is a dict."""
    objects, outputs = {}, []
    for t, batches in enumerate(map_tasks):
        out = shuffle.PartitionedOutput(1, JSON)
        for batch in batches:
            out.add_many(batch)
        objects[f"map/{t}"], index = out.finish()
        outputs.append([f"map/{t}", index])
    put: dict = {}

    def get_bytes(bucket, key, Range=None, **_):
        lo, hi = (int(x) for x in Range.split("=")[1].split("-"))
        return objects[key][lo:hi + 1]

    monkeypatch.setattr(runtime, "get_bytes", get_bytes)
    monkeypatch.setattr(runtime, "put_bytes", lambda bucket, key, body, **_: put.__setitem__(key, body))
    monkeypatch.setattr(reducer, "map_outputs", lambda *a: outputs)
    steps = [{"num_map_tasks": len(outputs)}] + ([] if last else [{"num_map_tasks": 1}])
    plan = Plan.from_json({"job_id": "j", "steps": steps, "output": {"format": fmt},
                           "limits": {"memory_budget_bytes": budget}})
    job = JobSpec(steps=[StepSpec(mapper=None, reducer=job_reducer)] * len(steps))
    event = {"bucket": "b", "job_id": "j", "step": 0, "task": 0, "attempt": 0}
    done = reducer.reduce_task(event, plan, job, runtime.TaskMetrics())
    return put[done["output_key"]], done


def _tasks(pairs: list, tasks: int, batch: int) -> list[list[list]]:
    per = -(-len(pairs) // tasks) or 1
    chunks = [pairs[i:i + per] for i in range(0, len(pairs), per)] or [[]]
    return [[c[i:i + batch] for i in range(0, len(c), batch)] for c in chunks]


str_pairs = st.lists(st.tuples(st.text('ab"\\\n\x7fé\0', max_size=3),
                               st.text("xy\"\\\t\u2028", max_size=3) | st.integers() | st.floats()),
                     max_size=60)


@settings(max_examples=60, deadline=None)
@given(str_pairs, st.integers(1, 4), st.integers(1, 7), st.sampled_from(["jsonl", "tsv", "csv"]),
       st.booleans())
def test_identity_part_equals_the_per_key_identity(pairs, tasks, batch, fmt, spill):
    budget = 1 if spill else 64 << 20
    shards = _tasks(pairs, tasks, batch)
    with pytest.MonkeyPatch.context() as m:
        got, done = run_reduce(m, shards, IDENTITY, fmt, budget)
    with pytest.MonkeyPatch.context() as m:
        want, _ = run_reduce(m, shards, per_key_identity, fmt, budget)
    assert got == want and done["records_out"] == done["records_in"] == len(pairs)


def test_identity_spills_sorted_runs_past_its_budget_and_merges_them_stably(monkeypatch):
    rnd = random.Random(3)
    pairs = [(f"k{rnd.randrange(500):03d}", f"v{i}") for i in range(20_000)]
    shards = _tasks(pairs, 4, 1000)
    got, done = run_reduce(monkeypatch, shards, IDENTITY, budget=256 << 10)
    want, _ = run_reduce(monkeypatch, shards, per_key_identity, budget=64 << 20)
    assert done["spilled_bytes"] > 0 and got == want


def test_identity_with_keys_that_are_not_str_falls_back_to_grouping(monkeypatch):
    shards = [[[("b", 1), ("a", 2)]], [[(3, "x"), ("a", 4), (None, 5)]], [[("b", 6), (1.5, 7)]]]
    for budget, fmt in ((1, "jsonl"), (64 << 20, "tsv"), (64 << 20, "jsonl")):
        got, _ = run_reduce(monkeypatch, shards, IDENTITY, fmt, budget=budget)
        want, _ = run_reduce(monkeypatch, shards, per_key_identity, fmt, budget=budget)
        assert got == want
    assert got.splitlines()[:3] == [b'{"key": null, "value": 5}', b'{"key": 1.5, "value": 7}',
                                    b'{"key": 3, "value": "x"}']


def test_identity_in_a_step_that_is_not_the_last_ships_sorted_pairs(monkeypatch):
    shards = [[[("b", 1), ("a", 2)]], [[("a", 3)]]]
    data, done = run_reduce(monkeypatch, shards, IDENTITY, last=False)
    assert list(shuffle.iter_pairs(data, JSON)) == [("a", 2), ("a", 3), ("b", 1)]
    assert done["records_out"] == 3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text("abc", max_size=2), st.integers(-5, 5)), max_size=80),
       st.integers(1, 4), st.integers(1, 9), st.booleans())
def test_fold_part_equals_the_per_key_reducer(pairs, tasks, batch, spill):
    shards = _tasks(pairs, tasks, batch)
    budget = 1 if spill else 64 << 20
    with pytest.MonkeyPatch.context() as m:
        got, done = run_reduce(m, shards, Fold(operator.add), budget=budget)
    with pytest.MonkeyPatch.context() as m:
        want, _ = run_reduce(m, shards, per_key_sum, budget=budget)
    assert got == want and done["records_in"] == len(pairs)


def test_fold_spills_accumulators_and_merges_them_exactly(monkeypatch):
    words = [f"w{i}" for i in range(3000)]
    shards = [[[(w, 1) for w in words[t::2]] + [(w, 2) for w in words[::7]]] for t in range(3)]
    got, done = run_reduce(monkeypatch, shards, Fold(operator.add), budget=128 << 10)
    want, _ = run_reduce(monkeypatch, shards, per_key_sum)
    assert done["spilled_bytes"] > 0 and got == want


def test_fold_with_another_function_and_non_str_keys(monkeypatch):
    shards = [[[("a", [1]), ("b", [2])]], [[("a", [3]), (7, [4]), ("b", [5])]]]
    got, _ = run_reduce(monkeypatch, shards, Fold(operator.add))
    assert got.splitlines() == [b'{"key": 7, "value": [4]}', b'{"key": "a", "value": [1, 3]}',
                                b'{"key": "b", "value": [2, 5]}']


def test_a_failing_fold_names_the_reducer_and_the_cause(monkeypatch):
    shards = [[[("a", 1), ("a", "x")]]]
    with pytest.raises(runtime.TaskError, match=r"reducer fold\(add\) failed: TypeError"):
        run_reduce(monkeypatch, shards, Fold(operator.add))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(), max_size=6) | st.sampled_from(["\\u0000", "\\", '"', "\0", "\x7f"]),
                min_size=1, max_size=8))
def test_a_str_column_is_quoted_exactly_as_json_dumps_writes_it(column):
    import json

    from lambda_handlers.io import writers

    texts, quote = writers.quoted_column(column)
    assert [quote + t + quote for t in texts] == [json.dumps(s) for s in column]
