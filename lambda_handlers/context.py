"""What a job's own functions may ask about the job they run in: its parameters.

``job_params`` of the operator (templated, so ``{{ ds }}`` works) and ``--param`` of ``smr run``
travel inside ``job.pkl``; a mapper, combiner, reducer or partitioner reads them with::

    from lambda_handlers.context import job_params

    def tokenize(line):
        stop = set(job_params().get("stop_words", []))
        ...

This module is part of the Lambda package, so functions pickled by value find it there too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lambda_handlers.jobspec import JobSpec

# A context variable, not a global: in-process runners execute tasks of several jobs on threads.
_params: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "smr_job_params", default=MappingProxyType({})
)


def job_params() -> Mapping[str, Any]:
    """The running job's parameters (read-only); empty outside a task or when none were given."""
    return _params.get()


def activate(spec: JobSpec) -> None:
    """Make ``spec.params`` the current job's parameters (called by the handler before user code)."""
    _params.set(MappingProxyType(dict(getattr(spec, "params", None) or {})))
