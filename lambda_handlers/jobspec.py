"""What ``job.pkl`` holds: the user's functions and the job's settings, as plain data.

The control plane (``airflow_provider_smr.job``) builds a :class:`JobSpec` and cloudpickles it;
handlers unpickle it. It lives in the data plane so that unpickling inside Lambda never needs
``airflow_provider_smr`` (or airflow) importable there. Standard library only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

SPEC_VERSION = 1
# A spec with a step that sorts values says so in its version, so that a data plane from before
# sort_values (which reads only version 1) refuses it instead of reducing unsorted values.
SORT_VALUES_VERSION = 2
SUPPORTED_VERSIONS = (SPEC_VERSION, SORT_VALUES_VERSION)


class _SourceFinder:
    """A meta path finder serving shipped module sources (``{name: [is_package, source]}``)."""

    def __init__(self, modules: dict[str, list[Any]]):
        self.modules = modules

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        import importlib.util

        entry = self.modules.get(name)
        if entry is None:
            return None
        # A loader by its create_module/exec_module; typeshed's LoaderProtocol wants the legacy
        # load_module, which the import system never calls on a loader that has exec_module.
        return importlib.util.spec_from_loader(name, self, is_package=bool(entry[0]))  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        is_pkg, source = self.modules[module.__name__]
        if is_pkg:
            module.__path__ = []
        code = compile(source, f"<smr shipped {module.__name__}>", "exec")
        exec(code, module.__dict__)


def install_modules(modules: dict[str, list[Any]]) -> None:
    """Make shipped module sources importable (idempotent; earlier shipped versions are replaced)."""
    if not modules:
        return
    for finder in list(sys.meta_path):
        if isinstance(finder, _SourceFinder):
            sys.meta_path.remove(finder)
    for name in modules:
        sys.modules.pop(name, None)
    sys.meta_path.append(_SourceFinder(modules))


def _new_spec(modules: dict[str, list[Any]]) -> JobSpec:
    install_modules(modules)
    return JobSpec.__new__(JobSpec)


class JobSpecError(ValueError):
    """The pickled job cannot run here (wrong Python, unknown version)."""


class Fold:
    """A combiner (or reducer) that folds a key's values with an associative ``fn(a, b)``.

    Like Spark's ``reduceByKey``: the map side keeps ONE accumulator per key, updated as pairs
    arrive (``acc = fn(acc, value)``), so no per-key lists of values exist. Called like any
    combiner, ``fold(key, values)`` yields ``(key, fn(...fn(fn(v0, v1), v2)...))``, so the same
    object also works as a reducer. ``fn`` must be associative (values are folded in batches,
    and again on the reduce side); the order of values across map tasks is not defined.
    """

    def __init__(self, fn: Callable[[Any, Any], Any]):
        if not callable(fn):
            raise TypeError(f"fold() needs a function fn(a, b), got {type(fn).__name__} {fn!r}")
        self.fn = fn

    def __call__(self, key: Any, values: Iterable[Any]) -> list[tuple[Any, Any]]:
        fn, it = self.fn, iter(values)
        acc = next(it)
        for v in it:
            acc = fn(acc, v)
        return [(key, acc)]

    def __repr__(self) -> str:
        return f"fold({getattr(self.fn, '__qualname__', self.fn)!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fold) and other.fn == self.fn

    __hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable (as dataclasses)


class BatchMapper:
    """A mapper that takes a block of records (a list) and returns ``(key, value)`` pairs for all of
    them, like Spark's ``mapPartitions`` or Ray's ``map_batches``: one call per block instead of one
    per record, so the user's loop (e.g. in-mapper combining into a dict) runs without a generator
    per record. Called with one record, ``batch(record)`` runs ``fn([record])``, so it also works
    wherever a per-record mapper is expected (this is how a failing record is found in a block).
    The map task calls ``fn`` once per block of 1-16 MiB of records (a sixteenth of its budget;
    2 MiB when the step has no combiner, as there is nothing to fold across a block);
    a block of text or jsonl records fills across a packed split's small objects unless
    ``per_object`` (then a block never spans two objects; see
    :func:`lambda_handlers.context.block_sources`).
    """

    def __init__(self, fn: Callable[[list[Any]], Any], per_object: bool = False):
        if not callable(fn):
            raise TypeError(f"batch_mapper() needs a function fn(records), got {type(fn).__name__} {fn!r}")
        if not isinstance(per_object, bool):
            raise TypeError(f"batch_mapper(fn, per_object=...) takes True or False, got {per_object!r}")
        self.fn = fn
        self.per_object = per_object

    def __call__(self, record: Any) -> Any:
        return self.fn([record])

    def __repr__(self) -> str:
        per_object = ", per_object=True" if getattr(self, "per_object", False) else ""
        return f"batch_mapper({getattr(self.fn, '__qualname__', self.fn)!s}{per_object})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BatchMapper) and other.fn == self.fn
                and getattr(other, "per_object", False) == getattr(self, "per_object", False))

    __hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable (as dataclasses)


class RangePartitioner:
    """A total-order partitioner (Hadoop's ``TotalOrderPartitioner``): partition ``i`` holds the keys
    in ``[boundaries[i-1], boundaries[i])``, so parts concatenated in order are globally sorted.
    ``boundaries`` are ``n - 1`` sorted cut points (e.g. quantiles of a key sample); a job with more
    partitions than cuts + 1 leaves the last ones empty. The engine recognises it and partitions a
    whole batch with one sort instead of one call per record.
    """

    def __init__(self, boundaries: Iterable[Any]):
        cuts = list(boundaries)
        if any(b < a for a, b in pairwise(cuts)):
            raise ValueError("range partitioner boundaries must be sorted ascending")
        self.boundaries = cuts

    def __call__(self, key: Any, n: int) -> int:
        import bisect

        return min(bisect.bisect_right(self.boundaries, key), n - 1)

    def __repr__(self) -> str:
        return f"range_partitioner(<{len(self.boundaries)} boundaries>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangePartitioner) and other.boundaries == self.boundaries

    __hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable (as dataclasses)


class IdentityReducer:
    """The reducer that writes every value of a key unchanged, in the order the values arrive
    (Hadoop's ``IdentityReducer``): ``identity(key, values)`` yields ``(key, v)`` for each ``v``.
    The engine recognises it and writes whole groups without a call per key (a sort job)."""

    def __call__(self, key: Any, values: Iterable[Any]) -> list[tuple[Any, Any]]:
        return [(key, v) for v in values]

    def __repr__(self) -> str:
        return "identity"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdentityReducer)

    __hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable (as dataclasses)


IDENTITY = IdentityReducer()


@dataclass
class StepSpec:
    """One MapReduce step.

    ``mapper`` is ``fn(record) -> iterable of (key, value)``, or for step 0 of a job with named
    inputs a dict ``{input_name: fn}``. Steps after the first receive ``(key, value)`` tuples
    produced by the previous step's reducers; ``mapper=None`` there passes them on unchanged.
    ``reducer=None`` makes the step map-only (only allowed for the last step).
    ``partitioner(key, n) -> int`` defaults to a stable hash. The ``*_setup`` / ``*_teardown``
    hooks run once per task attempt of their phase (:mod:`lambda_handlers.context` ``state()``).
    ``sort_values`` gives the reducer each key's values in sorted order (``value_key(value)`` if
    set, else the shuffle's order of JSON values), streamed (an iterator, not a list).
    """

    mapper: Callable[..., Any] | dict[str, Callable[..., Any]] | None
    combiner: Callable[..., Any] | None = None
    reducer: Callable[..., Any] | None = None
    partitioner: Callable[[Any, int], int] | None = None
    num_reducers: int | None = None
    mapper_setup: Callable[[], Any] | None = None
    mapper_teardown: Callable[[], Any] | None = None
    reducer_setup: Callable[[], Any] | None = None
    reducer_teardown: Callable[[], Any] | None = None
    sort_values: bool = False  # a spec pickled before these fields existed reads the defaults
    value_key: Callable[[Any], Any] | None = None


@dataclass
class JobSpec:
    steps: list[StepSpec]
    name: str = "job"
    input_format: str = "text"  # text | csv | jsonl | whole (per input: see input_formats)
    input_formats: dict[str, str] = field(default_factory=dict)  # input name -> format
    output_format: str = "jsonl"  # jsonl | tsv | csv | parquet | text
    serializer: str = "json"  # json | pickle: how keys and values travel through the shuffle
    params: dict[str, Any] = field(default_factory=dict)  # job_params, rendered by Airflow
    python: tuple[int, int] = field(default_factory=lambda: (sys.version_info[0], sys.version_info[1]))
    version: int = SPEC_VERSION
    # Shipped source modules (``extra_modules``): {module name: [is_package, source]}. They are
    # made importable BEFORE the rest of the spec is unpickled (see __reduce__), so functions that
    # reference or import them work inside Lambda.
    modules: dict[str, list[Any]] = field(default_factory=dict)
    # Side files (``MapReduceJob(files=...)``): {name: {"size": bytes, "source": the path read at
    # submit}}; the bytes lie beside job.pkl (``protocol.job_file_key``), see ``context.job_file``.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Callable[[dict[str, list[Any]]], JobSpec], tuple[dict[str, list[Any]]],
                                  dict[str, Any]]:
        return (_new_spec, (dict(getattr(self, "modules", {}) or {}),), dict(self.__dict__))

    def check_compatible(self) -> None:
        """Refuse to run pickled code under another Python minor version (pickles are not portable)."""
        here = tuple(sys.version_info[:2])
        if tuple(self.python) != here:
            raise JobSpecError(
                f"job was pickled by Python {self.python[0]}.{self.python[1]} but this function runs "
                f"Python {here[0]}.{here[1]}; deploy the stack with runtime python{self.python[0]}."
                f"{self.python[1]}"
            )
        if self.version not in SUPPORTED_VERSIONS:
            raise JobSpecError(f"job spec version {self.version} is not supported (want one of "
                               f"{', '.join(map(str, SUPPORTED_VERSIONS))}); deploy the stack from this provider")
