"""Batch mappers: one call per block of records, the same answers as a per-record mapper, and a
failing record found, named or skipped by mapping its block again one record at a time.

Real handlers and readers on the local stack's S3 through boto3 (the handler chain of conftest.py).
"""

from __future__ import annotations

import json
import operator
import random
from collections import Counter

import pytest

from lambda_handlers import mapper, protocol, runtime, shuffle
from lambda_handlers.io import readers
from lambda_handlers.jobspec import BatchMapper, Fold, JobSpec, StepSpec

JSON = shuffle.serializer("json")
WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "boom"]


def _text(seed: int, lines: int) -> str:
    rnd = random.Random(seed)
    return "".join(" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 9))) + "\n"
                   for _ in range(lines))


# -- job functions (pickled by value into job.pkl) ------------------------------------------------


def tokenize(line):
    for w in line.split():
        yield w, 1


def count_block(lines):
    counts = {}
    for line in lines:
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
    return counts.items()


def pairs_block(lines):
    return [(w, 1) for line in lines for w in line.split()]


def total(key, values):
    yield key, sum(values)


def boom_block(lines):
    """Fails on a block holding a line "boom"; alone, every other line maps."""
    out = []
    for line in lines:
        if line == "boom":
            raise ValueError("no")
        out.append((line, 1))
    return out


def _outputs(harness, plan) -> dict:
    lines, _ = harness.output(plan)
    return {json.loads(ln)["key"]: json.loads(ln)["value"] for ln in lines}


def _map_markers(harness, plan) -> list[dict]:
    return [json.loads(harness.s3.get_object(
        Bucket=plan["work_bucket"], Key=protocol.done_marker_key(plan["job_id"], 0, "map", t))["Body"].read())
        for t in range(len(plan["splits"]))]


def _source(s3, body: bytes, fmt: str = "text", key: str = "batch/in") -> mapper._Source:
    etag = s3.put_object(Bucket="smr-data-test", Key=key, Body=body)["ETag"]
    split = {"bucket": "smr-data-test", "key": key, "etag": etag, "start": 0, "end": len(body),
             "size": len(body), "format": fmt}
    return mapper._split_source(split, runtime.TaskMetrics(), readers.BATCH_BLOCK_BYTES)


# -- the same answers as the per-record job ---------------------------------------------------------


@pytest.mark.parametrize("batch_fn,combiner", [(count_block, Fold(operator.add)), (pairs_block, None),
                                               (count_block, total)],
                         ids=["dict-items-fold", "pairs-no-combiner", "plain-combiner"])
def test_a_batch_job_counts_exactly_like_the_per_record_job(harness, chain, batch_fn, combiner):
    texts = [_text(1, 700), _text(2, 300)]
    objs = [harness.put(f"batch-eq/{i}.txt", t.encode()) for i, t in enumerate(texts)]
    splits = harness.splits(objs, 2500)
    got = {}
    for name, fn in (("per-record", tokenize), ("batch", BatchMapper(batch_fn))):
        spec = JobSpec(steps=[StepSpec(mapper=fn, combiner=combiner, reducer=total)])
        plan = harness.submit(spec, splits, [3])
        chain().run(plan["events"])
        got[name] = (_outputs(harness, plan), [m["records_in"] for m in _map_markers(harness, plan)])
    assert got["batch"] == got["per-record"]
    assert got["batch"][0] == dict(Counter(w for t in texts for w in t.split()))


def test_a_map_only_batch_job_writes_the_per_record_jobs_output(harness, chain):
    text = _text(3, 400)
    objs = [harness.put("batch-maponly/a.txt", text.encode())]
    parts = {}
    for name, fn in (("per-record", tokenize), ("batch", BatchMapper(pairs_block))):
        plan = harness.submit(JobSpec(steps=[StepSpec(mapper=fn)]), harness.splits(objs, 900), [0])
        chain().run(plan["events"])
        parts[name] = harness.output(plan)[0]
    assert parts["batch"] == parts["per-record"] and len(parts["batch"]) == len(text.split())


def swap_block(pairs):
    return [(str(v), k) for k, v in pairs]


def test_a_batch_mapper_in_a_later_step_gets_the_previous_reducers_pairs(harness, chain):
    objs = [harness.put("batch-step/a.txt", b"a b a c a b\n" * 50)]
    spec = JobSpec(steps=[StepSpec(mapper=BatchMapper(count_block), combiner=Fold(operator.add),
                                   reducer=Fold(operator.add)),
                          StepSpec(mapper=BatchMapper(swap_block), reducer=lambda k, vs: [(k, sorted(vs))])])
    plan = harness.submit(spec, harness.splits(objs, 200), [2, 1])
    chain().run(plan["events"])
    assert _outputs(harness, plan) == {"150": ["a"], "100": ["b"], "50": ["c"]}


def test_named_inputs_take_batch_and_per_record_mappers_side_by_side(harness, chain):
    users = harness.put("batch-join/users.csv", b"id,name\n1,ann\n\n2,bob\n")
    orders = harness.put("batch-join/orders.jsonl", b'{"user": 1, "amount": 5}\n\n{"user": 1, "amount": 7}\n'
                                                    b'{"user": 2, "amount": 1}\n')
    seen = BatchMapper(lambda rows: [(int(r["id"]), ["name", r["name"]]) for r in rows])
    spec = JobSpec(steps=[StepSpec(
        mapper={"users": seen, "orders": BatchMapper(lambda recs: [(r["user"], ["amount", r["amount"]])
                                                                   for r in recs])},
        reducer=lambda k, vs: [(dict(v for v in vs if v[0] == "name")["name"],
                                sum(v[1] for v in vs if v[0] == "amount"))])])
    splits = harness.splits([users], 8, "csv", "users") + harness.splits([orders], 30, "jsonl", "orders")
    for i, sp in enumerate(splits):
        sp["task"] = i
    plan = harness.submit(spec, splits, [2])
    chain().run(plan["events"])
    assert _outputs(harness, plan) == {"ann": 12, "bob": 1}


# -- one call per block ------------------------------------------------------------------------------


def test_a_batch_mapper_is_called_once_per_block_with_parsed_records_only(s3):
    calls: list[list] = []

    def rows(recs):
        calls.append(recs)
        return [(r["w"], int(r["n"])) for r in recs]

    body = b"w,n\n" + b"".join(b"x,1\n\ny,2\n" for _ in range(3000))
    got: list = []
    records, bad = mapper.run_mapper(_source(s3, body, "csv"), BatchMapper(rows), got.extend, 0)
    assert len(calls) == 1 and len(calls[0]) == 6000  # blank csv lines are not records
    assert calls[0][:2] == [{"w": "x", "n": "1"}, {"w": "y", "n": "2"}]
    assert (records, bad) == (6000, 0)
    assert Counter(k for k, _ in got) == {"x": 3000, "y": 3000}


def test_the_fused_fold_loop_calls_a_batch_mapper_once_and_folds_its_pairs(s3):
    calls: list[int] = []

    def typed(lines):
        calls.append(len(lines))
        return [(int(w) if w.isdigit() else w, 1) for line in lines for w in line.split()]

    sunk: list = []
    comb = shuffle.FoldCombiner(Fold(operator.add), sunk.extend, JSON, 1 << 20)
    assert mapper.run_mapper_folding(_source(s3, b"a b 1\nb 1\n\nc\n"), BatchMapper(typed), comb) == 4
    comb.flush()
    assert calls == [4]
    assert sorted(map(repr, sunk)) == sorted(map(repr, [("a", 1), ("b", 2), (1, 2), ("c", 1)]))


def test_dict_items_with_keys_other_than_str_fold_by_key_identity(s3):
    comb = shuffle.FoldCombiner(Fold(operator.add), [].extend, JSON, 1 << 20)
    block = BatchMapper(lambda lines: {1: len(lines), "1": 2 * len(lines)}.items())
    mapper.run_mapper_folding(_source(s3, b"x\ny\n"), block, comb)
    sunk: list = []
    comb.sink = sunk.extend
    comb.flush()
    assert sorted(map(repr, sunk)) == sorted(map(repr, [(1, 2), ("1", 4)]))


# -- failing records ------------------------------------------------------------------------------------


def test_a_failing_record_in_a_batch_is_named_by_its_byte_offset(s3):
    src = _source(s3, "é\r\nok\r\nboom\nz\n".encode())
    with pytest.raises(runtime.TaskError, match=r"mapper failed on the record at byte 8 of "
                                                r"s3://smr-data-test/batch/in: ValueError: no") as err:
        mapper.run_mapper(src, BatchMapper(boom_block), [].extend, 0)
    assert err.value.record_preview == "boom"


def test_the_fused_fold_loop_names_the_failing_record_of_a_batch(s3):
    comb = shuffle.FoldCombiner(Fold(operator.add), [].extend, JSON, 1 << 20)
    with pytest.raises(runtime.TaskError, match=r"mapper failed on the record at byte 8 .*ValueError: no") as err:
        mapper.run_mapper_folding(_source(s3, "é\r\nok\r\nboom\n".encode()), BatchMapper(boom_block), comb)
    assert err.value.record_preview == "boom"


def test_a_batch_mapper_returning_something_else_than_pairs_is_named(s3):
    odd = BatchMapper(lambda lines: [(ln, 1) if ln != "odd" else ln for ln in lines])
    with pytest.raises(runtime.TaskError, match=r"record at byte 2 .*must return an iterable of \(key, value\) "
                                                r"pairs.*'odd'"):
        mapper.run_mapper(_source(s3, b"a\nodd\nb\n"), odd, [].extend, 0)
    comb = shuffle.FoldCombiner(Fold(operator.add), [].extend, JSON, 1 << 20)
    with pytest.raises(runtime.TaskError, match=r"must return an iterable of \(key, value\) pairs; for the "
                                                r"record at byte 2"):
        mapper.run_mapper_folding(_source(s3, b"a\nodd\nb\n"), odd, comb)


def test_a_block_that_fails_only_as_a_whole_fails_the_task_naming_the_block(s3):
    def fails_on_many(lines):
        if len(lines) > 1:
            raise RuntimeError("too many")
        return [(lines[0], 1)]

    with pytest.raises(runtime.TaskError, match=r"failed on the block of 3 records starting at byte 0 .* "
                                                r"none of them alone: RuntimeError: too many"):
        mapper.run_mapper(_source(s3, b"a\nb\nc\n"), BatchMapper(fails_on_many), [].extend, 0)
    comb = shuffle.FoldCombiner(Fold(operator.add), [].extend, JSON, 1 << 20)
    with pytest.raises(runtime.TaskError, match=r"none of them alone"):
        mapper.run_mapper_folding(_source(s3, b"a\nb\nc\n"), BatchMapper(fails_on_many), comb)


def test_max_bad_records_skips_exactly_the_failing_records_of_a_batch(s3):
    body = b"a\nboom\nb\n" * 1500
    got: list = []
    records, bad = mapper.run_mapper(_source(s3, body), BatchMapper(boom_block), got.extend, 1500)
    assert (records, bad) == (4500, 1500)
    assert Counter(k for k, _ in got) == {"a": 1500, "b": 1500}
    with pytest.raises(runtime.TaskError, match=r"more than max_bad_records=1499"):
        mapper.run_mapper(_source(s3, body), BatchMapper(boom_block), [].extend, 1499)


def test_max_bad_records_counts_parse_errors_and_batch_failures_alike(s3):
    body = b'{"w": "a"}\nnot json\n\n{"w": "boom"}\n{"w": "b"}\n'
    got: list = []
    words = BatchMapper(lambda recs: boom_block([r["w"] for r in recs]))
    assert mapper.run_mapper(_source(s3, body, "jsonl"), words, got.extend, 2) == (4, 2)
    assert got == [("a", 1), ("b", 1)]


def test_a_batch_job_with_max_bad_records_skips_the_poison_records_through_the_chain(harness, chain):
    text = "".join(f"w{i % 7}\n" + ("boom\n" if i % 100 == 0 else "") for i in range(1000))
    objs = [harness.put("batch-bad/a.txt", text.encode())]
    spec = JobSpec(steps=[StepSpec(mapper=BatchMapper(boom_block), combiner=Fold(operator.add),
                                   reducer=Fold(operator.add))])
    plan = harness.submit(spec, harness.splits(objs, 3000), [2], max_bad_records=10)
    chain().run(plan["events"])
    assert _outputs(harness, plan) == dict(Counter(f"w{i % 7}" for i in range(1000)))
    markers = _map_markers(harness, plan)
    assert sum(m["bad_records"] for m in markers) == 10
    assert sum(m["records_in"] for m in markers) == 1010


# -- blocks that span small objects -------------------------------------------------------------------


def _packed_source(s3, bodies: list[bytes], fmt: str = "text",
                   prefix: str = "span") -> tuple[mapper._Source, list[str]]:
    """A batch mapper's source over one packed split of small objects, and their URIs."""
    pieces, uris = [], []
    for i, body in enumerate(bodies):
        key = f"{prefix}/{i}.txt"
        etag = s3.put_object(Bucket="smr-data-test", Key=key, Body=body)["ETag"]
        pieces.append({"key": key, "etag": etag, "start": 0, "end": len(body), "size": len(body)})
        uris.append(f"s3://smr-data-test/{key}")
    split = {"bucket": "smr-data-test", "input": "logs", "format": fmt, "pieces": pieces}
    return mapper._split_source(split, runtime.TaskMetrics(), readers.BATCH_BLOCK_BYTES, span=True), uris


def test_a_batch_mappers_block_spans_small_objects_and_block_sources_names_each_records(s3):
    from lambda_handlers import context

    seen: list = []

    def by_object(recs):
        with pytest.raises(context.BlockSpansObjectsError, match=r"3 objects .*block_sources\(\)"):
            context.input_uri()
        assert context.input_name() == "logs"
        sources = context.block_sources()
        ends = [s.start for s in sources[1:]] + [len(recs)]
        for src, end in zip(sources, ends, strict=True):
            seen.extend((src.uri, src.name, r["w"]) for r in recs[src.start:end])
        return [(r["w"], 1) for r in recs]

    # jsonl: blank lines are not records and a bad one is skipped, so the batch mapper's indexes
    # are not the block's
    bodies = [b'{"w": "a"}\n\n{"w": "b"}\n', b'not json\n{"w": "c"}', b'\n{"w": "d"}\n{"w": "e"}\n']
    src, uris = _packed_source(s3, bodies, "jsonl")
    got: list = []
    assert mapper.run_mapper(src, BatchMapper(by_object), got.extend, 1) == (6, 1)  # read, bad
    assert seen == [(uris[0], "logs", "a"), (uris[0], "logs", "b"), (uris[1], "logs", "c"),
                    (uris[2], "logs", "d"), (uris[2], "logs", "e")]
    assert [k for k, _ in got] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("fold", [False, True], ids=["run_mapper", "fused-fold"])
def test_a_failing_record_of_a_spanning_block_is_named_in_its_own_object(s3, fold):
    from lambda_handlers import context

    def boom_here(lines):  # alone, a record sees its own object's input_uri()
        if len(lines) == 1:
            assert context.input_uri() == uris[{"a": 0, "b": 0, "é": 1, "c": 1, "boom": 1, "d": 2}[lines[0]]]
        return boom_block(lines)

    src, uris = _packed_source(s3, [b"a\nb\n", "é\r\nc\nboom\n".encode(), b"d"], prefix="span-err")
    with pytest.raises(runtime.TaskError, match=rf"mapper failed on the record at byte 6 of {uris[1]}: "
                                                r"ValueError: no") as err:
        if fold:
            mapper.run_mapper_folding(src, BatchMapper(boom_here),
                                      shuffle.FoldCombiner(Fold(operator.add), [].extend, JSON, 1 << 20))
        else:
            mapper.run_mapper(src, BatchMapper(boom_here), [].extend, 0)
    assert err.value.record_preview == "boom"
    assert err.value.input["key"] == "span-err/1.txt"


def test_a_per_object_batch_mapper_gets_one_block_per_object_with_its_input_uri(s3):
    from lambda_handlers import context

    calls: list = []

    def per_object(lines):
        calls.append((context.input_uri(), list(lines)))
        return [(ln, 1) for ln in lines]

    bodies = [b"a\nb\n", b"c", b"d\ne\n"]
    src, uris = _packed_source(s3, bodies, prefix="span-per-object")
    whole, _ = _packed_source(s3, bodies, prefix="span-per-object")
    assert mapper.run_mapper(whole, BatchMapper(lambda ls: [(ln, 1) for ln in ls]), [].extend, 0) == (5, 0)
    split = {"bucket": "smr-data-test", "input": "logs", "format": "text",
             "pieces": [{"key": u.split("/", 3)[3], "start": 0, "end": len(b), "size": len(b)}
                        for u, b in zip(uris, bodies, strict=True)]}
    src = mapper._split_source(split, runtime.TaskMetrics(), readers.BATCH_BLOCK_BYTES, span=False)
    mapper.run_mapper(src, BatchMapper(per_object, per_object=True), [].extend, 0)
    assert calls == [(uris[0], ["a", "b"]), (uris[1], ["c"]), (uris[2], ["d", "e"])]


def block_size(lines):
    """One pair per block: the bytes of its lines."""
    return [("block", sum(len(line) + 1 for line in lines))]


def block_sizes_of(harness, chain, combiner) -> list[int]:
    line = "k" * 10 + "v" * 89 + "\n"  # 5 MiB of 100-byte lines, one split
    objs = [harness.put("batch-blocks/a.txt", (line * (5 * (1 << 20) // len(line))).encode())]
    spec = JobSpec(steps=[StepSpec(mapper=BatchMapper(block_size), combiner=combiner, reducer=values)])
    plan = harness.submit(spec, harness.splits(objs, 64 << 20), [1])
    chain().run(plan["events"])
    return sorted(v for ln in harness.output(plan)[0] for v in json.loads(ln)["value"])


def values(key, vals):
    yield key, list(vals)


def keep(key, vals):
    yield from ((key, v) for v in vals)


def test_a_batch_mapper_without_a_combiner_gets_blocks_of_about_2_mib(harness, chain):
    # nothing to fold across a block: small blocks, whose records are made and freed in memory the
    # task has touched already (not a 16 MiB block's worth of fresh pages)
    sizes = block_sizes_of(harness, chain, None)
    assert sum(sizes) == 5 * (1 << 20) // 100 * 100 and len(sizes) >= 2
    assert min(sizes[:-1] or sizes) >= readers.UNFOLDED_BLOCK_BYTES - 100 and max(sizes) < 4 << 20
    # with a combiner, one block (up to 16 MiB) folds the most keys per byte
    assert block_sizes_of(harness, chain, keep) == [sum(sizes)]
