"""Jobs chained through XCom: count words, then histogram the counts from the first job's output.

Beside them, ``top_words`` is one job of two steps (count, then rank) that never returns to Airflow
between its steps.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

with DAG(
    dag_id="smr_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def seed_sample_data() -> int:
        return len(samples.seed_if_local("aws_default"))

    count_words = ServerlessMapReduceOperator(
        task_id="count_words",
        job="jobs.word_count:word_count",
        input=samples.WORDS_INPUT,
        output=f"{samples.ROOT}/pipeline/counts/",
        overwrite=True,
    )

    # The second job reads the first one's output: its location travels through XCom.
    histogram = ServerlessMapReduceOperator(
        task_id="count_histogram",
        job="jobs.histogram:count_histogram",
        input="{{ ti.xcom_pull(task_ids='count_words')['output'] }}",
        output=f"{samples.ROOT}/pipeline/histogram/",
        num_reducers=1,
        overwrite=True,
    )

    top_words = ServerlessMapReduceOperator(
        task_id="top_words",
        job="jobs.top_k:top_words",
        input=samples.WORDS_INPUT,
        output=f"{samples.ROOT}/pipeline/top_words/",
        overwrite=True,
    )

    @task
    def report(histogram_result: dict, top_result: dict) -> dict:
        from jobs.results import read_pairs

        buckets = dict(read_pairs(histogram_result))
        ranked = sorted(read_pairs(top_result))
        print("words by count:", buckets)
        print("top words:", [word for _, (word, _count) in ranked])
        return {"histogram": buckets, "top": [word for _, (word, _count) in ranked]}

    seed_sample_data() >> [count_words, top_words]
    count_words >> histogram
    report(histogram.output, top_words.output)
