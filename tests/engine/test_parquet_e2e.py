"""Parquet in and out end to end on the local stack (issue 15): the stack gets pyarrow from
``requirements`` (a layer of Lambda wheels); several small files are packed, a large one is split
by row groups, ``columns`` projects, a batch mapper works on RecordBatches, and the output is read
back with ``pyarrow.parquet.read_table`` on the output prefix."""

from __future__ import annotations

import io
import json
import random
import uuid

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
import pytest

from airflow_provider_smr.job import MapReduceJob, batch_mapper
from lambda_handlers.options import JobOptions, StackSettings
from tests.conftest import FAKE_CREDENTIALS, REGION
from tests.deployments import Deployment

DATA = "smr-parquet-data"
# The newest pyarrow with a manylinux2014 (Lambda) wheel on this machine's index; pinned so that
# the layer comes from the wheel cache after the first run.
PYARROW = "pyarrow==20.0.0"
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def engine(aws_endpoint, aws_clients):
    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.engine.runner import JobRunner

    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    stack = deploy_stack(clients, "smr-parquet", StackSettings(memory_mb=1024, timeout_s=120,
                                                               requirements=[PYARROW]),
                         input_buckets=[DATA], output_buckets=[DATA])
    return Deployment(clients, stack, JobRunner(clients, stack))


@pytest.fixture(scope="module")
def sales(engine):
    """Three small files and one of 8 row groups under one prefix; the expected totals per user."""
    rng = random.Random(15)
    users = [f"u{i}" for i in range(40)]
    totals: dict[str, int] = {}

    def put(key: str, n: int, row_group_size: int) -> None:
        rows = [{"user": rng.choice(users), "amount": rng.randrange(1, 100),
                 "note": rng.randbytes(rng.randrange(40)).hex()} for _ in range(n)]
        for r in rows:
            totals[r["user"]] = totals.get(r["user"], 0) + r["amount"]
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf, row_group_size=row_group_size, compression="none")
        engine.s3.put_object(Bucket=DATA, Key=key, Body=buf.getvalue())

    for i in range(3):
        put(f"sales/small-{i}.parquet", 50, 50)
    put("sales/large.parquet", 16000, 2000)
    return totals


def by_user(row):
    if "note" in row:
        raise AssertionError(f"columns= was not applied: {sorted(row)}")
    yield row["user"], row["amount"]


def total(user, amounts):
    yield user, sum(amounts)


def user_rows(user, amounts):
    yield {"user": user, "total": sum(amounts), "orders": len(amounts)}


def grouped_in_arrow(batch):
    table = pa.Table.from_batches([batch]).group_by("user").aggregate([("amount", "sum")])
    return zip(table.column("user").to_pylist(), table.column("amount_sum").to_pylist(), strict=True)


def _output_table(engine, aws_endpoint, result) -> pa.Table:
    fs = pyarrow.fs.S3FileSystem(access_key=FAKE_CREDENTIALS["aws_access_key_id"],
                                 secret_key=FAKE_CREDENTIALS["aws_secret_access_key"],
                                 region=REGION, endpoint_override=aws_endpoint, scheme="http")
    return pq.read_table(result["output"][len("s3://"):], filesystem=fs)


@pytest.mark.parametrize("driver", ["worker", "lambda"])  # "lambda": footers read inside Lambda
def test_parquet_in_several_files_and_row_groups_with_projection(engine, sales, driver):
    result = engine.runner.run(
        MapReduceJob(mapper=by_user, reducer=total, input_format="parquet", name="pq-in"),
        input=f"s3://{DATA}/sales/", output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
        options=JobOptions(split_size="128KiB", columns=["user", "amount"], driver=driver),
        poll_interval=0.25, timeout=600)
    # the small files packed in one task, the large one (8 row groups, ~600 KB) in several
    assert 4 <= result["counters"]["map_tasks"] <= 9
    assert result["counters"]["records_read"] == 16150
    got = {}
    for uri in result["parts"]:
        body = engine.s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].read()
        got.update((r["key"], r["value"]) for r in map(json.loads, body.decode().splitlines()))
    assert got == sales


def test_parquet_out_is_read_back_by_pyarrow_from_the_output_prefix(engine, sales, aws_endpoint):
    result = engine.runner.run(
        MapReduceJob(mapper=batch_mapper(grouped_in_arrow), reducer=user_rows, output_format="parquet",
                     num_reducers=3, name="pq-out"),  # the .parquet suffix picks the format
        input=f"s3://{DATA}/sales/", output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
        options=JobOptions(columns=["user", "amount"]), poll_interval=0.25, timeout=600)
    assert all(uri.endswith(".parquet") for uri in result["parts"])
    table = _output_table(engine, aws_endpoint, result)
    assert sorted(table.column_names) == ["orders", "total", "user"]
    assert {r["user"]: r["total"] for r in table.to_pylist()} == sales
    assert table.num_rows == len(sales) == result["counters"]["output_records"]


def big_spender(row):
    if row["amount"] >= 99:
        yield "big", row["amount"]


def test_empty_parquet_parts_are_left_out_of_the_output(engine, sales, aws_endpoint):
    result = engine.runner.run(
        MapReduceJob(mapper=big_spender, reducer=total, output_format="parquet", num_reducers=4,
                     name="pq-one-key"),
        input=f"s3://{DATA}/sales/", output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
        options=JobOptions(columns=["amount"]), poll_interval=0.25, timeout=600)
    assert len(result["parts"]) == 1  # one key: three of the four reducers wrote nothing
    manifest_key = result["manifest"][len(f"s3://{DATA}/"):]
    manifest = json.loads(engine.s3.get_object(Bucket=DATA, Key=manifest_key)["Body"].read())
    assert [f"s3://{DATA}/{p['key']}" for p in manifest["parts"]] == result["parts"]
    table = _output_table(engine, aws_endpoint, result)
    assert table.column_names == ["key", "value"] and table.num_rows == 1
