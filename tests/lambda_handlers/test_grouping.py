"""The reduce side's pure pieces: grouping order and memory estimate, the reducer's output in key
order (streamed or sorted), the part writers' JSON, and the bounded fetch window."""

from __future__ import annotations

import json
import math
import random
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import grouping, parallel, reducer, shuffle
from lambda_handlers.io import writers

JSON = shuffle.serializer("json")


def _old_sorted_output(pairs: list, fmt: str = "jsonl") -> bytes:
    """The reference: group every output pair by key identity, sort by ``sort_key``, write."""
    groups: dict = {}
    for k, v in pairs:
        groups.setdefault(JSON.group_key(k), (k, []))[1].append(v)
    ordered = sorted(groups.values(), key=lambda kv: shuffle.sort_key(kv[0]))
    return writers.encode_part(fmt, [(k, v) for k, vs in ordered for v in vs])[0]


def _write_sorted(pairs: list, fmt: str = "jsonl", budget: int = 1 << 30) -> bytes:
    part = reducer.write_batches_in_key_order(grouping.batches_of(pairs), writers.PartWriter(fmt), JSON,
                                              budget)
    return part.getvalue()


# --- order -------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=6), max_size=60))
def test_str_keys_come_out_in_sort_key_order(keys):
    g = grouping.ExternalGrouper(JSON, 1 << 30)
    g.add_many([(k, i) for i, k in enumerate(keys)])
    got = [k for k, _ in g.groups()]
    assert got == sorted(set(keys), key=shuffle.sort_key)


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-3, 3, allow_nan=False),
                    st.text(max_size=3))
_key = st.one_of(_scalar, st.lists(_scalar, max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.lists(_key, max_size=40), st.integers(50, 3000))
def test_mixed_keys_group_and_sort_like_sort_key_in_memory_and_spilled(keys, budget):
    pairs = [(k, i) for i, k in enumerate(keys)]
    expected: dict = {}
    for k, v in pairs:
        expected.setdefault(JSON.group_key(k), (k, []))[1].append(v)
    want = sorted(expected.values(), key=lambda kv: shuffle.sort_key(kv[0]))
    for g in (grouping.ExternalGrouper(JSON, 1 << 30), grouping.ExternalGrouper(JSON, budget)):
        for i in range(0, len(pairs), 7):
            g.add_many(pairs[i:i + 7])
        got = [(json.dumps(k), vs) for k, vs in g.groups()]
        assert got == [(json.dumps(k), vs) for k, vs in want]


def test_spilled_str_runs_merge_values_in_insertion_order(tmp_path):
    rnd = random.Random(3)
    pairs = [(f"w{rnd.randint(0, 300)}", i) for i in range(20_000)]
    g = grouping.ExternalGrouper(JSON, 20_000, tmpdir=str(tmp_path))
    for i in range(0, len(pairs), 500):
        g.add_many(pairs[i:i + 500])
    assert len(g.runs) > 3 and g.spilled_bytes > 0
    want: dict = {}
    for k, v in pairs:
        want.setdefault(k, []).append(v)
    assert list(g.groups()) == sorted(want.items())
    assert list(tmp_path.iterdir()) == []


# --- memory estimate ---------------------------------------------------------------------------

def _measured_bytes(pairs: list) -> tuple[int, int]:
    import gc
    import tracemalloc

    batches = [JSON.dumps(pairs[i:i + 4096]) for i in range(0, len(pairs), 4096)]
    gc.collect()
    tracemalloc.start()
    g = grouping.ExternalGrouper(JSON, 1 << 40)
    for b in batches:
        g.add_many(JSON.loads(b))
    real, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return g.estimate, real


def test_memory_estimate_is_within_a_factor_of_what_the_groups_hold():
    rnd = random.Random(1)
    cases = {
        "unique str keys, float values": [(f"{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{i}", rnd.random())
                                          for i in range(60_000)],
        "few str keys, int 1 values": [(f"w{i % 500}", 1) for i in range(150_000)],
        "str values": [(f"k{i % 300}", f"value text {i}") for i in range(60_000)],
        "int keys": [(i, i * 7) for i in range(40_000)],
    }
    for name, pairs in cases.items():
        est, real = _measured_bytes(pairs)
        assert 0.8 * real <= est <= 1.8 * real, (name, est, real)


def test_a_grouper_spills_when_its_estimate_reaches_the_budget(tmp_path):
    g = grouping.ExternalGrouper(JSON, 1_000_000, tmpdir=str(tmp_path))
    for i in range(0, 100_000, 1000):
        g.add_many([(f"key{j}", j) for j in range(i, i + 1000)])
        assert g.estimate < 1_000_000
    assert g.runs and g.peak_estimate >= 1_000_000 * 0.9
    assert sum(len(vs) for _, vs in g.groups()) == 100_000


# --- the reducer's output in key order ---------------------------------------------------------

def test_output_in_key_order_is_streamed_without_sorting():
    pairs = [(f"k{i:05d}", i) for i in range(10_000)] + [("k09999", "again")]

    class Part(writers.PartWriter):
        def drain(self):  # pragma: no cover - must not be reached
            raise AssertionError("ordered output was read back for sorting")

    part = reducer.write_batches_in_key_order(grouping.batches_of(pairs), Part("jsonl"), JSON, 1 << 20)
    written = part.getvalue()
    assert written == _old_sorted_output(pairs)


def test_a_reducer_emitting_keys_out_of_order_still_gives_sorted_output(tmp_path):
    rnd = random.Random(5)
    pairs = [(f"k{i:05d}", i) for i in range(3000)]
    pairs[1500:1500] = [("a-first", "x"), ("k00010", "late value"), ("k02999", "early")]
    pairs += [(k, "tail") for k, _ in rnd.sample(pairs, 200)]
    for fmt in ("jsonl", "tsv", "csv"):
        assert _write_sorted(pairs, fmt) == _old_sorted_output(pairs, fmt)
        assert _write_sorted(pairs, fmt, budget=5_000) == _old_sorted_output(pairs, fmt)  # spills


def test_a_key_repeated_after_another_key_is_regrouped():
    pairs = [("a", 1), ("b", 2), ("a", 3)]
    assert _write_sorted(pairs) == (b'{"key": "a", "value": 1}\n{"key": "a", "value": 3}\n'
                                    b'{"key": "b", "value": 2}\n')


_tricky = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None, blacklist_categories=())),
)
_value = st.recursive(_tricky, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.text(max_size=4), st.integers(-3, 3), st.floats(-2, 2)), _value),
                max_size=30))
def test_streamed_or_sorted_output_equals_the_full_sort_for_any_emission_order(pairs):
    for fmt in ("jsonl", "tsv"):
        assert _write_sorted(pairs, fmt) == _old_sorted_output(pairs, fmt)
        assert _write_sorted(sorted(pairs, key=lambda kv: shuffle.sort_key(kv[0])), fmt) == \
            _old_sorted_output(pairs, fmt)


# --- writers -----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_value, _value), min_size=1, max_size=20))
def test_jsonl_and_tsv_bytes_equal_json_dumps_for_tricky_values(pairs):
    jsonl = "".join(f'{{"key": {json.dumps(k)}, "value": {json.dumps(v)}}}\n' for k, v in pairs)
    tsv = "".join(f"{json.dumps(k)}\t{json.dumps(v)}\n" for k, v in pairs)
    assert writers.encode_part("jsonl", pairs)[0] == jsonl.encode("utf-8", "surrogatepass")
    assert writers.encode_part("tsv", pairs)[0] == tsv.encode("utf-8", "surrogatepass")


def test_writer_columns_match_json_dumps_on_edge_values():
    column = ["é", "\ud800", "\U0001f600", "a\nb\t\"\\", "", "\x00\x1f\x7f\u2028"]
    floats = [math.nan, math.inf, -math.inf, -0.0, 0.1, 1e300, 5e-324, 1.0, 123456789.0]
    mixed = [1, 1.5, True, None, "s", 2**80, -7, float("nan")]
    for values in (column, floats, mixed, [[1, (2, 3)], {"a": {1: None}}], [10**30, True, False]):
        assert writers.encode_column(values) == [json.dumps(v) for v in values]


def test_an_unencodable_value_is_a_clear_error_and_the_encoder_recovers():
    import pytest

    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        writers.encode_part("jsonl", [("k", loop)])
    with pytest.raises(TypeError, match="not JSON serializable"):
        writers.encode_part("jsonl", [("k", {1, 2})])
    assert writers.encode_part("jsonl", [("k", [[1], {"a": [2]}])])[0] == \
        b'{"key": "k", "value": [[1], {"a": [2]}]}\n'


def test_drain_gives_back_what_was_written():
    pairs = [("a", [1, {"b": None}]), (2, 1.5), ("\ud800", "é"), (None, math.inf)]
    for fmt in ("jsonl", "tsv"):
        part = writers.PartWriter(fmt)
        part.write_many(pairs)
        first = writers.encode_part(fmt, pairs)[0]
        again = writers.encode_part(fmt, list(part.drain()))[0]
        assert again == first and part.records == 0 and part.getvalue() == b""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=4), _value), min_size=1, max_size=20))
def test_record_lines_are_the_lines_the_writer_writes_and_decode_back(pairs):
    keys, values = [k for k, _ in pairs], [v for _, v in pairs]
    for fmt in ("jsonl", "tsv"):
        lines = writers.record_lines(keys, values, fmt)
        assert len(lines) == len(pairs)
        assert "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass") == \
            writers.encode_part(fmt, pairs)[0]
        part = writers.PartWriter(fmt)
        part.write_lines(lines)
        assert part.getvalue() == writers.encode_part(fmt, pairs)[0] and part.records == len(pairs)
        back = [writers.line_pair(line, fmt) for line in lines]
        assert writers.encode_part(fmt, back)[0] == writers.encode_part(fmt, pairs)[0]


def test_a_line_sorter_sorts_lines_stably_by_key_in_memory_and_spilled(tmp_path):
    rnd = random.Random(7)
    pairs = [(f"k{rnd.randrange(300):03d}", f"line {i}") for i in range(6000)]
    want = sorted(pairs, key=lambda kv: kv[0])  # stable: a key's lines in arrival order
    for budget in (64 << 20, 16 << 10):
        sorter = grouping.LineSorter(shuffle.serializer("json"), budget, str(tmp_path))
        for i in range(0, len(pairs), 700):
            chunk = pairs[i:i + 700]
            assert sorter.add_columns([k for k, _ in chunk], [v for _, v in chunk])
        spilled = bool(sorter.runs)
        got = [line for batch in sorter.sorted_lines() for line in batch]
        assert got == [v for _, v in want] and spilled == (budget < 1 << 20)
        assert not list(tmp_path.iterdir())
    sorter = grouping.LineSorter(shuffle.serializer("json"), 16 << 10, str(tmp_path))
    sorter.add_columns([k for k, _ in pairs[:3000]], [v for _, v in pairs[:3000]])
    assert not sorter.add_columns([1], ["x"])  # not a str key: nothing added
    assert sorted(sorter.drain()) == sorted(pairs[:3000]) and not list(tmp_path.iterdir())


# --- fetch window ------------------------------------------------------------------------------

def test_the_fetch_window_bounds_the_bytes_in_flight_and_keeps_order():
    lock, held, peak = threading.Lock(), [0], [0]
    sizes = [300, 700, 100, 1000, 50, 400, 900, 10] * 5

    def fetch(n: int) -> bytes:
        with lock:
            held[0] += n
            peak[0] = max(peak[0], held[0])
        time.sleep(0.002)
        return b"x" * n

    got = []
    for data in parallel.window_parallel(fetch, sizes, int, window=1500, workers=8):
        got.append(len(data))
        with lock:  # the consumer is done with this piece: it no longer counts
            held[0] -= len(data)
    assert got == sizes
    assert peak[0] <= 1500


def test_slices_split_into_pieces_reassemble_into_their_frames():
    data, _ = shuffle.encode_pairs([(f"k{i}", "v" * (i % 50)) for i in range(9000)], JSON)
    other, _ = shuffle.encode_pairs([("z", 1)], JSON)
    want = list(shuffle.iter_frames(data)) + list(shuffle.iter_frames(other))
    for piece in (1, 3, 4, 5, 1000, len(data)):
        pieces = [(data[o:o + n], last) for (_, o, n, last) in
                  reducer.slice_pieces([("a", 0, len(data))], piece)]
        pieces.append((other, True))
        assert list(reducer.slice_payloads(pieces)) == want


def test_a_truncated_slice_is_a_shuffle_error():
    import pytest

    data, _ = shuffle.encode_pairs([("k", 1)], JSON)
    with pytest.raises(shuffle.ShuffleError, match="truncated"):
        list(reducer.slice_payloads([(data[:-2], True)]))


def test_multi_batch_parts_equal_json_dumps_per_record_for_plain_and_escaped_columns():
    """Parts over several writer batches, each column plain (written as it is) or escaped (keys
    with quotes, backslashes, controls, non-ASCII, lone surrogates; NaN, big ints, nested values)."""
    rnd = random.Random(18)
    odd = ['q"uote', "back\\slash", "tab\t", "é", "\ud800", "\U0001f600", "\x00", "\u2028", ""]
    values = [math.nan, -math.inf, 2**70, -0.0, 5e-324, None, True, [1, {"a": "é"}], {"k": [None]}]
    pairs: list = []
    for i in range(3 * writers.BATCH + 17):
        plain = (i // writers.BATCH) % 2 == 0  # whole batches of plain keys, then of odd ones
        key = f"k{i:06d}" if plain or rnd.random() < 0.5 else f"k{i}{rnd.choice(odd)}"
        value = f"v {i} ~!" if i % 3 else rnd.choice(values + odd)
        pairs.append((key, value) if i % 7 else [key, value])
    jsonl = "".join(f'{{"key": {json.dumps(k)}, "value": {json.dumps(v)}}}\n' for k, v in pairs)
    tsv = "".join(f"{json.dumps(k)}\t{json.dumps(v)}\n" for k, v in pairs)
    assert writers.encode_part("jsonl", pairs) == (jsonl.encode("utf-8", "surrogatepass"), len(pairs))
    assert writers.encode_part("tsv", pairs) == (tsv.encode("utf-8", "surrogatepass"), len(pairs))
    assert writers.encode_part("jsonl", []) == (b"", 0)
    part = writers.PartWriter("jsonl")
    part.write_batch([("a", 1)])
    assert part.getvalue() == b'{"key": "a", "value": 1}\n'
