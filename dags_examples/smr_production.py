"""The production pattern: one deploy task with admin rights, then jobs that only run on the stack.

``deploy_stack`` creates or updates the stack (a no-op when nothing changed) and grants the
functions exactly the locations the jobs use. The jobs run with ``deploy=False``: their
connection needs only the runtime rights (S3 on the work bucket and the data, ``lambda:InvokeFunction``,
``cloudformation:DescribeStacks``, ``logs:FilterLogEvents``; the README lists both roles' actions).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator
from airflow_provider_smr.operators.stack import SMRDeployStackOperator

# In production the deploy task uses a connection with the deploy role and the jobs one with the
# job role; here both are the local stack's aws_default.
DEPLOY_CONN = "aws_default"
JOBS_CONN = "aws_default"
STACK = "smr"
OUTPUT_ROOT = f"{samples.ROOT}/production"

with DAG(
    dag_id="smr_production",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "example"],
    doc_md=__doc__,
    params={
        "input": Param(samples.WORDS_INPUT, type="string", pattern=samples.S3_URI_PATTERN,
                       description="s3:// prefix of the text files both jobs read (the deploy task "
                                   "grants its bucket)"),
    },
) as dag:

    @task
    def seed_sample_data() -> int:
        """Upload the generated sample inputs when the connection is the local stack."""
        return len(samples.seed_if_local(JOBS_CONN))

    deploy_stack = SMRDeployStackOperator(
        task_id="deploy_stack",
        stack_name=STACK,
        input_locations=["{{ params.input }}"],
        output_locations=[f"{OUTPUT_ROOT}/"],
        aws_conn_id=DEPLOY_CONN,
    )

    # Each day's output is its own folder; the Asset is the folder above it, and each asset event
    # carries the exact prefix in its extra ({"output": "s3://.../2026-01-02/", "job_id": ...}).
    count_words = ServerlessMapReduceOperator(
        task_id="count_words",
        job="jobs.word_count:word_count",
        input="{{ params.input }}",
        output=f"{OUTPUT_ROOT}/word_count/{{{{ ds }}}}/",
        stack_name=STACK,
        deploy=False,
        overwrite=True,
        aws_conn_id=JOBS_CONN,
    )

    top_words = ServerlessMapReduceOperator(
        task_id="top_words",
        job="jobs.top_k:top_words",
        input="{{ params.input }}",
        output=f"{OUTPUT_ROOT}/top_words/{{{{ ds }}}}/",
        stack_name=STACK,
        deploy=False,
        overwrite=True,
        aws_conn_id=JOBS_CONN,
    )

    seed_sample_data() >> deploy_stack >> [count_words, top_words]
