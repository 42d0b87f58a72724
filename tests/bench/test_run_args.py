"""The benchmark command line: sizes and workload selection (no engine involved)."""

from __future__ import annotations

import pytest

from bench.run import THROUGHPUT, WARM_UP_REDUCERS, WARM_UP_TASKS, WORKLOADS, parse_args, phase_gaps


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


def test_throughput_rows_run_on_a_warmed_stack_unless_cold_is_asked():
    assert parse_args([]).cold is False and parse_args(["--cold"]).cold is True
    assert set(THROUGHPUT) <= set(WORKLOADS)
    assert WARM_UP_TASKS > 4 and WARM_UP_REDUCERS >= 4  # the local stack's workers per function


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


def test_put_budget_counts_data_reducer_markers_and_job_objects_not_task_markers_or_tallies():
    from types import SimpleNamespace

    from bench.run import _shuffle_puts
    from lambda_handlers import protocol

    j = "job-1"
    keys = ([protocol.map_output_key(j, 0, t, 0) for t in range(12)] + [protocol.map_manifest_key(j, 0)]
            + [protocol.staged_part_key(j, t, 0, "jsonl") for t in range(2)]
            + [protocol.start_marker_key(j, 0, p, t, 0) for p, n in (("map", 12), ("reduce", 2)) for t in range(n)]
            + [protocol.done_marker_key(j, 0, p, t) for p, n in (("map", 12), ("reduce", 2)) for t in range(n)]
            + [protocol.tally_key(j, 0, "map", 1, g) for g in range(2)] + [protocol.tally_key(j, 0, "map", 2, 0)]
            + [protocol.claim_key(j, "reduce-0"), protocol.claim_key(j, "commit"), protocol.plan_key(j),
               protocol.job_pickle_key(j), protocol.done_key(j), protocol.job_state_key(j, "SUCCEEDED")])
    bench = SimpleNamespace(job_objects=lambda job_id, bucket=None: keys, done_markers=lambda job_id, bucket=None: [])
    got = _shuffle_puts(bench, {"job_id": j, "counters": {"map_tasks": 12, "reduce_tasks": 2}})
    assert (got["shuffle_puts_step0"], got["tally_puts"], got["job_level_puts"]) == (15, 3, 6)
    assert got["budget_puts"] == 15 + 2 + 6 and got["put_budget"] == 12 + 4 + 10
    assert got["within_put_budget"]


def test_repeat_alternates_floor_and_job_and_reports_medians():
    from types import SimpleNamespace

    from bench.run import _repeated

    calls, floors_s, walls = [], iter([2.0, 1.0]), iter([5.0, 9.0, 4.0])

    def floor_s():
        calls.append("floor")
        return next(floors_s)

    def run_once():
        calls.append("job")
        return SimpleNamespace(wall_s=next(walls))

    run, floor, samples = _repeated(SimpleNamespace(repeat=3), 3.0, floor_s, run_once)
    assert calls == ["job", "floor", "job", "floor", "job"]  # the first floor is the one given
    assert run.wall_s == 5.0 and floor == 2.0
    assert samples == {"all_wall_s": [5.0, 9.0, 4.0], "all_floor_s": [3.0, 2.0, 1.0],
                       "pair_ratios": [1.67, 4.5, 4.0]}
    assert parse_args(["--repeat", "3"]).repeat == 3 and parse_args([]).repeat == 1


def test_one_run_keeps_the_row_as_it_was():
    from types import SimpleNamespace

    from bench.run import _repeated

    only = SimpleNamespace(wall_s=5.0)
    assert _repeated(SimpleNamespace(repeat=1), 2.5, lambda: 1 / 0, lambda: only) == (only, 2.5, {})


def test_repeat_with_the_peer_alternates_floor_lithops_and_job(monkeypatch):
    from types import SimpleNamespace

    from bench import floors, peers
    from bench.run import _repeated_with_peer

    calls, answer = [], {"a": 1}
    floor_s, lithops_s, walls = iter([4.0, 2.0]), iter([6.0, 3.0]), iter([5.0, 9.0, 4.0])

    def floor(path):
        calls.append("floor")
        return floors.Floor(next(floor_s), answer)

    def lithops(path):
        calls.append("lithops")
        return floors.Floor(next(lithops_s), answer)

    def run_once():
        calls.append("job")
        return SimpleNamespace(wall_s=next(walls))

    monkeypatch.setattr(floors, "word_count_floor", floor)
    monkeypatch.setattr(peers, "lithops_word_count", lithops)
    args = SimpleNamespace(repeat=3, floor_runs={})
    peer = {"workload": "Lithops", "bytes": 10, "wall_s": 5.0}
    run, median_floor, samples = _repeated_with_peer(args, "w.txt", floors.Floor(3.0, answer), peer, run_once)
    assert calls == ["job", "floor", "lithops", "job", "floor", "lithops", "job"]
    assert run.wall_s == 5.0 and median_floor.seconds == 3.0 and args.floor_runs["w.txt"] is median_floor
    assert peer["wall_s"] == 5.0 and peer["all_wall_s"] == [5.0, 6.0, 3.0] and peer["ratio"] == round(5 / 3, 2)
    assert samples["pair_ratios"] == [1.0, 1.5, 1.33] and samples["all_lithops_s"] == [5.0, 6.0, 3.0]
