"""Grouping on the reduce side (and in map-only steps): group ``(key, value)`` pairs by key, spill
sorted runs to ``/tmp`` beyond a memory budget, and merge the runs in key order.

Key identity and order are the shuffle's (:func:`lambda_handlers.shuffle.sort_key`).
"""

from __future__ import annotations

import heapq
import itertools
import os
import tempfile
from operator import itemgetter
from typing import Any, Iterable, Iterator

from lambda_handlers.shuffle import EXPANSION, FRAME_HEADER, JsonSerializer, _Groups, frame, sort_key


class ExternalGrouper:
    """Group ``(key, value)`` pairs; iterate groups in :func:`sort_key` order.

    Holds groups in memory until the estimated size passes ``budget_bytes``, then sorts them and
    spills a run to a temp file (framed batches of ``[key, [values]]``); :meth:`groups` merges the
    runs. Values of a key keep their insertion order (runs are merged in spill order).
    """

    def __init__(self, ser: JsonSerializer, budget_bytes: int, tmpdir: str | None = None):
        self.ser, self.budget = ser, max(1, int(budget_bytes))
        self.tmpdir = tmpdir
        self._groups = _Groups(ser)
        self._est = 0
        self.runs: list[str] = []
        self.spilled_bytes = 0

    def add_many(self, pairs: Iterable[tuple[Any, Any]], encoded_bytes: int | None = None) -> None:
        """Add pairs; ``encoded_bytes`` is their encoded size if known (else ~64 B per pair)."""
        if encoded_bytes is not None:
            self._groups.add_many(pairs)
            self._est += EXPANSION * encoded_bytes
        else:  # unknown size (e.g. a generator of reducer output): check the budget as we go
            it = iter(pairs)
            while self._groups.add_many(itertools.islice(it, 4096)):
                self._est += EXPANSION * 64 * 4096
                if self._est >= self.budget:
                    self.spill()
        if self._est >= self.budget:
            self.spill()

    def _sorted_groups(self) -> list[tuple[tuple, Any, list]]:
        out = [(sort_key(k), k, vs) for k, vs in self._groups.items()]
        out.sort(key=itemgetter(0))
        return out

    def spill(self) -> None:
        if not self._groups:
            return
        fd, path = tempfile.mkstemp(prefix="smr-run-", suffix=".bin", dir=self.tmpdir)
        dumps = self.ser.dumps
        with os.fdopen(fd, "wb") as f:
            batch: list = []
            for _, k, vs in self._sorted_groups():
                batch.append([k, vs])
                if len(batch) >= 1024:
                    data = frame(dumps(batch))
                    f.write(data)
                    self.spilled_bytes += len(data)
                    batch = []
            if batch:
                data = frame(dumps(batch))
                f.write(data)
                self.spilled_bytes += len(data)
        self.runs.append(path)
        self._groups, self._est = _Groups(self.ser), 0

    def _read_run(self, path: str) -> Iterator[tuple[tuple, Any, list]]:
        loads = self.ser.loads
        with open(path, "rb") as f:
            while True:
                head = f.read(4)
                if not head:
                    return
                (n,) = FRAME_HEADER.unpack(head)
                for k, vs in loads(f.read(n)):
                    yield sort_key(k), k, vs

    def groups(self) -> Iterator[tuple[Any, list]]:
        """Yield ``(key, values)`` in key order; removes spill files when exhausted."""
        if not self.runs:
            groups = self._sorted_groups()
            self._groups = _Groups(self.ser)
            for _, k, vs in groups:
                yield k, vs
            return
        self.spill()
        try:
            merged = heapq.merge(*(self._read_run(p) for p in self.runs), key=itemgetter(0))
            cur_sk, cur_k, cur_vs = None, None, None
            for sk, k, vs in merged:
                if cur_vs is not None and sk == cur_sk:
                    cur_vs.extend(vs)
                    continue
                if cur_vs is not None:
                    yield cur_k, cur_vs
                cur_sk, cur_k, cur_vs = sk, k, list(vs)
            if cur_vs is not None:
                yield cur_k, cur_vs
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for p in self.runs:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.runs = []
