"""The benchmark's output checks catch wrong answers (and accept right ones)."""

from __future__ import annotations

import pytest

from bench.jobs import range_partitioner, sample_boundaries
from bench.verify import (
    Mismatch,
    check_counts,
    check_globally_sorted,
    check_sums,
    jsonl_records,
    record_digest,
    step_writes,
)


def test_counts_must_match_exactly():
    check_counts({"a": 2, "b": 1}, {"b": 1, "a": 2})
    with pytest.raises(Mismatch):
        check_counts({"a": 2}, {"a": 2, "b": 1})
    with pytest.raises(Mismatch):
        check_counts({"a": 3}, {"a": 2})


def test_sums_tolerate_summation_order_only():
    check_sums({"k": 0.1 + 0.2 + 0.3}, {"k": 0.3 + 0.2 + 0.1})
    with pytest.raises(Mismatch):
        check_sums({"k": 0.61}, {"k": 0.6})


def test_globally_sorted_parts_with_the_input_records_pass():
    lines = ["b  2", "a  1", "c  3"]
    parts = [[("a", "  1"), ("b", "  2")], [("c", "  3")]]
    assert check_globally_sorted(parts, record_digest(lines)) == 3


def test_out_of_order_parts_fail():
    lines = ["b  2", "a  1"]
    with pytest.raises(Mismatch, match="ordered"):
        check_globally_sorted([[("b", "  2")], [("a", "  1")]], record_digest(lines))


def test_lost_or_duplicated_records_fail():
    lines = ["a  1", "b  2"]
    with pytest.raises(Mismatch, match="lost"):
        check_globally_sorted([[("a", "  1"), ("a", "  1")]], record_digest(lines))


def test_jsonl_records_reads_key_value_lines():
    assert list(jsonl_records([b'{"key": "a", "value": 1}\n', b"\n"])) == [("a", 1)]


def test_range_partitioner_from_sampled_keys_keeps_partitions_ordered():
    keys = [f"{i:04d}" for i in range(1000)]
    cuts = sample_boundaries(keys[::7], 4)
    assert len(cuts) == 3
    part = range_partitioner(cuts)
    assigned = [part(k, 4) for k in keys]
    assert assigned == sorted(assigned) and set(assigned) == {0, 1, 2, 3}
    assert part("zzzz", 4) == 3 and part("", 4) == 0


def test_step_writes_separates_shuffle_data_from_markers():
    p = "jobs/j/"
    keys = [p + "job.pkl", p + "plan.json", p + "map/0/00000.0.data", p + "map/0/00001.0.data",
            p + "status/0/map/00000.json", p + "status/0/map/00000.0.start", p + "parts/00000.0.jsonl",
            p + "reduce/0/00000.0.data", p + "map/1/00000.0.data", p + "status/claims/commit", "other"]
    got = step_writes(p, keys, final_step=1)
    assert got[0] == {"data": 3, "markers": 2}
    assert got[1] == {"data": 2, "markers": 0}
    assert got[-1] == {"data": 0, "markers": 3}
