"""The shuffle: serializers, the stable partitioner, the map-output format and the combiners.

Grouping with spill to ``/tmp`` is in :mod:`lambda_handlers.grouping`.

Map output object (one per map attempt)::

    [partition 0 frames][partition 1 frames]...[partition R-1 frames][index JSON][u64 index length]

A frame is ``<u32 big-endian length><payload>``; a payload is one *batch* of ``[key, value]``
pairs: a column batch when every key is a ``str`` (:mod:`lambda_handlers.columns`: keys joined,
values joined or packed, no Python call per record), else the list of pairs encoded by the job's
serializer (one ``json.dumps`` per batch, not per record). The index is
``[[offset, length], ...]`` per partition; it is also in the done marker, so a reducer reads its
slice with one ranged GET and no extra request for the index.

Key identity is the serializer's canonical encoding (so ``1``, ``1.0``, ``True`` and ``"1"`` are
four keys), and key order is :func:`sort_key`: a total order over JSON values of mixed types,
``null < booleans < numbers < strings < arrays < objects`` (then by value; arrays element-wise,
objects by sorted items), with non-JSON keys (pickle serializer) last by type name and repr.
"""

from __future__ import annotations

import json
import operator
import pickle
import struct
import zlib
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from lambda_handlers import columns
from lambda_handlers.jobspec import Fold, RangePartitioner

FRAME_HEADER = struct.Struct(">I")
FOOTER = struct.Struct(">Q")
BATCH_PAIRS = 4096
RANGE_CHUNK = 16384  # pairs a range partitioner sorts at a time: a chunk's objects stay in cache
KEY_COST = 200  # estimated bytes of one distinct key held in memory (dict slot, key, list/acc)
VALUE_COST = 40  # estimated bytes of one buffered value (list slot and a small object)
MISSING = object()  # a fold's accumulator slot that holds nothing yet
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_first, _second = itemgetter(0), itemgetter(1)
_STR_ONLY = {str}


class ShuffleError(ValueError):
    """A key, value or partition the shuffle cannot carry; the message says which."""


# ---------------------------------------------------------------------------------------------
# Serializers


class JsonSerializer:
    name = "json"

    def dumps(self, batch: list[Any]) -> bytes:
        try:
            return json.dumps(batch, separators=(",", ":")).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as exc:
            raise ShuffleError(
                f"cannot encode a key or value as JSON ({exc}); return JSON-able keys/values or "
                "set serializer='pickle' on the job") from exc

    def loads(self, payload: bytes) -> list[Any]:
        batch: list[Any] = json.loads(payload)  # what dumps wrote: a list
        return batch

    def key_bytes(self, key: Any) -> bytes:
        if type(key) is str:
            return key.encode("utf-8", "surrogatepass")
        try:
            return _canonical(key).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as exc:
            raise ShuffleError(f"key {key!r} is not JSON-able; set serializer='pickle'") from exc

    def group_key(self, key: Any) -> Hashable:
        """A hashable identity: the key itself for str, else its canonical encoding (tagged)."""
        return key if type(key) is str else ("\0", self.key_bytes(key))


class PickleSerializer(JsonSerializer):
    name = "pickle"

    def dumps(self, batch: list[Any]) -> bytes:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, payload: bytes) -> list[Any]:
        batch: list[Any] = pickle.loads(payload)  # what dumps wrote: a list
        return batch

    def key_bytes(self, key: Any) -> bytes:
        try:
            return super().key_bytes(key)
        except ShuffleError:
            return pickle.dumps(key, protocol=4)


SERIALIZERS = {"json": JsonSerializer, "pickle": PickleSerializer}


def serializer(name: str) -> JsonSerializer:
    try:
        return SERIALIZERS[name]()
    except KeyError:
        raise ShuffleError(f"unknown serializer {name!r}; use 'json' or 'pickle'") from None


# ---------------------------------------------------------------------------------------------
# Order and partitioning


def sort_key(key: Any) -> tuple[Any, ...]:
    """Total order over keys of mixed JSON types (see module docstring)."""
    t = type(key)
    if t is str:
        return (3, key)
    if t is int or t is float:
        return (2, key, repr(key))
    if key is None:
        return (0,)
    if t is bool:
        return (1, key)
    if t is list or t is tuple:
        return (4, tuple(map(sort_key, key)))
    if t is dict:
        return (5, tuple(sorted((str(k), sort_key(v)) for k, v in key.items())))
    return (6, t.__name__, repr(key))


def range_cuts(partitioner: Callable[[Any, int], int] | None, n: int) -> list[str] | None:
    """The cut points that decide partitions ``0..n-1`` of a :class:`RangePartitioner` whose
    boundaries are all ``str`` (``key`` goes to ``min(bisect_right(boundaries, key), n - 1)``, so
    only the first ``n - 1`` boundaries matter), else None."""
    if type(partitioner) is not RangePartitioner or n <= 1:
        return None
    cuts = list(partitioner.boundaries[:n - 1])
    return cuts if set(map(type, cuts)) <= _STR_ONLY else None


def partition_function(ser: JsonSerializer, n: int,
                       user: Callable[[Any, int], int] | None = None) -> Callable[[Any], int]:
    """``key -> partition``: the job's partitioner (checked) or the default stable hash, the CRC-32
    of the serializer's key bytes (never Python's salted ``hash()``)."""
    if n <= 1:
        return lambda key: 0
    if user is None:
        kb = ser.key_bytes
        return lambda key: zlib.crc32(kb(key)) % n

    def checked(key: Any) -> int:
        p: object = user(key, n)  # the job's function: it may return anything
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < n:
            raise ShuffleError(f"partitioner returned {p!r} for key {key!r}; it must be an int in [0, {n})")
        return p
    return checked


# ---------------------------------------------------------------------------------------------
# Frames and the map-output format


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload)) + payload


def iter_frames(data: bytes | memoryview) -> Iterator[bytes]:
    view, pos, n = memoryview(data), 0, len(data)
    while pos < n:
        if pos + 4 > n:
            raise ShuffleError("truncated shuffle frame header")
        (length,) = FRAME_HEADER.unpack_from(view, pos)
        pos += 4
        if pos + length > n:
            raise ShuffleError("truncated shuffle frame")
        yield bytes(view[pos:pos + length])
        pos += length


def encode_batch(batch: list[Any], ser: JsonSerializer) -> bytes:
    """One batch payload: a column batch when the keys are all ``str``, else ``ser.dumps``."""
    return columns.encode_batch(batch, ser.dumps)


def decode_columns(payload: bytes, ser: JsonSerializer) -> tuple[list[Any], list[Any]]:
    """``(keys, values)`` of one batch payload, whichever its encoding."""
    try:
        if columns.is_columns(payload):
            return columns.decode_columns(payload, ser.loads)
    except (ValueError, struct.error) as exc:
        raise ShuffleError(f"corrupt shuffle batch: {exc}") from exc
    return columns.split_pairs(ser.loads(payload))


def decode_batch(payload: bytes, ser: JsonSerializer) -> list[Any]:
    """The ``(key, value)`` pairs of one batch payload (tuples, or 2-lists from the serializer)."""
    if columns.is_columns(payload):
        return list(zip(*decode_columns(payload, ser), strict=True))
    return ser.loads(payload)


def iter_pairs(data: bytes, ser: JsonSerializer) -> Iterator[tuple[Any, Any]]:
    for payload in iter_frames(data):
        yield from decode_batch(payload, ser)


class PartitionedOutput:
    """R partition buffers of framed batches; ``finish()`` gives the object bytes and the index.

    :param partitioner: the job's ``partitioner(key, n)``, or None for the default stable hash
        (inlined here: it runs once per map output record). A
        :class:`~lambda_handlers.jobspec.RangePartitioner` with ``str`` cuts partitions a batch of
        ``str`` keys by sorting it (:data:`RANGE_CHUNK` pairs at a time) and bisecting at each cut;
        each partition's slice of a chunk is then a run in key order, which the reducer's sort of
        the concatenated slices profits from. Those slices are held as key and value columns and
        encoded as column batches straight from them.
    """

    def __init__(self, num_partitions: int, ser: JsonSerializer,
                 partitioner: Callable[[Any, int], int] | None = None):
        self.n, self.ser = num_partitions, ser
        self._user = partitioner if partitioner and num_partitions > 1 else None
        self._cuts = range_cuts(self._user, num_partitions)
        self._valid = set(range(num_partitions))
        self._pending: list[list[Any]] = [[] for _ in range(num_partitions)]
        self._columns: list[tuple[list[Any], list[Any]]] = [([], []) for _ in range(num_partitions)]
        self._frames: list[list[bytes]] = [[] for _ in range(num_partitions)]
        self._holds_columns = False  # add_columns left key/value columns in self._columns
        self.records = 0

    def add(self, key: Any, value: Any) -> None:
        self.add_many(((key, value),))

    def add_many(self, pairs: Iterable[tuple[Any, Any]], checked: bool = False) -> None:
        """Add a batch of ``(key, value)`` pairs (tuples or 2-lists, kept as given); ``checked``:
        the caller has made sure every item has two (a batch mapper's output, checked whole)."""
        if not isinstance(pairs, list):
            pairs = list(pairs)
        if not pairs:
            return
        pending, n, user = self._pending, self.n, self._user
        if (n == 1 or user is not None) and not checked:
            if not set(map(len, pairs)) <= {2}:
                raise ShuffleError(f"not a (key, value) pair: {next(p for p in pairs if len(p) != 2)!r}")
        if self._cuts is not None and self._add_by_range(pairs, self._cuts):
            self.records += len(pairs)
            return
        if self._cuts is not None or self._holds_columns:  # a partition's records stay in arrival
            for p in range(n):                              # order: columns held go first
                self._cut_columns(p, final=True)
            self._holds_columns = False
        if n == 1:
            pending[0].extend(pairs)
        elif user is not None:  # the job's partitioner: called per key, checked per batch
            parts = [user(kv[0], n) for kv in pairs]
            if not (set(map(type, parts)) <= {int} and set(parts) <= self._valid):
                p, key = next((p, kv[0]) for p, kv in zip(parts, pairs, strict=True)
                              if type(p) is not int or p not in self._valid)
                raise ShuffleError(f"partitioner returned {p!r} for key {key!r}; it must be an int "
                                   f"in [0, {n})")
            appends = [buf.append for buf in pending]
            for p, kv in zip(parts, pairs, strict=True):
                appends[p](kv)
        else:
            appends = [buf.append for buf in pending]
            kb, crc = self.ser.key_bytes, zlib.crc32
            for kv in pairs:
                key, _ = kv
                if type(key) is str:
                    appends[crc(key.encode("utf-8", "surrogatepass")) % n](kv)
                else:
                    appends[crc(kb(key)) % n](kv)
        self.records += len(pairs)
        for p, buf in enumerate(pending):
            if len(buf) >= BATCH_PAIRS:
                self._cut(p, final=False)

    def add_columns(self, keys: list[Any], values: list[Any]) -> None:
        """Add the pairs ``zip(keys, values)`` (equal lengths). With the default partitioner and
        ``str`` keys (a fold combiner's accumulators) the pairs go to per-partition key and value
        columns, encoded as column batches straight from them: no tuple per pair, no unzipping
        per batch. The map output is the same bytes as :meth:`add_many` of the pairs gives."""
        if not keys:
            return
        if self._user is not None or set(map(type, keys)) != _STR_ONLY:
            self.add_many(list(zip(keys, values, strict=True)))
            return
        n, held = self.n, self._columns
        for p in range(n):  # a partition's records stay in arrival order: pairs held go first
            if self._pending[p]:
                self._cut(p, final=True)
        if n == 1:
            ks, vs = held[0]
            ks += keys
            vs += values
        else:
            key_appends = [ks.append for ks, _ in held]
            value_appends = [vs.append for _, vs in held]
            crc = zlib.crc32
            for key, value in zip(keys, values, strict=True):
                p = crc(key.encode("utf-8", "surrogatepass")) % n
                key_appends[p](key)
                value_appends[p](value)
        self._holds_columns = True
        self.records += len(keys)
        for p in range(n):
            if len(held[p][0]) >= BATCH_PAIRS:
                self._cut_columns(p, final=False)

    def _add_by_range(self, pairs: list[Any], cuts: list[str]) -> bool:
        """Partition a batch by the range partitioner's cuts: sort it (stably: a key's values keep
        their order) in chunks of :data:`RANGE_CHUNK` pairs and bisect each chunk at every cut;
        False (nothing added) unless every key is a ``str``, the only keys whose sort order is the
        shuffle's and the partitioner's alike."""
        if set(map(type, map(_first, pairs))) != _STR_ONLY:
            return False
        for p in range(self.n):  # a partition's records stay in arrival order: pairs held go first
            if self._pending[p]:
                self._cut(p, final=True)
        n, held = self.n, self._columns
        for lo in range(0, len(pairs), RANGE_CHUNK):
            ordered = sorted(pairs[lo:lo + RANGE_CHUNK] if len(pairs) > RANGE_CHUNK else pairs,
                             key=_first)
            keys, values = list(map(_first, ordered)), list(map(_second, ordered))
            del ordered
            starts = [0] + [bisect_left(keys, cut) for cut in cuts]
            starts += [len(keys)] * (n + 1 - len(starts))
            for p in range(n):
                a, b = starts[p], starts[p + 1]
                if a < b:
                    ks, vs = held[p]
                    ks += keys[a:b]
                    vs += values[a:b]
                    if len(ks) >= BATCH_PAIRS:
                        self._cut_columns(p, final=False)
        return True

    def _cut_columns(self, p: int, final: bool) -> None:
        """Encode partition ``p``'s key and value columns as frames of ``BATCH_PAIRS`` (all if final)."""
        keys, values = self._columns[p]
        whole = len(keys) if final else len(keys) - len(keys) % BATCH_PAIRS
        dumps, frames = self.ser.dumps, self._frames[p]
        for i in range(0, whole, BATCH_PAIRS):
            ks, vs = keys[i:i + BATCH_PAIRS], values[i:i + BATCH_PAIRS]
            payload = columns.encode_columns(ks, vs, dumps, keys_are_str=True)
            frames.append(frame(dumps(list(zip(ks, vs, strict=True))) if payload is None else payload))
        del keys[:whole], values[:whole]

    def _cut(self, p: int, final: bool) -> None:
        """Encode partition ``p``'s pending pairs as frames of ``BATCH_PAIRS`` (all of them if final)."""
        buf, ser, frames = self._pending[p], self.ser, self._frames[p]
        whole = len(buf) if final else len(buf) - len(buf) % BATCH_PAIRS
        for i in range(0, whole, BATCH_PAIRS):
            frames.append(frame(encode_batch(buf[i:i + BATCH_PAIRS], ser)))
        self._pending[p] = buf[whole:]

    def finish(self) -> tuple[bytes, list[list[int]]]:
        chunks: list[bytes] = []
        index: list[list[int]] = []
        offset = 0
        for p in range(self.n):
            self._cut_columns(p, final=True)
            self._cut(p, final=True)
            part = b"".join(self._frames[p])
            self._frames[p] = []
            index.append([offset, len(part)])
            chunks.append(part)
            offset += len(part)
        footer = json.dumps(index).encode()
        chunks.append(footer)
        chunks.append(FOOTER.pack(len(footer)))
        return b"".join(chunks), index


def read_index(data: bytes) -> list[list[int]]:
    """The index stored at the end of a map-output object."""
    (n,) = FOOTER.unpack_from(data, len(data) - FOOTER.size)
    index: list[list[int]] = json.loads(data[len(data) - FOOTER.size - n: len(data) - FOOTER.size])
    return index


def encode_pairs(pairs: Iterable[tuple[Any, Any]], ser: JsonSerializer) -> tuple[bytes, int]:
    """One partition's worth of pairs as framed batches (reduce output of a non-final step)."""
    out: list[bytes] = []
    batch: list[tuple[Any, Any]] = []
    n = 0
    for kv in pairs:
        batch.append(kv)
        if len(batch) >= BATCH_PAIRS:
            out.append(frame(encode_batch(batch, ser)))
            n += len(batch)
            batch = []
    if batch:
        out.append(frame(encode_batch(batch, ser)))
        n += len(batch)
    return b"".join(out), n


# ---------------------------------------------------------------------------------------------
# Combining in the mapper (bounded memory)


class Combiner:
    """Group mapper output by key and combine it, within an estimated ``budget_bytes`` of memory.

    Memory is estimated from distinct keys and buffered values (:data:`KEY_COST`,
    :data:`VALUE_COST`), not from a value count. When the estimate passes the budget the combiner
    runs over the buffered groups and its output goes back into the buffer (the combiner contract
    allows running it any number of times); only if the buffer is then still over half the budget
    (too many distinct keys) is it flushed to ``sink``. So when a split's distinct keys fit, its
    output is one combined record per distinct key, written at :meth:`flush`.
    """

    def __init__(self, combine: Callable[[Any, list[Any]], Iterable[Any] | None],
                 sink: Callable[[list[Any]], None], ser: JsonSerializer, budget_bytes: int = 64 << 20):
        self.combine, self.sink, self.ser, self.gk = combine, sink, ser, ser.group_key
        self.budget = max(1, int(budget_bytes))
        self._groups = _Groups(ser)
        self.flushes = self.compactions = 0

    def estimate(self) -> int:
        """Estimated bytes held: distinct keys and buffered values."""
        g = self._groups
        return (len(g.by_str) + len(g.other)) * KEY_COST + g.values * VALUE_COST

    def add_many(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self._groups.add_many(pairs)
        self.check_budget()

    def add_outputs(self, outs: Iterable[Iterable[Any] | None]) -> None:
        """Add the pairs of a stream of mapper outputs (one iterable of pairs, or None, per record)
        as they come, with no list of them in between; the caller then calls :meth:`check_budget`.
        A failure part way leaves the pairs before it added (the map task fails)."""
        g = self._groups
        by_str, other = g.by_str, g.add_other
        n = 0
        try:
            for pairs in outs:
                for key, value in pairs or ():
                    n += 1
                    if type(key) is str:
                        by_str[key].append(value)
                    else:
                        other(key, value)
        finally:
            g.values += n

    def check_budget(self) -> None:
        """Combine in place (and flush if still too big) when the estimate passes the budget."""
        if self._groups.values * VALUE_COST >= self.budget or self.estimate() >= self.budget:
            self._compact()

    def _combined(self, groups: _Groups) -> Iterator[list[Any]]:
        combine = self.combine
        out: list[Any] = []
        for key, values in groups.items():
            res = combine(key, values)
            if res is not None:
                out.extend(res)
                if len(out) >= BATCH_PAIRS:
                    yield out
                    out = []
        if out:
            yield out

    def _compact(self) -> None:
        groups, self._groups = self._groups, _Groups(self.ser)
        self.compactions += 1
        for out in self._combined(groups):
            try:
                self._groups.add_many(out)
            except (TypeError, ValueError) as exc:
                bad = next((p for p in out if not (isinstance(p, (tuple, list)) and len(p) == 2)), None)
                raise ShuffleError(f"the combiner must return an iterable of (key, value) pairs; "
                                   f"it produced {bad!r}") from exc
        if self.estimate() * 2 > self.budget:  # still too many keys: send them on, as they are
            groups, self._groups = self._groups, _Groups(self.ser)
            self.flushes += 1
            out = []
            for key, values in groups.items():
                out.extend([(key, v) for v in values])
                if len(out) >= BATCH_PAIRS:
                    self.sink(out)
                    out = []
            if out:
                self.sink(out)

    def flush(self) -> None:
        """Combine everything buffered and send it to the sink (at the end of the task)."""
        groups, self._groups = self._groups, _Groups(self.ser)
        self.flushes += 1
        for out in self._combined(groups):
            self.sink(out)


_DICT_ITEMS: type = type({}.items())


def fold_into(accs: dict[str, Any], fn: Callable[[Any, Any], Any], pairs: Iterable[tuple[Any, Any]],
              other: Callable[[Any, Any], None]) -> None:
    """``accs[key] = fn(accs[key], value)`` for each pair with a ``str`` key (the first value of a
    key is kept as is); pairs with other keys go to ``other(key, value)``. ``operator.add`` (sums,
    counts) runs without a call per value."""
    get, miss = accs.get, MISSING
    if fn is operator.add:
        for key, value in pairs:
            if type(key) is str:
                acc = get(key, miss)
                accs[key] = value if acc is miss else acc + value
            else:
                other(key, value)
    else:
        for key, value in pairs:
            if type(key) is str:
                acc = get(key, miss)
                accs[key] = value if acc is miss else fn(acc, value)
            else:
                other(key, value)


class FoldCombiner:
    """The map side of a :class:`~lambda_handlers.jobspec.Fold` combiner: one accumulator per key,
    updated at insertion (``acc = fn(acc, value)``); no per-key value lists.

    Flushes ``(key, acc)`` pairs to ``sink`` when the distinct keys' estimated memory passes
    ``budget_bytes``, and at :meth:`flush`. Key identity is the serializer's, as in :class:`_Groups`.
    """

    def __init__(self, fold: Fold, sink: Callable[[list[Any]], None], ser: JsonSerializer,
                 budget_bytes: int = 64 << 20,
                 column_sink: Callable[[list[Any], list[Any]], None] | None = None):
        self.fn, self.sink, self.gk = fold.fn, sink, ser.group_key
        #: takes the ``str``-key accumulators as ``(keys, values)`` columns at a flush (e.g.
        #: :meth:`PartitionedOutput.add_columns`); None: they go to ``sink`` as pairs
        self.column_sink = column_sink
        self.max_keys = max(1, int(budget_bytes) // KEY_COST)
        self.accumulators: dict[str, Any] = {}  # str keys (the common case): key -> acc
        self._other: dict[Hashable, list[Any]] = {}  # other keys: group_key -> [key, acc]
        self.flushes = 0

    def add_many(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self.fold(pairs)
        self.check_budget()

    def fold(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Fold ``pairs`` into the accumulators, without the budget check (a batch mapper's caller
        checks once per block). A ``dict.items()`` of ``str`` keys into no accumulators (a batch
        mapper that combined its block itself) is a copy."""
        accs = self.accumulators
        if not accs and type(pairs) is _DICT_ITEMS:
            accs.update(pairs)
            if set(map(type, accs)) <= _STR_ONLY:
                return
            accs.clear()
        fold_into(accs, self.fn, pairs, self.add_other)

    def check_budget(self) -> None:
        """Flush when the distinct keys held pass the budget."""
        if len(self.accumulators) + len(self._other) >= self.max_keys:
            self.flush()

    def add_other(self, key: Any, value: Any) -> None:
        """Fold one pair whose key is not a ``str`` (identity by the serializer's encoding)."""
        gk = self.gk(key)
        slot = self._other.get(gk)
        if slot is None:
            self._other[gk] = [key, value]
        else:
            slot[1] = self.fn(slot[1], value)

    def flush(self) -> None:
        accs, other = self.accumulators, self._other
        self.accumulators, self._other = {}, {}
        self.flushes += 1
        if self.column_sink is not None:
            if accs:
                self.column_sink(list(accs), list(accs.values()))
            out = [(k, acc) for k, acc in other.values()]
        else:
            out = list(accs.items())
            out.extend((k, acc) for k, acc in other.values())
        del accs, other
        for i in range(0, len(out), BATCH_PAIRS * 4):
            self.sink(out[i:i + BATCH_PAIRS * 4])


def make_combiner(combine: Callable[..., Any], sink: Callable[[list[Any]], None], ser: JsonSerializer,
                  budget_bytes: int,
                  column_sink: Callable[[list[Any], list[Any]], None] | None = None) -> Combiner | FoldCombiner:
    """The map-side combiner for a step's ``combiner``: a fold or a ``fn(key, values)``
    (``column_sink``: where a fold's ``str``-key accumulators go as columns)."""
    if isinstance(combine, Fold):
        return FoldCombiner(combine, sink, ser, budget_bytes, column_sink)
    return Combiner(combine, sink, ser, budget_bytes)


class _Groups:
    """Values grouped by key identity; str keys (the common case) take a fast path."""

    def __init__(self, ser: JsonSerializer):
        self.gk = ser.group_key
        self.by_str: defaultdict[str, list[Any]] = defaultdict(list)
        self.other: dict[Hashable, tuple[Any, list[Any]]] = {}
        self.values = 0

    def add_many(self, pairs: Iterable[tuple[Any, Any]]) -> int:
        by_str, other, gk = self.by_str, self.other, self.gk
        if not isinstance(pairs, list):
            pairs = list(pairs)
        for key, value in pairs:
            if type(key) is str:
                by_str[key].append(value)
                continue
            g = other.get(gk(key))
            if g is None:
                other[gk(key)] = (key, [value])
            else:
                g[1].append(value)
        self.values += len(pairs)
        return len(pairs)

    def add_other(self, key: Any, value: Any) -> None:
        """Add one pair whose key is not a ``str`` (not counted in :attr:`values`)."""
        gk = self.gk(key)
        g = self.other.get(gk)
        if g is None:
            self.other[gk] = (key, [value])
        else:
            g[1].append(value)

    def add_columns(self, keys: list[Any], values: list[Any]) -> None:
        """Add ``zip(keys, values)``; all-``str`` keys without a Python step per pair (the
        defaultdict's lookups and the lists' appends run from ``map``)."""
        if set(map(type, keys)) != _STR_ONLY:
            self.add_many(list(zip(keys, values, strict=True)))
            return
        deque(map(list.append, map(self.by_str.__getitem__, keys), values), maxlen=0)
        self.values += len(keys)

    def items(self) -> Iterator[tuple[Any, list[Any]]]:
        yield from self.by_str.items()
        yield from self.other.values()

    def __bool__(self) -> bool:
        return bool(self.by_str or self.other)
