"""DynamoDB tables as job inputs and outputs: ``dynamodb://TABLE[?options]``.

Input options: ``segments=N`` (parallel-scan segments; default chosen from the table's size),
``attributes=a,b`` (projection), ``consistent=true`` (strongly consistent scan).
Output options: ``key=NAME`` / ``value=NAME`` (attribute names of a ``(key, value)`` pair, default
``key`` and ``value``), ``key_type=S|N`` (hash key type when the table is created),
``create_table=true`` (create it on first use, on-demand billing).

Records given to mappers are plain Python values: numbers are ``int`` when integral, else
``decimal.Decimal`` (DynamoDB numbers are decimal; a float would lose digits); string/number/binary
sets are ``set``; binary is ``bytes``; maps are ``dict``; lists are ``list``.

Writes: a reducer output item is either a ``(key, value)`` pair (stored as ``{key: k, value: v}``)
or a whole item ``dict``. Items go out in ``BatchWriteItem`` batches of 25 with ``UnprocessedItems``
retried with backoff; throttling (``ProvisionedThroughputExceededException`` ...) is retried on reads
and writes. Writing an item is a PUT of its key, so applying the same items again changes nothing.

Commit: a final task does not write to the table; it checks its items against the table's key and
stages them in the work bucket (:func:`stage_output`). The commit (:mod:`lambda_handlers.table_commit`)
applies the winning tasks' items and, with ``overwrite``, removes the keys earlier committed runs
wrote and this one did not; a failed or cancelled job leaves the table as it was.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from lambda_handlers.plan import Split, TableOutput

from lambda_handlers.aws_errors import error_code, is_not_found

SCHEME = "dynamodb://"
FORMAT = "dynamodb"
BATCH = 25
MAX_SEGMENTS = 1000
BYTES_PER_SEGMENT = 64 * 1024**2
ITEMS_PER_SEGMENT = 250_000
RETRYABLE = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                       "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable",
                       "LimitExceededException"})
_TRUE = ("1", "true", "yes", "on")
T = TypeVar("T")


class DynamoDBLocationError(ValueError):
    """A ``dynamodb://`` URI that cannot be used as given."""


class DynamoDBWriteError(RuntimeError):
    """Items could not be written (still unprocessed after every retry, or a bad item)."""


def is_dynamodb_uri(uri: Any) -> bool:
    return isinstance(uri, str) and uri.startswith(SCHEME)


def parse_uri(uri: str) -> dict[str, Any]:
    """``dynamodb://T?segments=4&attributes=a,b`` -> ``{"table": "T", "segments": 4, ...}``."""
    if not is_dynamodb_uri(uri):
        raise DynamoDBLocationError(f"{uri!r} is not a DynamoDB URI (dynamodb://TABLE)")
    rest = uri[len(SCHEME):]
    table, _, query = rest.partition("?")
    table = table.rstrip("/")
    if not table or "/" in table:
        raise DynamoDBLocationError(f"{uri!r} must name one table: dynamodb://TABLE[?options]")
    opts = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    known = {"segments", "attributes", "consistent", "key", "value", "key_type", "create_table"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise DynamoDBLocationError(f"{uri!r}: unknown option(s) {unknown}; known: {sorted(known)}")
    out: dict[str, Any] = {"table": table, "segments": None, "attributes": None,
                 "consistent": opts.get("consistent", "").lower() in _TRUE,
                 "key_attribute": opts.get("key") or "key",
                 "value_attribute": opts.get("value") or "value",
                 "key_type": (opts.get("key_type") or "S").upper(),
                 "create_table": opts.get("create_table", "").lower() in _TRUE}
    if "segments" in opts:
        try:
            out["segments"] = int(opts["segments"])
        except ValueError:
            raise DynamoDBLocationError(f"{uri!r}: segments must be an integer") from None
        if not 1 <= out["segments"] <= MAX_SEGMENTS:
            raise DynamoDBLocationError(f"{uri!r}: segments must be in [1, {MAX_SEGMENTS}]")
    if opts.get("attributes"):
        out["attributes"] = [a for a in opts["attributes"].split(",") if a]
    if out["key_type"] not in ("S", "N", "B"):
        raise DynamoDBLocationError(f"{uri!r}: key_type must be S, N or B")
    return out


def choose_segments(item_count: int, size_bytes: int, bytes_per_segment: int = BYTES_PER_SEGMENT) -> int:
    """Parallel-scan segments for a table: one per ``bytes_per_segment`` (or 250k items), 1..1000."""
    by_size = math.ceil(max(0, size_bytes) / max(1, bytes_per_segment))
    by_items = math.ceil(max(0, item_count) / ITEMS_PER_SEGMENT)
    return max(1, min(MAX_SEGMENTS, max(by_size, by_items)))


def table_splits(input_name: str, table: dict[str, Any], segments: int) -> list[Split]:
    """Plan splits (without ``task``) of one table: one per scan segment."""
    return [{"input": input_name, "format": FORMAT, "table": table["table"], "segment": s,
             "total_segments": segments, "attributes": table.get("attributes"),
             "consistent": bool(table.get("consistent")), "bucket": None, "key": None,
             "etag": None, "start": 0, "end": 0, "size": 0, "compression": None}
            for s in range(segments)]


# ---------------------------------------------------------------------------------------------
# Retry


def with_backoff(call: Callable[[], T], *, attempts: int = 10, base: float = 0.05,
                 cap: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, retried with jittered exponential backoff while DynamoDB throttles."""
    for i in range(attempts):
        try:
            return call()
        except Exception as exc:
            if error_code(exc) not in RETRYABLE or i == attempts - 1:
                raise
            sleep(min(cap, base * 2**i) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Types


def to_python(value: Any) -> Any:
    """A deserialized DynamoDB value with integral numbers as ``int`` (recursively)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, set):
        return {to_python(v) for v in value}
    if type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def from_wire(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    d = TypeDeserializer()
    return {k: to_python(d.deserialize(v)) for k, v in item.items()}


def _storable(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DynamoDBWriteError(f"DynamoDB cannot store the number {value!r}")
        return Decimal(repr(value))
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return {_storable(v) for v in value}
    return value


def to_wire(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    s = TypeSerializer()
    return {k: s.serialize(v) for k, v in _storable(item).items()}


# ---------------------------------------------------------------------------------------------
# Reading


def scan_segment(client: Any, split: dict[str, Any], *,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Every item of one scan segment as a plain dict (paginated, throttling retried)."""
    kw: dict[str, Any] = {"TableName": split["table"], "Segment": int(split["segment"]),
                "TotalSegments": int(split["total_segments"])}
    if split.get("consistent"):
        kw["ConsistentRead"] = True
    if split.get("attributes"):
        names = {f"#a{i}": a for i, a in enumerate(split["attributes"])}
        kw["ProjectionExpression"] = ", ".join(names)
        kw["ExpressionAttributeNames"] = names
    while True:
        page = with_backoff(lambda: client.scan(**kw), sleep=sleep)
        for item in page.get("Items", ()):
            yield from_wire(item)
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kw["ExclusiveStartKey"] = last


class SegmentInput:
    """The items of one planned scan segment, as a reader the mapper can consume."""

    def __init__(self, client: Any, split: dict[str, Any]):
        self.split = split
        self.count = -1
        self._items = scan_segment(client, split)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self._items:
            self.count += 1
            yield item

    def parse(self, record: Any) -> Any:
        return record

    def where(self) -> dict[str, Any]:
        return {"table": self.split["table"], "segment": self.split["segment"],
                "total_segments": self.split["total_segments"]}

    def describe(self) -> str:
        return (f"item #{self.count} of dynamodb://{self.split['table']} segment "
                f"{self.split['segment']}/{self.split['total_segments']}")


# ---------------------------------------------------------------------------------------------
# Writing


class ItemWriter:
    """Buffer items and write them with ``BatchWriteItem`` (25 per call, unprocessed retried)."""

    def __init__(self, client: Any, table: str, key_attribute: str = "key",
                 value_attribute: str = "value", key_names: Iterable[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_rounds: int = 12):
        self.client, self.table = client, table
        self.key_attribute, self.value_attribute = key_attribute, value_attribute
        self.key_names = tuple(key_names or (key_attribute,))
        self.sleep, self.max_rounds = sleep, max_rounds
        self.items = 0
        self.batches = 0
        self._batch: dict[str, dict[str, Any]] = {}

    def item_of(self, out: Any) -> dict[str, Any]:
        if isinstance(out, dict):
            return out
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return {self.key_attribute: out[0], self.value_attribute: out[1]}
        raise DynamoDBWriteError(f"a DynamoDB output item must be a (key, value) pair or a dict, "
                                 f"got {out!r}")

    def write(self, out: Any) -> None:
        self.put_wire(self.checked(out))

    def checked(self, out: Any) -> dict[str, Any]:
        """``out`` as a wire item, after checking it carries the table's key attributes."""
        item = to_wire(self.item_of(out))
        missing = [k for k in self.key_names if k not in item]
        if missing:
            raise DynamoDBWriteError(f"item {out!r} lacks the table's key attribute(s) {missing}")
        return item

    def put_wire(self, item: dict[str, Any]) -> None:
        """Queue a PUT of an item already in the wire format (see :meth:`checked`)."""
        self._queue(key_ident(item, self.key_names), {"PutRequest": {"Item": item}})
        self.items += 1

    def delete(self, key: dict[str, Any]) -> None:
        """Queue a DELETE of the item with this key (wire format)."""
        self._queue(key_ident(key, self.key_names), {"DeleteRequest": {"Key": key}})

    def _queue(self, ident: str, request: dict[str, Any]) -> None:
        if ident in self._batch:  # one batch may not hold a key twice: the later request wins
            self.flush()
        self._batch[ident] = request
        if len(self._batch) >= BATCH:
            self.flush()

    def write_all(self, outs: Iterable[Any]) -> int:
        for out in outs:
            self.write(out)
        self.flush()
        return self.items

    def flush(self) -> None:
        if not self._batch:
            return
        requests = list(self._batch.values())
        self._batch = {}
        for i in range(self.max_rounds):
            resp = with_backoff(lambda: self.client.batch_write_item(
                RequestItems={self.table: requests}), sleep=self.sleep)  # noqa: B023 - called this round
            self.batches += 1
            requests = (resp.get("UnprocessedItems") or {}).get(self.table) or []
            if not requests:
                return
            self.sleep(min(5.0, 0.05 * 2**i) * (0.5 + random.random() / 2))
        raise DynamoDBWriteError(f"{len(requests)} items still unprocessed by table {self.table!r} "
                                 f"after {self.max_rounds} rounds: raise its write capacity")


def key_names(client: Any, table: str) -> list[str]:
    desc = with_backoff(lambda: client.describe_table(TableName=table))["Table"]
    return [k["AttributeName"] for k in desc["KeySchema"]]


def ensure_table(client: Any, table: str, key_attribute: str = "key", key_type: str = "S",
                 create: bool = False, sleep: Callable[[float], None] = time.sleep,
                 timeout_s: float = 300.0) -> dict[str, Any]:
    """Describe ``table``; with ``create`` make it (PAY_PER_REQUEST) if missing; wait until ACTIVE."""
    began = time.monotonic()
    while True:
        try:
            desc: dict[str, Any] = client.describe_table(TableName=table)["Table"]
        except Exception as exc:
            if not is_not_found(exc):
                raise
            if not create:
                raise DynamoDBLocationError(
                    f"DynamoDB table {table!r} does not exist: create it or pass create_table=True") from None
            try:
                client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                    AttributeDefinitions=[{"AttributeName": key_attribute,
                                                           "AttributeType": key_type}],
                                    KeySchema=[{"AttributeName": key_attribute, "KeyType": "HASH"}])
            except Exception as exc2:
                if error_code(exc2) != "ResourceInUseException":
                    raise
            continue
        if desc.get("TableStatus", "ACTIVE") == "ACTIVE":
            return desc
        if time.monotonic() - began > timeout_s:
            raise DynamoDBLocationError(f"DynamoDB table {table!r} not ACTIVE after {timeout_s:.0f}s")
        sleep(1.0)


# ---------------------------------------------------------------------------------------------
# Staging: a final task's items wait in the work bucket until the commit applies them


STAGED_EXT = "items.jsonl"
_B64 = "$b64"  # a wire value can never be a one-key dict of a string: binary values are stored so


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {_B64: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot stage a value of type {type(value).__name__}")


def _json_hook(doc: dict[str, Any]) -> Any:
    if len(doc) == 1 and isinstance(doc.get(_B64), str):
        return base64.b64decode(doc[_B64])
    return doc


def encode_wire(item: dict[str, Any]) -> str:
    """A wire item (or key) as one JSON line (binary values base64-encoded)."""
    return json.dumps(item, default=_json_default, separators=(",", ":"), sort_keys=True)


def decode_wire(line: str | bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(line, object_hook=_json_hook)
    return doc


def key_of(item: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The key attributes of a wire item."""
    return {k: item[k] for k in names}


def key_ident(item: dict[str, Any], names: Iterable[str]) -> str:
    """The identity of a wire item's key: equal for the same key however its numbers are spelled
    (``{"N": "1.0"}`` and ``{"N": "1"}`` are one key to DynamoDB)."""
    parts = []
    for name in names:
        ((kind, value),) = item[name].items()
        if kind == "N":
            value = str(Decimal(value).normalize())
        elif kind == "B":
            value = base64.b64encode(bytes(value)).decode("ascii")
        parts.append([name, kind, value])
    return json.dumps(parts, separators=(",", ":"))


def stage_output(client: Any, output: TableOutput, outs: Iterable[Any]) -> tuple[bytes, int]:
    """A final task's output items, checked against the table's key, as the JSON lines the commit
    applies (:data:`STAGED_EXT`); and their count. Nothing is written to the table here."""
    writer = ItemWriter(client, output.table, output.key_attribute, output.value_attribute,
                        key_names(client, output.table))
    lines = [encode_wire(writer.checked(out)) for out in outs]
    return "".join(line + "\n" for line in lines).encode(), len(lines)
