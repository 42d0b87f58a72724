"""The DynamoDB commit on the local stack: staged items applied, overwrite, one commit at a time."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from lambda_handlers import protocol, runtime, table_commit
from lambda_handlers.io import dynamodb
from tests.lambda_handlers.conftest import WORK_BUCKET


@pytest.fixture
def table(s3_endpoint):
    """A fresh table keyed by (``id`` number, ``part`` string)."""
    name = f"commit-{uuid.uuid4().hex[:8]}"
    runtime.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"},
                              {"AttributeName": "part", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"},
                   {"AttributeName": "part", "KeyType": "RANGE"}])
    return name


def stage(job_id: str, task: int, items: list[dict]) -> str:
    key = protocol.staged_part_key(job_id, task, 0, dynamodb.STAGED_EXT)
    body = "".join(dynamodb.encode_wire(dynamodb.to_wire(i)) + "\n" for i in items)
    runtime.put_bytes(WORK_BUCKET, key, body.encode())
    return key


def items(table: str) -> list[tuple]:
    split = {"table": table, "segment": 0, "total_segments": 1}
    got = dynamodb.scan_segment(runtime.client("dynamodb"), split)
    return sorted((i["id"], i["part"], i.get("v")) for i in got)


def test_staged_items_reach_the_table_only_at_the_commit_and_overwrite_replaces_our_keys(table):
    first = [stage("job-a", 0, [{"id": 1, "part": "x", "v": b"\x00"}, {"id": 2, "part": "x", "v": 1}]),
             stage("job-a", 1, [{"id": 3, "part": "y", "v": 1}])]
    assert items(table) == []  # staged is not written
    assert table_commit.commit_items(WORK_BUCKET, "job-a", table, first, overwrite=False) == {
        "written": 3, "removed": 0, "keys": 3}
    assert items(table) == [(1, "x", b"\x00"), (2, "x", 1), (3, "y", 1)]
    # 2.0 is the key 2 spelled differently: the same item, so it is replaced, not removed
    second = [stage("job-b", 0, [{"id": 2.0, "part": "x", "v": 2}])]
    assert table_commit.commit_items(WORK_BUCKET, "job-b", table, second, overwrite=True) == {
        "written": 1, "removed": 2, "keys": 1}
    assert items(table) == [(2, "x", 2)]
    record = runtime.get_json(WORK_BUCKET, protocol.table_record_key(table))
    assert (record["job_id"], record["keys"]) == ("job-b", 1)
    assert not runtime.exists(WORK_BUCKET, protocol.table_keys_key(table, "job-a"))  # superseded


def test_a_second_job_committing_to_the_same_table_is_refused_until_the_lock_is_stale(table):
    staged = [stage("job-c", 0, [{"id": 1, "part": "x", "v": 1}])]
    lock = protocol.table_lock_key(table)
    runtime.put_bytes(WORK_BUCKET, lock, json.dumps({"job_id": "job-other", "time": time.time()}).encode())
    with pytest.raises(table_commit.TableBusyError, match="being committed by job 'job-other'"):
        table_commit.commit_items(WORK_BUCKET, "job-c", table, staged, overwrite=False)
    assert items(table) == []
    stale = time.time() - table_commit.LOCK_STALE_S - 1  # its holder died long ago
    runtime.put_bytes(WORK_BUCKET, lock, json.dumps({"job_id": "job-other", "time": stale}).encode())
    table_commit.commit_items(WORK_BUCKET, "job-c", table, staged, overwrite=False)
    assert items(table) == [(1, "x", 1)]
    assert not runtime.exists(WORK_BUCKET, lock)  # released
