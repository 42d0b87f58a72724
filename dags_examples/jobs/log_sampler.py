"""Sample lines of a log uniformly at random (mrjob's ``mr_log_sampler``), with typed parameters.

``sample_size`` is required (``--param sample_size=100``, or ``job_params={"sample_size": 100}``);
with ``expected_length`` (the log's approximate line count) the mappers drop most lines early.
Each kept line gets a random key and the reducer keeps the ``sample_size`` smallest, streaming.
"""

from __future__ import annotations

import heapq
import random

from airflow_provider_smr import MapReduceJob
from lambda_handlers.context import job_params

FUDGE = 1.2  # with expected_length, keep a little more than sample_size / expected_length


def tag_with_random_key(line):
    p = job_params()
    if not p["expected_length"] or random.random() < p["sample_size"] * FUDGE / p["expected_length"]:
        yield None, [random.random(), line]


def first_n(_, tagged_lines):
    for _, line in heapq.nsmallest(job_params()["sample_size"], tagged_lines):
        yield None, line


log_sampler = MapReduceJob(mapper=tag_with_random_key, reducer=first_n, output_format="text",
                           num_reducers=1, params={"sample_size": int, "expected_length": 0},
                           name="log_sampler")
