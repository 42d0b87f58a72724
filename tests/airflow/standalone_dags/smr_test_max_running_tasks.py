"""Test-only DAG: a word count whose job may run at most 3 Lambda functions at once.

The test writes the input and passes ``input`` / ``output`` in the run's conf; the job's own
mapper takes a moment per line so that uncapped map tasks would overlap.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_smr import MapReduceJob
from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator


def slow_words(line):
    time.sleep(0.005)
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


capped_word_count = MapReduceJob(mapper=slow_words, combiner=total, reducer=total, name="capped-count")

with DAG(
    dag_id="smr_test_max_running_tasks",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "test"],
    params={"input": Param("s3://smr-capped-data/in/", type="string"),
            "output": Param("s3://smr-capped-data/out/", type="string")},
) as dag:
    ServerlessMapReduceOperator(
        task_id="capped_count",
        job=capped_word_count,
        input="{{ params.input }}",
        output="{{ params.output }}",
        split_size="1KiB",
        num_reducers=2,
        max_running_tasks=3,
        stack_name="smr-capped",
        overwrite=True,
    )
