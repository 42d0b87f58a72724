"""Run a job inside this process: ``smr run --inline`` and :meth:`MapReduceJob.run_inline`.

The job runs through the code it runs through on a stack, without Lambda, AWS or a local stack:
:class:`~airflow_provider_smr.engine.runner.JobRunner` checks, plans and submits it, and the Lambda
handlers of :mod:`lambda_handlers` map, combine, partition, shuffle, reduce and commit it as the
coordinator decides, all against an in-memory S3 (:class:`~airflow_provider_smr.engine.memory_s3.MemoryS3`)
through :func:`lambda_handlers.runtime.in_process`. Invokes are queued and each runs to its end,
in task order, in the calling thread: a ``breakpoint()`` in a mapper stops there, and an exception
in the job's code reaches the caller as that exception, with its own traceback and a note naming
the task and record, without retries. The job's functions are the caller's own objects (not
unpickled copies), though the job is still pickled once to check it could travel to Lambda.

What the tasks hold in memory is bounded as on Lambda, by the functions' memory (``memory_mb``),
so they spill to disk where they would there; the plan is the one ``smr run --local`` makes for
the same options, so the parts are the same bytes.
"""

from __future__ import annotations

import contextvars
import functools
import heapq
import itertools
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_smr.engine.output_folder import check_output_folder
from lambda_handlers import coordinator, driver, mapper, protocol, reducer, runtime
from lambda_handlers.io import dynamodb
from lambda_handlers.options import JobOptions, StackSettings
from lambda_handlers.s3uri import S3Uri, is_s3_uri

if TYPE_CHECKING:
    from airflow_provider_smr.job import MapReduceJob

WORK_BUCKET = "smr-inline-work"
STACK_NAME = "smr-inline"
FUNCTIONS = {role: f"{STACK_NAME}-{role}" for role in ("mapper", "reducer", "coordinator", "driver")}
_HANDLERS = {FUNCTIONS["mapper"]: mapper.handler, FUNCTIONS["reducer"]: reducer.handler,
             FUNCTIONS["coordinator"]: coordinator.handler, FUNCTIONS["driver"]: driver.handler}
_ENV = {protocol.ENV_WORK_BUCKET: WORK_BUCKET, protocol.ENV_STACK_NAME: STACK_NAME,
        protocol.ENV_MAPPER_FUNCTION: FUNCTIONS["mapper"],
        protocol.ENV_REDUCER_FUNCTION: FUNCTIONS["reducer"],
        protocol.ENV_COORDINATOR_FUNCTION: FUNCTIONS["coordinator"],
        protocol.ENV_DRIVER_FUNCTION: FUNCTIONS["driver"]}
#: the stack settings an inline run uses: they size the tasks' memory budgets and the plan
SETTINGS = ("memory_mb", "timeout_s", "mapper_memory_mb", "reducer_memory_mb")
#: the attribute an exception raised by the job's code in an inline run carries: its task
TASK_ATTRIBUTE = "smr_inline_task"


class InlineError(ValueError):
    """An inline run asked for something it cannot do (an S3 input, an unknown option)."""


class InlineJobError(RuntimeError):
    """An inline run ended without a committed result (e.g. its commit was refused)."""


@dataclass
class InlineRun:
    """What an inline run gives: the result dict (as ``smr run`` prints it), the output records
    read back from the parts, and the local files written (parts and ``_SUCCESS``)."""

    result: dict[str, Any]
    records: list[Any]
    files: list[str] = field(default_factory=list)


def run_inline(job: MapReduceJob | str, input: Any, output: str | os.PathLike[str] | None = None, *,
               job_params: Mapping[str, Any] | None = None, job_id: str | None = None,
               options: JobOptions | None = None, settings: StackSettings | None = None,
               overwrite_name: str = "overwrite=True", **kwargs: Any) -> InlineRun:
    """Run ``job`` in this process (see the module docstring).

    :param input: a local file or folder, ``bytes`` (one input object's content), a list of those,
        or a dict of named inputs.
    :param output: a local folder for the parts and ``_SUCCESS``, or None (records only).
    :param overwrite_name: how the caller spells overwrite, for the error when ``output`` holds a
        committed result (``_SUCCESS``) and overwrite is off.
    :param kwargs: job options and the stack settings of :data:`SETTINGS`, by name, over
        ``options`` and ``settings``.
    """
    from airflow_provider_smr.engine.aws import AwsClients
    from airflow_provider_smr.engine.commands import LOCAL_BUCKET
    from airflow_provider_smr.engine.memory_s3 import MemoryS3
    from airflow_provider_smr.engine.runner import JobRunner, new_job_id
    from airflow_provider_smr.job import load_job

    job = load_job(job)
    overwrite = bool(kwargs.get("overwrite", (options or JobOptions()).overwrite))  # the folder's
    options, settings = _options(options, settings, kwargs)
    folder = None if output is None else Path(output).expanduser()
    if folder is not None and (is_s3_uri(str(output)) or dynamodb.is_dynamodb_uri(str(output))):
        raise InlineError(f"output {str(output)!r}: an inline run writes to a local folder; run on "
                          "the local stack (--local) or a deployed stack to write to S3 or DynamoDB")
    if folder is not None:  # a committed folder is refused before anything runs
        check_output_folder(folder, overwrite=overwrite, overwrite_name=overwrite_name)
    s3, lambda_ = MemoryS3(), _Invokes()
    for bucket in (LOCAL_BUCKET, WORK_BUCKET):
        s3.create_bucket(Bucket=bucket)
    named = _stage_inputs(s3, input)
    output_uri = str(S3Uri(LOCAL_BUCKET, f"outputs/{(folder.name if folder else '') or 'output'}/"))
    clients = AwsClients(client_factory=lambda service: {"s3": s3, "lambda": lambda_}.get(service)
                         or _Unavailable(service))
    runner = JobRunner(clients, _stack(settings))
    job_id = job_id or new_job_id(job.name)
    world = runtime.InProcess(clients={"s3": s3}, env=_ENV, invoke=lambda_.push,
                              jobs={job_id: job.to_spec(dict(job_params or {}))})
    submit = functools.partial(runner.submit, job, input=named, output=output_uri, options=options,
                               job_params=dict(job_params or {}), job_id=job_id)
    # in a copy of the caller's context: the tasks' context variables do not stay behind in it
    result = contextvars.copy_context().run(_run, runner, world, lambda_, submit)
    files: list[str] = []
    if folder is not None:
        from airflow_provider_smr.engine.commands import download_output

        files = download_output(s3, result, folder, overwrite=overwrite, overwrite_name=overwrite_name)
        result = {**result, "local_output": str(folder)}
    return InlineRun(result, read_records(s3, result, job.output_format), files)


def _run(runner: Any, world: runtime.InProcess, invokes: _Invokes,
         submit: Callable[[], str]) -> dict[str, Any]:
    """Submit the job, run every invoke it leads to, and return the result dict."""
    with runtime.in_process(world):
        job_id = submit()
        while (item := invokes.pop()) is not None:
            name, event = item
            _call(_HANDLERS[name.split(":", 1)[0]], event)
        status = runner.status(job_id)
        if status.state != protocol.SUCCEEDED:
            raise InlineJobError(f"job {job_id} {status.describe()}"
                                 + (f": {status.error}" if status.error else ""))
        return dict(runner.result(job_id))


def _call(handler: Any, event: dict[str, Any]) -> None:
    """Run one invoke to its end; an exception of the job's code is raised as it is."""
    try:
        handler(event)
        return
    except Exception as exc:  # noqa: BLE001 - sorted out below, outside this block (no chaining)
        error: BaseException = exc
    raise _users_exception(error, event)


def _users_exception(exc: BaseException, event: dict[str, Any]) -> BaseException:
    """The job's own exception behind a task's error (the error's cause), with a note naming the
    task, where it failed and on what record; ``exc`` itself when the job's code raised nothing
    (e.g. a mapper that returned something other than pairs). An exception that is not one of
    this project's carries :data:`TASK_ATTRIBUTE` (the CLI shows its whole traceback)."""
    task = f"{event.get('kind')} task {event.get('task')} of step {event.get('step')}"
    cause = exc
    while isinstance(cause, runtime.TaskError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if cause is not exc:
        first = cause.__context__  # the same failure, met before the record was mapped again alone
        if first is not None and type(first) is type(cause) and first.args == cause.args:
            cause.__suppress_context__ = True
        preview = getattr(exc, "record_preview", None)
        note = f"(smr inline run, {task}: {exc}" + (f"; record: {preview}" if preview else "") + ")"
        # BaseException.add_note (3.11+) appends to __notes__, which tracebacks print
        cause.__notes__ = [*getattr(cause, "__notes__", ()), note]  # type: ignore[attr-defined]
    if type(cause).__module__.split(".")[0] not in ("lambda_handlers", "airflow_provider_smr"):
        setattr(cause, TASK_ATTRIBUTE, task)
    return cause


def _options(options: JobOptions | None, settings: StackSettings | None,
             kwargs: dict[str, Any]) -> tuple[JobOptions, StackSettings]:
    """The run's job options and stack settings: ``kwargs`` by name over ``options`` and
    ``settings``. The output in memory is always fresh (as --local's, nothing committed there to
    protect: ``overwrite``), and this process drives the job (``driver="worker"``)."""
    from dataclasses import replace

    job_names = {f.name for f in fields(JobOptions)}
    unknown = sorted(set(kwargs) - job_names - set(SETTINGS))
    if unknown:
        raise InlineError(f"unknown option {', '.join(map(repr, unknown))} for an inline run; it takes "
                          f"the job options ({', '.join(sorted(job_names))}) and {', '.join(SETTINGS)}")
    options = replace(options or JobOptions(), **{k: v for k, v in kwargs.items() if k in job_names})
    settings = replace(settings or StackSettings(), **{k: v for k, v in kwargs.items() if k in SETTINGS})
    return replace(options, overwrite=True, driver="worker"), settings


def _stack(settings: StackSettings) -> Any:
    """The stack an inline run plans for: the functions' memory and timeout of ``settings``,
    refused as a deploy refuses them (e.g. memory_mb below Lambda's 128)."""
    from airflow_provider_smr.deploy.stack import StackInfo
    from airflow_provider_smr.deploy.template import TemplateSettings

    TemplateSettings(stack_name=STACK_NAME, artifacts_bucket=WORK_BUCKET, code_key="inline",
                     code_sha256="", memory_mb=settings.memory_mb, timeout_s=settings.timeout_s,
                     mapper_memory_mb=settings.mapper_memory_mb,
                     reducer_memory_mb=settings.reducer_memory_mb, architecture=settings.architecture)
    return StackInfo(stack_name=STACK_NAME, region="us-east-1", work_bucket=WORK_BUCKET,
                     functions=dict(FUNCTIONS), runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
                     memory_mb=settings.memory_mb, timeout_s=settings.timeout_s, code_hash="inline",
                     architecture=settings.architecture,
                     mapper_memory_mb=settings.mapper_memory_mb or 0,
                     reducer_memory_mb=settings.reducer_memory_mb or 0)


def _stage_inputs(s3: Any, spec: Any) -> Any:
    """Put the inputs in the in-memory store where ``smr run --local`` uploads them (so
    ``input_uri()`` names the same objects); ``bytes`` become an object named ``input``."""
    from airflow_provider_smr.engine.commands import upload_local_inputs

    with tempfile.TemporaryDirectory(prefix="smr-inline-") as tmp:
        counter = itertools.count()

        def local(value: Any, name: str | None) -> str:
            if isinstance(value, (bytes, bytearray, memoryview)):
                path = Path(tmp, str(next(counter)), "input")
                path.parent.mkdir()
                path.write_bytes(bytes(value))
                return str(path)
            text = os.fspath(value)
            if is_s3_uri(text) or dynamodb.is_dynamodb_uri(text):
                label = f"input {text!r}" if name is None else f"input {name!r} ({text})"
                raise InlineError(f"{label}: an inline run reads local files (or bytes); run on the "
                                  "local stack (--local) or a deployed stack to read S3 or DynamoDB")
            return text

        if isinstance(spec, Mapping):
            spec = {k: [local(v, k) for v in vs] if isinstance(vs, (list, tuple)) else local(vs, k)
                    for k, vs in spec.items()}
        elif isinstance(spec, (list, tuple)):
            spec = [local(v, None) for v in spec]
        else:
            spec = local(spec, None)
        return upload_local_inputs(s3, spec)


def read_records(s3: Any, result: Mapping[str, Any], fmt: str) -> list[Any]:
    """The output records of a result's parts, in order: ``(key, value)`` tuples for jsonl and tsv
    (JSON types kept), tuples of strings for csv, dicts (rows) for parquet, and for any other
    format the lines of text."""
    records: list[Any] = []
    for uri in result.get("parts", []):
        location = S3Uri.parse(uri, what="part")
        data = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        records += _decode(fmt, data)
    return records


def _decode(fmt: str, data: bytes) -> list[Any]:
    if fmt == "jsonl":
        return [(r["key"], r["value"]) for r in map(json.loads, data.decode().splitlines())]
    if fmt == "tsv":
        return [tuple(json.loads(x) for x in line.split("\t", 1)) for line in data.decode().splitlines()]
    if fmt == "csv":
        import csv
        import io

        return [tuple(row) for row in csv.reader(io.StringIO(data.decode()))]
    if fmt == "parquet":
        import io

        import pyarrow.parquet as pq

        rows: list[Any] = pq.read_table(io.BytesIO(data)).to_pylist()
        return rows
    return data.decode().splitlines()


class _Invokes:
    """The Lambda client of an inline run: async invokes are queued and taken in task order (a
    phase's tasks by number, then the coordinator calls they made); ``GetAccountSettings`` answers
    what the local stack does, so the planner sizes the job as for ``smr run --local``."""

    def __init__(self) -> None:
        self._queue: list[tuple[tuple[int, ...], str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._seq = itertools.count()

    def push(self, function_name: str, event: dict[str, Any]) -> None:
        event = json.loads(json.dumps(event))  # a payload is JSON, as for Lambda
        task = event.get("kind") in (protocol.EVENT_MAP, protocol.EVENT_REDUCE)
        order = (0 if task else 1, event.get("step") or 0, event.get("task") or 0,
                 event.get("attempt") or 0, next(self._seq))
        with self._lock:
            heapq.heappush(self._queue, (order, function_name, event))

    def pop(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            if not self._queue:
                return None
            _, name, event = heapq.heappop(self._queue)
        return name, event

    def invoke(self, *, FunctionName: str, Payload: bytes | str = b"{}", **_: Any) -> dict[str, Any]:
        from airflow_provider_smr.engine.memory_s3 import _streaming

        self.push(FunctionName, json.loads(Payload))
        return {"StatusCode": 202, "Payload": _streaming(b"")}

    def get_account_settings(self) -> dict[str, Any]:
        from airflow_provider_smr.local.server import default_workers_per_function
        from airflow_provider_smr.local.stack import LocalStack

        cap = LocalStack().max_concurrency
        return {"AccountLimit": {"ConcurrentExecutions": cap,
                                 "UnreservedConcurrentExecutions": min(cap, default_workers_per_function())}}


class _Unavailable:
    """A client of a service an inline run does not have: any call says so."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        raise InlineError(f"an inline run has no {self.service} (called {name}); run on the local "
                          "stack (--local) or a deployed stack")
