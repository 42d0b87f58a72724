"""A step's per-task hooks: ``*_setup()`` before a task attempt's first record, ``*_teardown()``
after its last (mrjob's ``mapper_init`` / ``mapper_final``, Spark's ``mapPartitions``).

A setup's return value becomes :func:`lambda_handlers.context.state` for the rest of the attempt;
a teardown may return or yield ``(key, value)`` pairs, which join the phase's output. Both run on
every attempt (retries and speculative backups too), inside the task's timing; the seconds they
took go into the done marker (``setup_s``, ``teardown_s``). A failure is the job's code failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lambda_handlers import context, runtime


def run_setup(fn: Callable[[], Any] | None, role: str, timings: dict[str, float]) -> None:
    """Run ``fn()`` (if any) and make its result the task's state; ``timings["setup_s"]``."""
    if fn is None:
        return
    began = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:
        raise runtime.TaskError(f"{role} failed: {type(exc).__name__}: {exc}", user=True) from exc
    context.set_state(value)
    timings["setup_s"] = round(time.perf_counter() - began, 4)


def run_teardown(fn: Callable[[], Any] | None, role: str, timings: dict[str, float]) -> list[Any]:
    """The pairs ``fn()`` (if any) returns or yields, checked; ``timings["teardown_s"]``."""
    if fn is None:
        return []
    began = time.perf_counter()
    try:
        out = fn()
        pairs = [] if out is None else list(out)
    except Exception as exc:
        raise runtime.TaskError(f"{role} failed: {type(exc).__name__}: {exc}", user=True) from exc
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise runtime.TaskError(
                f"{role} must return or yield (key, value) pairs (or nothing); it produced "
                f"{runtime.preview(pair)} ({type(pair).__name__}): write `yield key, value`",
                record_preview=runtime.preview(pair), user=True)
    timings["teardown_s"] = round(time.perf_counter() - began, 4)
    return pairs
