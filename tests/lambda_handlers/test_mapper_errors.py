"""The mapper's error path: the hot loop has no checks; the record it fails on is mapped once
more, alone, and the error says what the job's code did wrong in its own words."""

from __future__ import annotations

import operator
import traceback
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import mapper, runtime, shuffle
from lambda_handlers.io import readers
from lambda_handlers.jobspec import BatchMapper, Fold

JSON = shuffle.serializer("json")


def _source(lines: list, fmt: str = "text", block: int = 4) -> mapper._Source:
    """In-memory records in blocks of ``block``; record ``i`` of a block is named ``#base+i``."""
    blocks = [list(lines[i:i + block]) for i in range(0, len(lines), block)]
    at = {"base": 0}

    def numbered():
        for n, b in enumerate(blocks):
            at["base"] = n * block
            yield b

    parse = readers.identity if fmt == "text" else readers.parser_for(fmt)
    return mapper._Source(numbered(), parse, {"bucket": "b", "key": "in"},
                          lambda i: f"#{at['base'] + i}")


def _comb(fn=operator.add) -> shuffle.FoldCombiner:
    return shuffle.FoldCombiner(Fold(fn), [].extend, JSON, 1 << 20)


def _fold(lines, fn, comb=None):
    return mapper.run_mapper_folding(_source(lines), fn, comb or _comb())


def _map(lines, fn, max_bad=0, fmt="text"):
    got: list = []
    counts = mapper.run_mapper(_source(lines, fmt), fn, got.extend, max_bad)
    return got, counts


def boom_on_b(line):
    if line == "b":
        raise ValueError(f"cannot map {line!r}")
    yield line, 1


# -- the mapper raised: the job's exception, counted as a bad record --------------------------------


@pytest.mark.parametrize("run", [_map, _fold], ids=["pending", "folding"])
def test_a_raising_mapper_is_named_with_its_own_exception_and_traceback(run):
    with pytest.raises(runtime.TaskError) as err:
        run(["a", "a", "a", "a", "a", "b"], boom_on_b)
    assert str(err.value) == "mapper failed on the record at #5: ValueError: cannot map 'b'"
    assert err.value.record_preview == "b" and err.value.input == {"bucket": "b", "key": "in"}
    assert isinstance(err.value.__cause__, ValueError)
    assert "in boom_on_b" in "".join(traceback.format_exception(err.value))


def test_a_skipped_record_leaves_none_of_the_pairs_it_yielded_before_failing():
    def half(line):
        yield line, 1
        if line.startswith("bad"):
            raise ValueError("half way")
        yield line, 2

    got, counts = _map(["a", "bad1", "b", "bad2", "bad3", "c", "d"], half, max_bad=3)
    assert counts == (7, 3)
    assert got == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("c", 2), ("d", 1), ("d", 2)]


def test_the_mapper_runs_once_per_record_and_once_more_on_a_failing_one():
    calls: Counter = Counter()

    def counted(line):
        calls[line] += 1
        if line == "b":
            raise ValueError("no")
        return [(line, 1)]

    got, counts = _map(["a", "b", "c", "d", "e", "b", "f"], counted, max_bad=2)
    assert counts == (7, 2) and [k for k, _ in got] == ["a", "c", "d", "e", "f"]
    assert calls == {"a": 1, "b": 4, "c": 1, "d": 1, "e": 1, "f": 1}


def test_a_record_that_fails_only_the_first_time_is_still_a_bad_record():
    seen: set = set()

    def flaky(line):
        if line == "b" and line not in seen:
            seen.add(line)
            raise OSError("transient")
        return [(line, 1)]

    got, counts = _map(["a", "b", "c"], flaky, max_bad=1)
    assert counts == (3, 1) and got == [("a", 1), ("c", 1)]
    seen.clear()
    with pytest.raises(runtime.TaskError, match=r"^the mapper or the fold combiner failed on the record at "
                                                r"#1, but not when it was mapped again: OSError: transient"):
        _fold(["a", "b", "c"], flaky)


def test_parse_errors_are_bad_records_and_blank_lines_are_not_records():
    lines = ['{"w": "a"}', "", "not json", '{"w": "b"}', "", '{"w": "c"}']
    got, counts = _map(lines, lambda r: [(r["w"], 1)], max_bad=1, fmt="jsonl")
    assert counts == (4, 1) and got == [("a", 1), ("b", 1), ("c", 1)]
    with pytest.raises(runtime.TaskError, match=r"^mapper failed on the record at #2: JSONDecodeError: "):
        _map(lines, lambda r: [(r["w"], 1)], fmt="jsonl")


# -- the mapper returned something other than pairs ---------------------------------------------------


def test_no_output_is_no_pairs():
    outputs = {"a": None, "b": [], "c": (), "d": 0, "e": [("e", 1)]}
    assert _map(list(outputs), outputs.get) == ([("e", 1)], (5, 0))
    comb = _comb()
    assert _fold(list(outputs), outputs.get, comb) == 5 and comb.accumulators == {"e": 1}


def test_a_return_value_that_is_not_iterable_is_named_with_its_type():
    with pytest.raises(runtime.TaskError) as err:
        _map(["a", "b"], lambda line: 5 if line == "b" else [(line, 1)])
    assert str(err.value) == ("mapper failed on the record at #1: the mapper must return an iterable of "
                              "(key, value) pairs; it returned 5 (int), which is not iterable; write "
                              "`yield key, value` (or return a list of (key, value) tuples)")
    with pytest.raises(runtime.TaskError, match=r"^the mapper must return an iterable of \(key, value\) pairs; "
                                                r"for the record at #1 it returned 5 \(int\), which is not "
                                                r"iterable; write `yield key, value`"):
        _fold(["a", "b"], lambda line: 5 if line == "b" else [(line, 1)])


def test_a_return_value_that_is_not_iterable_counts_against_max_bad_records():
    got, counts = _map(["a", "b", "c"], lambda line: 5 if line == "b" else [(line, 1)], max_bad=1)
    assert counts == (3, 1) and got == [("a", 1), ("c", 1)]


def test_a_generator_yielding_keys_only_is_told_to_yield_key_value():
    def keys_only(line):
        yield from line.split()

    with pytest.raises(runtime.TaskError, match=r"^the mapper must return an iterable of \(key, value\) pairs; "
                                                r"for the record at #0 it produced 'x' \(str\), not a \(key, "
                                                r"value\) pair; write `yield key, value`"):
        _fold(["x y"], keys_only)
    partitions = shuffle.PartitionedOutput(1, JSON)  # a sink checks the pairs of a block
    with pytest.raises(runtime.TaskError, match=r"^the mapper must return an iterable of \(key, value\) pairs; "
                                                r"it produced 'x' \(str\), not a \(key, value\) pair .*"
                                                r"write `yield key, value`"):
        mapper.run_mapper(_source(["x y"]), keys_only, partitions.add_many, 0)


def test_a_bare_pair_is_named_as_such():
    with pytest.raises(runtime.TaskError, match=r"for the record at #0 it returned the bare pair \('x', 1\); "
                                                r"write `yield key, value`"):
        _fold(["x"], lambda line: (line, 1))
    with pytest.raises(runtime.TaskError, match=r"for the record at #0 it produced \(1, 2, 3\) \(tuple\), not "
                                                r"a \(key, value\) pair"):
        _fold(["x"], lambda line: [(1, 2, 3)])


# -- the pairs are fine, the shuffle or the fold is not -----------------------------------------------


def test_a_key_that_cannot_be_shuffled_is_named():
    with pytest.raises(runtime.TaskError) as err:
        _fold(["a", "b"], lambda line: [({line} if line == "b" else line, 1)])
    assert str(err.value) == ("the mapper's key {'b'} (set) for the record at #1 cannot be shuffled: "
                              "ShuffleError: key {'b'} is not JSON-able; set serializer='pickle'")
    assert isinstance(err.value.__cause__, shuffle.ShuffleError)


def test_a_fold_failing_on_a_value_names_the_record_and_the_error():
    with pytest.raises(runtime.TaskError) as err:
        _fold(["1", "2", "3"], lambda line: [("k", int(line) if line != "3" else line)])
    assert str(err.value).startswith("the fold combiner failed on a value of the record at #2: TypeError: ")
    assert isinstance(err.value.__cause__, TypeError)
    with pytest.raises(runtime.TaskError, match=r"fold combiner failed on a value of the record at #1: "
                                                r"TypeError"):
        _fold(["1", "x"], lambda line: [("k", line if line == "x" else 1)], _comb(max))


def test_the_fused_loop_folds_across_blocks_and_flushes():
    sunk: list = []
    comb = shuffle.FoldCombiner(Fold(operator.add), sunk.extend, JSON, 3 * shuffle.KEY_COST)
    lines = [f"w{i % 5} w{i % 2}" for i in range(40)]
    assert mapper.run_mapper_folding(_source(lines), lambda line: [(w, 1) for w in line.split()], comb) == 40
    comb.flush()
    assert comb.flushes > 1
    total: Counter = Counter()
    for k, v in sunk:
        total[k] += v
    assert total == Counter(w for line in lines for w in line.split())


# -- batch mappers: the same checked path, one record at a time ---------------------------------------


def test_a_batch_mapper_returning_something_not_iterable_for_a_record_is_named():
    odd = BatchMapper(lambda lines: 7 if "b" in lines else [(ln, 1) for ln in lines])
    with pytest.raises(runtime.TaskError, match=r"^mapper failed on the record at #1: the batch mapper must "
                                                r"return an iterable of \(key, value\) pairs; it returned 7 "
                                                r"\(int\), which is not iterable; return a list of \(key, "
                                                r"value\) tuples"):
        _map(["a", "b", "c"], odd)
    assert _map(["a", "b", "c"], odd, max_bad=1) == ([("a", 1), ("c", 1)], (3, 1))
    with pytest.raises(runtime.TaskError, match=r"^the batch mapper must return an iterable of \(key, value\) "
                                                r"pairs; for the record at #1 it returned 7"):
        _fold(["a", "b", "c"], odd)


def test_a_batch_mapper_whose_fold_fails_names_the_record():
    block = BatchMapper(lambda lines: [("k", int(ln) if ln != "x" else ln) for ln in lines])
    with pytest.raises(runtime.TaskError, match=r"^the fold combiner failed on a value of the record at #1: "
                                                r"TypeError"):
        _fold(["1", "x", "2"], block)


# -- the loop against a one-record-at-a-time model -----------------------------------------------------


def _behaving(kinds: list[str]):
    """A mapper whose output for record ``i`` is of kind ``kinds[i]``."""
    def fn(i):
        kind = kinds[i]
        if kind == "raise":
            raise KeyError(i)
        if kind == "not-iterable":
            return 1.5
        if kind in ("none", "empty"):
            return None if kind == "none" else []
        if kind == "list":
            return [(f"k{i}", i), (f"k{i}", -i)]

        def gen():
            yield f"k{i}", i
            if kind == "gen-raise":
                raise KeyError(i)
            yield f"k{i}", -i
        return gen()
    return fn


def _model(kinds: list[str], max_bad: int):
    """What the map side must do: each record's whole output or, if it fails, nothing (counted)."""
    got, bad = [], 0
    for i in range(len(kinds)):
        try:
            got += list(_behaving(kinds)(i) or ())
        except Exception:  # noqa: BLE001 - the model counts any failure as a bad record
            bad += 1
            if bad > max_bad:
                return f"#{i}"
    return got, (len(kinds), bad)


@settings(max_examples=150, deadline=None)
@given(kinds=st.lists(st.sampled_from(["list", "gen", "gen-raise", "raise", "none", "empty",
                                       "not-iterable"]), max_size=14),
       max_bad=st.integers(0, 4), block=st.integers(1, 5))
def test_the_loop_maps_like_the_record_at_a_time_model(kinds, max_bad, block):
    got: list = []
    try:
        result = got, mapper.run_mapper(_source(list(range(len(kinds))), block=block), _behaving(kinds),
                                        got.extend, max_bad)
    except runtime.TaskError as err:
        result = str(err).split(":")[0].rsplit(" ", 1)[1]
    assert result == _model(kinds, max_bad)
