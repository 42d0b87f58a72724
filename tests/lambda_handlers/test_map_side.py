"""The map side: combiners bounded by keys (plain and fold), block reading, the mapper loop."""

from __future__ import annotations

import json
import operator
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import mapper, protocol, runtime, shuffle
from lambda_handlers.io import readers, splits
from lambda_handlers.jobspec import Fold, JobSpec, StepSpec

JSON = shuffle.serializer("json")


def _sum(key, values):
    yield key, sum(values)


def _totals(pairs) -> Counter:
    out = Counter()
    for k, v in pairs:
        out[k] += v
    return out


# ---------------------------------------------------------------------------------------------
# Plain combiner


def test_combiner_emits_one_record_per_distinct_key_when_the_keys_fit():
    sunk: list = []
    c = shuffle.Combiner(_sum, sunk.extend, JSON, budget_bytes=20 * shuffle.KEY_COST)
    pairs = [(f"k{i % 3}", 1) for i in range(30_000)]
    for i in range(0, len(pairs), 1000):
        c.add_many(pairs[i:i + 1000])
    assert sunk == []  # nothing leaves before the end while the keys fit
    c.flush()
    assert sorted(sunk) == [("k0", 10_000), ("k1", 10_000), ("k2", 10_000)]
    assert c.compactions > 0  # far more values than the budget holds: combined in place


def test_combiner_flushes_when_the_key_budget_is_exceeded_and_totals_stay_exact():
    sunk: list = []
    c = shuffle.Combiner(_sum, sunk.extend, JSON, budget_bytes=100 * shuffle.KEY_COST)
    pairs = [(f"hot{i % 40}" if i % 3 else f"rare{i}", i % 5) for i in range(20_000)]
    for i in range(0, len(pairs), 500):
        c.add_many(pairs[i:i + 500])
    c.flush()
    assert c.flushes > 1
    assert _totals(sunk) == _totals(pairs)
    hot = [k for k, _ in sunk if k.startswith("hot")]
    assert len(hot) <= 40 * c.flushes  # each flush carries a key once


def test_combiner_output_with_a_bad_pair_is_named():
    c = shuffle.Combiner(lambda k, vs: [k], [].extend, JSON, budget_bytes=1)
    with pytest.raises(shuffle.ShuffleError, match="combiner must return .* pairs"):
        c.add_many([("a", 1), ("a", 2)])


# ---------------------------------------------------------------------------------------------
# Fold combiner


def test_fold_called_like_a_combiner_folds_the_values():
    assert Fold(operator.add)("k", [1, 2, 3]) == [("k", 6)]
    assert Fold(max)("k", iter([3, 9, 2])) == [("k", 9)]
    with pytest.raises(TypeError, match="fn\\(a, b\\)"):
        Fold(3)


def test_fold_combiner_keeps_one_accumulator_per_key_of_each_type():
    sunk: list = []
    c = shuffle.make_combiner(Fold(operator.add), sunk.extend, JSON, 1 << 20)
    assert isinstance(c, shuffle.FoldCombiner)
    c.add_many([(1, 1), (1.0, 10), (True, 100), ("1", 1000), (1, 2), ("1", 2000), ([1], 5), ([1], 5)])
    c.flush()
    assert sorted(map(repr, sunk)) == sorted(map(repr, [(1, 3), (1.0, 10), (True, 100), ("1", 3000),
                                                        ([1], 10)]))


def test_fold_combiner_flushes_past_its_key_budget_with_exact_totals():
    sunk: list = []
    c = shuffle.FoldCombiner(Fold(operator.add), sunk.extend, JSON, 50 * shuffle.KEY_COST)
    pairs = [(f"w{(i * 31) % 400}", 1) for i in range(10_000)]
    for i in range(0, len(pairs), 256):
        c.add_many(pairs[i:i + 256])
    c.flush()
    assert c.flushes > 2 and _totals(sunk) == _totals(pairs)


def test_fold_combiner_with_another_function():
    sunk: list = []
    c = shuffle.FoldCombiner(Fold(max), sunk.extend, JSON, 1 << 20)
    c.add_many([("a", 3), ("b", 1), ("a", 7), ("a", 5)])
    c.flush()
    assert sorted(sunk) == [("a", 7), ("b", 1)]


def test_partitioned_output_refuses_a_non_pair_with_one_partition():
    out = shuffle.PartitionedOutput(1, JSON)
    with pytest.raises(ValueError):
        out.add_many([("a", 1), ("b", 2, 3)])


# ---------------------------------------------------------------------------------------------
# Reading in blocks


def _local_fetch(data: bytes, chunk: int):
    def fetch(first: int, last: int):
        for i in range(first, last + 1, chunk):
            yield data[i:min(last + 1, i + chunk)]
    return fetch


def _decoded_split_records(data: bytes, split_size: int, chunk: int,
                           errors: str = "replace") -> list[tuple[int, str]]:
    """(offset, record) of every split's blocks, decoded per block as the mapper gets them."""
    out = []
    fetch = _local_fetch(data, chunk)
    for start in range(0, max(1, len(data)), split_size):
        reader = splits.LineReader(fetch, start, start + split_size, len(data))
        for off, block in reader.blocks():
            recs = readers.decoded_records(block, "utf-8", errors)
            out += [(reader.offset_in(off, block, i), r) for i, r in enumerate(recs)]
    return out


def _true_offsets(data: bytes) -> list[int]:
    start = 3 if data.startswith(splits.BOM) else 0
    offs, pos = [], start
    for _rec in splits.reference_lines(data):
        offs.append(pos)
        pos = data.find(b"\n", pos) + 1 if data.find(b"\n", pos) >= 0 else len(data)
    return offs


piece = st.sampled_from([b"a", b" ", b"\r", b"\n", b"\r\n", "é".encode(), "€".encode(),
                         "😀".encode(), b"\xff", b"\xe2\x82"])


@settings(max_examples=200, deadline=None)
@given(body=st.lists(piece, max_size=40).map(b"".join), bom=st.booleans(),
       split_size=st.integers(1, 50), chunk=st.sampled_from([1, 2, 3, 7, 1 << 20]))
def test_block_decoding_equals_decoding_each_line_with_exact_offsets(body, bom, split_size, chunk):
    data = (splits.BOM if bom else b"") + body
    expected = [ln.decode("utf-8", "replace") for ln in splits.reference_lines(data)]
    got = _decoded_split_records(data, split_size, chunk)
    assert [r for _, r in got] == expected
    assert [o for o, _ in got] == _true_offsets(data)
    strict = [r if isinstance(r, str) else r.raw  # an invalid line is left as its bytes
              for _, r in _decoded_split_records(data, split_size, chunk, "strict")]
    assert strict == [ln.decode() if ln.decode("utf-8", "replace") == ln.decode("utf-8", "ignore") else ln
                      for ln in splits.reference_lines(data)]


def test_block_decoding_edges():
    data = "é€\r\nplain\n\r\nlast 😀".encode()
    assert [r for _, r in _decoded_split_records(data, 5, 1)] == ["é€", "plain", "", "last 😀"]
    assert readers.decoded_records(b"a\rb\r\n") == ["a\rb"]  # a lone \r is data
    assert readers.decoded_records(b"x\r") == ["x\r"]  # unterminated: kept as is


# ---------------------------------------------------------------------------------------------
# The mapper loop over real splits (the local stack's S3)


def _source(s3, body: bytes, fmt: str = "text") -> mapper._Source:
    etag = s3.put_object(Bucket="smr-data-test", Key="map-side/in", Body=body)["ETag"]
    split = {"bucket": "smr-data-test", "key": "map-side/in", "etag": etag, "start": 0,
             "end": len(body), "size": len(body), "format": fmt}
    return mapper._split_source(split, runtime.TaskMetrics())


def boom_mapper(line):
    if line == "boom":
        raise ValueError("no")
    yield line, 1
    yield line, 2


def test_a_bad_record_is_named_by_its_exact_byte_offset(s3):
    src = _source(s3, "é\r\nok\r\nboom\nz\n".encode())
    with pytest.raises(runtime.TaskError, match=r"byte 8 of s3://smr-data-test/map-side/in") as err:
        mapper.run_mapper(src, boom_mapper, [].extend, 0)
    assert err.value.record_preview == "boom"


def test_a_skipped_bad_record_contributes_no_pairs(s3):
    src = _source(s3, b"a\nboom\nb\n" * 1500)
    got: list = []
    records, bad = mapper.run_mapper(src, boom_mapper, got.extend, 2000)
    assert (records, bad) == (4500, 1500)
    assert _totals(got) == {"a": 4500, "b": 4500}


def test_blank_jsonl_lines_are_not_records(s3):
    src = _source(s3, b'{"w": "a"}\n\n{"w": "b"}\n', "jsonl")
    got: list = []
    assert mapper.run_mapper(src, lambda r: [(r["w"], 1)], got.extend, 0) == (2, 0)
    assert got == [("a", 1), ("b", 1)]


# ---------------------------------------------------------------------------------------------
# A job with a fold combiner, through the handler chain


def tokenize(line):
    for w in line.split():
        yield w, 1


def test_word_count_with_a_fold_combiner_ships_one_record_per_word_and_split(harness, chain):
    text = "a b a c a b\n" * 400
    objs = [harness.put("fold/a.txt", text.encode())]
    spec = JobSpec(steps=[StepSpec(mapper=tokenize, combiner=Fold(operator.add), reducer=_sum)])
    plan = harness.submit(spec, harness.splits(objs, 1200), [2])
    chain().run(plan["events"])
    lines, _ = harness.output(plan)
    assert {json.loads(ln)["key"]: json.loads(ln)["value"] for ln in lines} == {"a": 1200, "b": 800,
                                                                              "c": 400}
    splits_n = len(plan["splits"])
    markers = [json.loads(harness.s3.get_object(
        Bucket=plan["work_bucket"], Key=protocol.done_marker_key(plan["job_id"], 0, "map", t))["Body"].read())
        for t in range(splits_n)]
    assert splits_n > 1 and all(m["records_out"] == 3 for m in markers)


# ---------------------------------------------------------------------------------------------
# The fused mapper + fold loop (no max_bad_records)


def test_fused_fold_loop_counts_exactly_with_keys_of_every_type(s3):
    sunk: list = []
    comb = shuffle.FoldCombiner(Fold(operator.add), sunk.extend, JSON, 1 << 20)
    src = _source(s3, b"a b 1\nb 1\n\nc\n")
    typed = lambda line: [(int(w) if w.isdigit() else w, 1) for w in line.split()]  # noqa: E731
    assert mapper.run_mapper_folding(src, typed, comb) == 4
    comb.flush()
    assert sorted(map(repr, sunk)) == sorted(map(repr, [("a", 1), ("b", 2), (1, 2), ("c", 1)]))


def test_fused_fold_loop_with_another_function_and_jsonl(s3):
    sunk: list = []
    comb = shuffle.FoldCombiner(Fold(max), sunk.extend, JSON, 1 << 20)
    src = _source(s3, b'{"k": "a", "v": 3}\n\n{"k": "a", "v": 9}\n{"k": "b", "v": 1}\n', "jsonl")
    assert mapper.run_mapper_folding(src, lambda r: [(r["k"], r["v"])], comb) == 3
    comb.flush()
    assert sorted(sunk) == [("a", 9), ("b", 1)]


def test_fused_fold_loop_names_the_failing_record_and_the_cause(s3):
    comb = shuffle.FoldCombiner(Fold(operator.add), [].extend, JSON, 1 << 20)
    with pytest.raises(runtime.TaskError, match=r"mapper failed on the record at byte 8 .*ValueError: no"):
        mapper.run_mapper_folding(_source(s3, "é\r\nok\r\nboom\n".encode()), boom_mapper, comb)
    with pytest.raises(runtime.TaskError, match=r"must return an iterable of \(key, value\) pairs"):
        mapper.run_mapper_folding(_source(s3, b"x\n"), lambda line: ("x", 1), comb)
    with pytest.raises(runtime.TaskError, match=r"fold combiner failed .* byte 2 .*TypeError"):
        mapper.run_mapper_folding(_source(s3, b"1\n2\n"), lambda line: [("k", line if line == "2" else 1)],
                                  comb)


def test_partitioned_output_checks_the_jobs_partitioner_per_batch():
    out = shuffle.PartitionedOutput(3, JSON, lambda key, n: len(key) % n)
    out.add_many([("a", 1), ("bb", 2), ("ccc", 3), ("dddd", 4)])
    data, index = out.finish()
    parts = [[k for k, _ in shuffle.iter_pairs(data[o:o + n], JSON)] for o, n in index]
    assert parts == [["ccc"], ["a", "dddd"], ["bb"]]
    for bad in (3, -1, True, 1.0):
        out = shuffle.PartitionedOutput(3, JSON, lambda key, n, bad=bad: bad if key == "x" else 0)
        with pytest.raises(shuffle.ShuffleError, match=r"returned .* for key 'x'; it must be an int in \[0, 3\)"):
            out.add_many([("a", 1), ("x", 2)])


# A fold combiner's accumulators into the map output as columns

def _fold_output(pairs: list, n: int, columns: bool, budget: int = 1 << 20) -> tuple[bytes, list]:
    out = shuffle.PartitionedOutput(n, JSON)
    comb = shuffle.FoldCombiner(Fold(operator.add), out.add_many, JSON, budget,
                                out.add_columns if columns else None)
    for i in range(0, len(pairs), 1000):
        comb.fold(pairs[i:i + 1000])
        comb.check_budget()
    comb.flush()
    return out.finish()


@pytest.mark.parametrize("n", [1, 3])
def test_fold_accumulators_as_columns_give_the_same_map_output_bytes(n):
    keys = [f"w{i}" for i in range(9000)] + ["nul\0key", "é\ud800", ""]
    pairs = [(k, i % 7) for i, k in enumerate(keys)] + [(k, 1.5) for k in keys[::5]]
    for budget in (1 << 20, 2000 * shuffle.KEY_COST):  # one flush at the end; flushes on the way
        assert _fold_output(pairs, n, True, budget) == _fold_output(pairs, n, False, budget)


def test_fold_accumulators_as_columns_keep_other_keys_and_each_partitions_order():
    pairs = [(f"k{i}", i) for i in range(5000)] + [(7, 1), (None, 2), ((1, "a"), 3), ("k1", 10), (7, 1)]
    out = shuffle.PartitionedOutput(4, JSON)
    out.add_many([("first", 0), (2.5, 1)])  # pairs held before the columns come
    comb = shuffle.FoldCombiner(Fold(operator.add), out.add_many, JSON, 1 << 20, out.add_columns)
    comb.fold(pairs)
    comb.flush()
    out.add_many([("last", 9)])
    data, index = out.finish()
    ref = shuffle.PartitionedOutput(4, JSON)
    ref.add_many([("first", 0), (2.5, 1)])
    folded: dict = {}
    for k, v in pairs:
        key = JSON.group_key(k)
        folded[key] = (k, folded[key][1] + v) if key in folded else (k, v)
    ref.add_many([kv for key, kv in folded.items() if type(key) is str])
    ref.add_many([kv for key, kv in folded.items() if type(key) is not str] + [("last", 9)])
    ref_data, ref_index = ref.finish()
    for (a, la), (b, lb) in zip(index, ref_index, strict=True):
        got = list(shuffle.iter_pairs(data[a:a + la], JSON))
        want = list(shuffle.iter_pairs(ref_data[b:b + lb], JSON))
        assert [tuple(p) for p in got] == [tuple(p) for p in want]
    assert out.records == ref.records == 2 + 5003 + 1
