"""A reduce-side join of two named inputs: users (CSV) and their orders (JSON lines).

The job's mapper is a dict ``{input name: function}``: each tags its records with their side, and
the reducer meets both sides of a user id. ``biggest_customers`` prints the five users who spent most.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from jobs import samples

from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

with DAG(
    dag_id="smr_join",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smr", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def seed_sample_data() -> int:
        return len(samples.seed_if_local("aws_default"))

    join = ServerlessMapReduceOperator(
        task_id="join_users_orders",
        job="jobs.join:user_orders",
        input={"users": samples.USERS_INPUT, "orders": samples.ORDERS_INPUT},
        output=f"{samples.ROOT}/join/output/",
        num_reducers=2,
        overwrite=True,
    )

    @task
    def biggest_customers(result: dict) -> list:
        from jobs.results import read_pairs

        rows = sorted(read_pairs(result), key=lambda kv: (-kv[1]["total"], kv[0]))[:5]
        for user_id, row in rows:
            print(f"{user_id}  {row['name']:>12}  {row['orders']:3d} orders  {row['total']:10.2f}")
        return [user_id for user_id, _ in rows]

    seed_sample_data() >> join
    biggest_customers(join.output)
