"""Count the control plane's own AWS requests per job (they are part of a job's cost too).

A botocore ``before-call`` handler, registered once per S3 client, adds each call to the job that
is current in the calling context (:func:`job_context`); threads started for a job carry the job
over with :func:`bind_job`. Lambda invokes are counted by the caller with :func:`add`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from lambda_handlers.prices import S3_OPERATION_TYPES

_CURRENT_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("smr_job", default=None)
_LOCK = threading.Lock()
_COUNTS: dict[str, Counter] = defaultdict(Counter)
_HANDLER_ID = "smr-request-counter"
LAMBDA_INVOKE = "lambda:Invoke"
#: of those, the ones that started a task (the fan-out's): the result counts each attempt's invoke once
TASK_INVOKE = "lambda:Invoke:task"

S3_TYPES = S3_OPERATION_TYPES  # the data plane prices done markers with the same table


def _on_call(model: Any = None, **_: Any) -> None:
    job = _CURRENT_JOB.get()
    if job is None or model is None:
        return
    if model.service_model.service_name == "s3":
        add(job, S3_TYPES.get(model.name, model.name.upper()))


def add(job_id: str, kind: str, n: int = 1) -> None:
    """Count ``n`` requests of ``kind`` (``GET``... for S3, ``lambda:Invoke`` for invokes)."""
    with _LOCK:
        _COUNTS[job_id][kind] += n


def attach(client: Any) -> Any:
    """Count ``client``'s S3 calls (idempotent: botocore keeps one handler per unique id)."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register("before-call.s3", _on_call, unique_id=_HANDLER_ID)
    return client


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    token = _CURRENT_JOB.set(job_id)
    try:
        yield
    finally:
        _CURRENT_JOB.reset(token)


def bind_job(fn: Callable) -> Callable:
    """Wrap ``fn`` so that it counts for the current job in whatever thread runs it."""
    job = _CURRENT_JOB.get()

    def run(*args: Any, **kwargs: Any) -> Any:
        token = _CURRENT_JOB.set(job)
        try:
            return fn(*args, **kwargs)
        finally:
            _CURRENT_JOB.reset(token)

    return run


def counts(job_id: str) -> dict[str, int]:
    """Requests counted for ``job_id`` in this process: S3 by type, other services as ``svc:Op``."""
    with _LOCK:
        return dict(_COUNTS.get(job_id, {}))


def s3_counts(job_id: str) -> dict[str, int]:
    return {k: v for k, v in counts(job_id).items() if ":" not in k}


def invokes(job_id: str) -> int:
    """The control plane's invokes beyond those that started a task (the driver function,
    deadline checks, throttled tries): a task's invoke is counted with its attempt."""
    counted = counts(job_id)
    return counted.get(LAMBDA_INVOKE, 0) - counted.get(TASK_INVOKE, 0)
