"""The user's job: plain Python functions wrapped in :class:`MapReduceJob`, checked when built.

A job is small data: mapper, optional combiner, reducer and partitioner, formats, and for multi-step
jobs a list of :class:`Step`. :meth:`MapReduceJob.to_spec` turns it into the data plane's
:class:`~lambda_handlers.jobspec.JobSpec`, and :meth:`MapReduceJob.dumps` cloudpickles that spec so
the code travels to Lambda as data: functions from modules Lambda cannot import (the DAG folder, job
modules, the helper modules they use) are pickled by value.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambda_handlers.jobspec import IDENTITY as identity  # the reducer that writes values unchanged
from lambda_handlers.jobspec import IdentityReducer
from lambda_handlers.sizes import parse_size

if TYPE_CHECKING:
    import os

    from airflow_provider_smr.job_files import SideFile
    from airflow_provider_smr.params import ParamDecl
    from lambda_handlers.jobspec import BatchMapper, Fold, JobSpec, RangePartitioner

__all__ = ["JobDefinitionError", "JobPicklingError", "JobRuntimeError", "MapReduceJob", "Step",
           "batch_mapper", "check_pickle_runtime", "fold", "identity", "load_job", "parse_size",
           "range_partitioner", "sample_boundaries"]

INPUT_FORMATS = ("text", "csv", "jsonl", "whole", "parquet")
OUTPUT_FORMATS = ("jsonl", "tsv", "csv", "parquet", "text")
SERIALIZERS = ("json", "pickle")
DEFAULT_INPUT = "default"

# Modules the Lambda package can import: the standard library, the runtime's boto3 stack, our zip.
_LAMBDA_IMPORTABLE = {"lambda_handlers", "cloudpickle", "boto3", "botocore", "s3transfer", "jmespath",
                      "dateutil", "urllib3", "six"}
_PICKLE_LOCK = threading.Lock()


class JobDefinitionError(ValueError):
    """A job that cannot run as written; the message says what to change."""


class JobPicklingError(JobDefinitionError):
    """The job's code cannot be pickled (e.g. a function captures a lock or an open file)."""


class JobRuntimeError(JobDefinitionError):
    """The job was pickled by a Python that the stack's Lambda runtime is not."""


def _describe(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module else name


def _check_callable(fn: object, role: str, nargs: int, hint: str) -> None:
    if not callable(fn):
        raise JobDefinitionError(f"{role} must be a function, got {type(fn).__name__} {fn!r}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: nothing to check
    try:
        sig.bind(*([None] * nargs))
    except TypeError:
        takes = (f"accept {nargs} positional argument{'s' if nargs > 1 else ''}" if nargs
                 else "be callable with no arguments")
        raise JobDefinitionError(f"{role} {_describe(fn)}{sig} must {takes}: {hint}") from None


def _check_sorting(sort_values: object, value_key: object, where: str, has_reducer: bool) -> None:
    if sort_values is not None and not isinstance(sort_values, bool):
        raise JobDefinitionError(f"{where}: sort_values must be True or False, got {sort_values!r}")
    if value_key is not None:
        _check_callable(value_key, f"{where} value_key", 1, "fn(value) -> sort key")
    if (sort_values or value_key is not None) and not has_reducer:
        raise JobDefinitionError(f"{where}: sort_values/value_key order the values a reducer gets; "
                                 "a map-only step (reducer=None) has none")


def _check_format(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise JobDefinitionError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")


#: The per-task hooks a step may have (each ``fn()``, run once per task attempt).
TASK_HOOKS = ("mapper_setup", "mapper_teardown", "reducer_setup", "reducer_teardown")
_STEP_ARGS = ("mapper", "combiner", "reducer", "partitioner", "num_reducers", *TASK_HOOKS, "sort_values",
              "value_key")


class Step:
    """One MapReduce step of a job (keyword arguments only).

    :param mapper: ``fn(record) -> iterable of (key, value)``; on step 0 of a job with named inputs,
        a dict ``{input_name: fn}``. Later steps receive ``(key, value)`` tuples, and may leave the
        mapper out (or give ``identity``): the previous step's pairs then go to the shuffle as they
        are. Step 0 needs a mapper (its records are input lines or rows, not pairs).
    :param combiner: ``fn(key, values) -> iterable of (key, value)``, run on map output.
    :param reducer: ``fn(key, values) -> iterable of (key, value)``; None makes a map-only step
        (only the last step may be map-only).
    :param partitioner: ``fn(key, n) -> int`` in ``[0, n)``; default: a stable hash of the key.
    :param num_reducers: reducers of this step; default: the job's setting or chosen from input size.
    :param mapper_setup: ``fn()`` run once per map task attempt before its first record; what it
        returns is ``lambda_handlers.context.state()`` for the task's mapper and combiner.
    :param mapper_teardown: ``fn()`` run once per map task attempt after its last record; the
        ``(key, value)`` pairs it returns or yields join the mapper's (mrjob's ``mapper_final``).
    :param reducer_setup: like ``mapper_setup``, for each reduce task attempt.
    :param reducer_teardown: like ``mapper_teardown``, after a reduce task's last key; its pairs
        join the reducer's output.
    :param sort_values: the reducer gets each key's values in sorted order (mrjob's
        ``SORT_VALUES``, a secondary sort), as an iterator streamed from the shuffle; the order is
        the shuffle's order of JSON values (numbers by value, then strings; lists element-wise) or
        ``value_key``'s. Default: the job's ``sort_values``.
    :param value_key: ``fn(value) -> sort key`` for ``sort_values`` (implies it), like ``sorted``'s
        ``key``; values whose sort keys tie keep their arrival order.
    """

    def __init__(self, *positional: Any, mapper: Callable | dict[str, Callable] | None = None,
                 combiner: Callable | None = None, reducer: Callable | None = None,
                 partitioner: Callable | None = None, num_reducers: int | None = None,
                 mapper_setup: Callable | None = None, mapper_teardown: Callable | None = None,
                 reducer_setup: Callable | None = None, reducer_teardown: Callable | None = None,
                 sort_values: bool | None = None, value_key: Callable | None = None,
                 **unknown: Any) -> None:
        if positional:
            raise JobDefinitionError(
                f"Step takes keyword arguments only, got {len(positional)} positional: write "
                "Step(mapper=..., combiner=..., reducer=...)")
        if unknown:
            name = sorted(unknown)[0]
            close = difflib.get_close_matches(name, _STEP_ARGS, n=1)
            hint = f"; did you mean {close[0]}=?" if close else f" (it takes {', '.join(_STEP_ARGS)})"
            raise JobDefinitionError(f"Step has no argument {name!r}{hint}")
        self.mapper = mapper
        self.combiner = combiner
        self.reducer = reducer
        self.partitioner = partitioner
        self.num_reducers = num_reducers
        self.mapper_setup = mapper_setup
        self.mapper_teardown = mapper_teardown
        self.reducer_setup = reducer_setup
        self.reducer_teardown = reducer_teardown
        self.sort_values = sort_values
        self.value_key = value_key

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={getattr(self, name)!r}" for name in _STEP_ARGS
                          if getattr(self, name) is not None)
        return f"Step({given})"

    @property
    def passes_pairs(self) -> bool:
        """Whether the step has no mapper of its own (``None`` or ``identity``): the previous
        step's pairs go to its shuffle unchanged."""
        return self.mapper is None or isinstance(self.mapper, IdentityReducer)

    def validate(self, index: int, last: bool) -> None:
        where = f"step {index}"
        if isinstance(self.mapper, dict):
            if index != 0:
                raise JobDefinitionError(
                    f"{where}: a dict of mappers (one per named input) is only allowed on "
                    "step 0; later steps read the previous step's output")
            if not self.mapper:
                raise JobDefinitionError(f"{where}: the dict of mappers is empty")
            for name, fn in self.mapper.items():
                if not isinstance(name, str) or not name:  # type: ignore[redundant-expr]  # for untyped callers
                    raise JobDefinitionError(f"{where}: input names must be non-empty strings, got {name!r}")
                _check_callable(fn, f"{where} mapper for input {name!r}", 1, "fn(record)")
        elif self.passes_pairs:
            if self.mapper is None and self.reducer is None:
                raise JobDefinitionError(f"{where}: give a mapper, a reducer or both")
            if index == 0:
                raise JobDefinitionError(
                    f"{where} needs a mapper: the first step's records are input records (lines, rows), "
                    "not (key, value) pairs; write e.g. mapper=lambda line: [(line, 1)]. Only later "
                    "steps may leave the mapper out, to reduce the previous step's pairs as they are")
        else:
            _check_callable(self.mapper, f"{where} mapper", 1, "fn(record)")
        if self.combiner is not None:
            if self.reducer is None:
                raise JobDefinitionError(
                    f"{where}: a combiner needs a reducer (map-only steps have no shuffle)")
            _check_callable(self.combiner, f"{where} combiner", 2, "fn(key, values)")
        if self.reducer is not None:
            _check_callable(self.reducer, f"{where} reducer", 2, "fn(key, values)")
        elif not last:
            raise JobDefinitionError(f"{where}: only the last step may be map-only (reducer=None)")
        if self.partitioner is not None:
            if self.reducer is None:
                raise JobDefinitionError(
                    f"{where}: a partitioner needs a reducer (map-only steps have no shuffle)")
            _check_callable(self.partitioner, f"{where} partitioner", 2, "fn(key, num_partitions)")
        if self.num_reducers is not None:
            _check_reducers(self.num_reducers, where)
        for hook in TASK_HOOKS:
            fn = getattr(self, hook)
            if fn is None:
                continue
            if hook.startswith("reducer") and self.reducer is None:
                raise JobDefinitionError(f"{where}: {hook} needs a reducer (a map-only step has no reduce tasks)")
            _check_callable(fn, f"{where} {hook}", 0,
                            "fn() -> state" if hook.endswith("setup") else "fn() -> iterable of (key, value) or None")
        _check_sorting(self.sort_values, self.value_key, where, self.reducer is not None)

    @property
    def sorts_values(self) -> bool:
        """The reducer gets each key's values sorted (``sort_values`` or a ``value_key``)."""
        return bool(self.sort_values) or self.value_key is not None

    def functions(self) -> list[Callable]:
        from lambda_handlers.jobspec import BatchMapper, Fold

        if isinstance(self.mapper, dict):
            fns = list(self.mapper.values())
        else:
            fns = [] if self.passes_pairs or self.mapper is None else [self.mapper]
        fns += [f for f in (self.combiner, self.reducer, self.partitioner, self.value_key) if f is not None]
        fns += [f for f in (getattr(self, hook) for hook in TASK_HOOKS) if f is not None]
        # a fold's or a batch mapper's fn may be user code
        return fns + [f.fn for f in fns if isinstance(f, (Fold, BatchMapper))]


def fold(fn: Callable[[Any, Any], Any]) -> Fold:
    """A combiner (or reducer) that folds each key's values with an associative ``fn(a, b)``.

    Like Spark's ``reduceByKey``: ``combiner=fold(operator.add)`` keeps one running value per key
    in each mapper (``acc = fn(acc, value)`` as pairs arrive) instead of lists of values, so the
    map side is faster and ships one record per distinct key. Values must be what ``fn`` combines
    (counts, sums, maxima); ``fn`` must be associative, and the order in which values from
    different map tasks meet is not defined. The result is an ordinary ``fn(key, values)``, so it
    also serves as a reducer.
    """
    from lambda_handlers.jobspec import Fold

    _check_callable(fn, "fold function", 2, "fn(a, b) -> combined value")
    return Fold(fn)


def batch_mapper(fn: Callable[[list], Any], per_object: bool = False) -> BatchMapper:
    """A mapper called once per block of records: ``fn(records: list) -> iterable of (key, value)``.

    Like Spark's ``mapPartitions`` or Ray's ``map_batches``. The engine hands ``fn`` the records
    of a block (thousands of lines, parsed rows or items) at a time, so a job can combine inside
    its own loop (``counts[word] = counts.get(word, 0) + 1``) with no generator per record::

        def count_words(lines):
            counts = {}
            for line in lines:
                for word in line.split():
                    counts[word] = counts.get(word, 0) + 1
            return counts.items()

        MapReduceJob(mapper=batch_mapper(count_words), combiner=fold(operator.add), reducer=fold(operator.add))

    If ``fn`` raises on a block, the engine calls it again one record at a time to name the record
    that fails (and, with ``max_bad_records``, to skip it and keep the others' pairs).

    On a Parquet input the block is a ``pyarrow.RecordBatch`` (up to 65,536 rows of one row group,
    the projected ``columns`` only) rather than a list, and the records a failing block is retried
    with are one-row batches.

    A block of text or jsonl lines fills across the small objects a map task packs, so it may
    hold records of several objects: ``lambda_handlers.context.block_sources()`` says which
    record comes from which object (``input_uri()`` raises in such a block). ``per_object=True``
    keeps every block within one object (one call per object: slower over many small objects),
    for a function that calls ``input_uri()``.
    """
    from lambda_handlers.jobspec import BatchMapper

    _check_callable(fn, "batch mapper", 1, "fn(records: list) -> iterable of (key, value)")
    return BatchMapper(fn, per_object)


def range_partitioner(boundaries: Any) -> RangePartitioner:
    """A total-order partitioner: partition ``i`` holds keys in ``[boundaries[i-1], boundaries[i])``.

    With ``len(boundaries) + 1`` reducers, the committed parts read in order are globally sorted
    (Hadoop's ``TotalOrderPartitioner``). Get the cut points from a sample of the keys with
    :func:`sample_boundaries`. The engine partitions whole batches with one sort, not one call per
    record.
    """
    from lambda_handlers.jobspec import RangePartitioner

    try:
        return RangePartitioner(boundaries)
    except (TypeError, ValueError) as exc:
        raise JobDefinitionError(f"range_partitioner: {exc}") from None


def sample_boundaries(sample_keys: Any, partitions: int) -> list:
    """``partitions - 1`` cut points at the quantiles of a sample of keys (for :func:`range_partitioner`)."""
    keys = sorted(sample_keys)
    if partitions <= 1 or not keys:
        return []
    return [keys[len(keys) * i // partitions] for i in range(1, partitions)]


def _check_reducers(n: object, where: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise JobDefinitionError(f"{where}: num_reducers must be a positive integer, got {n!r}")


class MapReduceJob:
    """A MapReduce job made of plain Python functions.

    Either give ``mapper`` (+ ``combiner``, ``reducer``, ``partitioner``) for a one-step job, or
    ``steps=[Step(...), ...]`` for a chain of steps that runs without returning to the caller.

    :param input_format: ``text`` (records are lines), ``csv`` (dict rows, header from the first
        line of each object), ``jsonl``, ``whole`` (one record per object: the tuple
        ``(uri, body)``, ``body`` the object's bytes, decompressed when ``.gz`` or ``.bz2``; an
        object larger than a quarter of the functions' memory is refused before the job runs) or
        ``parquet`` (dict rows; objects ending in ``.parquet`` are read as Parquet by default); or
        a dict ``{input_name: format}`` for named inputs. Small objects are packed several to a
        map task (up to ``split_size`` bytes); ``lambda_handlers.context.input_uri()`` tells the
        mapper which object the record it is mapping comes from.
    :param output_format: ``jsonl`` (``{"key": k, "value": v}`` lines), ``tsv``, ``csv``,
        ``parquet`` (one Parquet file per part: columns ``key`` and ``value``, or the fields of the
        dicts a reducer yields) or ``text`` (values only, one per line: a ``str`` as it is,
        anything else as JSON; keys are dropped).
    :param name: a label for logs and the plan; the mapper's name by default.
    :param serializer: how keys and values travel through the shuffle: ``json`` or ``pickle``.
    :param num_reducers: default number of reducers for steps that do not set their own.
    :param extra_modules: modules or packages (names or module objects) whose source travels with
        the job, importable inside Lambda even when the functions import them lazily.
    :param params: the job's parameters, ``{name: default}``: the default's type is the
        parameter's; a type (``int``) declares a required one, ``None`` one of any type, and an
        Airflow ``Param`` is checked by its schema (see :mod:`airflow_provider_smr.params`).
        ``job_params`` / ``--param`` are merged over the defaults and checked at submit.
    :param files: side files shipped with the job (paths; relative ones to the folder of the
        module that builds the job); a task reads one by name with
        ``lambda_handlers.context.job_file(name)`` (see :mod:`airflow_provider_smr.job_files`).
    :param mapper_setup: ``mapper_teardown``, ``reducer_setup``, ``reducer_teardown``: the
        one-step job's per-task hooks (see :class:`Step`).
    :param sort_values: reducers get each key's values in sorted order, streamed (see
        :class:`Step`); with ``steps=``, the default of each step that does not set its own.
    :param value_key: ``fn(value) -> sort key`` for ``sort_values`` (implies it); with ``steps=``,
        the default of each step that sets neither.
    """

    def __init__(self, mapper: Callable | dict[str, Callable] | None = None, combiner: Callable | None = None,
                 reducer: Callable | None = None, partitioner: Callable | None = None,
                 input_format: str | dict[str, str] = "text", output_format: str = "jsonl",
                 steps: Sequence[Step] | None = None, name: str | None = None, serializer: str = "json",
                 num_reducers: int | None = None, extra_modules: list | tuple = (),
                 params: Mapping[str, Any] | None = None,
                 files: Sequence[str | os.PathLike[str]] = (),
                 mapper_setup: Callable | None = None, mapper_teardown: Callable | None = None,
                 reducer_setup: Callable | None = None, reducer_teardown: Callable | None = None,
                 sort_values: bool = False, value_key: Callable | None = None) -> None:
        from airflow_provider_smr import job_files
        from airflow_provider_smr import params as job_params

        if steps is not None:
            if any(f is not None for f in (mapper, combiner, reducer, partitioner, mapper_setup,
                                           mapper_teardown, reducer_setup, reducer_teardown)):
                raise JobDefinitionError(
                    "give either mapper/combiner/reducer/partitioner (and their setup/teardown) or "
                    "steps=[Step(...)], not both")
            if not isinstance(steps, (list, tuple)) or not steps:
                raise JobDefinitionError("steps must be a non-empty list of Step(...)")
            for s in steps:
                if not isinstance(s, Step):
                    raise JobDefinitionError(f"steps must hold Step(...) objects, got {type(s).__name__}")
            self.steps = list(steps)
        else:
            # validate() below rejects a None mapper with a message naming the step.
            self.steps = [Step(mapper=mapper, combiner=combiner, reducer=reducer, partitioner=partitioner,
                               mapper_setup=mapper_setup, mapper_teardown=mapper_teardown,
                               reducer_setup=reducer_setup, reducer_teardown=reducer_teardown,
                               sort_values=sort_values, value_key=value_key)]
        self.input_format = input_format
        self.output_format = output_format
        self.serializer = serializer
        self.num_reducers = num_reducers
        self.extra_modules = list(extra_modules)
        self.params = params
        self.param_decls: dict[str, ParamDecl] | None = job_params.declare(params)
        self.files: tuple[SideFile, ...] = job_files.declare(files, job_files.caller_folder())
        self.sort_values, self.value_key = sort_values, value_key
        self.name = name or self._default_name()
        self.validate()

    def _default_name(self) -> str:
        mapper = self.steps[0].mapper
        if isinstance(mapper, dict):
            return "join"
        return getattr(mapper, "__name__", "job").strip("<>") or "job"

    def __repr__(self) -> str:
        return f"MapReduceJob(name={self.name!r}, steps={len(self.steps)})"

    # -- checks -----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`JobDefinitionError` naming the first problem; called when the job is built."""
        for i, step in enumerate(self.steps):
            step.validate(i, last=i == len(self.steps) - 1)
        if isinstance(self.input_format, dict):
            if not self.input_format:
                raise JobDefinitionError("input_format dict is empty")
            for fmt in self.input_format.values():
                _check_format(fmt, INPUT_FORMATS, "input_format")
            names = self.input_names
            if names is not None and sorted(names) != sorted(self.input_format):
                raise JobDefinitionError(
                    f"input_format names inputs {sorted(self.input_format)} but the mappers "
                    f"are for {sorted(names)}")
        else:
            _check_format(self.input_format, INPUT_FORMATS, "input_format")
        _check_format(self.output_format, OUTPUT_FORMATS, "output_format")
        _check_format(self.serializer, SERIALIZERS, "serializer")
        _check_sorting(self.sort_values, self.value_key, "job", has_reducer=True)
        if self.num_reducers is not None:
            _check_reducers(self.num_reducers, "job")

    def step_sorting(self, step: Step) -> tuple[bool, Callable | None]:
        """``(sort_values, value_key)`` of a step: its own, else (steps with a reducer) the job's."""
        if step.sort_values is not None or step.value_key is not None or step.reducer is None:
            return step.sorts_values, step.value_key
        return bool(self.sort_values) or self.value_key is not None, self.value_key

    @property
    def input_names(self) -> list[str] | None:
        """Names of the inputs a dict mapper expects, or None for a job with one unnamed input."""
        mapper = self.steps[0].mapper
        return list(mapper) if isinstance(mapper, dict) else None

    def input_format_for(self, name: str) -> str:
        if isinstance(self.input_format, dict):
            try:
                return self.input_format[name]
            except KeyError:
                raise JobDefinitionError(f"input_format has no entry for input {name!r} "
                                         f"(known: {', '.join(self.input_format)})") from None
        return self.input_format

    def check_inputs(self, names: list[str]) -> None:
        """Check that the named inputs given at submit time match a dict mapper's names."""
        expected = self.input_names
        if expected is None:
            if names != [DEFAULT_INPUT]:
                raise JobDefinitionError(
                    f"this job has one mapper, so give one unnamed input (a URI or a list), "
                    f"not named inputs {names}")
            return
        if sorted(names) != sorted(expected):
            raise JobDefinitionError(
                f"the job's mappers expect inputs {sorted(expected)}, got {sorted(names)}")

    def resolve_params(self, given: Mapping[str, Any] | None, interface: str = "job_params") -> dict[str, Any]:
        """The run's parameters: ``given`` merged over the declared defaults and checked, with
        errors (:class:`~airflow_provider_smr.params.JobParamError`) that spell a parameter as
        ``interface`` does (``"job_params"`` or ``"--param"``)."""
        from airflow_provider_smr import params as job_params

        return job_params.resolve(self.param_decls, given, interface)

    def with_files(self, files: Sequence[str | os.PathLike[str]]) -> MapReduceJob:
        """A copy of this job that also ships ``files`` (relative paths: to the current folder)."""
        import copy

        from airflow_provider_smr import job_files

        job = copy.copy(self)
        job.files = job_files.declare([*(f.path for f in self.files), *files], Path.cwd())
        return job

    # -- what travels -----------------------------------------------------------------------------

    def to_spec(self, params: dict | None = None) -> JobSpec:
        """The data plane's view of this job (what ``job.pkl`` holds): ``params`` merged over the
        declared defaults and checked, the side files checked (present, within the size limit)."""
        from airflow_provider_smr import job_files
        from lambda_handlers.jobspec import SORT_VALUES_VERSION, SPEC_VERSION, JobSpec, StepSpec

        steps = [StepSpec(mapper=None if s.passes_pairs else s.mapper, combiner=s.combiner,
                          reducer=s.reducer, partitioner=s.partitioner, num_reducers=s.num_reducers,
                          sort_values=self.step_sorting(s)[0], value_key=self.step_sorting(s)[1],
                          **{hook: getattr(s, hook) for hook in TASK_HOOKS}) for s in self.steps]
        formats = ({k: v for k, v in self.input_format.items()} if isinstance(self.input_format, dict)
                   else {})
        default = self.input_format if isinstance(self.input_format, str) else "text"
        return JobSpec(steps=steps, name=self.name, input_format=default, input_formats=formats,
                       output_format=self.output_format, serializer=self.serializer,
                       params=self.resolve_params(params),
                       modules=module_sources(getattr(self, "extra_modules", ())),
                       files=job_files.describe(getattr(self, "files", ())),
                       version=SORT_VALUES_VERSION if any(s.sort_values for s in steps) else SPEC_VERSION)

    def functions(self) -> list[Callable]:
        return [fn for s in self.steps for fn in s.functions()] + ([self.value_key] if self.value_key else [])

    def dumps(self, params: dict | None = None) -> bytes:
        """Cloudpickle :meth:`to_spec`, user modules by value; :class:`JobPicklingError` if impossible."""
        import cloudpickle

        spec = self.to_spec(params)
        with _PICKLE_LOCK:
            registered = _register_by_value(self.functions())
            try:
                return cloudpickle.dumps(spec, protocol=4)
            except Exception as exc:  # noqa: BLE001 - any pickling failure becomes one clear error
                raise JobPicklingError(self._pickling_message(exc)) from exc
            finally:
                for module in registered:
                    cloudpickle.unregister_pickle_by_value(module)

    def _pickling_message(self, exc: Exception) -> str:
        import cloudpickle

        culprit = "the job"
        for fn in self.functions():
            try:
                cloudpickle.dumps(fn)
            except Exception:  # noqa: BLE001
                culprit = f"function {_describe(fn)}"
                break
        return (f"cannot pickle {culprit}: {type(exc).__name__}: {exc}. Job functions travel to "
                "Lambda as data, so they must not capture locks, open files, clients or sockets; "
                "create those inside the function instead")

    # -- in this process ----------------------------------------------------------------------------

    def run_inline(self, input: Any, output: str | Path | None = None, *, job_params: dict | None = None,
                   **options: Any) -> list:
        """Run the job in this process, with no stack and no AWS, and return its output records.

        The same planner and Lambda handlers as on a stack run it against an in-memory S3, one
        task at a time in this thread, with the tasks' memory budgets of ``memory_mb``; the
        parts are those ``smr run --local`` writes for the same options. An exception in one of
        the job's functions is raised as it is, with its traceback and a note naming the task and
        record, and is not retried (``breakpoint()`` and post-mortem debugging work).

        :param input: a local file or folder, ``bytes`` (one input object's content), a list of
            those, or a dict of named inputs.
        :param output: a local folder to write the parts and ``_SUCCESS`` into, as ``smr run
            --local`` does; None: records only.
        :param job_params: the job's parameters (``job_params`` of the operator).
        :param options: job options (``split_size``, ``num_reducers``, ``max_bad_records``, ...),
            and ``memory_mb``, ``mapper_memory_mb``, ``reducer_memory_mb``, ``timeout_s``.
        :return: the records of the parts in order: ``(key, value)`` tuples for ``jsonl`` and
            ``tsv`` output, tuples of strings for ``csv``, dicts for ``parquet``, lines otherwise.
        """
        from airflow_provider_smr.engine.inline import run_inline

        return run_inline(self, input, output, job_params=job_params, **options).records


def module_sources(modules: Any) -> dict[str, list]:
    """``{name: [is_package, source]}`` of modules/packages (names or module objects) and all
    their submodules: what ``extra_modules`` ships inside ``job.pkl``."""
    import importlib
    import pkgutil

    out: dict[str, list] = {}

    def add(module: types.ModuleType) -> None:
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            raise JobDefinitionError(
                f"extra_modules: {module.__name__!r} has no Python source file ({path}); "
                "only pure-Python modules and packages can travel with the job "
                "(use requirements=/layers= for others)")
        is_pkg = hasattr(module, "__path__")
        out[module.__name__] = [is_pkg, Path(path).read_text(encoding="utf-8")]
        if is_pkg:
            for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
                add(importlib.import_module(info.name))

    for m in modules or ():
        try:
            module = importlib.import_module(m) if isinstance(m, str) else m
        except ImportError as exc:
            raise JobDefinitionError(f"extra_modules: cannot import {m!r}: {exc}") from None
        if not isinstance(module, types.ModuleType):
            raise JobDefinitionError(f"extra_modules takes module names or modules, got {m!r}")
        add(module)
    return out


def check_pickle_runtime(runtime: str, python: tuple[int, int] | None = None) -> None:
    """Raise :class:`JobRuntimeError` unless ``runtime`` (``"python3.11"``) runs this Python's pickles."""
    here = tuple(python or sys.version_info[:2])
    want = f"python{here[0]}.{here[1]}"
    if runtime != want:
        raise JobRuntimeError(
            f"the stack's Lambda runtime is {runtime} but jobs are pickled by Python "
            f"{here[0]}.{here[1]}; pickled code only runs on the same minor version. Redeploy the "
            f"stack from this worker (runtime {want}) or run the job from a {runtime[6:]} worker"
        )


# -- pickling by value ------------------------------------------------------------------------------


def _lambda_importable(module_name: str) -> bool:
    root = module_name.split(".")[0]
    return root in sys.stdlib_module_names or root in _LAMBDA_IMPORTABLE or root == "builtins"


def _is_installed_package(module: types.ModuleType) -> bool:
    path = getattr(module, "__file__", None) or ""
    return "site-packages" in path or "dist-packages" in path


def _needs_by_value(module_name: str | None) -> types.ModuleType | None:
    if not module_name or module_name == "__main__" or _lambda_importable(module_name):
        return None
    module = sys.modules.get(module_name)
    if module is None or _is_installed_package(module):
        return None  # installed libraries must come from a layer; user code travels by value
    return module


def _referenced_globals(fn: Any) -> list[Any]:
    """Globals a function's code refers to (including nested code objects such as lambdas)."""
    code = getattr(fn, "__code__", None)
    glb = getattr(fn, "__globals__", None)
    if code is None or glb is None:
        return []
    names: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    refs = [glb[n] for n in names if n in glb]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            refs.append(cell.cell_contents)
        except ValueError:
            pass
    return refs


def _register_by_value(functions: list[Callable]) -> list[types.ModuleType]:
    """Register every user module reachable from ``functions`` for pickling by value."""
    import cloudpickle

    registered: list[types.ModuleType] = []
    seen: set[int] = set()
    todo: list[Any] = list(functions)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        members: list[Any] = []
        if isinstance(obj, types.ModuleType):
            module = _needs_by_value(obj.__name__)
        elif isinstance(obj, (types.FunctionType, type)):
            owner = getattr(obj, "__module__", None)
            module = _needs_by_value(owner)
            if module is not None or owner == "__main__":
                members = _referenced_globals(obj)
                if isinstance(obj, type):
                    members += [v for v in vars(obj).values() if callable(v)]
        else:  # an instance (e.g. a config object): its class may live in a user module
            module = _needs_by_value(getattr(type(obj), "__module__", None))
            if module is not None:
                members = [type(obj)]
        if module is not None and module not in registered:
            if not cloudpickle.cloudpickle._is_registered_pickle_by_value(module):
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
        todo.extend(members)
    return registered


# -- loading a job by reference -----------------------------------------------------------------------


def load_job(ref: str | MapReduceJob) -> MapReduceJob:
    """Load a job from ``"package.module:attr"`` or ``"path/to/file.py:attr"``.

    The file's folder is put on ``sys.path`` so helper modules next to it import as usual.
    """
    if isinstance(ref, MapReduceJob):
        return ref
    if not isinstance(ref, str) or ":" not in ref:  # type: ignore[redundant-expr]  # for untyped callers
        raise JobDefinitionError(
            f"a job reference looks like 'package.module:attr' or 'path/to/file.py:attr', "
            f"got {ref!r}")
    where, _, attr = ref.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(Path(where))
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise JobDefinitionError(f"cannot import job module {where!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise JobDefinitionError(f"{where!r} has no attribute {attr!r}") from None
    if not isinstance(obj, MapReduceJob):
        raise JobDefinitionError(f"{ref!r} is a {type(obj).__name__}, not a MapReduceJob")
    return obj


def _import_file(path: Path) -> types.ModuleType:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise JobDefinitionError(f"job file {str(path)!r} does not exist")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise JobDefinitionError(f"cannot import job file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise JobDefinitionError(
            f"importing job file {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    return module
