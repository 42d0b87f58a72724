"""Ordered thread-pool maps: ``map(fn, items)`` with bounded work in flight, results in item order.

Shared by the reducer (parallel ranged GETs), the coordinator (marker reads, invokes, part copies)
and the serverless driver (fan-out). Each call runs in a copy of the caller's context, so the
per-task request counter in :mod:`lambda_handlers.runtime` counts the pool's requests too.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

WORKERS = 16
T = TypeVar("T")
R = TypeVar("R")


def ordered_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in order, at most ``2*workers`` in flight.
    A sequence of one item (a job's one reducer to start, one part to commit) runs in this
    thread: no pool to start and join on a job's critical path."""
    if isinstance(items, Sequence) and len(items) <= 1:
        for item in items:
            yield contextvars.copy_context().run(fn, item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(contextvars.copy_context().run, fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def window_parallel(fn: Callable[[T], R], items: Iterable[T], sizes: Callable[[T], int],
                    window: int, workers: int = WORKERS) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in order, with the sizes of the items in
    flight plus the one being consumed at most ``window`` (always at least one item)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[Future[R], int]] = deque()
        held = 0
        for item in items:
            size = sizes(item)
            while pending and (held + size > window or len(pending) >= 2 * workers):
                fut, n = pending.popleft()
                yield fut.result()
                held -= n
            pending.append((pool.submit(contextvars.copy_context().run, fn, item), size))
            held += size
        while pending:
            fut, _ = pending.popleft()
            yield fut.result()
