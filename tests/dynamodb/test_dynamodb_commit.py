"""A DynamoDB output commits like an S3 one: nothing before the commit, overwrite replaces."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from airflow_provider_smr.engine.runner import JobFailedError
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions

DATA = "smr-ddb-data"
POLL = 0.25
TIMEOUT = 300

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def engine(deploy_engine):
    """The stack tests/dynamodb/test_dynamodb_e2e.py deploys (the same settings: no new deploy)."""
    return deploy_engine("smr-ddb", input_buckets=[DATA], grant_tables_per_job=True)


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def put_rows(s3, rows: list[dict]) -> str:
    key = f"in/{fresh('rows')}.jsonl"
    s3.put_object(Bucket=DATA, Key=key, Body="\n".join(json.dumps(r) for r in rows).encode())
    return f"s3://{DATA}/{key}"


def make_table(clients, items: list[dict]) -> str:
    from lambda_handlers.io import dynamodb

    name = fresh("out")
    clients.dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                  AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
                                  KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}])
    dynamodb.ItemWriter(clients.dynamodb, name).write_all(items)
    return name


def table_items(clients, table: str) -> dict:
    from lambda_handlers.io import dynamodb

    split = {"table": table, "segment": 0, "total_segments": 1}
    return {it["key"]: it["value"] for it in dynamodb.scan_segment(clients.dynamodb, split)}


def boom_after_the_others(key, values):
    import time

    if key == "boom":
        time.sleep(2)  # the other reduce tasks finish (and, before commit staging, wrote) first
        raise RuntimeError("this reducer fails")
    yield key, sum(values)


def test_a_job_failing_after_some_reduce_tasks_finished_leaves_the_table_as_it_was(engine):
    clients, runner = engine.clients, engine.runner
    table = make_table(clients, [{"key": "a", "value": 1}, {"key": "old", "value": 2}])
    before = table_items(clients, table)
    rows = [{"k": k, "v": 10} for k in ["a", "b", "c", "d", "e", "f", "g", "h", "boom"]]
    job = MapReduceJob(mapper=lambda r: [(r["k"], r["v"])], reducer=boom_after_the_others,
                       input_format="jsonl", num_reducers=4, name="ddb-fails")
    job_id = fresh("ddb-fails")
    with pytest.raises(JobFailedError, match="this reducer fails"):
        runner.run(job, input=put_rows(clients.s3, rows), output=f"dynamodb://{table}", job_id=job_id,
                   options=JobOptions(max_attempts=1, overwrite=True), poll_interval=POLL, timeout=TIMEOUT)
    prefix = protocol.phase_status_prefix(job_id, 0, protocol.REDUCE)
    bucket = engine.stack.work_bucket
    finished = []
    for _ in range(240):  # the other reducers were running when the job failed: let them end
        finished = [o["Key"] for o in clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                    if o["Key"].endswith(".json")]
        if len(finished) >= 3:
            break
        time.sleep(0.25)
    assert finished, "no reduce task finished: the test proves nothing"
    assert table_items(clients, table) == before
    assert "Item" not in clients.s3.list_objects_v2(Bucket=bucket, Prefix=f"tables/{table}/")


def test_overwrite_removes_the_keys_the_committed_runs_wrote_and_this_one_did_not(engine):
    clients, runner = engine.clients, engine.runner
    table = make_table(clients, [{"key": "foreign", "value": 0}])  # not ours: never removed
    job = MapReduceJob(mapper=lambda r: [(r["k"], r["v"])], reducer=lambda k, vs: [(k, sum(vs))],
                       input_format="jsonl", num_reducers=2, name="ddb-overwrite")

    def run(rows, overwrite):
        return runner.run(job, input=put_rows(clients.s3, rows), output=f"dynamodb://{table}",
                          options=JobOptions(overwrite=overwrite), poll_interval=POLL, timeout=TIMEOUT)

    run([{"k": k, "v": 1} for k in "abc"], overwrite=False)
    assert table_items(clients, table) == {"foreign": 0, "a": 1, "b": 1, "c": 1}
    run([{"k": "d", "v": 2}], overwrite=False)  # merged in
    assert table_items(clients, table) == {"foreign": 0, "a": 1, "b": 1, "c": 1, "d": 2}
    result = run([{"k": k, "v": 3} for k in "be"], overwrite=True)
    assert table_items(clients, table) == {"foreign": 0, "b": 3, "e": 3}
    bucket, key = result["manifest"][5:].split("/", 1)
    manifest = json.loads(clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert (manifest["items"], manifest["removed"]) == (2, 3)
