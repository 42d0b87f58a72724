"""Word count, deferrable: the task hands the wait to the triggerer and frees its worker slot.

``count_words`` submits the job and defers; the triggerer polls the job's markers (one LIST per
poll) and resumes the task when it ends. ``wait_for_job`` shows ``SMRJobSensor``, which waits on a
job by id, e.g. one started by ``smr run`` or by another DAG.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator
from airflow_provider_smr.sensors.smr import SMRJobSensor

with DAG(
    dag_id="smr_word_count_deferrable",
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
        output=f"{samples.ROOT}/word_count_deferrable/output/",
        deferrable=True,
        waiter_delay=1,
        overwrite=True,
    )

    # A sensor waits on a job by id, e.g. one started by `smr run` or by another DAG.
    wait_for_job = SMRJobSensor(
        task_id="wait_for_job",
        job_id="{{ ti.xcom_pull(task_ids='count_words')['job_id'] }}",
        deferrable=True,
        poke_interval=1,
    )

    seed_sample_data() >> count_words >> wait_for_job
