"""``max_running_tasks`` under ``airflow standalone``: a DAG run over 40 splits never runs more
than 3 of its job's functions at once, measured from the tasks' own start and finish times."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_smr.deploy import describe_stack
from tests.lambda_handlers.test_admission import expected_counts, most_at_once, output_counts, task_intervals

DAG_ID = "smr_test_max_running_tasks"
DATA = "smr-capped-data"

pytestmark = pytest.mark.timeout(1500)  # the session's standalone may start in this test


def test_a_dag_run_with_max_running_tasks_obeys_the_cap(standalone, aws_endpoint, aws_clients):
    clients = aws_clients(aws_endpoint)
    try:
        clients.s3.create_bucket(Bucket=DATA)
    except clients.s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    run_id = uuid.uuid4().hex[:8]
    body = "".join(" ".join(f"w{(i * 7 + j * 13) % 97}" for j in range(3)) + "\n" for i in range(40 * 90))
    clients.s3.put_object(Bucket=DATA, Key=f"in/{run_id}/words.txt", Body=body.encode())
    conf = {"input": f"s3://{DATA}/in/{run_id}/", "output": f"s3://{DATA}/out/{run_id}/"}

    api = standalone
    api.ready(DAG_ID)
    _, run_path = api.trigger(DAG_ID, conf)
    api.finish(run_path, 600)
    status, entry = api.call("GET", f"{run_path}/taskInstances/capped_count/xcomEntries/return_value")
    assert status == 200, entry
    result = entry["value"]
    result = json.loads(result) if isinstance(result, str) else result

    assert output_counts(clients.s3, result) == expected_counts(body)
    work_bucket = describe_stack(clients, "smr-capped").work_bucket
    intervals = task_intervals(clients.s3, work_bucket, result["job_id"])
    assert len(intervals) >= 40 + 2
    assert most_at_once(intervals) <= 3
