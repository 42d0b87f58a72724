"""Pure pieces of the shuffle: partitioner, map-output format, grouping, spill and merge, order."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from lambda_handlers import grouping, shuffle
from lambda_handlers.io import writers

JSON = shuffle.serializer("json")


def test_default_partitioner_is_stable_across_processes_and_hash_seeds():
    keys = ["a", "word", "", "é", 1, 2.5, None, True, [1, "x"], {"b": 1, "a": 2}]
    code = ("from lambda_handlers import shuffle;"
            "s=shuffle.serializer('json'); p=shuffle.partition_function(s, 7);"
            f"print([p(k) for k in {keys!r}])")
    outs = set()
    for seed in ("0", "123"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, check=True).stdout)
    p = shuffle.partition_function(JSON, 7)
    assert outs == {f"{[p(k) for k in keys]}\n"}
    assert len(set(p(f"k{i}") for i in range(200))) == 7  # it does spread keys


def test_object_keys_partition_the_same_regardless_of_insertion_order():
    p = shuffle.partition_function(JSON, 13)
    assert p({"a": 1, "b": 2}) == p({"b": 2, "a": 1})


def test_a_user_partitioner_out_of_range_is_a_clear_error():
    p = shuffle.partition_function(JSON, 3, lambda k, n: 5)
    with pytest.raises(shuffle.ShuffleError, match=r"must be an int in \[0, 3\)"):
        p("x")


def test_map_output_has_every_partition_at_its_indexed_slice():
    out = shuffle.PartitionedOutput(4, JSON)
    pairs = [(f"k{i % 37}", i) for i in range(10_000)]
    out.add_many(pairs)
    data, index = out.finish()
    assert shuffle.read_index(data) == index
    assert index[0][0] == 0 and all(a[0] + a[1] == b[0] for a, b in zip(index, index[1:], strict=False))
    part = shuffle.partition_function(JSON, 4)
    seen = []
    for p, (off, length) in enumerate(index):
        got = list(shuffle.iter_pairs(data[off:off + length], JSON))
        assert all(part(k) == p for k, _ in got)
        seen += [tuple(kv) for kv in got]
    assert sorted(seen) == sorted(pairs) and out.records == len(pairs)


def test_sort_key_is_a_total_order_over_mixed_json_types():
    keys = [{"a": 1}, [2], [1, "x"], "b", "", 3, 1.5, -1, True, False, None]
    assert sorted(keys, key=shuffle.sort_key) == [None, False, True, -1, 1.5, 3, "", "b", [1, "x"],
                                                  [2], {"a": 1}]


def test_grouping_keeps_keys_of_different_types_apart():
    g = grouping.ExternalGrouper(JSON, 1 << 30)
    g.add_many([(1, "int"), (1.0, "float"), (True, "bool"), ("1", "str"), (1, "int2")])
    assert list(g.groups()) == [(True, ["bool"]), (1, ["int", "int2"]), (1.0, ["float"]),
                                ("1", ["str"])]


def test_spill_with_a_tiny_budget_gives_the_same_groups_as_in_memory(tmp_path):
    rnd = random.Random(7)
    pairs = [(rnd.choice([rnd.randint(0, 50), f"w{rnd.randint(0, 80)}", [rnd.randint(0, 3)]]), i)
             for i in range(5000)]
    small = grouping.ExternalGrouper(JSON, 2_000, tmpdir=str(tmp_path))
    for i in range(0, len(pairs), 100):
        small.add_many(pairs[i:i + 100])
    assert len(small.runs) > 5
    big = grouping.ExternalGrouper(JSON, 1 << 30)
    big.add_many(pairs)
    spilled, in_memory = list(small.groups()), list(big.groups())
    assert spilled == in_memory
    keys = [k for k, _ in spilled]
    assert keys == sorted(keys, key=shuffle.sort_key) and len(set(map(repr, keys))) == len(keys)
    assert os.listdir(tmp_path) == []  # runs are removed after the merge


def test_pickle_serializer_carries_non_json_values():
    ser = shuffle.serializer("pickle")
    data, n = shuffle.encode_pairs([((1, 2), {3}), (b"x", 1.5)], ser)
    assert list(shuffle.iter_pairs(data, ser)) == [((1, 2), {3}), (b"x", 1.5)] and n == 2


def test_json_serializer_refuses_non_json_values_with_advice():
    with pytest.raises(shuffle.ShuffleError, match="serializer='pickle'"):
        shuffle.encode_pairs([("k", {1})], JSON)


@pytest.mark.parametrize("fmt,expected", [
    ("jsonl", b'{"key": "a", "value": [1, 2]}\n{"key": 2, "value": null}\n'),
    ("tsv", b'"a"\t[1, 2]\n2\tnull\n'),
])
def test_writers_encode_each_format(fmt, expected):
    assert writers.encode_part(fmt, [("a", [1, 2]), (2, None)]) == (expected, 2)


def test_csv_writer_quotes_and_refuses_non_scalars():
    assert writers.encode_part("csv", [("a,b", 1), ("c", 'q"')]) == (b'"a,b",1\nc,"q"""\n', 2)
    with pytest.raises(writers.OutputFormatError, match="scalar"):
        writers.encode_part("csv", [("a", [1])])
