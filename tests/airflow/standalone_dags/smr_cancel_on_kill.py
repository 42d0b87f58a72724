"""Test-only DAGs: a slow SMR job waited for deferred (in the triggerer) or in a worker.

``tests/airflow/test_smr_standalone_cancel.py`` marks the running task failed through the REST API
and checks that the job is cancelled and commits nothing.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

INPUT = "s3://smr-cancel-standalone/in/"

for dag_id, deferrable in (("smr_cancel_deferred", True), ("smr_cancel_worker", False)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["smr", "test"],
        params={"output": Param("s3://smr-cancel-standalone/out/", type="string")},
    ) as dag:
        ServerlessMapReduceOperator(
            task_id="slow_count",
            job="cancel_jobs:slow_count",
            input=INPUT,
            output="{{ params.output }}",
            job_params={"sleep_s": 0.5},
            num_reducers=1,
            deferrable=deferrable,
        )
    globals()[dag_id] = dag
