"""AMPLab benchmark query 2, daily: ad revenue per source-IP prefix, one output folder per day.

The output is an Asset (``s3://smr-examples/amplab/revenue/``): a DAG scheduled on it runs after
each day's revenue is committed.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

with DAG(
    dag_id="smr_amplab_revenue",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def seed_sample_data() -> int:
        return len(samples.seed_if_local("aws_default"))

    revenue = ServerlessMapReduceOperator(
        task_id="revenue_by_ip_prefix",
        job="jobs.amplab:revenue_by_ip_prefix",
        input=samples.USERVISITS_INPUT,
        output=f"{samples.ROOT}/amplab/revenue/{{{{ ds }}}}/",
        num_reducers=2,
        overwrite=True,  # re-running a day replaces that day's folder
    )

    seed_sample_data() >> revenue
