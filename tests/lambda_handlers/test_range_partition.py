"""The range partitioner's batch path: one sort per batch gives every key the partition
RangePartitioner.__call__ gives it, and a key's values keep their order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import shuffle
from lambda_handlers.jobspec import RangePartitioner

JSON = shuffle.serializer("json")
keys = st.text("ab\"\\c\0é", max_size=4)


def _partitions(out: shuffle.PartitionedOutput) -> list[list[tuple]]:
    data, index = out.finish()
    return [[tuple(kv) for kv in shuffle.iter_pairs(data[o:o + n], JSON)] for o, n in index]


@settings(max_examples=300, deadline=None)
@given(st.lists(keys, max_size=6).map(sorted), st.lists(keys, min_size=1, max_size=80),
       st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=4))
def test_every_key_gets_the_partition_the_partitioner_gives_it(cuts, batch_keys, n, batches):
    part = RangePartitioner(cuts)
    pairs = [(k, i) for i, k in enumerate(batch_keys)]
    out = shuffle.PartitionedOutput(n, JSON, part)
    step = -(-len(pairs) // batches)
    for i in range(0, len(pairs), step):
        out.add_many(pairs[i:i + step])
    got = _partitions(out)
    for p, held in enumerate(got):
        assert all(part(k, n) == p for k, _ in held)
        for k in {k for k, _ in held}:  # a key's values in the order they were added
            assert [v for kk, v in held if kk == k] == [v for kk, v in pairs if kk == k]
    assert sorted(kv for held in got for kv in held) == sorted(pairs) and out.records == len(pairs)


def test_keys_equal_to_a_cut_go_right_and_partitions_past_the_cuts_stay_empty():
    out = shuffle.PartitionedOutput(5, JSON, RangePartitioner(["b", "d"]))
    out.add_many([("d", 1), ("a", 2), ("b", 3), ("c", 4), ("e", 5), ("b", 6)])
    assert _partitions(out) == [[("a", 2)], [("b", 3), ("b", 6), ("c", 4)], [("d", 1), ("e", 5)], [], []]


def test_fewer_partitions_than_cuts_put_the_rest_in_the_last_one():
    out = shuffle.PartitionedOutput(2, JSON, RangePartitioner(["b", "c", "d"]))
    out.add_many([("e", 1), ("a", 2), ("c", 3), ("b", 4)])
    assert _partitions(out) == [[("a", 2)], [("b", 4), ("c", 3), ("e", 1)]]


def test_keys_that_are_not_str_are_partitioned_one_call_at_a_time():
    out = shuffle.PartitionedOutput(3, JSON, RangePartitioner([10, 20]))
    out.add_many([(25, "a"), (5, "b"), (10, "c"), (19.5, "d")])
    assert _partitions(out) == [[(5, "b")], [(10, "c"), (19.5, "d")], [(25, "a")]]
    mixed = shuffle.PartitionedOutput(2, JSON, RangePartitioner(["m"]))
    import pytest

    with pytest.raises(TypeError):  # what the partitioner itself raises comparing 1 with "m"
        mixed.add_many([("a", 1), (1, 2)])


def test_a_non_pair_is_refused_on_the_range_path():
    import pytest

    out = shuffle.PartitionedOutput(2, JSON, RangePartitioner(["m"]))
    with pytest.raises(shuffle.ShuffleError, match="not a \\(key, value\\) pair"):
        out.add_many([("a", 1), ("b", 2, 3)])


def test_batches_larger_than_a_sort_chunk_keep_each_keys_values_in_order():
    import random

    rng = random.Random(7)
    n_pairs = 2 * shuffle.RANGE_CHUNK + 3 * shuffle.BATCH_PAIRS + 5  # several chunks and frames
    pairs = [(rng.choice("abcdefgh") * rng.randint(1, 3), i) for i in range(n_pairs)]
    part = RangePartitioner(["c", "f"])
    out = shuffle.PartitionedOutput(3, JSON, part)
    out.add_many(pairs[:n_pairs // 3])
    out.add_many(pairs[n_pairs // 3:])
    got = _partitions(out)
    for p, held in enumerate(got):
        assert held and all(part(k, 3) == p for k, _ in held)
        for k in {k for k, _ in held}:
            assert [v for kk, v in held if kk == k] == [v for kk, v in pairs if kk == k]
    assert sorted(kv for held in got for kv in held) == sorted(pairs) and out.records == n_pairs
