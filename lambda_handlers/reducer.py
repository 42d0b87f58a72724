"""Reduce task handler: fetch this partition's slice of every winning map output, group, reduce, write.

Slices are fetched with parallel ranged GETs in pieces of at most ``fetch_window // 2`` bytes; the
bytes fetched but not yet grouped never exceed the fetch window (a quarter of the memory budget),
and each piece is decoded and grouped, then dropped. The grouper gets the rest of the budget and
spills to ``/tmp`` beyond it. Groups are reduced in key order and written either as the next
step's input (shuffle serialization) or, on the last step, as a staged part in the output format
with keys sorted: the reducer's output is streamed to the part while its keys keep the order (the
usual case), and sorted (spilling if needed) only when a key goes back.

A step with ``sort_values`` groups through :class:`~lambda_handlers.grouping.ValueSorter` (the
shuffle's pairs sorted by key then value, grouped by key): the reducer gets each key's values in
order as an iterator, within the same budget, spilling the same way.

Two reducers need no call per key when the keys are ``str``: ``identity`` (the pairs are sorted
stably by key and written as they are: :class:`~lambda_handlers.grouping.PairSorter`; for a jsonl
or tsv part, each record's line is encoded as it arrives and the lines are sorted by key,
:class:`~lambda_handlers.grouping.LineSorter`) and a
``fold`` (one accumulator per key: :class:`~lambda_handlers.grouping.FoldGrouper`). The output
bytes are the same as calling them per key; any other key falls back to grouping.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from lambda_handlers import aws_errors, columns, grouping, protocol, runtime, shuffle, task_hooks
from lambda_handlers.io import dynamodb, writers
from lambda_handlers.jobspec import Fold, IdentityReducer, JobSpec
from lambda_handlers.parallel import ordered_parallel, window_parallel
from lambda_handlers.plan import Plan

MIN_FETCH_WINDOW = 1 << 20
_STR_ONLY = {str}


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    ev = runtime.accept(event, protocol.EVENT_REDUCE)
    return runtime.run_task(ev, protocol.REDUCE, reduce_task)


def map_outputs(bucket: str, job_id: str, step: int, num_map_tasks: int) -> list[list[Any]]:
    """``[[output_key, index], ...]`` of the winning map attempts, in task order."""
    try:
        manifest = runtime.get_json(bucket, protocol.map_manifest_key(job_id, step))
        outputs: list[list[Any]] = manifest["outputs"]
        return outputs
    except Exception as exc:
        if not aws_errors.is_not_found(exc):
            raise
    keys = [protocol.done_marker_key(job_id, step, protocol.MAP, t) for t in range(num_map_tasks)]
    markers = list(ordered_parallel(lambda k: runtime.get_json(bucket, k), keys))
    return [[m["output_key"], m["index"]] for m in markers]


def fetch_window(budget: int) -> int:
    """Bytes of slices fetched but not yet grouped, at most (a quarter of the memory budget)."""
    return max(MIN_FETCH_WINDOW, budget // 4)


def slice_pieces(slices: Iterable[tuple[str, int, int]],
                 piece_bytes: int) -> Iterator[tuple[str, int, int, bool]]:
    """Split ``(key, offset, length)`` slices into ranged pieces ``(key, offset, length, last)``."""
    piece_bytes = max(1, piece_bytes)
    for key, offset, length in slices:
        end = offset + length
        for start in range(offset, end, piece_bytes):
            n = min(piece_bytes, end - start)
            yield key, start, n, start + n == end


def slice_payloads(pieces: Iterable[tuple[bytes, bool]]) -> Iterator[bytes]:
    """Frame payloads of consecutive pieces of slices (``(data, last piece of its slice)``); a
    frame may straddle two pieces of a slice, never two slices."""
    carry = bytearray()
    header = shuffle.FRAME_HEADER
    for data, last in pieces:
        view, pos, n = memoryview(data), 0, len(data)
        if carry:
            if len(carry) < 4:
                take = min(4 - len(carry), n)
                carry += view[:take]
                pos = take
            if len(carry) >= 4:
                (length,) = header.unpack_from(carry, 0)
                take = min(4 + length - len(carry), n - pos)
                carry += view[pos:pos + take]
                pos += take
                if len(carry) == 4 + length:
                    yield bytes(carry[4:])
                    carry = bytearray()
        while pos + 4 <= n:
            (length,) = header.unpack_from(view, pos)
            if pos + 4 + length > n:
                break
            yield bytes(view[pos + 4:pos + 4 + length])
            pos += 4 + length
        carry += view[pos:]
        del view
        if last and carry:
            raise shuffle.ShuffleError("truncated shuffle frame at the end of a map output slice")


def reduce_task(event: dict[str, Any], plan: Plan, job: JobSpec,
                metrics: runtime.TaskMetrics) -> dict[str, Any]:
    bucket, job_id = event["bucket"], event["job_id"]
    step, task, attempt = event["step"], event["task"], event["attempt"]
    last = step == plan.last_step
    spec = job.steps[step]
    if spec.reducer is None:
        raise runtime.TaskFailedError(f"step {step} has reducers planned but no reducer function")
    ser = shuffle.serializer(getattr(job, "serializer", "json"))
    budget = plan.limits.budget_bytes(protocol.REDUCE)
    hooks: dict[str, float] = {}
    task_hooks.run_setup(spec.reducer_setup, "reducer_setup", hooks)

    slices = []
    for key, index in map_outputs(bucket, job_id, step, plan.steps[step].num_map_tasks):
        offset, length = index[task]
        if length:
            slices.append((key, offset, length))

    window = fetch_window(budget)
    pieces = list(slice_pieces(slices, window // 2))

    def fetch(piece: tuple[str, int, int, bool]) -> tuple[bytes, bool]:
        key, offset, length, slice_end = piece
        return runtime.get_bytes(bucket, key, Range=f"bytes={offset}-{offset + length - 1}"), slice_end

    sort_values = bool(getattr(spec, "sort_values", False) or getattr(spec, "value_key", None))
    # An identity reducer's jsonl or tsv part: each record's line is encoded as it arrives and the
    # lines are sorted by key (a LineSorter); encoding after the sort would read every record from
    # where the sort scattered it, once for each column and again to join them.
    lines_fmt = (plan.output.format if last and not sort_values and plan.output.table is None
                 and spec.reducer_teardown is None and isinstance(spec.reducer, IdentityReducer)
                 and plan.output.format in ("jsonl", "tsv") else None)
    collector = None if sort_values else _collector(spec.reducer, ser, max(budget - window, budget // 2),
                                                    lines_fmt is not None)
    grouper: grouping.ExternalGrouper | grouping.ValueSorter | None = None
    if sort_values:
        grouper = grouping.ValueSorter(ser, max(budget - window, budget // 2), spec.value_key)
    elif collector is None:
        grouper = grouping.ExternalGrouper(ser, max(budget - window, budget // 2))
    records_in = 0
    for payload in slice_payloads(window_parallel(fetch, pieces, itemgetter(2), window)):
        if collector is not None:
            # a column batch's keys are str, and with kind "s" its values too: no type checks below
            keys_str, strs = columns.is_columns(payload), columns.is_str_columns(payload)
            keys, values = shuffle.decode_columns(payload, ser)
            del payload
            records_in += len(keys)
            if lines_fmt is not None and keys and (keys_str or set(map(type, keys)) == _STR_ONLY):
                values = writers.record_lines(keys, values, lines_fmt, strs)
            if _collect(collector, keys, values, spec.reducer, keys_str):
                continue
            general = grouping.ExternalGrouper(ser, max(budget - window, budget // 2))
            drained = collector.drain()  # a key that is not a str: group the general way
            if lines_fmt is not None:  # (key, line) back to (key, value)
                drained = _line_values(drained, lines_fmt)
                lines_fmt = None
            general.add_many(drained)
            collector = None
            general.add_many(zip(keys, values, strict=True))
            grouper = general
            continue
        keys, values = shuffle.decode_columns(payload, ser)
        del payload
        records_in += len(keys)
        assert grouper is not None  # there is a collector or a grouper, never neither
        grouper.add_columns(keys, values)
        del keys, values

    batches: Iterator[list[Any]]
    if isinstance(collector, grouping.LineSorter):  # lines in key order: the part as it is
        batches, ordered = collector.sorted_lines(), True
    elif collector is not None:  # pairs already in key order: the reducer's output as it is
        batches, ordered = collector.sorted_batches(), True
    else:
        assert grouper is not None
        # a table's reducer may yield whole items, a Parquet output's reducer whole rows (dicts)
        items = last and (plan.output.table is not None or plan.output.format == "parquet")
        batches, ordered = _reduce(spec.reducer, grouper.groups(), items_ok=items), False
    if spec.reducer_teardown is not None:  # its pairs come last, in whatever key order
        batches, ordered = itertools.chain(batches, _teardown(spec.reducer_teardown, hooks)), False
    outputs = itertools.chain.from_iterable(batches)
    grouped_by = collector if collector is not None else grouper
    assert grouped_by is not None

    def spilled() -> int:  # read after the output is written: spilling happens while it streams
        return grouped_by.spilled_bytes
    if last and plan.output.table is not None:
        # Staged, not written: the commit applies the winning tasks' items (a failed job changes
        # nothing in the table).
        data, items = dynamodb.stage_output(runtime.client("dynamodb"), plan.output.table, outputs)
        out_key = protocol.staged_part_key(job_id, task, attempt, dynamodb.STAGED_EXT)
        runtime.put_bytes(bucket, out_key, data)
        metrics.add_out(len(data))
        return {"output_key": out_key, "records_in": records_in, "records_out": items,
                "bad_records": 0, "spilled_bytes": spilled(), **hooks}
    if last:
        fmt = plan.output.format
        part: writers.Part
        if lines_fmt is not None:  # lists of lines in key order
            lines = writers.PartWriter(fmt)
            for batch in batches:
                lines.write_lines(batch)
            part = lines
        elif ordered or fmt == "parquet":  # Parquet parts keep the reducer's order (rows have no key)
            part = writers.part_writer(fmt)
            for batch in batches:
                part.write_batch(batch)
        else:
            part = write_batches_in_key_order(batches, writers.PartWriter(fmt), ser, budget // 4)
        data, records_out = part.getvalue(), part.records
        out_key = protocol.staged_part_key(job_id, task, attempt, writers.extension(fmt))
    else:
        data, records_out = shuffle.encode_pairs(outputs, ser)
        out_key = protocol.reduce_output_key(job_id, step, task, attempt)
    runtime.put_bytes(bucket, out_key, data)
    metrics.add_out(len(data))
    return {"output_key": out_key, "records_in": records_in, "records_out": records_out,
            "bad_records": 0, "spilled_bytes": spilled(), **hooks}


def _teardown(fn: Callable[[], Any], hooks: dict[str, float]) -> Iterator[list[Any]]:
    """The reducer teardown's pairs as one last batch, run when the batches before are written."""
    final = task_hooks.run_teardown(fn, "reducer_teardown", hooks)
    if final:
        yield final


def _collector(reducer: Any, ser: shuffle.JsonSerializer, budget: int,
               lines: bool = False) -> grouping.PairSorter | grouping.LineSorter | grouping.FoldGrouper | None:
    """What groups the reducer's input when the reducer needs no call per key: a sorter for an
    identity reducer (of encoded lines with ``lines``), a folder for a fold; None for any other
    reducer (grouped by key)."""
    if isinstance(reducer, IdentityReducer):
        return grouping.LineSorter(ser, budget) if lines else grouping.PairSorter(ser, budget)
    if isinstance(reducer, Fold):
        return grouping.FoldGrouper(reducer.fn, ser, budget)
    return None


def _line_values(pairs: Iterable[tuple[Any, str]], fmt: str) -> Iterator[tuple[Any, Any]]:
    """``(key, value)`` of :class:`~lambda_handlers.grouping.LineSorter`'s ``(key, line)`` pairs."""
    for key, line in pairs:
        yield key, writers.line_pair(line, fmt)[1]


def _collect(collector: grouping.PairSorter | grouping.LineSorter | grouping.FoldGrouper, keys: list[Any],
             values: list[Any], reducer: Any, keys_are_str: bool = False) -> bool:
    try:
        return collector.add_columns(keys, values, keys_are_str)
    except Exception as exc:  # the fold's function
        raise runtime.TaskError(f"reducer {reducer!r} failed: {type(exc).__name__}: {exc}", user=True) from exc


def write_batches_in_key_order(batches: Iterable[list[Any]], part: writers.PartWriter,
                               ser: shuffle.JsonSerializer, budget: int) -> writers.PartWriter:
    """Write lists of pairs to ``part`` grouped by key in key order, values in order.

    Streams while the keys keep the order; when one goes back, the records written so far are
    read back and everything is sorted through an :class:`~lambda_handlers.grouping.ExternalGrouper`
    (spilling beyond ``budget``). The bytes are the same either way."""
    it: Iterable[Any] = iter(batches)
    if part.can_drain:
        rest = grouping.write_batches_while_ordered(it, part.write_batch, ser)
        if rest is None:
            return part
        it = itertools.chain(part.drain(), rest)
    else:
        it = itertools.chain.from_iterable(it)
    sorter = grouping.ExternalGrouper(ser, budget)
    sorter.add_many(it)
    for k, values in sorter.groups():
        for v in values:
            part.write(k, v)
    return part


def _reduce(reducer: Callable[[Any, Any], Iterable[Any] | None],
            groups: Iterator[tuple[Any, Iterable[Any]]], items_ok: bool = False) -> Iterator[list[Any]]:
    """The reducer's output in lists of about ``grouping.BATCH`` pairs (a call per key, no
    generator step per pair); ``items_ok``: whole items (dicts) too, for a DynamoDB output."""
    check = (lambda batch: batch) if items_ok else _checked_pairs
    batch: list[Any] = []
    for key, values in groups:
        out = None
        try:
            out = reducer(key, values)
            if out is not None:
                batch.extend(out)
        except Exception as exc:
            if out is not None and not hasattr(out, "__iter__"):
                raise runtime.TaskError(
                    f"the reducer must return an iterable of (key, value) pairs; for key "
                    f"{runtime.preview(key)} it returned {runtime.preview(out)} ({type(out).__name__}); "
                    f"{_HOW_TO_EMIT}", record_preview=runtime.preview(key), user=True) from exc
            raise runtime.TaskError(f"reducer failed on key {runtime.preview(key)}: "
                                    f"{type(exc).__name__}: {exc}",
                                    record_preview=runtime.preview(key), user=True) from exc
        if len(batch) >= grouping.BATCH:
            yield check(batch)
            batch = []
    if batch:
        yield check(batch)


_HOW_TO_EMIT = "write `yield key, value` (e.g. `yield word, sum(counts)`), not `yield value`"


def _checked_pairs(batch: list[Any]) -> list[Any]:
    """``batch`` if every item is a 2-item pair (checked in C, once per batch), else the error
    naming the first item that is not (a reducer that yields bare values)."""
    try:
        ok = set(map(len, batch)) <= {2}
    except TypeError:
        ok = False
    if ok:
        return batch
    bad = next(p for p in batch if not (isinstance(p, (tuple, list)) and len(p) == 2))
    raise runtime.TaskError(
        f"the reducer must yield (key, value) pairs; it yielded {runtime.preview(bad)} "
        f"({type(bad).__name__}), not a pair; {_HOW_TO_EMIT}", record_preview=runtime.preview(bad),
        user=True)
