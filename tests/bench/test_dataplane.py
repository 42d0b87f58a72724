"""bench/dataplane.py's reduce-only mode runs the real reducer on map outputs held in memory."""

import json

from bench import dataplane


def test_reduce_only_runs_the_real_reducer_over_every_record_of_its_partition():
    got = dataplane.reduce_only("sort", 256 << 10, split_size=64 << 10, reducers=2, budget=8 << 20,
                                repeat=1)
    assert got["M"] >= 4 and got["R"] == 2
    assert got["records_in"] == got["records_out"] > 0
    assert len(got["part_sha256"]) == 16
    json.dumps(got)


def test_reduce_only_leaves_the_reducer_and_runtime_as_it_found_them():
    from lambda_handlers import reducer, runtime

    before = (runtime.get_bytes, runtime.put_bytes, reducer.map_outputs)
    dataplane.reduce_only("sort", 64 << 10, split_size=32 << 10, reducers=1, budget=8 << 20, repeat=1)
    assert (runtime.get_bytes, runtime.put_bytes, reducer.map_outputs) == before
