"""DynamoDB inputs and outputs end to end on the local stack (deployed functions, real handlers)."""

from __future__ import annotations

import collections
import json
import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers.options import JobOptions

DATA = "smr-ddb-data"
POLL = 0.25
TIMEOUT = 300
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def engine(deploy_engine):
    """(clients, JobRunner) on a stack deployed once for this module."""
    engine = deploy_engine("smr-ddb", input_buckets=[DATA], grant_tables_per_job=True)
    return engine.clients, engine.runner


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def make_table(clients, name: str, items: list[dict], key: str = "id", key_type: str = "N") -> str:
    from lambda_handlers.io import dynamodb

    ddb = clients.dynamodb
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": key, "AttributeType": key_type}],
                     KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
    writer = dynamodb.ItemWriter(ddb, name, key_names=[key])
    writer.write_all(items)
    return name


def read_records(s3, result) -> list[tuple]:
    records = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines():
            rec = json.loads(line)
            records.append((rec["key"], rec["value"]))
    return records


def scan_all(clients, table: str) -> list[dict]:
    from lambda_handlers.io import dynamodb

    split = {"table": table, "segment": 0, "total_segments": 1}
    return list(dynamodb.scan_segment(clients.dynamodb, split))


def word_mapper(item):
    return [(w, 1) for w in item["text"].split()]


def count_reducer(key, values):
    return [(key, sum(values))]


def test_word_count_over_10000_items_in_several_segments_is_exact(engine):
    clients, runner = engine
    items = [{"id": i, "text": " ".join(WORDS[(i * j) % len(WORDS)] for j in range(1, 1 + i % 5))}
             for i in range(10_000)]
    table = make_table(clients, fresh("docs"), items)
    expected = collections.Counter(w for it in items for w in it["text"].split())
    job = MapReduceJob(mapper=word_mapper, combiner=count_reducer, reducer=count_reducer,
                       num_reducers=3, name="ddb-wordcount")
    output = f"s3://{DATA}/out/{fresh('wc')}/"
    result = runner.run(job, input=f"dynamodb://{table}?segments=4", output=output,
                        poll_interval=POLL, timeout=TIMEOUT)
    splits = runner.plan(result["job_id"]).splits
    assert [(s["format"], s["table"], s["segment"], s["total_segments"]) for s in splits] == \
        [("dynamodb", table, i, 4) for i in range(4)]
    assert dict(read_records(clients.s3, result)) == dict(expected)
    assert result["counters"]["records_read"] == 10_000


def test_mapper_gets_plain_python_values_and_projection_limits_attributes(engine):
    clients, runner = engine
    from decimal import Decimal

    items = [{"id": i, "price": Decimal("1.5") * i, "tags": {"a", "b"}, "big": 10**20, "secret": "x"}
             for i in range(50)]
    table = make_table(clients, fresh("typed"), items)

    def mapper(item):
        return [(item["id"], {"types": sorted(type(v).__name__ for v in item.values()),
                              "keys": sorted(item), "price": str(item["price"]),
                              "tags": sorted(item["tags"])})]

    job = MapReduceJob(mapper=mapper, name="ddb-types")
    result = runner.run(job, input=f"dynamodb://{table}?attributes=id,price,tags&consistent=true",
                        output=f"s3://{DATA}/out/{fresh('types')}/", poll_interval=POLL,
                        timeout=TIMEOUT)
    records = dict(read_records(clients.s3, result))
    assert len(records) == 50
    assert records[3] == {"types": sorted(["int", "Decimal", "set"]), "keys": ["id", "price", "tags"],
                          "price": "4.5", "tags": ["a", "b"]}
    assert records[2]["types"] == ["int", "int", "set"]  # 3.0 is integral: an int


def test_s3_to_dynamodb_group_by_writes_the_items_and_a_manifest(engine):
    clients, runner = engine
    rows = [{"dept": f"d{i % 7}", "salary": 100 + i} for i in range(700)]
    key = f"in/{fresh('emp')}.jsonl"
    clients.s3.put_object(Bucket=DATA, Key=key, Body="\n".join(json.dumps(r) for r in rows).encode())
    table = fresh("totals")
    job = MapReduceJob(mapper=lambda r: [(r["dept"], r["salary"])],
                       reducer=lambda k, vs: [(k, {"total": sum(vs), "n": len(vs)})],
                       input_format="jsonl", num_reducers=2, name="ddb-groupby")
    result = runner.run(job, input=f"s3://{DATA}/{key}", output=f"dynamodb://{table}?key=dept&value=stats",
                        poll_interval=POLL, timeout=TIMEOUT, options=JobOptions(create_table=True))
    want = collections.defaultdict(lambda: {"total": 0, "n": 0})
    for r in rows:
        want[r["dept"]]["total"] += r["salary"]
        want[r["dept"]]["n"] += 1
    got = {it["dept"]: it["stats"] for it in scan_all(clients, table)}
    assert got == dict(want)
    assert result["table"] == table and result["records"] == 7
    bucket, mkey = result["manifest"][5:].split("/", 1)
    manifest = json.loads(clients.s3.get_object(Bucket=bucket, Key=mkey)["Body"].read())
    assert (manifest["table"], manifest["items"], manifest["job_id"]) == (table, 7, result["job_id"])
    assert mkey.startswith(f"jobs/{result['job_id']}/")

    again = runner.run(job, input=f"s3://{DATA}/{key}", output=f"dynamodb://{table}?key=dept&value=stats",
                       poll_interval=POLL, timeout=TIMEOUT)
    assert again["records"] == 7
    assert {it["dept"]: it["stats"] for it in scan_all(clients, table)} == dict(want)


def test_reducer_may_emit_whole_items(engine):
    clients, runner = engine
    table = fresh("whole")
    items = [{"id": i, "g": i % 3} for i in range(30)]
    src = make_table(clients, fresh("src"), items)
    job = MapReduceJob(mapper=lambda it: [(it["g"], it["id"])],
                       reducer=lambda k, vs: [{"key": f"g{k}", "ids": sorted(vs), "count": len(vs)}],
                       name="ddb-items")
    runner.run(job, input=f"dynamodb://{src}", output=f"dynamodb://{table}?create_table=true",
               poll_interval=POLL, timeout=TIMEOUT)
    got = {it["key"]: (it["count"], it["ids"]) for it in scan_all(clients, table)}
    assert got == {f"g{g}": (10, [i for i in range(30) if i % 3 == g]) for g in range(3)}


def test_missing_output_table_without_create_table_is_refused_before_any_work(engine):
    clients, runner = engine
    from lambda_handlers.io.dynamodb import DynamoDBLocationError

    src = make_table(clients, fresh("src"), [{"id": 1}])
    job = MapReduceJob(mapper=lambda it: [(it["id"], 1)], name="ddb-missing")
    with pytest.raises(DynamoDBLocationError, match="create_table=True"):
        runner.submit(job, input=f"dynamodb://{src}", output=f"dynamodb://{fresh('nope')}")


@pytest.mark.parametrize("driver", ["worker", "lambda"])
def test_join_of_an_s3_input_and_a_dynamodb_table(engine, driver):
    clients, runner = engine
    users = [{"id": i, "name": f"user{i}"} for i in range(200)]
    table = make_table(clients, fresh("users"), users)
    orders = [{"user": i % 250, "amount": i} for i in range(1000)]
    key = f"orders/{fresh('o')}.jsonl"
    clients.s3.put_object(Bucket=DATA, Key=key, Body="\n".join(json.dumps(o) for o in orders).encode())

    def join(k, values):
        names = [v[1] for v in values if v[0] == "u"]
        total = sum(v[1] for v in values if v[0] == "o")
        return [(names[0], total)] if names and total else []

    job = MapReduceJob(mapper={"users": lambda u: [(u["id"], ("u", u["name"]))],
                               "orders": lambda o: [(o["user"], ("o", o["amount"]))]},
                       reducer=join, input_format={"users": "jsonl", "orders": "jsonl"},
                       num_reducers=2, name="ddb-join")
    result = runner.run(job, input={"users": f"dynamodb://{table}?segments=3",
                                    "orders": f"s3://{DATA}/{key}"},
                        output=f"s3://{DATA}/out/{fresh('join')}/", poll_interval=POLL, timeout=TIMEOUT,
                        options=JobOptions(driver=driver))
    want = collections.Counter()
    for o in orders:
        if o["user"] < 200:
            want[f"user{o['user']}"] += o["amount"]
    assert dict(read_records(clients.s3, result)) == {k: v for k, v in want.items() if v}
