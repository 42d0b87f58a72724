"""What a job's own functions may ask about the job they run in (its parameters, its side
files, which input record and which task they are working on, their task's setup state)
and tell it (counters).

``job_params`` of the operator (templated, so ``{{ ds }}`` works) and ``--param`` of ``smr run``
travel inside ``job.pkl``; a mapper, combiner, reducer or partitioner reads them with::

    from lambda_handlers.context import job_params

    def tokenize(line):
        stop = set(job_params().get("stop_words", []))
        ...

Parameters the job declares (``MapReduceJob(params={"min_length": 3})``) come back merged with
their defaults and of their declared types. Side files (``MapReduceJob(files=["stop_words.txt"])``)
are read by name; :func:`job_file` returns a local path, the file copied into ``/tmp`` on first
use in the process and reused by later calls, tasks and attempts. Read it once, not once per
record (in a task setup, or cached in a global)::

    from lambda_handlers.context import job_file

    _stop = {}

    def tokenize(line):
        path = job_file("stop_words.txt")
        if path not in _stop:
            with open(path) as f:
                _stop[path] = set(f.read().split())
        ...

A mapper asks where the record it is mapping comes from (Hadoop's ``mapreduce.map.input.file``)::

    from lambda_handlers.context import input_uri

    def lines_per_file(line):
        yield input_uri(), 1

- :func:`input_uri`: in step 0, ``s3://bucket/key`` of the object the record was read from (right
  for every record of a split that packs several objects), or ``dynamodb://table`` for a table
  input; in a later step, the ``s3://`` URI of the previous step's reducer output the map task
  reads (under the job's work prefix: the step's input is the previous step's output, not an
  original object). ``None`` outside a map task (in a reducer, which reads every map task's
  output) and before the first record.
- :func:`block_sources`: in a batch mapper, which object each record of its block comes from.
  A batch mapper's block of text or jsonl records fills up to its size across the small objects of
  a packed split (a call per 2 KB object would cost more than its records), so one block may hold
  records of several objects: ``block_sources()`` lists them as ``BlockSource(start, uri, name)``,
  in block order, ``start`` the index (in the list the batch mapper got) of the first record from
  ``uri``; the records up to the next entry's ``start`` come from it. Inside such a block
  ``input_uri()`` raises :class:`BlockSpansObjectsError` (naming ``block_sources()``) instead of
  answering for one object only; in a block of one object (a large object, csv, Parquet, a
  ``.gz`` object, a table, a later step, ``batch_mapper(fn, per_object=True)``) it is right for
  every record, and ``block_sources()`` is that one entry. Outside a batch mapper,
  ``block_sources()`` is the record's object alone (``[]`` outside a map task).
- :func:`input_name`: the named input the record belongs to (the key of the ``inputs`` dict), or
  ``"default"`` for unnamed inputs and in later steps; ``None`` outside a map task. Right for a
  whole block, which never mixes two named inputs.
- :func:`task`: ``TaskInfo(step, phase, task, attempt)`` of the running task (``phase`` is
  ``"map"`` or ``"reduce"``; ``attempt`` counts from 0); ``None`` outside a task.
- :func:`state`: what the step's ``mapper_setup`` (in a map task) or ``reducer_setup`` (in a
  reduce task) returned for this task attempt; ``None`` without one.
- :func:`increment_counter`: add to a user counter. A task attempt's counts travel in its done
  marker, so only the winning attempt of each task counts (a failed, retried or speculative
  attempt is never counted twice); the job's totals are ``result["counters"]["user"][group][name]``.
  Outside a task (a function called from a unit test) it checks its arguments and counts nothing.

This module is part of the Lambda package, so functions pickled by value find it there too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from lambda_handlers.jobspec import JobSpec

# Context variables, not globals: in-process runners execute tasks of several jobs on threads.
_params: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "smr_job_params", default=MappingProxyType({})
)
_input: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "smr_input", default=(None, None))
# The records of the batch mapper's block by object, when the block holds several (else None).
_block: contextvars.ContextVar[tuple[BlockSource, ...] | None] = contextvars.ContextVar(
    "smr_block_sources", default=None)
# The running job's side files: name -> local path (None outside a task).
_files: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar(
    "smr_job_files", default=None)


class BlockSource(NamedTuple):
    """The records of a batch mapper's block that come from one object: from index ``start`` of
    the block up to the next entry's ``start`` (or the end), read from ``uri`` of input ``name``."""

    start: int
    uri: str
    name: str


class BlockSpansObjectsError(LookupError):
    """``input_uri()`` inside a batch mapper's block that holds records of several objects."""


class TaskInfo(NamedTuple):
    """The running task: its step, phase (``"map"``/``"reduce"``), task number and attempt."""

    step: int
    phase: str
    task: int
    attempt: int


_task: contextvars.ContextVar[TaskInfo | None] = contextvars.ContextVar("smr_task", default=None)
_state: contextvars.ContextVar[Any] = contextvars.ContextVar("smr_task_state", default=None)
# The running task attempt's counters, by (group, name); None outside a task.
_counters: contextvars.ContextVar[dict[tuple[str, str], int | float] | None] = contextvars.ContextVar(
    "smr_counters", default=None)


def job_params() -> Mapping[str, Any]:
    """The running job's parameters (read-only); empty outside a task or when none were given."""
    return _params.get()


def job_file(name: str) -> str:
    """The local path of the job's side file ``name`` (as shipped by ``MapReduceJob(files=...)``).

    :raises LookupError: outside a task, or for a name the job does not ship (the message lists
        the names it does).
    """
    find = _files.get()
    if find is None:
        raise LookupError(f"job_file({name!r}) works only inside a task of a job (a mapper, "
                          "combiner, reducer or partitioner)")
    return find(name)


def input_uri() -> str | None:
    """The URI of the object (or table) the record being mapped was read from (module docstring).

    :raises BlockSpansObjectsError: in a batch mapper whose block holds records of several
        objects (use :func:`block_sources`).
    """
    block = _block.get()
    if block is not None:
        shown = ", ".join(b.uri for b in block[:3]) + (", ..." if len(block) > 3 else "")
        raise BlockSpansObjectsError(
            f"input_uri() has no one answer in this batch mapper's block: it holds the records of "
            f"{len(block)} objects ({shown}); use lambda_handlers.context.block_sources() for the "
            "object of each record (BlockSource(start, uri, name) entries), or "
            "batch_mapper(fn, per_object=True) for blocks of one object each")
    return _input.get()[0]


def block_sources() -> list[BlockSource]:
    """Which object each record of the batch mapper's block comes from: ``BlockSource(start,
    uri, name)`` entries in block order (module docstring); one entry for a block (or record)
    of one object, ``[]`` outside a map task."""
    block = _block.get()
    if block is not None:
        return list(block)
    uri, name = _input.get()
    return [] if uri is None else [BlockSource(0, uri, name or "default")]


def input_name() -> str | None:
    """The named input of the record being mapped (``"default"`` when unnamed)."""
    return _input.get()[1]


def task() -> TaskInfo | None:
    """``TaskInfo(step, phase, task, attempt)`` of the running task; None outside one."""
    return _task.get()


def state() -> Any:
    """What this task's ``mapper_setup`` / ``reducer_setup`` returned (None without one)."""
    return _state.get()


def increment_counter(group: str, name: str, amount: int | float = 1) -> None:
    """Add ``amount`` to the user counter ``group``/``name`` of the running task (Hadoop's and
    mrjob's ``increment_counter``); see the module docstring for how tasks' counts are summed.
    Call it from the task's own thread: a thread the job's code starts does not see the task."""
    if type(group) is not str or type(name) is not str:
        raise TypeError(f"increment_counter(group, name, amount=1) takes a str group and name, got "
                        f"{group!r} and {name!r}")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"increment_counter: amount must be an int or a float, got {amount!r}")
    counts = _counters.get()
    if counts is not None:
        key = (group, name)
        counts[key] = counts.get(key, 0) + amount


def task_counters() -> dict[str, dict[str, int | float]]:
    """The running task's user counters as ``{group: {name: count}}`` (what its done marker holds)."""
    out: dict[str, dict[str, int | float]] = {}
    for (group, name), count in sorted((_counters.get() or {}).items()):
        out.setdefault(group, {})[name] = count
    return out


def counters_mark() -> dict[tuple[str, str], int | float]:
    """A copy of the task's counters, to :func:`restore_counters` after mapping a record again."""
    return dict(_counters.get() or {})


def restore_counters(mark: dict[tuple[str, str], int | float]) -> None:
    """Put the task's counters back to ``mark`` (what a re-run of records counted is dropped)."""
    counts = _counters.get()
    if counts is not None:
        counts.clear()
        counts.update(mark)


def set_state(value: Any) -> None:
    """Make ``value`` (a setup hook's result) this task's :func:`state` (called by the handler)."""
    _state.set(value)


def activate(spec: JobSpec, files: Callable[[str], str] | None = None) -> None:
    """Make ``spec.params`` the current job's parameters and ``files`` (name -> local path) how its
    side files are found (called by the handler before user code). Without ``files``, a side file
    is read where it was at submit: right for a runner in the submitting process."""
    from lambda_handlers import jobfiles

    _params.set(MappingProxyType(dict(getattr(spec, "params", None) or {})))
    shipped = dict(getattr(spec, "files", None) or {})
    _files.set(files or (lambda name: jobfiles.source_path(shipped, name)))


def begin_task(step: int, phase: str, task: int, attempt: int) -> None:
    """Record the running task and forget the previous task's input (called by the handler)."""
    _task.set(TaskInfo(int(step), str(phase), int(task), int(attempt)))
    _input.set((None, None))
    _block.set(None)
    _state.set(None)
    _counters.set({})


def set_input(uri: str | None, name: str | None) -> None:
    """The records handed to the mapper from now on come from ``uri`` of input ``name`` (called by
    the readers before the first block of each object)."""
    _input.set((uri, name))
    _block.set(None)


def set_block(sources: list[BlockSource]) -> None:
    """The block handed to the batch mapper next holds the records of ``sources`` (several
    objects, called by the map task): :func:`input_uri` raises until :func:`set_input`."""
    _block.set(tuple(sources))
    _input.set((None, sources[0].name))
