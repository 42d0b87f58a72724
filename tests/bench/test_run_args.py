"""The benchmark command line: sizes and workload selection (no engine involved)."""

from __future__ import annotations

import pytest

from bench.run import WORKLOADS, parse_args, phase_gaps


def test_full_run_takes_every_workload_at_the_default_size():
    args = parse_args([])
    assert args.only == list(WORKLOADS)
    assert args.size == 256 << 20 and args.split_size is None


def test_quick_run_is_small_and_leaves_out_the_128_mib_spill_test():
    args = parse_args(["--quick"])
    assert args.size == 8 << 20 and args.split_size == 2 << 20
    assert "memory" not in args.only and "fanout" in args.only
    assert args.job_timeout == 60.0


def test_size_and_workloads_are_flags():
    args = parse_args(["--size", "1GiB", "--only", "sort,memory"])
    assert args.size == 1 << 30 and args.only == ["sort", "memory"]


def test_unknown_workload_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--only", "pagerank"])
    assert "unknown workloads" in capsys.readouterr().err


def test_phase_gaps_from_markers():
    markers = [{"phase": "map", "started": 0.0, "finished": 2.0, "duration_s": 2.0},
               {"phase": "map", "started": 0.0, "finished": 4.0, "duration_s": 4.0},
               {"phase": "reduce", "started": 5.0, "finished": 6.0, "duration_s": 1.0}]
    assert phase_gaps(markers) == {"map_span_s": 4.0, "map_parallelism": 1.5, "reduce_span_s": 1.0,
                                   "reduce_parallelism": 1.0, "map_to_reduce_s": 1.0}


def test_cpu_seconds_cap_oversubscribed_tasks_at_span_times_cores():
    from bench.run import cpu_seconds

    # four 4-second tasks at once on 2 cores: 8 CPU-seconds, not 16
    markers = [{"started": 0.0, "finished": 4.0, "duration_s": 4.0} for _ in range(4)]
    assert cpu_seconds(markers, cores=2) == 8.0
    assert cpu_seconds(markers[:1], cores=2) == 4.0
    assert cpu_seconds([], cores=2) == 0.0
