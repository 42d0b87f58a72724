"""``runtime.keep_heap``: a warm container's later tasks reuse the pages its earlier ones had."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_handlers import runtime

ROOT = Path(__file__).resolve().parents[2]

# A task's buffers: 24 blocks of 4 MiB, each over glibc's first mmap threshold, then freed; the
# same again as the container's next task. Prints the page faults of each round.
TASKS = """
import json, resource, sys
import lambda_handlers.runtime

def task():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [bytes([i]) * (4 << 20) for i in range(24)]
    del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(json.dumps([task(), task(), task()]))
"""


def _faults(env: dict[str, str]) -> list[int]:
    out = subprocess.run([sys.executable, "-c", TASKS], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_in_a_lambda_container_a_later_task_reuses_the_first_ones_pages():
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
           "AWS_LAMBDA_FUNCTION_NAME": "smr-mapper", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}
    first, second, third = _faults(env)
    pages = 24 * (4 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert first >= pages // 2  # the first task's pages are new
    # glibc alone would return the freed 96 MiB and fault them in again in every task
    assert second < pages // 10 and third < pages // 10


def test_the_thresholds_follow_the_functions_memory():
    assert runtime.heap_thresholds(1024) == (32 << 20, 256 << 20)
    assert runtime.heap_thresholds(128) == (4 << 20, 32 << 20)  # a small function keeps little
    assert runtime.heap_thresholds(10240) == (32 << 20, 2560 << 20)  # glibc's ceiling for mmap
    assert runtime.heap_thresholds(0) is None  # not in Lambda: glibc's own
