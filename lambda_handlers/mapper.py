"""Map task handler: read a split (or the previous step's reduce output), map, combine, partition.

With reducers, one attempt writes ONE object holding all R partitions plus an index
(:mod:`lambda_handlers.shuffle`). A map-only last step writes its part directly, sorted by key.
Records go through the mapper into the sink in one loop with no check per record. When it fails,
the record it was on is parsed and mapped once more, alone, with each step checked, and the error
says what the job's code did: raised (a bad record: the task fails naming the object, the byte
offset and a preview of the record, unless ``settings.max_bad_records`` allows skipping and counting
it), returned something that is not pairs, or yielded a key that cannot be shuffled or a value the
fold combiner fails on.

A :class:`~lambda_handlers.jobspec.BatchMapper` is called once per block of (parsed) records, blocks
of up to :data:`~lambda_handlers.io.readers.BATCH_BLOCK_BYTES`; when that call fails (or returns
something that is not pairs) its block is mapped again one record at a time (``fn([record])``) to
find, name or skip the failing records. A block of text or jsonl lines fills across the small
objects of a packed split (unless ``batch_mapper(fn, per_object=True)``): the context then lists
the objects of the block (:func:`~lambda_handlers.context.block_sources`, by the indexes of the
records the batch mapper gets), and a record mapped alone has its own object's ``input_uri()``.
"""

from __future__ import annotations

import bisect
import functools
import logging
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from lambda_handlers import context, grouping, protocol, runtime, shuffle, task_hooks
from lambda_handlers.io import dynamodb, packed, parquet, readers, writers
from lambda_handlers.jobspec import BatchMapper, JobSpec
from lambda_handlers.options import JobOptions
from lambda_handlers.plan import Plan

log = logging.getLogger("smr.mapper")


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    ev = runtime.accept(event, protocol.EVENT_MAP)
    return runtime.run_task(ev, protocol.MAP, map_task)


class _Source:
    """Records for the mapper in blocks (lists), a parser, and a way to name record ``i`` of the
    current block; ``where`` is the input being read (a function of the current piece, for a split
    of several); ``sources`` gives ``(start, uri)`` of each object of a block that spans several
    (else None), ``name`` the named input."""

    def __init__(self, blocks: Iterable[list[Any]], parse: Callable[[Any], Any],
                 where: dict[str, Any] | Callable[[], dict[str, Any]] | None, locate: Callable[[int], str],
                 sources: Callable[[], list[tuple[int, str]] | None] | None = None, name: str = "default"):
        self.blocks, self.parse, self.locate = blocks, parse, locate
        self._where = where
        self.sources = sources or _no_sources
        self.name = name

    @property
    def where(self) -> dict[str, Any] | None:
        return self._where() if callable(self._where) else self._where


def _no_sources() -> None:
    return None


def _batched(items: Iterable[Any], counter: dict[str, Any], size: int = readers.BLOCK_RECORDS) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items; ``counter["base"]`` is the first one's number."""
    it, base = iter(items), 0
    while True:
        block = list(islice(it, size))
        if not block:
            return
        counter["base"] = base
        yield block
        base += len(block)


def _split_source(split: dict[str, Any], metrics: runtime.TaskMetrics, batch_bytes: int = 0,
                  options: JobOptions | None = None, whole_limit: int = 1 << 62,
                  span: bool = False) -> _Source:
    """The records of a split, in blocks sized for a per-record mapper, or for a batch mapper
    (blocks of ``batch_bytes``, or of :data:`~lambda_handlers.io.readers.BATCH_BLOCK_RECORDS`);
    an S3 split's pieces are read in order (:class:`~lambda_handlers.io.packed.PackedInput`),
    a block spanning several small objects only with ``span`` (a batch mapper's text or jsonl)."""
    batch = batch_bytes > 0
    if split.get("format") == dynamodb.FORMAT:
        seg = dynamodb.SegmentInput(runtime.client("dynamodb"), split)
        counter = {"base": 0}
        table = (f"dynamodb://{split['table']} segment {split['segment']}/"
                 f"{split['total_segments']}")
        size = readers.BATCH_BLOCK_RECORDS if batch else readers.BLOCK_RECORDS
        context.set_input(f"dynamodb://{split['table']}", split.get("input") or "default")
        return _Source(_batched(seg, counter, size), seg.parse, seg.where(),
                       lambda i: f"item #{counter['base'] + i} of {table}")
    if batch:
        src = packed.PackedInput(split, metrics.add_in, None, batch_bytes, whole_limit=whole_limit,
                                 options=options, span=span)
    else:
        src = packed.PackedInput(split, metrics.add_in, whole_limit=whole_limit, options=options)
    return _Source(src.blocks(), src.parse, src.where, src.locate, src.sources, src.input)


def _previous_step_source(bucket: str, job_id: str, step: int, task: int,
                          ser: shuffle.JsonSerializer, batch: bool = False) -> _Source:
    marker = runtime.get_json(bucket, protocol.done_marker_key(job_id, step - 1, protocol.REDUCE, task))
    key = marker["output_key"]
    data = runtime.get_bytes(bucket, key)
    counter = {"base": 0}
    context.set_input(f"s3://{bucket}/{key}", "default")
    pairs = (tuple(kv) for kv in shuffle.iter_pairs(data, ser))
    size = readers.BATCH_BLOCK_RECORDS if batch else readers.BLOCK_RECORDS
    return _Source(_batched(pairs, counter, size), readers.identity,
                   {"bucket": bucket, "key": key, "start": None, "end": None},
                   lambda i: f"record #{counter['base'] + i} of s3://{bucket}/{key}")


def _pass_pairs(records: list[Any]) -> list[Any]:
    return records


#: the mapper of a later step without one: the previous step's pairs, a block at a time, unchanged
PASS_PAIRS = BatchMapper(_pass_pairs)


def _mapper_for(spec: Any, split: dict[str, Any] | None) -> Callable[..., Any]:
    fn: Callable[..., Any] | dict[str, Callable[..., Any]] | None = spec.mapper
    if fn is None:
        return PASS_PAIRS
    if isinstance(fn, dict):
        name = (split or {}).get("input", "default")
        if name not in fn:
            raise runtime.TaskFailedError(f"the job has no mapper for input {name!r} (has {sorted(fn)})")
        return fn[name]
    return fn


# ---------------------------------------------------------------------------------------------
# The map loop: records -> mapper -> pairs -> sink, with no check per record. The record a
# failure stops it on is mapped once more, alone, through checks that say what went wrong.


def run_mapper(source: _Source, mapper: Callable[..., Any], sink: Callable[[list[Any]], None],
               max_bad: int) -> tuple[int, int]:
    """Feed every record through ``mapper`` into ``sink``, one list of pairs per block of records;
    return (records, bad). A record that fails contributes no pairs."""
    if isinstance(mapper, BatchMapper):
        return _run_batch_mapper(source, mapper.fn, sink, max_bad)
    parse = _parser(source)
    bad_record = _BadRecords(source, max_bad)

    def failed(block: list[Any], i: int, exc: Exception) -> None:
        mark = context.counters_mark()  # what the record counts when mapped again is not counted twice
        fault, _ = _check_record(block[i], _block_parser(block, parse), mapper, "mapper")
        context.restore_counters(mark)
        bad_record(block[i], i, fault or _Fault(exc))  # not failing again: still a bad record

    records = 0
    for block in source.blocks:
        pending: list[Any] = []
        records += _map_block(block, _block_parser(block, parse), mapper,
                              _pending_consumer(pending, max_bad), failed)
        if pending:
            checked_sink(sink, pending, "mapper")
    return records, bad_record.count


def run_mapper_folding(source: _Source, mapper: Callable[..., Any],
                       comb: shuffle.FoldCombiner | shuffle.Combiner) -> int:
    """:func:`run_mapper` fused with a fold combiner (pairs are folded as the mapper yields them)
    or a grouping one (their values go straight into the combiner's groups), with no list of
    pending pairs. Only without ``max_bad_records``: a failing record fails the task, so the pairs
    it folded before failing never matter. Returns the records read."""
    if isinstance(mapper, BatchMapper):
        if not isinstance(comb, shuffle.FoldCombiner):
            raise TypeError("a batch mapper with a grouping combiner goes through run_mapper")
        return _run_batch_folding(source, mapper.fn, comb)
    parse = _parser(source)
    consumer = _fold_consumer if isinstance(comb, shuffle.FoldCombiner) else _group_consumer

    def failed(block: list[Any], i: int, exc: Exception) -> None:
        fault, pairs = _check_record(block[i], _block_parser(block, parse), mapper, "mapper")
        err = _fold_error(source, block[i], i, fault, pairs, comb)
        if err is None:
            err = runtime.TaskError(
                f"the mapper or the {'fold ' * isinstance(comb, shuffle.FoldCombiner)}combiner failed on "
                f"the record at {source.locate(i)}, but not "
                f"when it was mapped again: {type(exc).__name__}: {exc}", input=source.where,
                record_preview=_preview(block[i]))
        raise err from (err.__cause__ or exc)

    records = 0
    for block in source.blocks:
        records += _map_block(block, _block_parser(block, parse), mapper, consumer(comb), failed)
        comb.check_budget()
    return records


def _group_consumer(comb: shuffle.FoldCombiner | shuffle.Combiner) -> Callable[[Iterator[Any]], None]:
    """Adds the outputs to a grouping combiner's groups as they are now (a compaction replaces them)."""
    assert isinstance(comb, shuffle.Combiner)
    return comb.add_outputs


def _parser(source: _Source) -> Callable[[Any], Any] | None:
    return None if source.parse is readers.identity else source.parse


def _block_parser(block: list[Any], parse: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """The parser for one block: a block holding records that did not decode checks each record
    (:func:`~lambda_handlers.io.readers.checked_parser`), so that those are bad records."""
    return readers.checked_parser(parse) if isinstance(block, readers.UndecodedBlock) else parse


def _pending_consumer(pending: list[Any], max_bad: int) -> Callable[[Iterator[Any]], None]:
    """Collects the outputs in ``pending``. With ``max_bad_records`` each output goes in whole, so
    a record skipped after yielding some pairs leaves none; without, a failure ends the task."""
    extend = pending.extend
    if not max_bad:
        return lambda outs: extend(chain.from_iterable(filter(None, outs)))

    def whole(outs: Iterator[Any]) -> None:
        for out in outs:
            mark = len(pending)
            try:
                extend(out or ())
            except BaseException:
                del pending[mark:]
                raise
    return whole


def _fold_consumer(comb: shuffle.FoldCombiner | shuffle.Combiner) -> Callable[[Iterator[Any]], None]:
    """Folds the outputs into the combiner's accumulators as they are now (a flush replaces
    them): :func:`~lambda_handlers.shuffle.fold_into` over a stream of outputs, without a call per
    record."""
    assert isinstance(comb, shuffle.FoldCombiner)
    accs, fn, other, miss = comb.accumulators, comb.fn, comb.add_other, shuffle.MISSING
    get = accs.get
    if fn is operator.add:  # sums and counts: no call per value
        def add(outs: Iterator[Any]) -> None:
            for pairs in outs:
                for key, value in pairs or ():
                    if type(key) is str:
                        acc = get(key, miss)
                        accs[key] = value if acc is miss else acc + value
                    else:
                        other(key, value)
        return add

    def fold(outs: Iterator[Any]) -> None:
        for pairs in outs:
            for key, value in pairs or ():
                if type(key) is str:
                    acc = get(key, miss)
                    accs[key] = value if acc is miss else fn(acc, value)
                else:
                    other(key, value)
    return fold


def _map_block(block: list[Any], parse: Callable[[Any], Any] | None, mapper: Callable[..., Any],
               consume: Callable[[Iterator[Any]], None],
               failed: Callable[[list[Any], int, Exception], None]) -> int:
    """Map the records of ``block`` and hand the stream of outputs, one per record, to ``consume``
    (which takes the pairs to the sink; a false output, None or [], is no pairs): the hot loop,
    with no check per record.

    When it raises, ``failed(block, index, exc)`` is told which record it was on (the position of
    the block's iterator says) and raises, or returns to have the record skipped. Returns the
    records read (lines the parser skips are not records)."""
    n, start, skipped = len(block), 0, 0
    while start < n:
        raw = iter(block[start:] if start else block)
        parsed = None if parse is None else _Parsed(raw, parse)
        try:
            consume(map(mapper, raw if parsed is None else parsed))
            start = n
        except Exception as exc:  # noqa: BLE001 - whatever the job's code raised: the re-run names it
            start = n - operator.length_hint(raw)  # the failing record was the last one taken
            failed(block, start - 1, exc)
        if parsed is not None:
            skipped += parsed.skipped
    return n - skipped


class _Parsed:
    """The records parsed from ``raw``, without the lines the parser skips (counted)."""

    def __init__(self, raw: Iterator[Any], parse: Callable[[Any], Any]):
        self.raw, self.parse, self.skipped = raw, parse, 0

    def __iter__(self) -> Iterator[Any]:
        parse, skip = self.parse, readers.SKIP
        for raw in self.raw:
            rec = parse(raw)
            if rec is skip:
                self.skipped += 1
                continue
            yield rec


# ---------------------------------------------------------------------------------------------
# The checked path: one record mapped again, to name what went wrong


_HOW_TO_EMIT = {"mapper": "write `yield key, value` (or return a list of (key, value) tuples)",
                "batch mapper": "return a list of (key, value) tuples (or a dict's items())"}


@dataclass(frozen=True)
class _Fault:
    """What one record did wrong: the job's code (parser or mapper) raised ``exc``, or the
    ``role`` returned something other than pairs, which ``shape`` describes."""

    exc: Exception | None = None
    role: str = "mapper"
    shape: str = ""

    def reason(self, where: str = "") -> str:
        if self.exc is not None:
            return f"{type(self.exc).__name__}: {self.exc}"
        at = f"for the record at {where} " if where else ""
        return f"the {self.role} must return an iterable of (key, value) pairs; {at}{self.shape}"


def _check_record(raw: Any, parse: Callable[[Any], Any] | None, call: Callable[..., Any],
                  role: str) -> tuple[_Fault | None, list[Any]]:
    """Parse ``raw`` and ``call`` the mapper on it again, checking each step: ``(None, pairs)``,
    or the fault and no pairs."""
    try:
        rec = raw if parse is None else parse(raw)
        out = None if rec is readers.SKIP else call(rec)
        if not out:
            return None, []
    except Exception as exc:  # noqa: BLE001 - the job's parser or mapper raised: the fault reported
        return _Fault(exc), []
    try:
        items = iter(out)
    except TypeError:
        return _Fault(role=role, shape=f"it returned {_describe(out)}, which is not iterable; "
                                       f"{_HOW_TO_EMIT[role]}"), []
    try:
        pairs = list(items)
    except Exception as exc:  # noqa: BLE001 - a generator mapper raised part way: the fault reported
        return _Fault(exc), []
    for bad in pairs:
        if not (isinstance(bad, (tuple, list)) and len(bad) == 2):
            break
    else:
        return None, pairs
    if type(out) is tuple and len(out) == 2:
        shape = f"it returned the bare pair {runtime.preview(out)}; {_HOW_TO_EMIT[role]}"
    else:
        shape = f"it produced {_describe(bad)}, not a (key, value) pair; {_HOW_TO_EMIT[role]}"
    return _Fault(role=role, shape=shape), []


def _describe(obj: Any) -> str:
    return f"{runtime.preview(obj)} ({type(obj).__name__})"


def _fold_error(source: _Source, raw: Any, i: int, fault: _Fault | None, pairs: list[Any],
                comb: shuffle.FoldCombiner | shuffle.Combiner, role: str = "mapper") -> runtime.TaskError | None:
    """The error for a record whose mapping and folding failed: its fault, or else (it maps to
    ``pairs``) a key that cannot be shuffled or the fold failing on a value; None if its pairs
    fold now. Folding them again leaves the accumulators wrong: the task fails anyway."""
    where = source.locate(i)
    if fault is not None and fault.exc is not None:
        return _BadRecords(source, 0).error(raw, where, fault)
    if fault is not None:
        return runtime.TaskError(fault.reason(where), input=source.where, record_preview=_preview(raw),
                                 user=True)
    for key, value in pairs:
        failure = _refold(comb, key, value)
        if failure is not None:
            exc = failure[1]
            what = (f"the {role}'s key {_describe(key)} for the record at {where} cannot be shuffled"
                    if failure[0] == "key" else f"the fold combiner failed on a value of the record at {where}")
            err = runtime.TaskError(f"{what}: {type(exc).__name__}: {exc}", input=source.where,
                                    record_preview=_preview(raw), user=True)
            err.__cause__ = exc
            return err
    return None


def _refold(comb: shuffle.FoldCombiner | shuffle.Combiner, key: Any, value: Any) -> tuple[str, Exception] | None:
    """Fold one pair (a grouping combiner: only check it), checking its key first: None, or which
    step failed ("key" or "fold") and how."""
    try:
        if type(key) is not str:
            comb.gk(key)
    except Exception as exc:  # noqa: BLE001 - the key's encoding failed: reported with the key
        return "key", exc
    if not isinstance(comb, shuffle.FoldCombiner):
        return None
    try:
        shuffle.fold_into(comb.accumulators, comb.fn, ((key, value),), comb.add_other)
    except Exception as exc:  # noqa: BLE001 - the job's fold function raised: reported with the record
        return "fold", exc
    return None


class _BadRecords:
    """Counts bad records; the one past ``max_bad`` fails the task, naming it."""

    def __init__(self, source: _Source, max_bad: int):
        self.source, self.max_bad, self.count = source, max_bad, 0

    def __call__(self, raw: Any, i: int, failure: _Fault | Exception) -> None:
        """Count record ``i`` of the block, on which the job's code raised or the mapper returned
        something other than pairs."""
        fault = failure if isinstance(failure, _Fault) else _Fault(failure)
        self.count += 1
        where = self.source.locate(i)
        if self.count > self.max_bad:
            raise self.error(raw, where, fault)
        log.warning("skipping bad record at %s: %s", where, fault.reason())

    def error(self, raw: Any, where: str, fault: _Fault) -> runtime.TaskError:
        err = runtime.TaskError(
            f"mapper failed on the record at {where}: {fault.reason()}"
            + (f" (more than max_bad_records={self.max_bad} bad records)" if self.max_bad else ""),
            input=self.source.where, record_preview=_preview(raw), user=True)
        err.__cause__ = fault.exc  # the job's own exception and traceback
        return err


# ---------------------------------------------------------------------------------------------
# Batch mappers: one call per block; the records of a failing block are mapped one at a time


class NotPairsError(TypeError):
    """A batch mapper returned something other than an iterable of (key, value) pairs."""


def _pairs_of(out: Any) -> list[Any]:
    """A batch mapper's output as a list of pairs (2-tuples or 2-lists), checked in one pass: the
    sinks are not all atomic, so a block goes to them whole or not at all."""
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


def _parsed(block: list[Any], parse: Callable[[Any], Any] | None,
            on_error: Callable[[Any, int, Exception], None]) -> tuple[list[Any], list[Any] | None, int]:
    """``(records, their indexes in block or None if all, records skipped)``; a record whose
    parser raises goes to ``on_error(raw, index, exc)`` and is left out."""
    if parse is None:
        return block, None, 0
    recs, index, skipped, skip = [], [], 0, readers.SKIP
    for i, raw in enumerate(block):
        try:
            rec = parse(raw)
        except Exception as exc:  # noqa: BLE001 - a record the parser rejects is a bad record
            on_error(raw, i, exc)
            continue
        if rec is skip:
            skipped += 1
            continue
        recs.append(rec)
        index.append(i)
    return recs, index, skipped


def _block_context(source: _Source, index: list[Any] | None) -> tuple[list[int], list[str]] | None:
    """The starts (indexes in the block) and URIs of the objects of a block spanning several, or
    None (one object). The reader told the context about the block by the indexes in the block;
    when the parser skipped or rejected records (``index``: the block indexes of the records the
    batch mapper gets), it is told again by the indexes in the list the batch mapper gets."""
    raw = source.sources()
    if raw is None:
        return None
    if index is not None:  # records the parser skipped or rejected are not in the batch mapper's list
        starts = [(bisect.bisect_left(index, start), uri) for start, uri in raw]
        starts = [su for su, nxt in zip(starts, starts[1:] + [(len(index), "")], strict=True)
                  if su[0] < nxt[0]]
        if len(starts) > 1:
            context.set_block([context.BlockSource(start, uri, source.name) for start, uri in starts])
        elif starts:
            context.set_input(starts[0][1], source.name)
    return [start for start, _ in raw], [uri for _, uri in raw]


def _record_context(spans: tuple[list[int], list[str]] | None, i: int, name: str) -> None:
    """Before record ``i`` of a block spanning objects ``spans`` is mapped alone: its object."""
    if spans is not None:
        starts, uris = spans
        context.set_input(uris[bisect.bisect_right(starts, i) - 1], name)


def _run_batch_mapper(source: _Source, fn: Callable[[list[Any]], Any], sink: Callable[[list[Any]], None],
                      max_bad: int) -> tuple[int, int]:
    """:func:`run_mapper` for a batch mapper: ``fn(records)`` once per block; if it fails, the
    block again record by record, skipping (up to ``max_bad``) or naming the failing ones."""
    records = 0
    parse = _parser(source)
    bad_record = _BadRecords(source, max_bad)
    for block in source.blocks:
        recs, index, skipped = _parsed(block, _block_parser(block, parse), bad_record)
        records += len(block) - skipped
        if not recs:
            continue
        spans = _block_context(source, index)
        mark = context.counters_mark()
        try:
            pairs = _pairs_of(fn(recs))
        except Exception as exc:  # noqa: BLE001 - the block's records are mapped alone to name it
            context.restore_counters(mark)  # the records count again when mapped alone
            pairs = _per_record(source, fn, block, recs, index, exc, bad_record, spans)
        if pairs:
            checked_sink(sink, pairs, "mapper")
    return records, bad_record.count


def _one(fn: Callable[[list[Any]], Any]) -> Callable[[Any], Any]:
    return lambda rec: fn([rec])


def _one_by_one(recs: Any, fn: Callable[[Any], Any]) -> tuple[list[Any], Callable[[Any], Any]]:
    """A block's records one at a time and how to map one alone: ``fn([record])`` for a list, and
    ``fn(one-row batch)`` for a column batch (Parquet's RecordBatch blocks)."""
    if isinstance(recs, list):
        return recs, _one(fn)
    return parquet.one_row_batches(recs), fn


def _per_record(source: _Source, fn: Callable[[list[Any]], Any], block: list[Any], recs: list[Any],
                index: list[Any] | None, block_exc: Exception, bad_record: _BadRecords,
                spans: tuple[list[int], list[str]] | None = None) -> list[Any]:
    """The pairs of ``recs`` mapped one at a time, after ``fn(recs)`` failed with ``block_exc``;
    the records that fail alone go to ``bad_record``."""
    pairs: list[Any] = []
    before = bad_record.count
    rows, call = _one_by_one(recs, fn)
    for j, rec in enumerate(rows):
        i = j if index is None else index[j]
        _record_context(spans, i, source.name)
        fault, got = _check_record(rec, None, call, "batch mapper")
        if fault is None:
            pairs += got
        else:
            bad_record(block[i] if rows is recs else parquet.row_preview(rec), i, fault)
    if bad_record.count == before:
        raise _block_error(source, recs, index, block_exc) from block_exc
    return pairs


def _block_error(source: _Source, recs: list[Any], index: list[Any] | None, exc: Exception) -> runtime.TaskError:
    first = 0 if index is None else index[0]
    return runtime.TaskError(
        f"the batch mapper failed on the block of {len(recs)} records starting at "
        f"{source.locate(first)} but on none of them alone: {type(exc).__name__}: {exc}",
        input=source.where, user=True)


def _run_batch_folding(source: _Source, fn: Callable[[list[Any]], Any], comb: shuffle.FoldCombiner) -> int:
    """:func:`run_mapper_folding` for a batch mapper: ``fn(records)`` once per block, its pairs
    folded by ``FoldCombiner.fold``. A failure fails the task, naming the record found by mapping
    the block again one record at a time."""
    records = 0
    parse = _parser(source)
    no_bad = _BadRecords(source, 0)
    for block in source.blocks:
        recs, index, skipped = _parsed(block, _block_parser(block, parse), no_bad)
        records += len(block) - skipped
        if not recs:
            continue
        spans = _block_context(source, index)
        try:
            out = fn(recs)
            if out is not None:
                comb.fold(out)
        except Exception as exc:  # noqa: BLE001 - the block's records are mapped alone to name it
            err = _failing_record_error(source, fn, comb, block, recs, index, exc, spans)
            raise err from (err.__cause__ or exc)
        comb.check_budget()
    return records


def _failing_record_error(source: _Source, fn: Callable[[list[Any]], Any], comb: shuffle.FoldCombiner,
                          block: list[Any], recs: list[Any], index: list[Any] | None,
                          block_exc: Exception, spans: tuple[list[int], list[str]] | None = None) -> runtime.TaskError:
    """The error of the first record that fails when ``recs`` are mapped and folded one at a time,
    after ``fn(recs)`` (or folding its pairs) failed with ``block_exc``."""
    rows, call = _one_by_one(recs, fn)
    for j, rec in enumerate(rows):
        i = j if index is None else index[j]
        _record_context(spans, i, source.name)
        fault, pairs = _check_record(rec, None, call, "batch mapper")
        err = _fold_error(source, block[i] if rows is recs else parquet.row_preview(rec), i, fault,
                          pairs, comb, "batch mapper")
        if err is not None:
            return err
    return _block_error(source, recs, index, block_exc)


def _preview(raw: Any) -> str:
    return runtime.preview(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)


def checked_sink(sink: Callable[[list[Any]], None], pairs: list[Any], role: str) -> None:
    """``sink(pairs)``, turning a malformed output item into an error that names it."""
    try:
        sink(pairs)
    except (TypeError, ValueError) as exc:
        bad = next((p for p in pairs if not (isinstance(p, (tuple, list)) and len(p) == 2)), None)
        if bad is None:
            raise
        raise runtime.TaskError(
            f"the {role} must return an iterable of (key, value) pairs; it produced {_describe(bad)}, "
            f"not a (key, value) pair (a bare tuple instead of a list of tuples, or a generator that "
            f"yields keys only?); {_HOW_TO_EMIT.get(role, _HOW_TO_EMIT['mapper'])}",
            record_preview=runtime.preview(bad), user=True) from exc


def map_task(event: dict[str, Any], plan: Plan, job: JobSpec,
             metrics: runtime.TaskMetrics) -> dict[str, Any]:
    bucket, job_id = event["bucket"], event["job_id"]
    step, task, attempt = event["step"], event["task"], event["attempt"]
    spec = job.steps[step]
    budget = plan.limits.memory_budget_bytes
    ser = shuffle.serializer(getattr(job, "serializer", "json"))
    num_reducers = plan.steps[step].num_reducers
    max_bad = plan.options.max_bad_records

    if step == 0:
        split = dict(runtime.load_split(bucket, plan, task))
        mapper = _mapper_for(spec, split)
        batch_bytes = readers.batch_block_bytes(budget, combining=spec.combiner is not None)
        batch = isinstance(mapper, BatchMapper)
        source = _split_source(split, metrics, batch_bytes if batch else 0, plan.options, whole_limit=budget,
                               span=batch and not getattr(mapper, "per_object", False))
    else:
        split = None
        mapper = _mapper_for(spec, split)
        source = _previous_step_source(bucket, job_id, step, task, ser, isinstance(mapper, BatchMapper))
    hooks: dict[str, float] = {}
    task_hooks.run_setup(spec.mapper_setup, "mapper_setup", hooks)

    if num_reducers > 0:
        out = shuffle.PartitionedOutput(num_reducers, ser, spec.partitioner)
        sink: Callable[[list[Any]], None] = out.add_many
        combiner = None
        if spec.combiner is not None:
            combiner = shuffle.make_combiner(
                spec.combiner, lambda pairs: checked_sink(out.add_many, pairs, "combiner"), ser,
                budget // 2, out.add_columns)  # the other half: the encoded output and batches
            sink = combiner.add_many
        # the mapper's pairs go into the combiner as they come (a batch mapper's block goes to a
        # grouping combiner whole, through run_mapper)
        if combiner is not None and not max_bad and (isinstance(combiner, shuffle.FoldCombiner)
                                                     or not isinstance(mapper, BatchMapper)):
            records_in, bad = run_mapper_folding(source, mapper, combiner), 0
        else:
            # a batch mapper's block is checked whole (_pairs_of): the output need not check it again
            into = (functools.partial(out.add_many, checked=True)
                    if combiner is None and isinstance(mapper, BatchMapper) else sink)
            records_in, bad = run_mapper(source, mapper, into, max_bad)
        final = task_hooks.run_teardown(spec.mapper_teardown, "mapper_teardown", hooks)
        if final:
            checked_sink(sink, final, "mapper teardown")
        if combiner is not None:
            combiner.flush()
        data, index = out.finish()
        key = protocol.map_output_key(job_id, step, task, attempt)
        runtime.put_bytes(bucket, key, data)
        metrics.add_out(len(data))
        return {"output_key": key, "index": index, "records_in": records_in,
                "records_out": out.records, "bad_records": bad, **hooks}

    grouper = grouping.ExternalGrouper(ser, budget)
    records_in, bad = run_mapper(source, mapper, grouper.add_many, max_bad)
    final = task_hooks.run_teardown(spec.mapper_teardown, "mapper_teardown", hooks)
    if final:
        checked_sink(grouper.add_many, final, "mapper teardown")
    if plan.output.table is not None:
        # Staged, not written: the commit applies the winning tasks' items.
        data, items = dynamodb.stage_output(runtime.client("dynamodb"), plan.output.table,
                                            ((k, v) for k, values in grouper.groups() for v in values))
        key = protocol.staged_part_key(job_id, task, attempt, dynamodb.STAGED_EXT)
        runtime.put_bytes(bucket, key, data)
        metrics.add_out(len(data))
        return {"output_key": key, "records_in": records_in, "records_out": items,
                "bad_records": bad, **hooks}
    fmt = plan.output.format
    part = writers.part_writer(fmt)
    for k, values in grouper.groups():
        for v in values:
            part.write(k, v)
    data = part.getvalue()
    key = protocol.staged_part_key(job_id, task, attempt, writers.extension(fmt))
    runtime.put_bytes(bucket, key, data)
    metrics.add_out(len(data))
    return {"output_key": key, "records_in": records_in, "records_out": part.records,
            "bad_records": bad, **hooks}
