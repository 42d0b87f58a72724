"""``smr run``'s progress on stderr: live bars on a terminal, plain lines in a log, nothing with --json.

Each test runs the real command in a subprocess against the session's local stack (the stack is
deployed by the first run), so stderr is a pipe unless rich is told it is a terminal.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = "smr-cli-progress-data"
TEXT = "\n".join(f"the quick brown fox {i % 11} jumps over the lazy dog" for i in range(400))

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def smr_run(aws_endpoint, aws_env, aws_clients):
    """``smr_run(*extra_args, **env) -> CompletedProcess``: a word count of 4 splits, 1 reducer."""
    s3 = aws_clients(aws_endpoint).s3
    s3.create_bucket(Bucket=DATA)
    s3.put_object(Bucket=DATA, Key="in/words.txt", Body=TEXT.encode())
    split = len(TEXT) // 4 + 1

    def run(*extra: str, **env: str):
        out = f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"
        proc = subprocess.run(
            [sys.executable, "-m", "airflow_provider_smr.cli", "run", "dags_examples/jobs/word_count.py:word_count",
             "--input", f"s3://{DATA}/in/words.txt", "--output", out, "--split-size", str(split),
             "--num-reducers", "1", "--poll-interval", "0.2", "--endpoint-url", aws_endpoint,
             "--stack-name", "smr-cli-progress", *extra],
            cwd=ROOT, env={**aws_env, "PATH": "/usr/bin:/bin", "COLUMNS": "120", **env},
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    return run


def plain(text: str) -> str:
    """Terminal output without escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_on_a_terminal_run_draws_one_bar_per_phase_with_counts(smr_run):
    proc = smr_run(FORCE_COLOR="1")
    err = plain(proc.stderr)
    final = err[err.rindex("step 1 map"):]  # the last frame of the live display
    assert re.search(r"step 1 map\s.*\s4/4", final)
    assert re.search(r"step 1 reduce\s.*\s1/1", final)
    assert re.search(r"commit\s.*\s1/1 succeeded", final)
    assert re.search(r"SUCCEEDED \| 400 records, [\d.]+ KiB read \| [\d.]+ KiB/s, [\d.]+[kMG]? records/s \| "
                     r"elapsed \d:\d\d:\d\d", final)
    assert "\x1b[" in proc.stderr  # drawn live, with cursor movements
    assert "SUCCEEDED: " in proc.stdout  # the summary stays on stdout


def test_in_a_log_run_writes_plain_progress_lines(smr_run):
    proc = smr_run()  # stderr is a pipe
    assert "\x1b[" not in proc.stderr  # no escape sequences in CI logs
    lines = [line for line in proc.stderr.splitlines() if " | " in line]
    assert any("step 1/1 map" in line for line in lines)  # the first polls may come before the map
    assert re.search(r": SUCCEEDED \| 400 records, [\d.]+ KiB read, [\d.]+ KiB/s, [\d.]+[kMG]? records/s \| "
                     r"elapsed \d:\d\d:\d\d$", lines[-1])


def test_with_json_run_prints_only_the_result(smr_run):
    proc = smr_run("--json", FORCE_COLOR="1")
    assert len(proc.stdout.splitlines()) == 1
    assert json.loads(proc.stdout)["status"] == "SUCCEEDED"
    assert "step 1 map" not in proc.stderr and " | " not in proc.stderr and "\x1b[" not in proc.stderr
