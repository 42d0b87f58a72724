"""Dynamic task mapping: one word-count job per input prefix, each writing its own output.

``.partial(...).expand(input=[...])`` makes one task instance, and so one job, per prefix; the
``{{ ti.map_index }}`` in the output keeps their outputs apart. ``outputs`` collects the prefixes.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

with DAG(
    dag_id="smr_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def seed_sample_data() -> int:
        return len(samples.seed_if_local("aws_default"))

    counts = ServerlessMapReduceOperator.partial(
        task_id="count_words",
        job="jobs.word_count:word_count",
        output=f"{samples.ROOT}/mapped/output/{{{{ ti.map_index }}}}/",
        num_reducers=1,
        overwrite=True,
    ).expand(input=samples.SHARDS_INPUT)

    @task
    def outputs(results: list) -> list:
        for result in results:
            print(result["job_id"], "->", result["output"])
        return [result["output"] for result in results]

    seed_sample_data() >> counts
    outputs(counts.output)
