"""Reduce task handler: fetch this partition's slice of every winning map output, group, reduce, write.

Slices are fetched with parallel ranged GETs (bounded in flight), grouped by key with spilling to
``/tmp`` beyond ``settings.memory_budget_bytes``, reduced in key order, and written either as the
next step's input (shuffle serialization) or, on the last step, as a staged part in the output
format with keys sorted.
"""

from __future__ import annotations

import contextvars
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from lambda_handlers import grouping, protocol, runtime, shuffle
from lambda_handlers.io import dynamodb, writers

FETCH_THREADS = 16


def handler(event: Any, context: Any = None) -> dict:
    ev, rejected = runtime.accept(event, protocol.EVENT_REDUCE)
    if rejected:
        return rejected
    return runtime.run_task(ev, protocol.REDUCE, reduce_task)


def map_outputs(bucket: str, job_id: str, step: int, num_map_tasks: int) -> list[list]:
    """``[[output_key, index], ...]`` of the winning map attempts, in task order."""
    try:
        manifest = runtime.get_json(bucket, protocol.map_manifest_key(job_id, step))
        return manifest["outputs"]
    except Exception as exc:
        if not runtime.is_not_found(exc):
            raise
    keys = [protocol.done_marker_key(job_id, step, protocol.MAP, t) for t in range(num_map_tasks)]
    markers = list(ordered_parallel(lambda k: runtime.get_json(bucket, k), keys))
    return [[m["output_key"], m["index"]] for m in markers]


def ordered_parallel(fn: Callable[[Any], Any], items: Iterable, workers: int = FETCH_THREADS) -> Iterator:
    """``map(fn, items)`` on a thread pool, results in order, at most ``2*workers`` in flight."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(contextvars.copy_context().run, fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def reduce_task(event: dict, plan: dict, job: Any, metrics: runtime.TaskMetrics) -> dict:
    bucket, job_id = event["bucket"], event["job_id"]
    step, task, attempt = event["step"], event["task"], event["attempt"]
    steps = plan["steps"]
    last = step == len(steps) - 1
    spec = job.steps[step]
    if spec.reducer is None:
        raise runtime.TaskFailedError(f"step {step} has reducers planned but no reducer function")
    cfg = runtime.settings(plan)
    ser = shuffle.serializer(getattr(job, "serializer", "json"))
    budget = cfg["memory_budget_bytes"]

    slices = []
    for key, index in map_outputs(bucket, job_id, step, steps[step]["num_map_tasks"]):
        offset, length = index[task]
        if length:
            slices.append((key, offset, length))

    def fetch(s: tuple) -> bytes:
        key, offset, length = s
        return runtime.get_bytes(bucket, key, Range=f"bytes={offset}-{offset + length - 1}")

    grouper = grouping.ExternalGrouper(ser, budget)
    records_in = 0
    for data in ordered_parallel(fetch, slices):
        for payload in shuffle.iter_frames(data):
            batch = ser.loads(payload)
            records_in += len(batch)
            grouper.add_many(batch, len(payload))

    outputs = _reduce(spec.reducer, grouper.groups())
    if last and dynamodb.is_table_output(plan["output"]):
        items = dynamodb.write_output(runtime.client("dynamodb"), plan["output"], outputs)
        return {"output_key": None, "records_in": records_in, "records_out": items,
                "bad_records": 0, "spilled_bytes": grouper.spilled_bytes}
    if last:
        fmt = plan["output"]["format"]
        sorter = grouping.ExternalGrouper(ser, budget)
        sorter.add_many(outputs)
        part = writers.PartWriter(fmt)
        for k, values in sorter.groups():
            for v in values:
                part.write(k, v)
        data, records_out = part.getvalue(), part.records
        out_key = protocol.staged_part_key(job_id, task, attempt, writers.extension(fmt))
    else:
        data, records_out = shuffle.encode_pairs(outputs, ser)
        out_key = protocol.reduce_output_key(job_id, step, task, attempt)
    runtime.put_bytes(bucket, out_key, data)
    metrics.add_out(len(data))
    return {"output_key": out_key, "records_in": records_in, "records_out": records_out,
            "bad_records": 0, "spilled_bytes": grouper.spilled_bytes}


def _reduce(reducer: Callable, groups: Iterator[tuple[Any, list]]) -> Iterator[tuple[Any, Any]]:
    for key, values in groups:
        try:
            out = reducer(key, values)
            if out is not None:
                yield from out
        except Exception as exc:
            raise runtime.TaskError(f"reducer failed on key {runtime.preview(key)}: "
                                    f"{type(exc).__name__}: {exc}",
                                    record_preview=runtime.preview(key)) from exc
