"""A word count whose mapper sleeps on every record, slow enough to be stopped while it runs.

Kept out of the test DAG file so the workers load it by reference (``cancel_jobs:slow_count``), as
the example DAGs load theirs; ``sleep_s`` comes from the job's params.
"""

from __future__ import annotations

import time

from airflow_provider_smr import MapReduceJob
from lambda_handlers.context import job_params


def slow_tokenize(line):
    time.sleep(float(job_params().get("sleep_s", 0.5)))
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


slow_count = MapReduceJob(mapper=slow_tokenize, reducer=total, name="slow_count")
