"""Every option of a job and of a stack, declared once: its default, its unit and a one-line doc.

:class:`JobOptions` holds what one job may choose (reducers, split size, attempts, ...); it is
validated once, when it is built, with errors that name the option, travels in ``plan.json`` as a
plain dict and comes back typed in Lambda (``Plan.options``, :mod:`lambda_handlers.plan`). :class:`StackSettings`
holds what a deployment fixes for every job on the stack (function memory, timeout, layers, ...).

The hook, the runner and the planner take these objects; the ``smr run`` flags are generated from
the declarations (:func:`declared`), and the operator's keyword arguments take their defaults and
docs from them (``tests/test_options.py`` fails when an option has no argument or flag). Adding an
option is a field here, its operator argument, and its use. Standard library only: the data plane
imports this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lambda_handlers import protocol
from lambda_handlers.sizes import SizeError, parse_size

DRIVERS = ("worker", "lambda")
DECODE_ERRORS = ("strict", "replace", "surrogateescape")
ARCHITECTURES = ("x86_64", "arm64")
OPTIMIZE = ("time", "cost")


class PlanError(ValueError):
    """A job that cannot be planned as asked (too many tasks, bad settings)."""


class OptionError(PlanError):
    """An option given a value it cannot take; the message names the option."""


@dataclass(frozen=True)
class OptionInfo:
    """What the declaration says of one option: everything an interface needs to offer it."""

    name: str
    default: Any
    kind: type  # int, float, bool, str, or list (a repeatable value)
    doc: str
    unit: str = ""
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The ``smr run`` flag: ``num_reducers`` -> ``--num-reducers``."""
        return "--" + self.name.replace("_", "-")

    @property
    def help(self) -> str:
        """The doc with its default, the same words in the CLI's help and the operator's docstring."""
        if self.default in (None, (), []) or self.kind is bool:
            return self.doc
        return f"{self.doc} (default {self.default}{' ' + self.unit if self.unit else ''})"


def _option(default: Any, doc: str, kind: type, *, unit: str = "", choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"doc": doc, "kind": kind, "unit": unit, "choices": choices})


def declared(cls: type) -> tuple[OptionInfo, ...]:
    """The options a declaration class (:class:`JobOptions`, :class:`StackSettings`) holds, in order."""
    return tuple(OptionInfo(f.name, f.default, f.metadata["kind"], f.metadata["doc"], f.metadata["unit"],
                            f.metadata["choices"])
                 for f in dataclasses.fields(cls))


def _whole(name: str, value: Any, *, minimum: int, maximum: int | None = None,
           optional: bool = False) -> int | None:
    """A whole number option (a templated ``"4"`` is 4), checked against its range."""
    if optional and (value is None or value == ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OptionError(f"{name} must be a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise OptionError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = f", at most {maximum}" if maximum is not None else ""
        raise OptionError(f"{name} must be at least {minimum}{upper}, got {value!r}")
    return number


def _positive(name: str, value: Any) -> float | None:
    """An optional number above zero (a templated ``"0.10"`` is 0.1)."""
    if value is None or value == "":
        return None
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else float("nan")
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise OptionError(f"{name} must be a number above 0, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise OptionError(f"{name} must be true or false, got {value!r}")


def _check_encoding(name: Any) -> None:
    """An encoding records can be cut from at ``\\n`` bytes: one that decodes ASCII as ASCII."""
    import codecs

    ascii_bytes = bytes(range(128))
    try:
        ok = isinstance(name, str) and ascii_bytes.decode(codecs.lookup(name).name) == ascii_bytes.decode()
    except (LookupError, UnicodeDecodeError, ValueError):
        ok = False
    if not ok:
        raise OptionError(f"encoding must name a text encoding that keeps ASCII as it is (utf-8, latin-1, "
                          f"cp1252, ...), got {name!r}; convert UTF-16/32 data to UTF-8 first")


def _columns(value: Any) -> tuple[str, ...] | dict[str, tuple[str, ...]]:
    """``columns`` as a tuple of names, or ``{input_name: tuple of names}``."""
    def names(v: Any, what: str) -> tuple[str, ...]:
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not all(isinstance(c, str) and c for c in v):
            raise OptionError(f"{what} must be a list of column names, got {v!r}")
        return tuple(v)

    if value is None:
        return ()
    if isinstance(value, Mapping):
        return {str(k): names(v, f"columns[{k!r}]") for k, v in value.items()}
    return names(value, "columns")


Declared = TypeVar("Declared", "JobOptions", "StackSettings")


def declared_values(cls: type[Declared], source: object) -> Declared:
    """Build a declaration from the attributes of the same names on ``source`` (an operator, parsed
    ``smr run`` flags); an attribute left None takes the declared default."""
    values = {o.name: getattr(source, o.name) for o in declared(cls)}
    return cls(**{name: value for name, value in values.items() if value is not None})


@dataclass(frozen=True)
class JobOptions:
    """How one job runs: sizing, retries, speculation, where it is driven from, its output rules."""

    num_reducers: int | None = _option(
        None, "reduce tasks per step (default: from the input size)", int, unit="tasks")
    split_size: int | None = _option(
        None, "bytes of input per map task, an int or e.g. 64MiB (default: from the input size)", int,
        unit="bytes")
    max_concurrency: int | None = _option(
        None, "Invoke calls in flight during the fan-out, and the functions the planner sizes splits "
        "for (default: the account's unreserved concurrency)", int, unit="functions")
    max_attempts: int = _option(3, "attempts per map/reduce task before the job fails", int)
    max_bad_records: int = _option(
        0, "records a task may fail on (skipped and counted) before the task fails", int, unit="records")
    speculation: bool = _option(
        False, "launch one backup attempt for a straggling task; the first to finish wins", bool)
    speculation_threshold: float = _option(
        3.0, "a task straggles after this many times the median duration of its phase's finished tasks",
        float, unit="x median")
    deadline_grace_s: int = _option(
        30, "an attempt silent for the function timeout plus this is presumed killed by Lambda and "
        "retried", int, unit="s")
    driver: str = _option(
        "worker", "'worker': the caller fans the map tasks out; 'lambda': the stack's driver function "
        "does, the caller only waits", str, choices=DRIVERS)
    invoke_tree_threshold: int = _option(
        2000, "from this many map tasks on, the serverless driver fans out through invoker functions",
        int, unit="map tasks")
    create_table: bool = _option(
        False, "create a dynamodb:// output table on first use (on-demand billing)", bool)
    overwrite: bool = _option(
        False, "replace an output that already holds a committed result (_SUCCESS) instead of failing",
        bool)
    encoding: str = _option(
        "utf-8", "character encoding of text, csv and jsonl inputs (one that keeps ASCII as it is: "
        "utf-8, latin-1, cp1252, ...)", str)
    errors: str = _option(
        "strict", "what invalid bytes in text, csv and jsonl inputs do: 'strict' makes their record a "
        "bad record (see max_bad_records), 'replace' decodes them as U+FFFD, 'surrogateescape' keeps "
        "them as lone surrogates", str, choices=DECODE_ERRORS)
    columns: tuple[str, ...] | Mapping[str, tuple[str, ...]] = _option(
        (), "Parquet inputs: read only these columns, of every Parquet input (the operator also takes "
        "{input_name: [...]}, per named input)", list)
    max_running_tasks: int | None = _option(
        None, "functions of this job running at once (map and reduce tasks, retries and backups "
        "included), admitted by the coordinator (default: no cap)", int, unit="functions")
    retry_on_user_errors: bool = _option(
        True, "retry a task whose job code raised (as Hadoop does); off: such an error fails the job "
        "on its first attempt, with the job's traceback", bool)
    optimize: str = _option(
        "time", "what the planner sizes the job for when it gives no split_size/num_reducers: 'time' "
        "(its sizing rules, or the cost model's faster-and-no-dearer plan at scale) or 'cost' (the "
        "cheapest plan the cost model finds)", str, choices=OPTIMIZE)
    max_cost_usd: float | None = _option(
        None, "most the job may cost (AWS list prices): the planner stays within it, a job estimated "
        "above it is refused before it starts, and a running job whose tasks' measured spend passes it "
        "is stopped (default: no limit)", float, unit="USD")
    deadline_s: float | None = _option(
        None, "wall seconds the planner aims to finish within, at the least cost (a wish, not a limit: "
        "the job is not stopped; default: none)", float, unit="s")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "num_reducers", _whole("num_reducers", self.num_reducers, minimum=1,
                                          maximum=protocol.MAX_TASKS, optional=True))
        try:
            set_(self, "split_size", parse_size(self.split_size or None, name="split_size"))
        except SizeError as exc:
            raise OptionError(str(exc)) from None
        set_(self, "max_concurrency", _whole("max_concurrency", self.max_concurrency, minimum=1,
                                             optional=True))
        set_(self, "max_attempts", _whole("max_attempts", self.max_attempts, minimum=1,
                                          maximum=protocol.MAX_ATTEMPTS))
        set_(self, "max_bad_records", _whole("max_bad_records", self.max_bad_records, minimum=0))
        set_(self, "deadline_grace_s", _whole("deadline_grace_s", self.deadline_grace_s, minimum=0))
        set_(self, "invoke_tree_threshold", _whole("invoke_tree_threshold", self.invoke_tree_threshold,
                                                   minimum=1))
        set_(self, "max_running_tasks", _whole("max_running_tasks", self.max_running_tasks, minimum=1,
                                               maximum=protocol.MAX_SLOTS, optional=True))
        for name in ("speculation", "create_table", "overwrite", "retry_on_user_errors"):
            set_(self, name, _flag(name, getattr(self, name)))
        try:
            threshold = float(self.speculation_threshold)
        except (TypeError, ValueError):
            threshold = 0.0
        if not threshold > 1:
            raise OptionError("speculation_threshold must be > 1 (a multiple of the median task time), "
                              f"got {self.speculation_threshold!r}")
        set_(self, "speculation_threshold", threshold)
        if self.driver not in DRIVERS:
            raise OptionError(f"driver must be 'worker' or 'lambda', got {self.driver!r}")
        _check_encoding(self.encoding)
        if self.errors not in DECODE_ERRORS:
            raise OptionError(f"errors must be one of {', '.join(DECODE_ERRORS)}, got {self.errors!r}")
        set_(self, "columns", _columns(self.columns))
        if self.optimize not in OPTIMIZE:
            raise OptionError(f"optimize must be one of {', '.join(OPTIMIZE)}, got {self.optimize!r}")
        for name in ("max_cost_usd", "deadline_s"):
            set_(self, name, _positive(name, getattr(self, name)))

    def columns_for(self, input_name: str) -> tuple[str, ...] | None:
        """The Parquet columns to read of input ``input_name``; None: all of them."""
        cols = self.columns
        if isinstance(cols, Mapping):
            return cols.get(input_name) or None
        return cols or None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> JobOptions:
        """Options from a dict (``plan.json``, a planning request); an unknown name is an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise OptionError(f"unknown job option {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(names))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, as ``plan.json`` stores it."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StackSettings:
    """What a deployment fixes for every job on the stack (CloudFormation properties)."""

    memory_mb: int = _option(1024, "Lambda memory of the stack's functions", int, unit="MB")
    timeout_s: int = _option(300, "Lambda timeout of the stack's functions, at most 900", int, unit="s")
    layers: tuple[str, ...] = _option((), "Lambda layer version ARNs every function gets", list)
    requirements: tuple[str, ...] = _option(
        (), "pip requirements (wheels for Lambda's platform, native code included) built into a "
        "layer every function gets", list)
    log_retention_days: int = _option(14, "retention of the functions' log groups", int, unit="days")
    jobs_expire_days: int = _option(
        7, "job state under jobs/ in the work bucket expires after this", int, unit="days")
    architecture: str = _option(
        "x86_64", "instruction set of the stack's functions (arm64 costs a fifth less per GB-s)", str,
        choices=ARCHITECTURES)
    mapper_memory_mb: int | None = _option(
        None, "Lambda memory of the mapper function (default: memory_mb)", int, unit="MB")
    reducer_memory_mb: int | None = _option(
        None, "Lambda memory of the reducer function (default: memory_mb)", int, unit="MB")
    reserved_concurrency: int = _option(
        0, "Lambda ReservedConcurrentExecutions of each of the stack's functions: guaranteed to them "
        "and their cap (0: none, they share the account's unreserved concurrency)", int,
        unit="executions")
    stack_max_running_tasks: int = _option(
        0, "functions all jobs of the stack run at once, shared fairly among the jobs waiting for "
        "them (0: no stack-wide budget)", int, unit="functions")
    kms_key_arn: str | None = _option(
        None, "customer-managed KMS key (ARN) encrypting the work bucket, the functions' log groups "
        "and their environment (default: AWS-managed keys)", str)
    subnet_ids: tuple[str, ...] = _option(
        (), "VPC subnets the functions run in, with security_group_ids (the VPC needs an S3 gateway "
        "endpoint)", list)
    security_group_ids: tuple[str, ...] = _option(
        (), "VPC security groups of the functions, with subnet_ids", list)
    on_failure_destination: str | None = _option(
        None, "SQS queue or SNS topic ARN receiving the function events Lambda gives up on "
        "(default: none)", str)

    def __post_init__(self) -> None:
        # Whole numbers and lists here; the ranges AWS accepts are checked where the template is
        # rendered (``deploy.template.validate_settings``), before any AWS call.
        set_ = object.__setattr__
        for name in ("memory_mb", "timeout_s", "log_retention_days", "jobs_expire_days",
                     "reserved_concurrency", "stack_max_running_tasks"):
            set_(self, name, _whole(name, getattr(self, name), minimum=0))
        for name in ("mapper_memory_mb", "reducer_memory_mb"):
            set_(self, name, _whole(name, getattr(self, name), minimum=0, optional=True))
        for name in ("kms_key_arn", "on_failure_destination"):
            set_(self, name, getattr(self, name) or None)
        for name in ("layers", "requirements", "subnet_ids", "security_group_ids"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise OptionError(f"{name} must be a list of strings, got {value!r}")
            set_(self, name, tuple(value))
        if self.architecture not in ARCHITECTURES:
            raise OptionError(f"architecture must be 'x86_64' or 'arm64', got {self.architecture!r}")


@dataclass(frozen=True)
class TaskLimits:
    """What a job's tasks run within, fixed at plan time from the deployment the job pins."""

    #: the map phase's function memory (and every other function's unless sized apart)
    memory_mb: int = 1024
    task_timeout_s: int = 300
    #: what a task may hold in memory for sorting and grouping: a quarter of the function's memory
    memory_budget_bytes: int = 0
    #: the stack's ``max_running_tasks`` (stack-wide slots this job competes for; 0: none)
    stack_max_running_tasks: int = 0

    #: the reduce phase's function memory and budget (the reducer function may be sized apart;
    #: 0: the same as the map phase's)
    reducer_memory_mb: int = 0
    reducer_memory_budget_bytes: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not self.memory_budget_bytes:
            set_(self, "memory_budget_bytes", self.memory_mb * 1024**2 // 4)
        if not self.reducer_memory_mb:
            set_(self, "reducer_memory_mb", self.memory_mb)
        if not self.reducer_memory_budget_bytes:
            set_(self, "reducer_memory_budget_bytes", self.reducer_memory_mb * 1024**2 // 4
                 if self.reducer_memory_mb != self.memory_mb else self.memory_budget_bytes)

    def phase_memory_mb(self, phase: str) -> int:
        """The memory of the function running ``phase`` (``"map"`` or ``"reduce"``)."""
        return self.reducer_memory_mb if phase == protocol.REDUCE else self.memory_mb

    def budget_bytes(self, phase: str) -> int:
        """What a task of ``phase`` may hold in memory for sorting and grouping."""
        return self.reducer_memory_budget_bytes if phase == protocol.REDUCE else self.memory_budget_bytes

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)
