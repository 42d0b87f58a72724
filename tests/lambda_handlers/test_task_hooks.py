"""Task setup/teardown, pass-through steps and user counters in the data plane: each map and
reduce path (map-only, shuffle, fold, identity) through the real handlers on local S3, and the
counters of records that are mapped again to name an error."""

from __future__ import annotations

import contextvars
import json
import operator

import pytest

from lambda_handlers import context, mapper, protocol
from lambda_handlers.io import readers
from lambda_handlers.jobspec import IDENTITY, BatchMapper, Fold, JobSpec, StepSpec


def tokenize(line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(values)


def new_tally():
    return {"records": 0}


def tally(line):
    context.state()["records"] += 1
    yield from tokenize(line)


def emit_tally():
    yield "~records", context.state()["records"]


def run_job(harness, chain, steps, reducers, text=b"b a c\na b\n\nc c a\n", split_size=6):
    objs = [harness.put(f"hooks/{len(steps)}-{reducers}-{id(steps)}.txt", text)]
    plan = harness.submit(JobSpec(steps=steps), harness.splits(objs, split_size), reducers)
    chain().run(plan["events"])
    assert harness.state(plan["job_id"]) == [protocol.SUCCEEDED]
    lines, _ = harness.output(plan)
    return plan, [(r["key"], r["value"]) for r in map(json.loads, lines)]


def map_tasks(plan) -> int:
    return len(plan["splits"])


def test_mapper_teardown_pairs_go_through_the_combiner_and_shuffle(harness, chain):
    step = StepSpec(mapper=tally, combiner=Fold(operator.add), reducer=total, mapper_setup=new_tally,
                    mapper_teardown=emit_tally)
    plan, records = run_job(harness, chain, [step], [2])
    assert dict(records) == {"a": 3, "b": 2, "c": 3, "~records": 4}
    assert map_tasks(plan) > 1  # several tasks' tallies were summed


def test_a_map_only_step_writes_its_teardown_pairs_too(harness, chain):
    step = StepSpec(mapper=tally, mapper_setup=new_tally, mapper_teardown=emit_tally)
    plan, records = run_job(harness, chain, [step], [0])
    tallies = [v for k, v in records if k == "~records"]
    assert len(tallies) == map_tasks(plan) and sum(tallies) == 4


@pytest.mark.parametrize("reducer", [IDENTITY, Fold(operator.add), total], ids=["identity", "fold", "function"])
def test_reducer_teardown_pairs_join_every_reduce_path_in_key_order(harness, chain, reducer):
    def seen():
        return {"n": 0}

    def done():
        yield "0-first", 1  # sorts before the reducer's keys: the part is still in key order

    step = StepSpec(mapper=tokenize, reducer=reducer, reducer_setup=seen, reducer_teardown=done)
    _, records = run_job(harness, chain, [step], [1])
    keys = [k for k, _ in records]
    assert keys == sorted(keys) and keys[0] == "0-first"


@pytest.mark.parametrize("combiner", [None, Fold(operator.add), total], ids=["none", "fold", "function"])
def test_a_step_without_a_mapper_shuffles_the_previous_steps_pairs(harness, chain, combiner):
    steps = [StepSpec(mapper=tokenize, reducer=total), StepSpec(mapper=None, combiner=combiner, reducer=total)]
    _, records = run_job(harness, chain, steps, [3, 2])
    assert dict(records) == {"a": 3, "b": 2, "c": 3}


# -- counters of records mapped again -----------------------------------------------------------------


def counted(line):
    context.increment_counter("records", "seen")
    if line.startswith("bad"):
        raise ValueError(line)
    yield line, 1


def counted_block(lines):
    out = []
    for line in lines:
        out += counted(line)
    return out


def source(lines):
    blocks = [lines[i:i + 3] for i in range(0, len(lines), 3)]
    return mapper._Source(iter(blocks), readers.identity, None, lambda i: f"#{i}")


@pytest.mark.parametrize("fn", [counted, BatchMapper(counted_block)], ids=["per-record", "batch"])
def test_a_skipped_bad_record_is_counted_once_not_again_when_it_is_named(fn):
    lines = ["a", "bad1", "b", "c", "d", "bad2", "e"]

    def run():
        context.begin_task(0, "map", 0, 0)
        got: list = []
        records, bad = mapper.run_mapper(source(lines), fn, got.extend, max_bad=2)
        return got, bad, context.task_counters()

    got, bad, counters = contextvars.copy_context().run(run)
    assert bad == 2 and [k for k, _ in got] == ["a", "b", "c", "d", "e"]
    assert counters == {"records": {"seen": len(lines)}}
