"""Grouping on the reduce side (and in map-only steps): group ``(key, value)`` pairs by key, spill
sorted runs to ``/tmp`` beyond a memory budget, and merge the runs in key order; and streaming a
reducer's output in key order, sorting only when the reducer emits keys out of order.

Key identity and order are the shuffle's (:func:`lambda_handlers.shuffle.sort_key`). When every key
is a ``str`` (the common case) a plain string sort gives the same order, so no ``sort_key`` tuple is
built per key; mixed keys sort by ``sort_key`` (str keys still sort plainly, between the numbers and
the arrays).

Memory is estimated from what the groups hold, not from encoded bytes: each new key costs
``KEY_COST`` bytes plus its size, each value its size plus a list slot (sizes sampled per batch).

A step with ``sort_values`` groups through :class:`ValueSorter`: pairs sorted by the key then the
value, grouped by the key, each key's values streamed to the reducer in order.

Two reducers need no groups when the keys are ``str``: :class:`PairSorter` sorts the pairs
stably (an identity reducer's output; :class:`LineSorter` the same for records already encoded as
their jsonl or tsv lines) and :class:`FoldGrouper` keeps one accumulator per key (a fold); they
spill sorted runs beyond their budget and merge them the same way.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import operator
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from lambda_handlers.shuffle import FRAME_HEADER, JsonSerializer, _Groups, fold_into, frame, sort_key

BATCH = 4096  # pairs grouped between two budget checks
RUN_BATCH = 1024  # at most this many groups in a frame of a spill run, and at most ...
RUN_FRAME_SHARE = 32  # ... 1/32 of the budget of values (a merge holds one frame of every run)
KEY_COST = 160  # a new str key: dict slot, its value list (4 slots), beyond the key's own size
OTHER_KEY_COST = 250  # a new non-str key: also its identity (tagged canonical bytes) and a tuple
SLOT = 9  # a value's pointer in its key's list, with over-allocation
_SHARED = (type(None), bool)  # singletons: a value of these costs its list slot only
_STR_ONLY = {str}
_MISSING = object()
_first, _second = itemgetter(0), itemgetter(1)
_STR_RANK = 3  # sort_key(str)[0]: str keys go after null, booleans, numbers; before arrays, objects


def object_bytes(obj: Any, depth: int = 3) -> int:
    """Approximate bytes ``obj`` holds in memory (containers to ``depth``; shared small ints 0)."""
    t = type(obj)
    if t in _SHARED or (t is int and -5 <= obj <= 256):
        return 0
    size = sys.getsizeof(obj)
    if depth and (t is list or t is tuple):
        size += sum(object_bytes(x, depth - 1) for x in obj)
    elif depth and t is dict:
        size += sum(object_bytes(k, depth - 1) + object_bytes(v, depth - 1) for k, v in obj.items())
    return size


def pair_costs(batch: list[Any]) -> tuple[int, int]:
    """``(bytes a new key costs, bytes a value costs)`` sampled from a batch's first and last pair."""
    (k1, v1), (k2, v2) = batch[0], batch[-1]
    size = max(object_bytes(k1), object_bytes(k2))
    key = KEY_COST + size if type(k1) is str and type(k2) is str else OTHER_KEY_COST + 2 * size
    return key, SLOT + max(object_bytes(v1), object_bytes(v2))


def sorted_groups(groups: _Groups) -> Iterator[tuple[Any, list[Any]]]:
    """``(key, values)`` of ``groups`` in :func:`sort_key` order (all-str keys: a plain sort)."""
    by_str = groups.by_str
    strs = sorted(by_str)
    pop = by_str.pop  # each group is released once yielded (the caller drops ``groups``)
    if not groups.other:
        return zip(strs, map(pop, strs), strict=True)
    others = sorted(((sort_key(k), k, vs) for k, vs in groups.other.values()), key=itemgetter(0))
    groups.other.clear()
    split = next((i for i, o in enumerate(others) if o[0][0] > _STR_RANK), len(others))
    return itertools.chain(((k, vs) for _, k, vs in others[:split]), zip(strs, map(pop, strs), strict=True),
                           ((k, vs) for _, k, vs in others[split:]))


class ExternalGrouper:
    """Group ``(key, value)`` pairs; iterate groups in :func:`sort_key` order.

    Holds groups in memory until their estimated size passes ``budget_bytes``, then sorts them and
    spills a run to a temp file (framed batches of ``[key, [values]]``); :meth:`groups` merges the
    runs. Values of a key keep their insertion order (runs are merged in spill order).
    """

    def __init__(self, ser: JsonSerializer, budget_bytes: int, tmpdir: str | None = None):
        self.ser, self.budget = ser, max(1, int(budget_bytes))
        self.tmpdir = tmpdir
        self._groups = _Groups(ser)
        self._est = 0
        self.runs: list[str] = []
        self._runs_str_only = True
        self.spilled_bytes = 0
        self.peak_estimate = 0

    @property
    def estimate(self) -> int:
        """Estimated bytes the in-memory groups hold."""
        return self._est

    def add_many(self, pairs: Iterable[tuple[Any, Any]], encoded_bytes: int | None = None) -> None:
        """Add pairs (``encoded_bytes`` is accepted for callers that know it; the estimate does not
        need it). Spills whenever the estimate reaches the budget."""
        if isinstance(pairs, list) and len(pairs) <= BATCH:
            self._add_batch(pairs)
            return
        it = iter(pairs)
        while batch := list(itertools.islice(it, BATCH)):
            self._add_batch(batch)

    def add_columns(self, keys: list[Any], values: list[Any]) -> None:
        """Add the pairs ``zip(keys, values)`` (a decoded batch; all-``str`` keys take a path with
        no Python step per pair)."""
        if not keys:
            return
        if len(keys) > BATCH:
            for i in range(0, len(keys), BATCH):
                self.add_columns(keys[i:i + BATCH], values[i:i + BATCH])
            return
        g = self._groups
        keys_before = len(g.by_str) + len(g.other)
        g.add_columns(keys, values)
        self._account(keys_before, len(keys), pair_costs([(keys[0], values[0]), (keys[-1], values[-1])]))

    def _add_batch(self, batch: list[Any]) -> None:
        if not batch:
            return
        g = self._groups
        keys_before = len(g.by_str) + len(g.other)
        g.add_many(batch)
        self._account(keys_before, len(batch), pair_costs(batch))

    def _account(self, keys_before: int, added: int, costs: tuple[int, int]) -> None:
        g, (key_cost, value_cost) = self._groups, costs
        self._est += (len(g.by_str) + len(g.other) - keys_before) * key_cost + added * value_cost
        if self._est > self.peak_estimate:
            self.peak_estimate = self._est
        if self._est >= self.budget:
            self.spill()

    def spill(self) -> None:
        groups = self._groups
        if not groups:
            return
        est, self._groups, self._est = self._est, _Groups(self.ser), 0
        self._runs_str_only = self._runs_str_only and not groups.other
        fd, path = tempfile.mkstemp(prefix="smr-run-", suffix=".bin", dir=self.tmpdir)
        self.runs.append(path)
        dumps = self.ser.dumps
        value_bytes = max(1, est // max(1, groups.values))  # what a value costs, on average
        frame_values = max(64, self.budget // RUN_FRAME_SHARE // value_bytes)
        with os.fdopen(fd, "wb") as f:
            for batch in _run_batches(sorted_groups(groups), frame_values):
                data = frame(dumps(batch))
                f.write(data)
                self.spilled_bytes += len(data)

    def _read_run(self, path: str, keyed: bool) -> Iterator[Any]:
        """A run's groups: ``[key, values]`` lists, or ``(sort_key, key, values)`` if ``keyed``."""
        loads = self.ser.loads
        with open(path, "rb") as f:
            while head := f.read(4):
                (n,) = FRAME_HEADER.unpack(head)
                batch = loads(f.read(n))
                if keyed:
                    yield from ((sort_key(k), k, vs) for k, vs in batch)
                else:
                    yield from batch

    def groups(self) -> Iterator[tuple[Any, list[Any]]]:
        """Yield ``(key, values)`` in key order; removes spill files when exhausted."""
        if not self.runs:
            groups, self._groups, self._est = self._groups, _Groups(self.ser), 0
            yield from sorted_groups(groups)
            return
        self.spill()
        try:
            if self._runs_str_only:
                yield from _merge_runs([self._read_run(p, False) for p in self.runs], itemgetter(0), 1)
            else:
                yield from _merge_runs([self._read_run(p, True) for p in self.runs], itemgetter(0), 2,
                                       key_at=1)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for p in self.runs:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.runs = []


def _run_batches(groups: Iterator[tuple[Any, list[Any]]], max_values: int) -> Iterator[list[list[Any]]]:
    batch: list[list[Any]] = []
    values = 0
    for k, vs in groups:
        batch.append([k, vs])
        values += len(vs)
        if len(batch) >= RUN_BATCH or values >= max_values:
            yield batch
            batch, values = [], 0
    if batch:
        yield batch


def _merge_runs(runs: list[Iterator[Any]], order: Callable[[Any], Any], values_at: int, key_at: int = 0
                ) -> Iterator[tuple[Any, list[Any]]]:
    """Merge sorted runs of groups; a key in several runs gets their values in run order."""
    cur_order, cur_k, cur_vs = None, None, None
    for g in heapq.merge(*runs, key=order):
        o = g[0]
        if cur_vs is not None and o == cur_order:
            cur_vs.extend(g[values_at])
            continue
        if cur_vs is not None:
            yield cur_k, cur_vs
        cur_order, cur_k, cur_vs = o, g[key_at], list(g[values_at])
    if cur_vs is not None:
        yield cur_k, cur_vs


# ---------------------------------------------------------------------------------------------
# A reducer's output in key order


def batches_of(pairs: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    """``pairs`` in lists of ``size``."""
    it = iter(pairs)
    while batch := list(itertools.islice(it, size)):
        yield batch


def write_batches_while_ordered(batches: Iterable[list[Any]], write_batch: Callable[[list[Any]], None],
                                ser: JsonSerializer) -> Iterator[Any] | None:
    """Pass lists of pairs to ``write_batch`` while they are in grouped key order: keys never go back
    in :func:`sort_key` order and a key's pairs are contiguous. A list of ``str`` keys in order is checked
    and written whole (no Python step per pair); others pair by pair. Return None once every pair is
    written, else the pairs not written, from the first that breaks the order on."""
    it = iter(batches)
    last: Any = _MISSING
    for batch in it:
        if not batch:
            continue
        n = len(batch) if _ordered_strs(last, batch) else _ordered_count(last, batch, ser)
        if n:
            write_batch(batch if n == len(batch) else batch[:n])
            last = batch[n - 1][0]
        if n < len(batch):
            return itertools.chain(batch[n:], itertools.chain.from_iterable(it))
    return None


def _ordered_strs(last: Any, batch: list[Any]) -> bool:
    """All keys of ``batch`` are ``str``, never going back, nor from ``last``."""
    try:
        keys = list(map(_first, batch))
    except (TypeError, IndexError, KeyError):
        return False
    if set(map(type, keys)) != _STR_ONLY or not (last is _MISSING or (type(last) is str and last <= keys[0])):
        return False
    return all(map(operator.le, keys, keys[1:]))


def _ordered_count(last: Any, batch: list[Any], ser: JsonSerializer) -> int:
    """How many pairs at the start of ``batch`` keep grouped key order after ``last``."""
    n = 0
    for k, _ in batch:
        if last is not _MISSING:
            if type(last) is str and type(k) is str:
                if k < last:
                    return n
            elif not _follows(last, k, ser):
                return n
        last, n = k, n + 1
    return n


def _follows(last: Any, key: Any, ser: JsonSerializer) -> bool:
    """``key`` may come right after ``last`` in grouped key order."""
    a, b = sort_key(last), sort_key(key)
    if b == a:  # the same key, or distinct keys of equal order: sorting keeps them apart
        return ser.group_key(key) == ser.group_key(last)
    return b > a


# ---------------------------------------------------------------------------------------------
# Sorting without grouping (identity reducers) and folding without value lists (fold reducers)

PAIR_COST = 64  # a pair held for sorting: its tuple and its list slot, beyond the key and value


def _value_cost(values: list[Any]) -> int:
    return max(object_bytes(values[0]), object_bytes(values[-1]))


class _Runs:
    """Sorted runs spilled to ``/tmp`` as framed column batches; read back as pairs."""

    def __init__(self, ser: JsonSerializer, tmpdir: str | None):
        self.ser, self.tmpdir = ser, tmpdir
        self.paths: list[str] = []
        self.spilled_bytes = 0

    def write(self, pairs: list[Any], frame_pairs: int) -> None:
        from lambda_handlers.shuffle import encode_batch

        fd, path = tempfile.mkstemp(prefix="smr-run-", suffix=".bin", dir=self.tmpdir)
        self.paths.append(path)
        with os.fdopen(fd, "wb") as f:
            for i in range(0, len(pairs), frame_pairs):
                data = frame(encode_batch(pairs[i:i + frame_pairs], self.ser))
                f.write(data)
                self.spilled_bytes += len(data)

    def read(self, path: str) -> Iterator[Any]:
        from lambda_handlers.shuffle import decode_batch

        with open(path, "rb") as f:
            while head := f.read(4):
                (n,) = FRAME_HEADER.unpack(head)
                yield from decode_batch(f.read(n), self.ser)

    def cleanup(self) -> None:
        for p in self.paths:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.paths = []


def _released_slices(items: list[Any]) -> Iterator[list[Any]]:
    """``items`` in lists of :data:`BATCH`, emptying ``items`` first: each list is released once
    the caller drops it, so what it writes from them can grow while they shrink."""
    slices = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
    del items[:]
    slices.reverse()
    while slices:
        yield slices.pop()


def _no_other_keys(key: Any, value: Any) -> None:
    raise TypeError(f"not a str key: {key!r}")  # add_columns checked every key first


class _Spilling:
    """What the ``str``-key groupings share: a memory budget and the sorted runs spilled past it."""

    def __init__(self, ser: JsonSerializer, budget_bytes: int, tmpdir: str | None = None):
        self.budget = max(1, int(budget_bytes))
        self.peak_estimate = 0
        self._runs = _Runs(ser, tmpdir)

    @property
    def spilled_bytes(self) -> int:
        return self._runs.spilled_bytes

    @property
    def runs(self) -> list[str]:
        return self._runs.paths


class PairSorter(_Spilling):
    """Sort ``(key, value)`` pairs with ``str`` keys by key, stably (a key's values keep the order
    they were added in), within an estimated ``budget_bytes``: beyond it the pairs held are sorted
    and spilled as a run, and the runs are merged at the end. No Python call per pair in memory:
    a sort of tuples and slices of it. This is a grouping whose groups are the runs of equal keys,
    so an identity reducer's output is the sorted pairs themselves."""

    def __init__(self, ser: JsonSerializer, budget_bytes: int, tmpdir: str | None = None):
        super().__init__(ser, budget_bytes, tmpdir)
        self._pairs: list[tuple[Any, Any]] = []
        self._est = 0

    def add_columns(self, keys: list[Any], values: list[Any], keys_are_str: bool = False) -> bool:
        """Add the pairs ``zip(keys, values)``; False (nothing added) if a key is not a ``str``
        (``keys_are_str``: the caller knows they all are)."""
        if not keys:
            return True
        if not keys_are_str and set(map(type, keys)) != _STR_ONLY:
            return False
        self._pairs += zip(keys, values, strict=True)
        self._est += len(keys) * (PAIR_COST + max(object_bytes(keys[0]), object_bytes(keys[-1]))
                                  + _value_cost(values))
        self.peak_estimate = max(self.peak_estimate, self._est)
        if self._est >= self.budget:
            self.spill()
        return True

    def spill(self) -> None:
        if not self._pairs:
            return
        pairs, self._pairs = self._pairs, []
        pairs.sort(key=_first)
        per_pair = max(1, self._est // len(pairs))
        self._est = 0
        self._runs.write(pairs, max(64, self.budget // RUN_FRAME_SHARE // per_pair))

    def drain(self) -> Iterator[Any]:
        """Every pair added, each key's values in order (runs in spill order, then memory); empties
        the sorter (to hand its pairs to another grouping)."""
        pairs, self._pairs, self._est = self._pairs, [], 0
        try:
            for path in self._runs.paths:
                yield from self._runs.read(path)
            yield from pairs
        finally:
            self._runs.cleanup()

    def sorted_batches(self) -> Iterator[list[Any]]:
        """Lists of pairs in key order, stable; removes spill files when exhausted."""
        pairs, self._pairs, self._est = self._pairs, [], 0
        pairs.sort(key=_first)
        if not self._runs.paths:
            yield from _released_slices(pairs)
            return
        try:  # runs in spill order, memory last: heapq.merge breaks ties by that order
            runs = [self._runs.read(p) for p in self._runs.paths] + [iter(pairs)]
            yield from batches_of(heapq.merge(*runs, key=_first))
        finally:
            self._runs.cleanup()


LINE_COST = 16  # a line held for sorting: its list slot and its key's, beyond the key and line


def sort_by_keys(lines: list[Any], keys: list[Any]) -> None:
    """Sort ``lines`` in place by ``keys`` (equal lengths), stably: no pair built per line.
    ``list.sort`` calls its key function once per item, first to last, before comparing any, so
    the function that hands out the next key gives each line its own."""
    it = iter(keys)
    lines.sort(key=functools.partial(next, it))
    if next(it, _MISSING) is not _MISSING:  # never: one key was taken per line
        raise AssertionError("sort_by_keys: more keys than lines")


class LineSorter(_Spilling):
    """An identity reducer's output lines, sorted stably by their ``str`` keys, within an estimated
    ``budget_bytes``: :class:`PairSorter` for records its part writer has encoded already (each
    ``(key, line)``), held as two columns and sorted with no pair per record, so what the part is
    made of is read once after the sort, not once for each column and again to write it. Beyond the
    budget the lines are sorted and spilled as runs of ``(key, line)`` pairs, merged at the end."""

    def __init__(self, ser: JsonSerializer, budget_bytes: int, tmpdir: str | None = None):
        super().__init__(ser, budget_bytes, tmpdir)
        self._keys: list[Any] = []
        self._lines: list[Any] = []
        self._est = 0

    def add_columns(self, keys: list[Any], lines: list[Any], keys_are_str: bool = False) -> bool:
        """Add the lines ``lines`` of the keys ``keys``; False (nothing added) if a key is not a ``str``
        (``keys_are_str``: the caller knows they all are)."""
        if not keys:
            return True
        if not keys_are_str and set(map(type, keys)) != _STR_ONLY:
            return False
        if len(keys) != len(lines):
            raise ValueError(f"{len(keys)} keys for {len(lines)} lines")
        self._keys += keys
        self._lines += lines
        self._est += len(keys) * (LINE_COST + max(object_bytes(keys[0]), object_bytes(keys[-1]))
                                  + _value_cost(lines))
        self.peak_estimate = max(self.peak_estimate, self._est)
        if self._est >= self.budget:
            self.spill()
        return True

    def _sorted_pairs(self) -> list[Any]:
        pairs = list(zip(self._keys, self._lines, strict=True))
        self._keys, self._lines, self._est = [], [], 0
        pairs.sort(key=_first)
        return pairs

    def spill(self) -> None:
        if not self._keys:
            return
        per_pair = max(1, self._est // len(self._keys))
        self._runs.write(self._sorted_pairs(), max(64, self.budget // RUN_FRAME_SHARE // per_pair))

    def drain(self) -> Iterator[Any]:
        """Every ``(key, line)`` added, in the order :meth:`PairSorter.drain` gives them; empties
        the sorter (to hand its records to another grouping)."""
        keys, lines = self._keys, self._lines
        self._keys, self._lines, self._est = [], [], 0
        try:
            for path in self._runs.paths:
                yield from self._runs.read(path)
            yield from zip(keys, lines, strict=True)
        finally:
            self._runs.cleanup()

    def sorted_lines(self) -> Iterator[list[Any]]:
        """Lists of lines in key order, stable; removes spill files when exhausted."""
        if not self._runs.paths:
            lines, keys = self._lines, self._keys
            self._keys, self._lines, self._est = [], [], 0
            sort_by_keys(lines, keys)
            del keys
            yield from _released_slices(lines)
            return
        pairs = self._sorted_pairs()
        try:  # runs in spill order, memory last: heapq.merge breaks ties by that order
            runs = [self._runs.read(p) for p in self._runs.paths] + [iter(pairs)]
            del pairs
            for batch in batches_of(heapq.merge(*runs, key=_first)):
                yield list(map(_second, batch))
        finally:
            self._runs.cleanup()


class FoldGrouper(_Spilling):
    """Fold ``(key, value)`` pairs with ``str`` keys into one accumulator per key (a
    :class:`~lambda_handlers.jobspec.Fold` reducer: ``acc = fn(acc, value)`` in arrival order, no
    per-key value lists), within an estimated ``budget_bytes``: beyond it the accumulators are
    sorted and spilled as a run; the runs are merged at the end, folding a key's accumulators in
    run order (``fn`` is associative)."""

    def __init__(self, fn: Callable[[Any, Any], Any], ser: JsonSerializer, budget_bytes: int,
                 tmpdir: str | None = None):
        super().__init__(ser, budget_bytes, tmpdir)
        self.fn = fn
        self.accumulators: dict[str, Any] = {}
        self._key_cost = KEY_COST

    def add_columns(self, keys: list[Any], values: list[Any], keys_are_str: bool = False) -> bool:
        """Fold the pairs ``zip(keys, values)``; False (nothing added) if a key is not a ``str``
        (``keys_are_str``: the caller knows they all are)."""
        if not keys:
            return True
        if not keys_are_str and set(map(type, keys)) != _STR_ONLY:
            return False
        accs = self.accumulators
        fold_into(accs, self.fn, zip(keys, values, strict=True), _no_other_keys)
        self._key_cost = KEY_COST + object_bytes(keys[-1]) + _value_cost(values)
        est = len(accs) * self._key_cost
        self.peak_estimate = max(self.peak_estimate, est)
        if est >= self.budget:
            self.spill()
        return True

    def _sorted_items(self) -> list[tuple[str, Any]]:
        accs, self.accumulators = self.accumulators, {}
        items = list(accs.items())
        del accs
        items.sort(key=_first)
        return items

    def spill(self) -> None:
        if self.accumulators:
            self._runs.write(self._sorted_items(), max(64, self.budget // RUN_FRAME_SHARE // self._key_cost))

    def drain(self) -> Iterator[Any]:
        """``(key, accumulator)`` pairs of every run then of memory; empties the grouper."""
        items = list(self.accumulators.items())
        self.accumulators = {}
        try:
            for path in self._runs.paths:
                yield from self._runs.read(path)
            yield from items
        finally:
            self._runs.cleanup()

    def sorted_batches(self) -> Iterator[list[Any]]:
        """Lists of ``(key, accumulator)`` in key order; removes spill files when exhausted."""
        items = self._sorted_items()
        if not self._runs.paths:
            yield from _released_slices(items)
            return
        try:
            runs = [self._runs.read(p) for p in self._runs.paths] + [iter(items)]
            yield from batches_of(self._fold_merged(heapq.merge(*runs, key=_first)))
        finally:
            self._runs.cleanup()

    def _fold_merged(self, pairs: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        fn, cur_k, acc = self.fn, None, _MISSING
        for k, v in pairs:
            if acc is not _MISSING and k == cur_k:
                acc = fn(acc, v)
                continue
            if acc is not _MISSING:
                yield cur_k, acc
            cur_k, acc = k, v
        if acc is not _MISSING:
            yield cur_k, acc


# ---------------------------------------------------------------------------------------------
# Secondary sort: each key's values in order, streamed


class ValueOrderError(ValueError):
    """A step's ``value_key`` failed, or gave values that cannot be compared; the message says which."""


def value_order(value: Any) -> tuple[Any, ...]:
    """The default order of values under ``sort_values``: :func:`sort_key`'s, with numbers by value
    alone (numbers of equal value keep their arrival order), which is cheap for numbers."""
    t = type(value)
    if t is int or t is float:
        return (2, value)
    return sort_key(value)


class ValueSorter(_Spilling):
    """Sort ``(key, value)`` pairs by a composite key, the key then the value's order
    (``value_key(value)``, by default :func:`value_order`), and group them by the key alone (Hadoop's
    secondary sort with a grouping comparator): :meth:`groups` yields each key with an iterator of
    its values in order, so one key may hold more values than the budget. Beyond ``budget_bytes``
    the pairs held are sorted and spilled as a run; the runs are merged holding one frame of each.
    Values of equal order keep their arrival order (runs merge in spill order, memory last)."""

    def __init__(self, ser: JsonSerializer, budget_bytes: int, value_key: Callable[[Any], Any] | None = None,
                 tmpdir: str | None = None):
        super().__init__(ser, budget_bytes, tmpdir)
        self.ser, self.value_key = ser, value_key or value_order
        self._pairs: list[Any] = []
        self._est = 0
        self._str_keys = True  # every key so far is a str: a key sorts and groups as itself

    def add_columns(self, keys: list[Any], values: list[Any]) -> None:
        """Add the pairs ``zip(keys, values)``; spills when the estimate reaches the budget."""
        if not keys:
            return
        if self._str_keys and set(map(type, keys)) != _STR_ONLY:
            self._str_keys = False
        self._pairs += zip(keys, values, strict=True)
        # a pair, its composite sort key (a tuple, the value's order: about the value's size again)
        self._est += len(keys) * (2 * PAIR_COST + max(object_bytes(keys[0]), object_bytes(keys[-1]))
                                  + 2 * _value_cost(values))
        self.peak_estimate = max(self.peak_estimate, self._est)
        if self._est >= self.budget:
            self.spill()

    def _orders(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        """``(composite order of a pair, its key's identity)``. A run sorted while every key was a
        ``str`` is also in the order for mixed keys: ``sort_key`` ranks strs among themselves as
        themselves, so runs of both kinds merge."""
        vkey = self.value_key
        if self._str_keys:
            return lambda kv: (kv[0], vkey(kv[1])), _first
        kb = self.ser.key_bytes

        def identity(kv: Any) -> tuple[Any, bytes]:
            return sort_key(kv[0]), kb(kv[0])
        return lambda kv: (*identity(kv), vkey(kv[1])), identity

    def _sort(self, pairs: list[Any]) -> None:
        """Sort ``pairs`` in the composite order, in two stable sorts: by the values' order, then
        by key (no tuple built per pair, the comparisons in C)."""
        try:
            orders = list(map(self.value_key, map(_second, pairs)))
            by_value = sorted(range(len(pairs)), key=orders.__getitem__)
        except Exception as exc:  # noqa: BLE001 - the job's value_key, or values it cannot order
            raise _order_error(self.value_key, exc) from exc
        del orders
        pairs[:] = list(map(pairs.__getitem__, by_value))
        del by_value
        pairs.sort(key=_first if self._str_keys else self._orders()[1])

    def spill(self) -> None:
        if not self._pairs:
            return
        pairs, self._pairs = self._pairs, []
        self._sort(pairs)
        per_pair = max(1, self._est // len(pairs))
        self._est = 0
        self._runs.write(pairs, max(64, self.budget // RUN_FRAME_SHARE // per_pair))

    def groups(self) -> Iterator[tuple[Any, Iterator[Any]]]:
        """``(key, iterator of its values in order)`` in key order; a group's values must be read
        before the next group (as :func:`itertools.groupby`'s). Removes spill files when exhausted."""
        pairs, self._pairs, self._est = self._pairs, [], 0
        order, identity = self._orders()
        self._sort(pairs)
        try:
            merged: Iterator[Any] = iter(pairs)
            if self._runs.paths:
                runs = [self._runs.read(p) for p in self._runs.paths] + [merged]
                merged = _checked_merge(runs, order, self.value_key)
            del pairs
            for _, group in itertools.groupby(merged, key=identity):
                first = next(group)
                yield first[0], itertools.chain((first[1],), map(_second, group))  # noqa: B031 - read once, after its first
        finally:
            self._runs.cleanup()


def _order_error(value_key: Callable[[Any], Any], exc: Exception) -> ValueOrderError:
    if value_key is value_order:
        return ValueOrderError(f"sort_values: cannot order the values: {type(exc).__name__}: {exc}")
    return ValueOrderError(
        f"sort_values: value_key {getattr(value_key, '__qualname__', value_key)!s} failed or gave "
        f"values that cannot be compared ({type(exc).__name__}: {exc}); it must return values of "
        "one comparable type for every value (e.g. a number, a str or a tuple of them)")


def _checked_merge(runs: list[Iterator[Any]], order: Callable[[Any], Any],
                   value_key: Callable[[Any], Any]) -> Iterator[Any]:
    try:
        yield from heapq.merge(*runs, key=order)
    except Exception as exc:  # noqa: BLE001 - the job's value_key, or values it cannot order
        raise _order_error(value_key, exc) from exc
