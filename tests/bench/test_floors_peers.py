"""The floors and the Lithops peer's pieces: exact answers and argument parsing (nothing timed)."""

from __future__ import annotations

import os
import sys
from collections import Counter

import pytest

from bench import floors, peers
from bench.run import parse_args, ratio_table

TEXT = b"the cat sat\n  on the mat\n\nthe end\nno-newline-at-end the"


def naive_counts(data: bytes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in data.decode().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def test_word_counter_counts_whitespace_separated_words_of_each_line():
    assert floors.word_counter(TEXT.decode().splitlines()) == Counter(naive_counts(TEXT))


def test_word_count_floor_returns_the_exact_counts_of_the_whole_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_bytes(TEXT * 50)
    floor = floors.word_count_floor(path)
    assert floor.answer == naive_counts(TEXT * 50) and floor.seconds > 0


def test_peer_map_calls_over_line_ranges_add_up_to_the_floor(tmp_path):
    path = tmp_path / "words.txt"
    path.write_bytes(TEXT * 7)
    parts = [peers.count_range(str(path), a, b) for a, b in floors.line_ranges(path, peers.CHUNKS)]
    assert len(parts) > 1
    assert peers.merge_counters(parts) == naive_counts(TEXT * 7)


def test_lithops_runs_on_this_interpreter_with_two_local_workers():
    config = peers.lithops_config()
    assert config["lithops"] == {"backend": "localhost", "storage": "localhost", "log_level": "WARNING"}
    assert config["localhost"] == {"worker_processes": 2, "runtime": sys.executable}


def test_peer_script_arguments(capsys):
    args = peers.parse_args(["wordcount", "/tmp/x.txt"])
    assert (args.path, args.chunks, args.workers) == ("/tmp/x.txt", peers.CHUNKS, peers.WORKERS)
    with pytest.raises(SystemExit):
        peers.parse_args(["wordcount", "/tmp/x.txt", "--chunks", "0"])
    assert "--chunks and --workers must be at least 1" in capsys.readouterr().err


def test_ratios_to_the_floor_and_to_lithops():
    assert peers.ratios(6.0, 3.0, 4.0) == {"vs_floor": 2.0, "vs_lithops": 1.5}
    assert peers.ratios(6.0, None, 0.0) == {"vs_floor": None, "vs_lithops": None}


def test_bench_takes_the_peer_unless_told_not_to():
    assert parse_args([]).peer is True
    assert parse_args(["--no-peer"]).peer is False


def test_ratio_table_lists_rows_with_a_floor_or_a_peer_and_each_floor_once():
    rows = [
        {"workload": "Lithops localhost (8 chunks)", "bytes": 2**20, "wall_s": 4.0, "floor_s": 2.0,
         "ratio": 2.0, "peer": "lithops localhost"},
        {"workload": "word count", "bytes": 2**20, "wall_s": 6.0, "floor_s": 2.0, "ratio": 3.0,
         "vs_lithops": 1.5},
        {"workload": "word count, per record", "bytes": 2**20, "wall_s": 8.0, "floor_s": 2.0, "ratio": 4.0,
         "vs_lithops": 2.0},
        {"workload": "fan-out", "bytes": 10, "wall_s": 1.0, "floor_s": None, "ratio": None},
        {"workload": "sort", "error": "Mismatch"},
    ]
    table = ratio_table(rows)
    assert table[2:] == [
        "| Lithops localhost (8 chunks) | 1.0 | 4.00 | 2.00 | 1.00 |",
        "| word count | 1.0 | 6.00 | 3.00 | 1.50 |",
        "| word count, per record | 1.0 | 8.00 | 4.00 | 2.00 |",
        "| floor of word count | | 2.00 | 1.00 | |",
    ]


def test_the_whole_process_row_runs_smr_run_as_a_user_types_it(monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    from airflow_provider_smr.cli import build_parser
    from airflow_provider_smr.job import MapReduceJob, load_job
    from bench.run import SMR_PROCESS_JOB, smr_executable, smr_process_command, smr_process_env

    bench = SimpleNamespace(local=SimpleNamespace(endpoint_url="http://127.0.0.1:9"), stack_name="smrbench")
    command = smr_process_command(bench, "s3://b/in.txt", "s3://b/out/")
    script = Path(sys.executable).with_name("smr")
    if script.is_file():  # the venv's console script, as a user runs it
        assert command[0] == str(script)
    else:
        assert command[1:3] == ["-m", "airflow_provider_smr.cli"]
    args = build_parser().parse_args(command[len(smr_executable()):])
    assert args.job == SMR_PROCESS_JOB == "dags_examples/jobs/word_count.py:word_count"  # the README's job
    env = smr_process_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(__file__).resolve().parents[2])
    assert (args.input, args.output, args.endpoint_url, args.stack_name) == (
        ["s3://b/in.txt"], "s3://b/out/", "http://127.0.0.1:9", "smrbench")
    assert args.json and args.overwrite and args.num_reducers == 1
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the row runs it from the repository root
    assert isinstance(load_job(args.job), MapReduceJob)
