"""Map task handler: read a split (or the previous step's reduce output), map, combine, partition.

With reducers, one attempt writes ONE object holding all R partitions plus an index
(:mod:`lambda_handlers.shuffle`). A map-only last step writes its part directly, sorted by key.
Bad records (parse errors or the mapper raising) fail the task naming the object, the byte offset
and a preview of the record, unless ``settings.max_bad_records`` allows skipping (and counting) them.

A :class:`~lambda_handlers.jobspec.BatchMapper` is called once per block of (parsed) records, blocks
of up to :data:`~lambda_handlers.io.readers.BATCH_BLOCK_BYTES`; when that call fails (or returns
something that is not pairs) its block is mapped again one record at a time (``fn([record])``) to
find, name or skip the failing records.
"""

from __future__ import annotations

import logging
import operator
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from lambda_handlers import grouping, protocol, runtime, shuffle
from lambda_handlers.io import dynamodb, readers, writers
from lambda_handlers.jobspec import BatchMapper
from lambda_handlers.plan import Plan

log = logging.getLogger("smr.mapper")


def handler(event: Any, context: Any = None) -> dict:
    ev, rejected = runtime.accept(event, protocol.EVENT_MAP)
    if rejected:
        return rejected
    return runtime.run_task(ev, protocol.MAP, map_task)


class _Source:
    """Records for the mapper in blocks (lists), a parser, and a way to name record ``i`` of the
    current block."""

    def __init__(self, blocks: Iterable[list], parse: Callable[[Any], Any], where: dict | None,
                 locate: Callable[[int], str]):
        self.blocks, self.parse, self.where, self.locate = blocks, parse, where, locate


def _batched(items: Iterable, counter: dict, size: int = readers.BLOCK_RECORDS) -> Iterator[list]:
    """Lists of up to ``size`` items; ``counter["base"]`` is the first one's number."""
    it, base = iter(items), 0
    while True:
        block = list(islice(it, size))
        if not block:
            return
        counter["base"] = base
        yield block
        base += len(block)


def _split_source(split: dict, metrics: runtime.TaskMetrics, batch_bytes: int = 0) -> _Source:
    """The records of a split, in blocks sized for a per-record mapper, or for a batch mapper
    (blocks of ``batch_bytes``, or of :data:`~lambda_handlers.io.readers.BATCH_BLOCK_RECORDS`)."""
    batch = batch_bytes > 0
    if split.get("format") == dynamodb.FORMAT:
        seg = dynamodb.SegmentInput(runtime.client("dynamodb"), split)
        counter = {"base": 0}
        table = (f"dynamodb://{split['table']} segment {split['segment']}/"
                 f"{split['total_segments']}")
        size = readers.BATCH_BLOCK_RECORDS if batch else readers.BLOCK_RECORDS
        return _Source(_batched(seg, counter, size), seg.parse, seg.where(),
                       lambda i: f"item #{counter['base'] + i} of {table}")
    if batch:
        src = readers.SplitInput(split, metrics.add_in, None, batch_bytes)
    else:
        src = readers.SplitInput(split, metrics.add_in)
    unit = " (decompressed)" if split.get("compression") else ""
    return _Source(src.blocks(), src.parse, src.where(),
                   lambda i: f"byte {src.locate(i)}{unit} of {src.describe()}")


def _previous_step_source(bucket: str, job_id: str, step: int, task: int,
                          ser: shuffle.JsonSerializer, batch: bool = False) -> _Source:
    marker = runtime.get_json(bucket, protocol.done_marker_key(job_id, step - 1, protocol.REDUCE, task))
    key = marker["output_key"]
    data = runtime.get_bytes(bucket, key)
    counter = {"base": 0}
    pairs = (tuple(kv) for kv in shuffle.iter_pairs(data, ser))
    size = readers.BATCH_BLOCK_RECORDS if batch else readers.BLOCK_RECORDS
    return _Source(_batched(pairs, counter, size), readers.identity,
                   {"bucket": bucket, "key": key, "start": None, "end": None},
                   lambda i: f"record #{counter['base'] + i} of s3://{bucket}/{key}")


def _mapper_for(spec: Any, split: dict | None) -> Callable:
    fn = spec.mapper
    if isinstance(fn, dict):
        name = (split or {}).get("input", "default")
        if name not in fn:
            raise runtime.TaskFailedError(f"the job has no mapper for input {name!r} (has {sorted(fn)})")
        fn = fn[name]
    return fn


def run_mapper(source: _Source, mapper: Callable, sink: Callable[[list], None],
               max_bad: int) -> tuple[int, int]:
    """Feed every record through ``mapper`` into ``sink``, one list of pairs per block of records;
    return (records, bad). A record whose mapper raises contributes no pairs."""
    if isinstance(mapper, BatchMapper):
        return _run_batch_mapper(source, mapper.fn, sink, max_bad)
    records = 0
    parse, skip = source.parse, readers.SKIP
    if parse is readers.identity:
        parse = None
    bad_record = _BadRecords(source, max_bad)

    for block in source.blocks:
        pending: list = []
        extend = pending.extend
        start, n = 0, len(block)
        while start < n:  # resumes after a bad record
            i, mark = start, 0
            try:
                if parse is None:
                    for i in range(start, n):
                        mark = len(pending)
                        extend(mapper(block[i]) or ())
                else:
                    for i in range(start, n):
                        mark = len(pending)
                        rec = parse(block[i])
                        if rec is skip:
                            records -= 1
                            continue
                        extend(mapper(rec) or ())
                start = n
            except Exception as exc:
                del pending[mark:]
                bad_record(block[i], i, exc)
                start = i + 1
        records += n
        if pending:
            checked_sink(sink, pending, "mapper")
    return records, bad_record.count


class _BadRecords:
    """Counts bad records; the one past ``max_bad`` fails the task, naming it."""

    def __init__(self, source: _Source, max_bad: int):
        self.source, self.max_bad, self.count = source, max_bad, 0

    def __call__(self, raw: Any, i: int, exc: Exception) -> None:
        self.count += 1
        where = self.source.locate(i)
        if self.count > self.max_bad:
            raise runtime.TaskError(
                f"mapper failed on the record at {where}: {type(exc).__name__}: {exc}"
                + (f" (more than max_bad_records={self.max_bad} bad records)" if self.max_bad else ""),
                input=self.source.where, record_preview=_preview(raw)) from exc
        log.warning("skipping bad record at %s: %s", where, exc)


class NotPairsError(TypeError):
    """A batch mapper returned something other than an iterable of (key, value) pairs."""


def _pairs_of(out: Any) -> list:
    """A batch mapper's output as a list of pairs (2-tuples or 2-lists), checked in one pass."""
    if out is None:
        return []
    pairs = out if type(out) is list else list(out)
    try:
        ok = not pairs or set(map(len, pairs)) <= {2}
    except TypeError:
        ok = False
    if not ok:
        bad = next(p for p in pairs if not (hasattr(p, "__len__") and len(p) == 2))
        raise NotPairsError(
            f"the batch mapper must return an iterable of (key, value) pairs; it produced "
            f"{runtime.preview(repr(bad).encode())} among them")
    return pairs


def _parsed(block: list, parse: Callable[[Any], Any] | None,
            on_error: Callable[[Any, int, Exception], None]) -> tuple[list, list | None, int]:
    """``(records, their indexes in block or None if all, records skipped)``; a record whose
    parser raises goes to ``on_error(raw, index, exc)`` and is left out."""
    if parse is None:
        return block, None, 0
    recs, index, skipped, skip = [], [], 0, readers.SKIP
    for i, raw in enumerate(block):
        try:
            rec = parse(raw)
        except Exception as exc:
            on_error(raw, i, exc)
            continue
        if rec is skip:
            skipped += 1
            continue
        recs.append(rec)
        index.append(i)
    return recs, index, skipped


def _run_batch_mapper(source: _Source, fn: Callable[[list], Any], sink: Callable[[list], None],
                      max_bad: int) -> tuple[int, int]:
    """:func:`run_mapper` for a batch mapper: ``fn(records)`` once per block; if it fails, the
    block again record by record, skipping (up to ``max_bad``) or naming the failing ones."""
    records = 0
    parse = None if source.parse is readers.identity else source.parse
    bad_record = _BadRecords(source, max_bad)
    for block in source.blocks:
        recs, index, skipped = _parsed(block, parse, bad_record)
        records += len(block) - skipped
        if not recs:
            continue
        try:
            pairs = _pairs_of(fn(recs))
        except Exception as exc:
            pairs = _per_record(source, fn, block, recs, index, exc, bad_record)
        if pairs:
            checked_sink(sink, pairs, "mapper")
    return records, bad_record.count


def _per_record(source: _Source, fn: Callable[[list], Any], block: list, recs: list,
                index: list | None, block_exc: Exception, bad_record: _BadRecords) -> list:
    """The pairs of ``recs`` mapped one at a time, after ``fn(recs)`` failed with ``block_exc``;
    the records that fail alone go to ``bad_record``."""
    pairs: list = []
    before = bad_record.count
    for j, rec in enumerate(recs):
        try:
            pairs += _pairs_of(fn([rec]))
        except Exception as exc:
            i = j if index is None else index[j]
            bad_record(block[i], i, exc)
    if bad_record.count == before:
        raise _block_error(source, recs, index, block_exc) from block_exc
    return pairs


def _block_error(source: _Source, recs: list, index: list | None, exc: Exception) -> runtime.TaskError:
    first = 0 if index is None else index[0]
    return runtime.TaskError(
        f"the batch mapper failed on the block of {len(recs)} records starting at "
        f"{source.locate(first)} but on none of them alone: {type(exc).__name__}: {exc}",
        input=source.where)


def run_mapper_folding(source: _Source, mapper: Callable, comb: shuffle.FoldCombiner) -> int:
    """:func:`run_mapper` fused with a fold combiner: pairs are folded as the mapper yields them,
    with no list of pending pairs. Only without ``max_bad_records``: a failing record fails the
    task, so the pairs it yielded before failing never matter. Returns the records read."""
    if isinstance(mapper, BatchMapper):
        return _run_batch_folding(source, mapper.fn, comb)
    records = 0
    parse, skip = source.parse, readers.SKIP
    if parse is readers.identity:
        parse = None
    fn, miss, other = comb.fn, shuffle.MISSING, comb.add_other
    for block in source.blocks:
        accs, i = comb.accumulators, 0
        get = accs.get
        try:
            if parse is None and fn is operator.add:  # text in, sums or counts out: the hot loop
                for i, rec in enumerate(block):
                    for key, value in mapper(rec) or ():
                        if type(key) is str:
                            acc = get(key, miss)
                            accs[key] = value if acc is miss else acc + value
                        else:
                            other(key, value)
            else:
                for i, rec in enumerate(block):
                    if parse is not None:
                        rec = parse(rec)
                        if rec is skip:
                            records -= 1
                            continue
                    for key, value in mapper(rec) or ():
                        if type(key) is str:
                            acc = get(key, miss)
                            accs[key] = value if acc is miss else fn(acc, value)
                        else:
                            other(key, value)
        except Exception as exc:
            raise _record_error(source, block[i], i, exc, run_mapper_folding.__code__) from exc
        records += len(block)
        comb.check_budget()
    return records


def _run_batch_folding(source: _Source, fn: Callable[[list], Any], comb: shuffle.FoldCombiner) -> int:
    """:func:`run_mapper_folding` for a batch mapper: ``fn(records)`` once per block, its pairs
    folded by ``FoldCombiner.fold``. A failure fails the task, naming the record found by mapping
    the block again one record at a time."""
    records = 0
    parse = None if source.parse is readers.identity else source.parse

    def parse_error(raw: Any, i: int, exc: Exception) -> None:
        raise _record_error(source, raw, i, exc, None) from exc

    for block in source.blocks:
        recs, index, skipped = _parsed(block, parse, parse_error)
        records += len(block) - skipped
        if not recs:
            continue
        try:
            out = fn(recs)
            if out is not None:
                comb.fold(out)
        except Exception as exc:
            _raise_for_failing_record(source, fn, comb, block, recs, index, exc)
        comb.check_budget()
    return records


def _raise_for_failing_record(source: _Source, fn: Callable[[list], Any], comb: shuffle.FoldCombiner,
                              block: list, recs: list, index: list | None, block_exc: Exception) -> None:
    """Map and fold ``recs`` one at a time to find the one that made ``fn(recs)`` (or folding its
    pairs) fail, and raise its error. The task fails either way, so the accumulators may be left
    half-folded."""
    for j, rec in enumerate(recs):
        i = j if index is None else index[j]
        try:
            out = fn([rec])
            if out is not None:
                comb.fold(out)
        except Exception as exc:
            raise _record_error(source, block[i], i, exc, shuffle.fold_into.__code__) from exc
    raise _block_error(source, recs, index, block_exc) from block_exc


def _record_error(source: _Source, raw: Any, i: int, exc: Exception, loop: Any) -> runtime.TaskError:
    """The error for a record that failed inside :func:`run_mapper_folding`, named by its cause."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where, preview = source.locate(i), _preview(raw)
    if tb is not None and tb.tb_frame.f_code is loop:  # raised by the loop itself, not the mapper
        if any(s in str(exc) for s in ("unpack", "not iterable")):
            return runtime.TaskError(
                f"the mapper must return an iterable of (key, value) pairs; for the record at "
                f"{where} it produced something else ({exc}; a bare tuple instead of a list of "
                "tuples, or a generator that yields keys only?)", input=source.where,
                record_preview=preview)
        return runtime.TaskError(
            f"the fold combiner failed on a value of the record at {where}: "
            f"{type(exc).__name__}: {exc}", input=source.where, record_preview=preview)
    return runtime.TaskError(
        f"mapper failed on the record at {where}: {type(exc).__name__}: {exc}",
        input=source.where, record_preview=preview)


def _preview(raw: Any) -> str:
    return runtime.preview(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)


def checked_sink(sink: Callable[[list], None], pairs: list, role: str) -> None:
    """``sink(pairs)``, turning a malformed output item into an error that names it."""
    try:
        sink(pairs)
    except (TypeError, ValueError) as exc:
        bad = next((p for p in pairs if not (isinstance(p, (tuple, list)) and len(p) == 2)), None)
        if bad is None:
            raise
        raise runtime.TaskError(
            f"the {role} must return an iterable of (key, value) pairs; it produced {bad!r} "
            "(a bare tuple instead of a list of tuples, or a generator that yields keys only?)",
            record_preview=runtime.preview(bad)) from exc


def map_task(event: dict, plan: Plan, job: Any, metrics: runtime.TaskMetrics) -> dict:
    bucket, job_id = event["bucket"], event["job_id"]
    step, task, attempt = event["step"], event["task"], event["attempt"]
    spec = job.steps[step]
    budget = plan.limits.memory_budget_bytes
    ser = shuffle.serializer(getattr(job, "serializer", "json"))
    num_reducers = plan.steps[step].num_reducers
    max_bad = plan.options.max_bad_records or int(getattr(job, "max_bad_records", 0) or 0)

    if step == 0:
        if task >= len(plan.splits):
            raise runtime.TaskFailedError(f"map task {task} is not in the plan ({len(plan.splits)} splits)")
        split = plan.splits[task]
        mapper = _mapper_for(spec, split)
        batch_bytes = readers.batch_block_bytes(budget)
        source = _split_source(split, metrics, batch_bytes if isinstance(mapper, BatchMapper) else 0)
    else:
        split = None
        mapper = _mapper_for(spec, split)
        source = _previous_step_source(bucket, job_id, step, task, ser, isinstance(mapper, BatchMapper))

    if num_reducers > 0:
        out = shuffle.PartitionedOutput(num_reducers, ser, spec.partitioner)
        sink = out.add_many
        combiner = None
        if spec.combiner is not None:
            combiner = shuffle.make_combiner(
                spec.combiner, lambda pairs: checked_sink(out.add_many, pairs, "combiner"), ser,
                budget // 2)  # the other half: the encoded output and batches
            sink = combiner.add_many
        if isinstance(combiner, shuffle.FoldCombiner) and not max_bad:
            records_in, bad = run_mapper_folding(source, mapper, combiner), 0
        else:
            records_in, bad = run_mapper(source, mapper, sink, max_bad)
        if combiner is not None:
            combiner.flush()
        data, index = out.finish()
        key = protocol.map_output_key(job_id, step, task, attempt)
        runtime.put_bytes(bucket, key, data)
        metrics.add_out(len(data))
        return {"output_key": key, "index": index, "records_in": records_in,
                "records_out": out.records, "bad_records": bad}

    grouper = grouping.ExternalGrouper(ser, budget)
    records_in, bad = run_mapper(source, mapper, grouper.add_many, max_bad)
    if plan.output.table is not None:
        items = dynamodb.write_output(runtime.client("dynamodb"), plan.output.table,
                                      ((k, v) for k, values in grouper.groups() for v in values))
        return {"output_key": None, "records_in": records_in, "records_out": items,
                "bad_records": bad}
    fmt = plan.output.format
    part = writers.PartWriter(fmt)
    for k, values in grouper.groups():
        for v in values:
            part.write(k, v)
    data = part.getvalue()
    key = protocol.staged_part_key(job_id, task, attempt, writers.extension(fmt))
    runtime.put_bytes(bucket, key, data)
    metrics.add_out(len(data))
    return {"output_key": key, "records_in": records_in, "records_out": part.records,
            "bad_records": bad}
