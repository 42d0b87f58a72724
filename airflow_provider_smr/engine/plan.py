"""The plan of a job: byte-range splits pinned to ETags, reducers per step, settings -> ``plan.json``.

Pure functions: the listing happens in :mod:`~airflow_provider_smr.engine.inputs`, the upload in
:mod:`~airflow_provider_smr.engine.submit`. The shape is the engine contract's ``plan.json``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from lambda_handlers import protocol
from lambda_handlers.io import dynamodb

if TYPE_CHECKING:
    from airflow_provider_smr.engine.inputs import S3Object
    from airflow_provider_smr.job import MapReduceJob

PLAN_VERSION = 1
DEFAULT_SPLIT_SIZE = 64 * 1024**2
# One reducer per this much input, so a reducer's partition stays well inside its memory budget.
BYTES_PER_REDUCER = 256 * 1024**2
MAX_AUTO_REDUCERS = 1000
OUTPUT_EXTENSIONS = {"jsonl": "jsonl", "tsv": "tsv", "csv": "csv"}


class PlanError(ValueError):
    """A job that cannot be planned as asked (too many tasks, bad settings)."""


def compression_of(key: str) -> str | None:
    return "gzip" if key.endswith(".gz") else None


def split_object(obj: S3Object, split_size: int, fmt: str) -> list[dict]:
    """Byte ranges ``[start, end)`` of ``split_size`` covering one object; a ``.gz`` is one split.

    The handler reads the records whose first byte lies in its range (the contract's line rule),
    so ranges only need to tile the object exactly.
    """
    if split_size < 1:
        raise PlanError(f"split_size must be at least 1 byte, got {split_size}")
    compression = compression_of(obj.key)
    if compression or obj.size <= split_size:
        bounds = [(0, obj.size)]
    else:
        bounds = [(s, min(s + split_size, obj.size)) for s in range(0, obj.size, split_size)]
    return [{"input": obj.input, "bucket": obj.bucket, "key": obj.key, "etag": obj.etag,
             "start": start, "end": end, "size": obj.size, "format": fmt, "compression": compression}
            for start, end in bounds]


def make_splits(objects: list[S3Object], split_size: int, formats: dict[str, str]) -> list[dict]:
    """Splits of all objects in a stable order (input name, then key), numbered as map tasks.

    Empty objects hold no records and get no split, unless every object is empty: then one empty
    split keeps the job well-formed (it commits an empty output).
    """
    ordered = sorted(objects, key=lambda o: (o.input, o.bucket, o.key))
    splits: list[dict] = []
    for obj in ordered:
        if obj.size > 0:
            splits.extend(split_object(obj, split_size, formats[obj.input]))
    if not splits and ordered:
        first = ordered[0]
        splits = [{"input": first.input, "bucket": first.bucket, "key": first.key, "etag": first.etag,
                   "start": 0, "end": 0, "size": 0, "format": formats[first.input],
                   "compression": compression_of(first.key)}]
    if len(splits) > protocol.MAX_TASKS:
        raise PlanError(f"{len(splits)} splits exceed {protocol.MAX_TASKS} map tasks: raise split_size")
    return [{"task": task, **split} for task, split in enumerate(splits)]


def table_splits(tables: list[dict], split_size: int) -> list[dict]:
    """Parallel-scan segment splits of DynamoDB inputs (in input/table order), without ``task``.

    The segment count is the URI's ``segments=N`` or one per ``split_size`` of the table's size."""
    out: list[dict] = []
    for t in sorted(tables, key=lambda t: (t["input"], t["table"])):
        n = t.get("segments") or dynamodb.choose_segments(t.get("item_count", 0),
                                                          t.get("size_bytes", 0), split_size)
        out.extend(dynamodb.table_splits(t["input"], t, n))
    return out


def output_spec(output_uri: str, overwrite: bool, inputs: dict[str, list[str]], work_bucket: str,
                job_id: str, fmt: str) -> dict:
    """The plan's ``output``: an S3 folder, or a DynamoDB table (manifest under the job prefix)."""
    from airflow_provider_smr.engine.inputs import output_location

    listed = [u for uris in inputs.values() for u in uris]
    if dynamodb.is_dynamodb_uri(output_uri):
        return {"uri": output_uri, "bucket": work_bucket,
                "prefix": protocol.table_manifest_key(job_id)[: -len(protocol.SUCCESS_MARKER)],
                "overwrite": bool(overwrite), "inputs": listed, **dynamodb.output_plan(output_uri)}
    out_bucket, out_prefix = output_location(output_uri)
    return {"uri": f"s3://{out_bucket}/{out_prefix}", "bucket": out_bucket, "prefix": out_prefix,
            "format": fmt, "overwrite": bool(overwrite), "inputs": listed}


def choose_num_reducers(total_bytes: int, num_map_tasks: int) -> int:
    """Reducers for a step when the job does not say: one per 256 MiB of input, 1..1000."""
    wanted = math.ceil(total_bytes / BYTES_PER_REDUCER) if total_bytes > 0 else 1
    return max(1, min(wanted, MAX_AUTO_REDUCERS, max(1, num_map_tasks)))


def plan_steps(job: MapReduceJob, num_map_tasks: int, total_bytes: int,
               num_reducers: int | None = None) -> list[dict]:
    """``[{"index", "num_map_tasks", "num_reducers"}]``: a step's own setting wins, then the
    ``num_reducers`` argument, then the job's default, then the size-based choice."""
    default = num_reducers or job.num_reducers or choose_num_reducers(total_bytes, num_map_tasks)
    steps, maps = [], num_map_tasks
    for index, step in enumerate(job.steps):
        reducers = 0 if step.reducer is None else (step.num_reducers or default)
        steps.append({"index": index, "num_map_tasks": maps, "num_reducers": reducers})
        maps = reducers
    return steps


def build_plan(*, job_id: str, work_bucket: str, job: MapReduceJob, inputs: dict[str, list[str]],
               objects: list[S3Object], output_uri: str, split_size: int | None = None,
               num_reducers: int | None = None, max_attempts: int = 3, memory_mb: int = 1024,
               task_timeout_s: int = 300, max_bad_records: int = 0, overwrite: bool = False,
               speculation: bool = False, speculation_threshold: float = 3.0,
               deadline_grace_s: int = 30, created: dt.datetime | None = None,
               tables: list[dict] = ()) -> dict:
    """The ``plan.json`` document of the engine contract (``tables``: DynamoDB inputs as
    :func:`~airflow_provider_smr.engine.inputs.describe_tables` returns them)."""
    protocol.validate_job_id(job_id)
    if not 1 <= max_attempts <= protocol.MAX_ATTEMPTS:
        raise PlanError(f"max_attempts must be in [1, {protocol.MAX_ATTEMPTS}], got {max_attempts}")
    if speculation_threshold <= 1 or deadline_grace_s < 0:
        raise PlanError("speculation_threshold must be > 1 (a multiple of the median task time) and "
                        f"deadline_grace_s >= 0, got {speculation_threshold} and {deadline_grace_s}")
    if max_bad_records < 0:
        raise PlanError(f"max_bad_records must be >= 0, got {max_bad_records}")
    table_inputs = {t["input"] for t in tables}
    formats = {name: dynamodb.FORMAT if name in table_inputs else job.input_format_for(name)
               for name in inputs}
    mixed = sorted({o.input for o in objects} & table_inputs)
    if mixed:
        raise PlanError(f"input(s) {mixed} mix S3 and DynamoDB URIs: give each its own input name")
    splits = make_splits(objects, split_size or DEFAULT_SPLIT_SIZE, formats)
    if tables:
        splits = [{**sp, "task": i} for i, sp in enumerate(
            [{k: v for k, v in sp.items() if k != "task"} for sp in splits]
            + table_splits(list(tables), split_size or DEFAULT_SPLIT_SIZE))]
        if len(splits) > protocol.MAX_TASKS:
            raise PlanError(f"{len(splits)} splits exceed {protocol.MAX_TASKS} map tasks")
    total_bytes = sum(o.size for o in objects) + sum(t.get("size_bytes", 0) for t in tables)
    created = created or dt.datetime.now(dt.timezone.utc)
    return {
        "v": PLAN_VERSION,
        "job_id": job_id,
        "work_bucket": work_bucket,
        "created": created.isoformat(),
        "job_name": job.name,
        "settings": {
            "max_attempts": max_attempts,
            "memory_budget_bytes": memory_mb * 1024**2 // 4,
            "max_bad_records": max_bad_records,
            "task_timeout_s": task_timeout_s,
            "speculation": speculation,
            "speculation_threshold": float(speculation_threshold),
            "deadline_grace_s": int(deadline_grace_s),
        },
        "inputs": {name: {"uris": list(uris), "format": formats[name]} for name, uris in inputs.items()},
        "splits": splits,
        "steps": plan_steps(job, len(splits), total_bytes, num_reducers),
        "output": output_spec(output_uri, overwrite, inputs, work_bucket, job_id, job.output_format),
        "input_bytes": total_bytes,
    }


def output_extension(plan: dict) -> str:
    return OUTPUT_EXTENSIONS[plan["output"]["format"]]
