"""Test DAG: a deploy task, a ``deploy=False`` job on the stack it deployed, and a teardown that
deletes the stack (tests/airflow/test_smr_stack_operators.py runs it)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator
from airflow_provider_smr.operators.stack import SMRDeleteStackOperator, SMRDeployStackOperator

STACK = "smr-lifecycle"

with DAG(
    dag_id="smr_test_stack_lifecycle",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "test"],
    doc_md=__doc__,
) as dag:

    @task
    def seed_sample_data() -> int:
        return len(samples.seed_if_local("aws_default"))

    deploy_stack = SMRDeployStackOperator(
        task_id="deploy_stack",
        stack_name=STACK,
        memory_mb=256,
        input_locations=[samples.WORDS_INPUT],
        output_locations=[f"{samples.ROOT}/lifecycle/"],
    )

    count_words = ServerlessMapReduceOperator(
        task_id="count_words",
        job="jobs.word_count:word_count",
        input=samples.WORDS_INPUT,
        output=f"{samples.ROOT}/lifecycle/{{{{ ds }}}}/",
        stack_name=STACK,
        deploy=False,
        overwrite=True,
    )

    delete_stack = SMRDeleteStackOperator(task_id="delete_stack", stack_name=STACK)

    seed_sample_data() >> deploy_stack >> count_words >> delete_stack.as_teardown(setups=deploy_stack)
