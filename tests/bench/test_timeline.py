"""The critical path of a job's wall time from its done markers and the stack's requests."""

from __future__ import annotations

from bench.timeline import critical_path


def marker(phase, started, finished):
    return {"phase": phase, "started": started, "finished": finished}


def test_critical_path_names_each_piece_of_the_wall_time():
    markers = [marker("map", 100.05, 101.0), marker("map", 100.1, 101.2),
               marker("reduce", 101.3, 102.0), marker("reduce", 101.31, 102.1)]
    requests = [[102.15, 102.16, "PUT", "/work/jobs/j/status/job/SUCCEEDED"],
                [102.17, 102.18, "GET", "/work/jobs/j/done.json"]]
    got = critical_path(markers, requests, began=100.0, ended=102.25)
    assert got == {"wall_s": 2.25, "to_first_task_s": 0.05, "map_span_s": 1.15, "reduce_span_s": 0.8,
                   "map_to_reduce_s": 0.1, "last_task_to_succeeded_s": 0.06, "succeeded_to_result_s": 0.09}


def test_a_map_only_job_without_its_state_marker_ends_at_the_last_task():
    got = critical_path([marker("map", 10.5, 11.0)], [], began=10.0, ended=11.5)
    assert got == {"wall_s": 1.5, "to_first_task_s": 0.5, "map_span_s": 0.5, "last_task_to_result_s": 0.5}
    assert critical_path([], [], began=1.0, ended=2.0) == {"wall_s": 1.0}
