"""Commit of a DynamoDB output: apply the winning tasks' staged items, then record the key set.

A table has no staging area and no rename, so the final tasks stage their items in the work bucket
(:func:`lambda_handlers.io.dynamodb.stage_output`) and only the commit writes to the table. A job
that fails or is cancelled before its commit therefore leaves the table exactly as it was.

The commit, under a per-table lock (one commit to a table at a time):

1. applies every winning task's staged items (``BatchWriteItem`` PUTs, tasks in parallel);
2. with ``overwrite``, deletes the keys the table's committed record lists and this job did not
   write, so the smr-written part of the table is exactly this job's output (items that other
   writers put in the table are never touched); without it the job's items are merged in;
3. writes the new key set and then the table's record (``tables/<table>/_SUCCESS`` in the work
   bucket, outside ``jobs/`` so it outlives the jobs' expiry).

Readers of the table during the commit see each item either old or new (an item is replaced
atomically, the table as a whole is not): new items appear batch by batch, and keys removed by an
overwrite disappear after every new item is written. A commit that itself fails midway leaves part
of the new items in the table and the record unchanged; running the job again converges.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

from lambda_handlers import aws_errors, protocol, runtime
from lambda_handlers.io import dynamodb
from lambda_handlers.parallel import ordered_parallel

#: a lock older than this lost its holder (Lambda's longest timeout, and a minute of slack)
LOCK_STALE_S = 900 + 60


class TableBusyError(RuntimeError):
    """Another job is committing to the same table."""


def commit_items(bucket: str, job_id: str, table: str, staged: list[str], overwrite: bool) -> dict[str, Any]:
    """Apply the staged objects ``staged`` (in task order) to ``table``; return what changed:
    ``{"written": items put, "removed": stale keys deleted, "keys": keys now recorded}``."""
    client = runtime.client("dynamodb")
    names = dynamodb.key_names(client, table)
    with _table_lock(bucket, table, job_id):
        record = _get_json(bucket, protocol.table_record_key(table))
        old = _read_keys(bucket, record["keys_key"], names) if record else {}

        def apply(key: str) -> tuple[dict[str, dict[str, Any]], int]:
            writer = dynamodb.ItemWriter(client, table, key_names=names)
            written: dict[str, dict[str, Any]] = {}
            for line in runtime.get_bytes(bucket, key).splitlines():
                item = dynamodb.decode_wire(line)
                writer.put_wire(item)
                written[dynamodb.key_ident(item, names)] = dynamodb.key_of(item, names)
            writer.flush()
            return written, writer.items

        new: dict[str, dict[str, Any]] = {}
        items = 0
        for written, count in ordered_parallel(apply, staged):
            new.update(written)
            items += count
        removed = 0
        if overwrite:
            writer = dynamodb.ItemWriter(client, table, key_names=names)
            for ident, key in old.items():
                if ident not in new:
                    writer.delete(key)
                    removed += 1
            writer.flush()
            keys = new
        else:
            keys = {**old, **new}
        keys_key = protocol.table_keys_key(table, job_id)
        runtime.put_bytes(bucket, keys_key, gzip.compress(
            "".join(dynamodb.encode_wire(k) + "\n" for k in keys.values()).encode()))
        runtime.put_json(bucket, protocol.table_record_key(table),
                         {"job_id": job_id, "table": table, "keys_key": keys_key, "keys": len(keys),
                          "committed": runtime.now_iso()})
        if record and record.get("keys_key") != keys_key:
            runtime.s3().delete_object(Bucket=bucket, Key=record["keys_key"])
    return {"written": items, "removed": removed, "keys": len(keys)}


def _read_keys(bucket: str, key: str, names: list[str]) -> dict[str, dict[str, Any]]:
    try:
        body = gzip.decompress(runtime.get_bytes(bucket, key))
    except Exception as exc:
        if aws_errors.is_not_found(exc):
            return {}
        raise
    out: dict[str, dict[str, Any]] = {}
    for line in body.splitlines():
        k = dynamodb.decode_wire(line)
        out[dynamodb.key_ident(k, names)] = k
    return out


def _get_json(bucket: str, key: str) -> Any:
    try:
        return runtime.get_json(bucket, key)
    except Exception as exc:
        if aws_errors.is_not_found(exc):
            return None
        raise


@contextlib.contextmanager
def _table_lock(bucket: str, table: str, job_id: str) -> Iterator[None]:
    key = protocol.table_lock_key(table)
    body = json.dumps({"job_id": job_id, "time": time.time()})
    if not runtime.put_if_absent(bucket, key, body):
        holder = _get_json(bucket, key) or {}
        if holder.get("job_id") != job_id and time.time() - float(holder.get("time", 0)) < LOCK_STALE_S:
            raise TableBusyError(f"DynamoDB table {table!r} is being committed by job "
                                 f"{holder.get('job_id')!r}; run this job again when that one is done")
        runtime.put_bytes(bucket, key, body.encode())  # our own, or its holder is long gone
    try:
        yield
    finally:
        runtime.s3().delete_object(Bucket=bucket, Key=key)
