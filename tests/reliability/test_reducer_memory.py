"""Issue 7, reducer memory: on a 128 MB function (memory budget 32 MiB) a reducer whose partition is
over 4x its budget completes by spilling, with the exact answer. The local stack kills a worker
whose resident memory passes the function's size, as Lambda does."""

from __future__ import annotations

import json
import random

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from tests.reliability.conftest import POLL, TIMEOUT, make_env

pytestmark = pytest.mark.timeout(300)

MEMORY_MB = 128
BUDGET = MEMORY_MB * 2**20 // 4  # the planner's memory budget: a quarter of the function
COPIES = 4  # the mapper shuffles every line this many times
LINES = 36_000
LINE_BYTES = 1000


def every_line_four_times(line):
    for _ in range(COPIES):
        yield line[:3], line


def count_and_bytes(key, lines):
    yield key, [len(lines), sum(map(len, lines))]


@pytest.fixture(scope="module")
def small(aws_endpoint, aws_clients):
    return make_env(aws_clients(aws_endpoint), "smr-rel-128mb", memory_mb=MEMORY_MB, timeout_s=120)


def test_a_reducer_with_a_partition_four_times_its_budget_spills_and_is_exact(small):
    rnd = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"{rnd.randrange(4096):03x}" + "".join(rnd.choices(letters, k=LINE_BYTES - 4))
             for _ in range(LINES)]
    uri = small.put(small.fresh("fat-lines") + "/in.txt", "\n".join(lines) + "\n")
    expected: dict = {}
    for line in lines:
        n, size = expected.get(line[:3], (0, 0))
        expected[line[:3]] = (n + COPIES, size + COPIES * len(line))

    job = MapReduceJob(mapper=every_line_four_times, reducer=count_and_bytes)
    result = small.runner.run(job, input=uri, output=small.output("spill"), poll_interval=POLL,
                              timeout=TIMEOUT, options=JobOptions(num_reducers=1, split_size="4MiB"))

    assert {k: tuple(v) for k, v in small.records(result).items()} == expected
    assert result["counters"]["shuffle_bytes"] >= 4 * BUDGET
    marker = json.loads(small.s3.get_object(
        Bucket=small.stack.work_bucket,
        Key=protocol.done_marker_key(result["job_id"], 0, protocol.REDUCE, 0))["Body"].read())
    assert marker["spilled_bytes"] > 0
    assert result["counters"]["attempts"] == result["counters"]["map_tasks"] + 1  # nothing retried
