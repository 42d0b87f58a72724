"""The DynamoDB reader and writer against moto, with throttling injected: results stay exact."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from lambda_handlers.io import dynamodb


class Flaky:
    """A DynamoDB client that throttles every ``every``-th call and leaves items unprocessed."""

    def __init__(self, client, every: int = 2, unprocessed: int = 7):
        self.client, self.every, self.unprocessed = client, every, unprocessed
        self.calls = self.throttled = self.left_unprocessed = 0

    def _maybe_throttle(self, op: str) -> None:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls % self.every == 0:
            self.throttled += 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "injected"}}, op)

    def scan(self, **kw):
        self._maybe_throttle("Scan")
        return self.client.scan(**{**kw, "Limit": 37})  # small pages: pagination is exercised

    def batch_write_item(self, RequestItems):
        self._maybe_throttle("BatchWriteItem")
        (table, requests), = RequestItems.items()
        cut = min(self.unprocessed, len(requests) // 2)  # a retry of a few items gets through
        keep, later = requests[cut:], requests[:cut]
        resp = self.client.batch_write_item(RequestItems={table: keep}) if keep else {}
        if later:
            self.left_unprocessed += len(later)
            resp = {**resp, "UnprocessedItems": {table: later}}
        return resp

    def describe_table(self, **kw):
        return self.client.describe_table(**kw)


@pytest.fixture
def ddb(aws_endpoint, aws_clients):
    return aws_clients(aws_endpoint).dynamodb


@pytest.fixture
def table(ddb):
    name = f"t-{uuid.uuid4().hex[:8]}"
    dynamodb.ensure_table(ddb, name, "key", "N", create=True)
    return name


def no_sleep(_s: float) -> None:
    pass


def test_throttled_writes_and_unprocessed_items_are_retried_until_every_item_is_stored(ddb, table):
    flaky = Flaky(ddb, every=2, unprocessed=7)
    writer = dynamodb.ItemWriter(flaky, table, sleep=no_sleep)
    assert writer.write_all((i, {"sq": i * i, "half": i / 2}) for i in range(500)) == 500
    assert flaky.throttled > 10 and flaky.left_unprocessed > 100
    split = {"table": table, "segment": 0, "total_segments": 1}
    got = {it["key"]: it["value"] for it in dynamodb.scan_segment(ddb, split)}
    assert got == {i: {"sq": i * i, "half": i // 2 if i % 2 == 0 else Decimal(str(i / 2))}
                   for i in range(500)}


def test_throttled_paginated_segment_scans_read_every_item_exactly_once(ddb, table):
    dynamodb.ItemWriter(ddb, table).write_all((i, f"v{i}") for i in range(400))
    flaky = Flaky(ddb, every=3)
    seen = []
    for seg in range(4):
        seen += [it["key"] for it in dynamodb.scan_segment(
            flaky, {"table": table, "segment": seg, "total_segments": 4}, sleep=no_sleep)]
    assert sorted(seen) == list(range(400))
    assert flaky.throttled > 3


def test_a_batch_never_holds_one_key_twice_and_the_last_write_wins(ddb, table):
    writer = dynamodb.ItemWriter(ddb, table)
    writer.write_all([(1, "a"), (2, "b"), (1, "c")])
    split = {"table": table, "segment": 0, "total_segments": 1}
    assert {it["key"]: it["value"] for it in dynamodb.scan_segment(ddb, split)} == {1: "c", 2: "b"}


def test_other_errors_are_not_retried():
    from botocore.exceptions import ClientError

    calls = []

    def boom():
        calls.append(1)
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad"}}, "Scan")

    with pytest.raises(ClientError):
        dynamodb.with_backoff(boom, sleep=no_sleep)
    assert len(calls) == 1


def test_values_deserialize_to_plain_python():
    wire = {"n": {"N": "3"}, "d": {"N": "2.50"}, "ns": {"NS": ["1", "2"]}, "ss": {"SS": ["x"]},
            "b": {"B": b"\x00"}, "l": {"L": [{"N": "1.0"}, {"S": "s"}]}, "m": {"M": {"k": {"BOOL": True}}},
            "z": {"NULL": True}}
    assert dynamodb.from_wire(wire) == {"n": 3, "d": Decimal("2.5"), "ns": {1, 2}, "ss": {"x"},
                                        "b": b"\x00", "l": [1, "s"], "m": {"k": True}, "z": None}


@pytest.mark.parametrize("uri, message", [
    ("dynamodb://", "must name one table"), ("dynamodb://t?segments=0", "segments"),
    ("dynamodb://t?bogus=1", "unknown option"), ("dynamodb://t/x", "must name one table")])
def test_bad_uris_are_refused_with_the_reason(uri, message):
    with pytest.raises(dynamodb.DynamoDBLocationError, match=message):
        dynamodb.parse_uri(uri)


def test_segments_grow_with_the_table_size():
    assert dynamodb.choose_segments(0, 0) == 1
    assert dynamodb.choose_segments(10, 200 * 1024**2) == 4
    assert dynamodb.choose_segments(10**9, 0) == 1000


def test_deploy_grants_the_role_only_the_declared_tables():
    from airflow_provider_smr.deploy.template import TemplateSettings, build_template

    def statements(**kw):
        s = TemplateSettings(stack_name="smr", artifacts_bucket="art", code_key="k.zip",
                          code_sha256="0" * 64, runtime="python3.11", **kw)
        doc = next(r for r in build_template(s)["Resources"].values()
                   if r["Type"] == "AWS::IAM::Policy")["Properties"]["PolicyDocument"]
        return {st["Sid"]: st for st in doc["Statement"]}

    assert "DeclaredTables" not in statements()
    granted = statements(tables=("orders", "totals"))["DeclaredTables"]
    assert sorted(granted["Action"]) == ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable",
                                         "dynamodb:PutItem", "dynamodb:Scan"]
    assert [r["Fn::Sub"].rsplit("/", 1)[1] for r in granted["Resource"]] == ["orders", "totals"]
    with pytest.raises(ValueError, match="not a DynamoDB table name"):
        statements(tables=("bad table",))


def test_staged_items_round_trip_binary_and_nested_values():
    item = dynamodb.to_wire({"key": b"\x00\xff", "value": {"$b64": "not binary", "n": [1.5, b"x"]},
                             "tags": {"a", "b"}})
    assert dynamodb.decode_wire(dynamodb.encode_wire(item)) == item


def test_a_key_is_the_same_however_its_number_is_spelled():
    names = ["id", "sort"]
    one = {"id": {"N": "1.0"}, "sort": {"S": "x"}, "value": {"S": "a"}}
    other = {"id": {"N": "1"}, "sort": {"S": "x"}}
    assert dynamodb.key_ident(one, names) == dynamodb.key_ident(other, names)
    assert dynamodb.key_ident(one, names) != dynamodb.key_ident({**other, "sort": {"S": "y"}}, names)
    assert dynamodb.key_of(one, names) == {"id": {"N": "1.0"}, "sort": {"S": "x"}}
