"""Handler plumbing shared by every function: clients, job loading, markers, invokes, metrics.

Everything here is per warm container: boto3 clients (with a connection pool large enough for the
reducer's parallel ranged GETs; on a stack that names its role, made with the STS session of the
task's job, see :func:`enter_job`), the unpickled job and its plan (cached per job id), and the
per-task S3 request counter that ends up in the done marker. Tests replace the Lambda invoke with
:func:`set_invoker` to run the whole handler chain in-process. :func:`in_process` runs the handlers
without Lambda or AWS (``smr run --inline``): clients, function environment and invokes come from an
:class:`InProcess`, and a task's exception reaches the caller instead of becoming an error marker.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import os
import random
import resource
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from lambda_handlers import clock, context, grants, jobfiles, protocol
from lambda_handlers.aws_errors import error_code, is_not_found, is_precondition_failed
from lambda_handlers.plan import Plan, Split, chunk_splits

if TYPE_CHECKING:
    from lambda_handlers.jobspec import JobSpec

log = logging.getLogger("smr")

MAX_POOL_CONNECTIONS = 64
PREVIEW_CHARS = 200
_JOB_CACHE_SIZE = 8

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_jobs: dict[tuple[str, str], JobSpec] = {}
_plans: dict[tuple[str, str], Plan] = {}
_chunks: dict[tuple[str, str], tuple[Split, ...]] = {}
_invoker: Callable[[str, dict[str, Any]], None] | None = None

_K = TypeVar("_K")
_V = TypeVar("_V")

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MAX_MMAP_THRESHOLD = 32 * 1024**2  # glibc's own ceiling for it (64-bit)


def keep_heap(memory_mb: int) -> tuple[int, int] | None:
    """Let a warm container's later tasks reuse the memory its earlier ones had (glibc only).

    glibc serves a block over its mmap threshold (128 KiB at first, rising to the largest such
    block freed) with a mapping of its own, and returns the heap's free top once it is over twice
    that threshold: a task's big buffers (its split, its map output, the parts it reads and
    writes) then cost fresh zeroed pages, a page fault each, in every task of the container. Here
    the threshold starts at 1/32 of the function's memory (at most glibc's 32 MiB) and the heap
    keeps up to a quarter of it. Bench, 4 warm workers: a sort's workers took 3.83 -> 3.52 CPU-s,
    an AMPLab Q2's 2.66 -> 2.41; a worker's peak RSS rose by 40-60 MB.

    :return: ``(mmap threshold, trim threshold)`` set (:func:`heap_thresholds`), or None where
        the C library has no mallopt or the memory is unknown.
    """
    thresholds = heap_thresholds(memory_mb)
    if thresholds is None:
        return None
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mmap_at, trim_at = thresholds
    if not (mallopt(_M_MMAP_THRESHOLD, mmap_at) and mallopt(_M_TRIM_THRESHOLD, trim_at)):
        return None
    return thresholds


def heap_thresholds(memory_mb: int) -> tuple[int, int] | None:
    """``(mmap threshold, trim threshold)`` in bytes for a function of ``memory_mb`` (pure; None
    when it is unknown): 1/32 of the memory (at most glibc's 32 MiB ceiling) and a quarter of it."""
    if memory_mb <= 0:
        return None
    memory = memory_mb * 1024**2
    return min(MAX_MMAP_THRESHOLD, memory // 32), memory // 4


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # a Lambda container (or the local stack's worker)
    with contextlib.suppress(ValueError):
        keep_heap(int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0))


@dataclass(frozen=True)
class InProcess:
    """Where the handlers' outside world is in a run inside this process (no Lambda, no AWS).

    :param clients: the client per service (an in-memory S3); a service not here is an error.
    :param env: the function environment (work bucket, function names) the handlers read.
    :param invoke: ``invoke(function_name, event)`` in place of Lambda's async invoke.
    :param jobs: the job spec per job id, used as it is instead of unpickling ``job.pkl`` (the
        caller's own functions run, so its breakpoints, mocks and module state apply).
    """

    clients: Mapping[str, Any]
    env: Mapping[str, str]
    invoke: Callable[[str, dict[str, Any]], None]
    jobs: Mapping[str, JobSpec] = field(default_factory=dict)


_in_process: contextvars.ContextVar[InProcess | None] = contextvars.ContextVar("smr_in_process",
                                                                               default=None)


@contextmanager
def in_process(world: InProcess) -> Iterator[None]:
    """Run the handlers called inside this block (and threads that copy its context) in ``world``."""
    token = _in_process.set(world)
    try:
        yield
    finally:
        _in_process.reset(token)


def _env(name: str) -> str | None:
    """A variable of the function's environment (the in-process run's, inside one)."""
    world = _in_process.get()
    return (world.env if world is not None else os.environ).get(name)


class ObjectChangedError(RuntimeError):
    """An input object's ETag no longer matches the one listed when the job was planned."""


class TaskFailedError(RuntimeError):
    """A task cannot finish; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# Clients


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def client(service: str) -> Any:
    """The boto3 client for ``service`` with this task's credentials (honours ``AWS_ENDPOINT_URL``):
    its job's STS session (see :func:`enter_job`) on a stack that names its role, else the
    function's own. Cached per job per container.

    ``Any``: boto3 clients are untyped here (no stubs in the Lambda package).
    """
    world = _in_process.get()
    if world is not None:
        if service not in world.clients:
            raise TaskFailedError(f"{service} is not available in a run inside this process")
        return world.clients[service]
    job = _job.get()
    if job is None or not os.environ.get(protocol.ENV_ROLE_ARN):
        return _role_client(service)
    return _session_client(job, service)


def _role_client(service: str) -> Any:
    c = _clients.get(service)
    if c is not None:
        return c
    with _lock:
        c = _clients.get(service)
        if c is None:
            c = _clients[service] = _make_client(service)
    return c


def _make_client(service: str, **credentials: str) -> Any:
    global _boto_session
    from botocore.config import Config

    # S3 bodies are not SHA-256 signed: over HTTPS with a CRC32 checksum that is botocore's
    # default for uploads already; over a plain-HTTP endpoint (the local stack) botocore
    # would otherwise hash every shuffle and output byte once more.
    cfg = Config(max_pool_connections=MAX_POOL_CONNECTIONS,
                 retries={"max_attempts": 8, "mode": "standard"},
                 connect_timeout=10, read_timeout=120,
                 s3={"payload_signing_enabled": False})
    if _boto_session is None:  # one session: its loaded service models serve every job's clients
        _boto_session = clock.fast_timestamp_session()
    c = _boto_session.client(service, region_name=_region(), config=cfg, **credentials)
    if service == "s3":
        c.meta.events.register("before-call.s3", _count_request)
    # Every client of a service shares one connection pool (requests are signed one by one, so a
    # connection is not tied to credentials): a job's session adds no connections to the endpoint.
    endpoint = getattr(c, "_endpoint", None)
    if endpoint is not None and hasattr(endpoint, "http_session"):
        endpoint.http_session = _http_sessions.setdefault(service, endpoint.http_session)
    return c


# ---------------------------------------------------------------------------------------------
# Per-job credentials: each task assumes the functions' role with a session policy that allows only
# its own job's prefixes (lambda_handlers.grants), so one job's tasks cannot touch another's data.


SESSION_REFRESH_S = 300  # assume again when the session has less than this left
_job: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("smr_job", default=None)


@dataclass
class _JobSession:
    expires: float
    credentials: dict[str, str]
    clients: dict[str, Any] = field(default_factory=dict)


_sessions: dict[str, _JobSession] = {}
_boto_session: Any = None
_http_sessions: dict[str, Any] = {}


def enter_job(bucket: str, job_id: str) -> None:
    """From now on (in this context), :func:`client` works with ``job_id``'s session."""
    _job.set((bucket, job_id))


@contextlib.contextmanager
def as_stack() -> Iterator[None]:
    """Use the function's own credentials for a call that is not this job's (poking another job)."""
    token = _job.set(None)
    try:
        yield
    finally:
        _job.reset(token)


def _session_client(job: tuple[str, str], service: str) -> Any:
    bucket, job_id = job
    session = _sessions.get(job_id)
    if session is None or session.expires - time.time() < SESSION_REFRESH_S:
        session = _remember(_sessions, job_id, _assume(bucket, job_id))
    c = session.clients.get(service)
    if c is None:
        with _lock:
            c = session.clients.get(service)
            if c is None:
                c = session.clients[service] = _make_client(service, **session.credentials)
    return c


def job_grants(bucket: str, job_id: str) -> grants.JobGrants:
    """What ``job_id`` may touch, from its plan (or, before planning, its planning request)."""
    from lambda_handlers.io import dynamodb
    from lambda_handlers.plan import PlanningRequest

    with as_stack():
        try:
            plan = load_plan(bucket, job_id)
            inputs = {name: list(i.uris) for name, i in plan.inputs.items()}
            output, budget = plan.output.uri, bool(plan.limits.stack_max_running_tasks)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            try:
                req = PlanningRequest.from_json(get_json(bucket, protocol.planning_request_key(job_id)))
            except Exception as exc2:
                if not is_not_found(exc2):
                    raise
                return grants.JobGrants(job_id, bucket)  # an unknown job: its own keys only
            inputs, output, budget = dict(req.inputs), req.output, bool(req.limits.stack_max_running_tasks)
    uris = [u for group in inputs.values() for u in group] + [output]
    tables = [dynamodb.parse_uri(u)["table"] for u in uris if dynamodb.is_dynamodb_uri(u)]
    table = dynamodb.parse_uri(output)["table"] if dynamodb.is_dynamodb_uri(output) else None
    return grants.JobGrants.of(job_id, bucket, inputs, output, tables, stack_budget=budget, output_table=table)


def _assume(bucket: str, job_id: str) -> _JobSession:
    role_arn = os.environ[protocol.ENV_ROLE_ARN]
    policy = grants.session_policy(job_grants(bucket, job_id), _region(), role_arn.split(":")[4])
    name = f"smr-{job_id}"
    if len(name) > 64:  # RoleSessionName's limit; a job id's characters are all allowed in it
        name = f"{name[:55]}-{hashlib.sha256(job_id.encode()).hexdigest()[:8]}"
    creds = _role_client("sts").assume_role(RoleArn=role_arn, RoleSessionName=name, Policy=policy,
                                            DurationSeconds=3600)["Credentials"]
    return _JobSession(expires=creds["Expiration"].timestamp(), credentials={
        "aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"]})


def s3() -> Any:
    return client("s3")


def reset() -> None:
    """Forget cached clients, jobs and plans (tests change the endpoint between runs)."""
    global _boto_session
    with _lock:
        _boto_session = None
        _http_sessions.clear()
        _clients.clear()
        _sessions.clear()
        _jobs.clear()
        _plans.clear()
        _chunks.clear()


def work_bucket() -> str:
    bucket = _env(protocol.ENV_WORK_BUCKET)
    if bucket is None:
        raise TaskFailedError(f"environment variable {protocol.ENV_WORK_BUCKET} is not set")
    return bucket


# ---------------------------------------------------------------------------------------------
# Request counting: one counter per task, carried in a context variable so that threads started
# with contextvars.copy_context() (the reducer's parallel GETs) count into the same task.


@dataclass
class TaskMetrics:
    requests: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_in(self, n: int) -> None:
        with self.lock:
            self.bytes_in += n

    def add_out(self, n: int) -> None:
        with self.lock:
            self.bytes_out += n


_metrics: contextvars.ContextVar[TaskMetrics | None] = contextvars.ContextVar("smr_metrics",
                                                                               default=None)


def _count_request(model: Any = None, **_kw: Any) -> None:  # botocore's OperationModel, untyped
    m = _metrics.get()
    if m is not None and model is not None:
        with m.lock:
            m.requests[model.name] += 1


def start_metrics() -> TaskMetrics:
    m = TaskMetrics()
    _metrics.set(m)
    return m


def current_metrics() -> TaskMetrics:
    m = _metrics.get()
    if m is None:
        m = start_metrics()
    return m


def max_rss_mb() -> float:
    """Peak resident memory (MB) since the previous call in this process, or since it started.

    Each call reads ``VmHWM`` from ``/proc/self/status`` and then resets the high-water mark to
    the current RSS (writing ``5`` to ``/proc/self/clear_refs``), so in a warm worker every task
    reports its own peak, not the largest one before it. ``ru_maxrss`` cannot do that: it never
    goes down and survives fork and exec (a forked worker reports its parent's peak). Where
    ``/proc`` is missing or ``clear_refs`` is not writable (it may not be on AWS Lambda), the
    reading falls back to VmHWM without reset, then to ``ru_maxrss``: the process's peak so far,
    an upper bound of the task's.
    """
    peak_kb = _vm_hwm_kb()
    if peak_kb is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return round(peak_kb / 1024.0, 1)


def _vm_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_mb() -> int:
    try:
        return int(_env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or "0")
    except ValueError:
        return 0


# ---------------------------------------------------------------------------------------------
# S3 helpers


def get_bytes(bucket: str, key: str, **kw: Any) -> bytes:
    body: bytes = s3().get_object(Bucket=bucket, Key=key, **kw)["Body"].read()
    current_metrics().add_in(len(body))
    return body


def get_json(bucket: str, key: str) -> Any:
    known = _final.get()
    body = known.get((bucket, key)) if known is not None else None
    if body is None:
        body = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def put_final_json(bucket: str, key: str, obj: Any) -> None:
    """:func:`put_json` of a document nobody writes again (a map manifest, written by the
    claim's winner); while this function coordinates inline, its own reads of it are answered
    from memory."""
    body = json.dumps(obj, sort_keys=True).encode()
    put_bytes(bucket, key, body, ContentType="application/json")
    known = _final.get()
    if known is not None:
        known[(bucket, key)] = body


def put_bytes(bucket: str, key: str, body: bytes, **kw: Any) -> None:
    s3().put_object(Bucket=bucket, Key=key, Body=body, **kw)


def put_json(bucket: str, key: str, obj: Any) -> None:
    put_bytes(bucket, key, json.dumps(obj, sort_keys=True).encode(), ContentType="application/json")


def put_if_absent(bucket: str, key: str, body: bytes | str = b"") -> bool:
    """Create ``key`` only if it does not exist; True if this call created it."""
    if isinstance(body, str):
        body = body.encode()
    for i in range(6):
        try:
            s3().put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except Exception as exc:  # botocore ClientError; imported lazily
            if is_precondition_failed(exc):
                return False
            # 409: another conditional write of this key is in flight; its outcome decides.
            if error_code(exc) != "ConditionalRequestConflict" or i == 5:
                raise
            time.sleep(0.05 * 2**i)
    return False


def exists(bucket: str, key: str) -> bool:
    try:
        s3().head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise


def list_keys(bucket: str, prefix: str) -> list[dict[str, Any]]:
    """All objects under ``prefix`` (paginated): dicts with Key, Size, LastModified."""
    out: list[dict[str, Any]] = []
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(page.get("Contents", []))
    return out


# ---------------------------------------------------------------------------------------------
# Job and plan, cached per warm container


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    with _lock:
        if len(cache) >= _JOB_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = value
    return value


def load_plan(bucket: str, job_id: str) -> Plan:
    """The job's plan, read once per warm container (a plan never changes)."""
    key = (bucket, job_id)
    plan = _plans.get(key)
    if plan is None:
        # A job's first client assumes the job's session, whose grants come from this plan, read
        # (and kept) with the function's own credentials: read it once, not again with the session.
        client = s3()
        plan = _plans.get(key)
        if plan is None:
            body = client.get_object(Bucket=bucket, Key=protocol.plan_key(job_id))["Body"].read()
            plan = _remember(_plans, key, Plan.from_json(json.loads(body)))
    return plan


def load_split(bucket: str, plan: Plan, task: int) -> Split:
    """Map task ``task``'s split of step 0: from the plan, or from its stored chunk (one GET, once
    per warm container; a task never reads the other chunks)."""
    n = plan.num_splits
    if not 0 <= task < n:
        raise TaskFailedError(f"map task {task} is not in the plan ({n} splits)")
    if plan.split_chunks is None:
        return plan.splits[task]
    key, index = plan.chunk_of(task)
    cache_key = (bucket, key)
    chunk = _chunks.get(cache_key)
    if chunk is None:
        chunk = _remember(_chunks, cache_key, tuple(chunk_splits(get_bytes(bucket, key))))
    return chunk[index]


def load_job(bucket: str, job_id: str) -> JobSpec:
    """Unpickle ``job.pkl`` from the stack's own work bucket (never from an event-named bucket)."""
    if bucket != work_bucket():
        raise TaskFailedError(f"refusing to load job code from bucket {bucket!r}")
    world = _in_process.get()
    if world is not None and job_id in world.jobs:
        return world.jobs[job_id]
    key = (bucket, job_id)
    cached = _jobs.get(key)
    if cached is not None:
        return cached
    import pickle

    try:
        import cloudpickle  # noqa: F401  (pickles made by cloudpickle may need it importable)
    except ImportError:  # pragma: no cover - the zip vendors it
        pass
    job: JobSpec = pickle.loads(s3().get_object(Bucket=bucket, Key=protocol.job_pickle_key(job_id))["Body"].read())
    job.check_compatible()
    return _remember(_jobs, key, job)


# ---------------------------------------------------------------------------------------------
# Invokes


def set_invoker(fn: Callable[[str, dict[str, Any]], None] | None) -> None:
    """Replace the Lambda async invoke with ``fn(function_name, event)`` (tests); None restores it."""
    global _invoker
    _invoker = fn


_FUNCTION_ENV = {
    protocol.EVENT_MAP: protocol.ENV_MAPPER_FUNCTION,
    protocol.EVENT_REDUCE: protocol.ENV_REDUCER_FUNCTION,
    protocol.EVENT_COORDINATE: protocol.ENV_COORDINATOR_FUNCTION,
    protocol.EVENT_DRIVE: protocol.ENV_DRIVER_FUNCTION,
    protocol.EVENT_INVOKE: protocol.ENV_DRIVER_FUNCTION,
}
_THROTTLED = {"TooManyRequestsException", "ThrottlingException", "Throttling",
              "EC2ThrottledException", "ServiceException", "ResourceNotReadyException"}


#: the function (its role in the stack, as ``Plan.versions`` names it) serving each event kind
_EVENT_ROLES = {
    protocol.EVENT_MAP: "mapper",
    protocol.EVENT_REDUCE: "reducer",
    protocol.EVENT_COORDINATE: "coordinator",
    protocol.EVENT_DRIVE: "driver",
    protocol.EVENT_INVOKE: "driver",
}


def function_for(kind: str) -> str:
    env = _FUNCTION_ENV[kind]
    name = _env(env)
    if not name:
        raise TaskFailedError(f"environment variable {env} is not set; cannot invoke {kind} tasks")
    return name


def pinned_function(event: dict[str, Any]) -> str:
    """The function serving ``event``, qualified with the version its job is pinned to.

    A job runs on the versions its deploy published (``Plan.versions``), whatever was deployed
    since; a job without a plan yet, or planned without versions, runs on ``$LATEST``.
    """
    name = function_for(event["kind"])
    try:
        plan = load_plan(event["bucket"], event["job_id"])
    except Exception as exc:
        if not is_not_found(exc):
            raise
        return name
    return plan.function(_EVENT_ROLES[event["kind"]], name)


def invoke(event: dict[str, Any], attempts: int = 8, function: str | None = None) -> None:
    """Async-invoke the function serving ``event['kind']`` (the job's pinned version, unless
    ``function`` names it) with the function's own credentials; back off and retry on throttling.
    Another job's event (an admission poke) is pinned as that job's (this job's session cannot
    read that job's plan)."""
    job = _job.get()
    if job is not None and job[1] != event.get("job_id"):
        with as_stack():
            return invoke(event, attempts, function)
    captured = _next_tasks.get()
    if captured is not None and function is None and event.get("kind") in (protocol.EVENT_MAP, protocol.EVENT_REDUCE):
        captured.append(event)  # coordinate_inline runs it here, or invokes it, when the call ends
        return
    name = function or pinned_function(event)
    world = _in_process.get()
    if world is not None:
        world.invoke(name, event)
        return
    if _invoker is not None:
        _invoker(name, event)
        return
    payload = json.dumps(event).encode()
    # A job's session may invoke what the role may (the stack's functions: grants.session_policy),
    # so the function's own client serves every job: no Lambda client made per job and function.
    lambda_client = _role_client("lambda")
    for i in range(attempts):
        try:
            response = lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=payload)
            # Read the empty body: an unread stream makes urllib3 drop the connection, so every
            # invoke would open a new one.
            response["Payload"].read()
            return
        except Exception as exc:
            if error_code(exc) not in _THROTTLED or i == attempts - 1:
                raise
            time.sleep(min(10.0, 0.1 * 2**i) * (0.5 + random.random()))


def notify_coordinator(bucket: str, job_id: str, reason: str) -> None:
    try:
        invoke(protocol.coordinate_event(bucket, job_id, reason))
    except Exception:  # the watcher's periodic coordinate call recovers a lost notification
        log.exception("could not notify the coordinator of job %s (%s)", job_id, reason)


# ---------------------------------------------------------------------------------------------
# Task wrapper: start marker, done marker, error detail


def preview(obj: Any) -> str:
    text = obj.decode("utf-8", "replace") if isinstance(obj, (bytes, bytearray)) else repr(obj)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class TaskError(Exception):
    """An error with context (input location, record preview) for the error detail.

    ``user=True``: the job's own code failed (raised, or returned something that is not pairs);
    a deterministic failure that ``retry_on_user_errors=False`` fails the job on at once."""

    def __init__(self, message: str, *, input: dict[str, Any] | None = None,
                 record_preview: str | None = None, user: bool = False):
        super().__init__(message)
        self.input = input
        self.record_preview = record_preview
        self.user = user


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the job's code failing (a :class:`TaskError` marked so, or a user's
    ``sys.exit()``), rather than the platform (S3, memory, a changed input)."""
    return bool(getattr(exc, "user", False)) or isinstance(exc, SystemExit)


def write_error(bucket: str, event: dict[str, Any], phase: str, exc: BaseException,
                fail_job_now: bool = False) -> dict[str, Any]:
    """Write the attempt's error detail and error marker. ``fail_job_now``: fail the whole job
    on this error, before the marker, so no coordinator that sees the marker retries the task."""
    job_id, step, task, attempt = event["job_id"], event["step"], event["task"], event["attempt"]
    detail = {
        "task": task, "attempt": attempt, "step": step, "phase": phase,
        "error_type": type(exc).__name__, "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "input": getattr(exc, "input", None), "record_preview": getattr(exc, "record_preview", None),
        "user_error": is_user_error(exc), "time": now_iso(),
    }
    put_json(bucket, protocol.error_detail_key(job_id, step, phase, task, attempt), detail)
    if fail_job_now:
        fail_job(bucket, job_id, f"{phase} task {task} of step {step} failed in the job's code on attempt "
                 f"{attempt + 1} (retry_on_user_errors is off); error: {detail['error_type']}: "
                 f"{detail['message']}", step=step, phase=phase, task=task, attempt=attempt, error=detail)
    put_bytes(bucket, protocol.error_marker_key(job_id, step, phase, task, attempt),
              f"{detail['error_type']}: {detail['message']}"[:1024].encode())
    return detail


def fail_job(bucket: str, job_id: str, reason: str, *, step: int | None = None,
             phase: str | None = None, task: int | None = None, attempt: int | None = None,
             error: dict[str, Any] | None = None) -> bool:
    """Fail the job: ``failed.json`` (put-if-absent: the first cause wins), then its FAILED state."""
    body = {"job_id": job_id, "state": protocol.FAILED, "reason": reason, "step": step,
            "phase": phase, "task": task, "attempt": attempt, "error": error,
            "time": now_iso()}
    won = put_if_absent(bucket, protocol.failed_key(job_id), json.dumps(body, sort_keys=True))
    put_bytes(bucket, protocol.job_state_key(job_id, protocol.FAILED), reason[:1024].encode())
    return won


def log_task_line(job_id: str, phase: str, step: int, task: int, attempt: int, outcome: str,
                  **fields: Any) -> None:
    """One JSON line per finished attempt on stdout (Lambda sends it to CloudWatch Logs whatever
    the log level), naming the job id: what the UI plugin's logs page filters the job's logs by,
    and what CloudWatch Logs Insights can query field by field."""
    line = {"smr": "task", "job_id": job_id, "phase": phase, "step": step, "task": task,
            "attempt": attempt, "outcome": outcome, **{k: v for k, v in fields.items() if v is not None}}
    if _in_process.get() is not None:  # no CloudWatch: stdout is the caller's own
        log.debug("%s", json.dumps(line, default=str))
        return
    print(json.dumps(line, default=str), flush=True)


def run_task(event: dict[str, Any], phase: str,
             body: Callable[[dict[str, Any], Plan, JobSpec, TaskMetrics], dict[str, Any]]) -> dict[str, Any]:
    """Run one map/reduce attempt around ``body(event, plan, job, metrics) -> done fields``.

    ``event`` must already be validated. Writes the start marker, the done marker (put-if-absent:
    the first finished attempt wins), or the error detail and marker; frees the admission slots
    the event names (:mod:`lambda_handlers.admission`) however it ends; always notifies the
    coordinator; never raises (retries are the coordinator's).
    """
    slots = list(event.get("slots") or [])  # emptied once freed
    if slots and not _hold_slots(event["bucket"], slots):
        return {"duplicate": True}
    # (notification, next task here, (done marker key, body)) when it makes the coordinator's call
    inline: list[tuple[str, bool, Any]] = []
    try:  # in a copy of the context: the task's context (its params, counters, state) ends with it
        result = contextvars.copy_context().run(_run_task, event, phase, body, slots, inline)
    finally:
        if slots:
            _free_slots(event["bucket"], slots)
    for reason, here, marker in inline:  # after the task's context: the coordinator's work, not the task's
        token = _final.set({(event["bucket"], marker[0]): marker[1].encode()})  # the winning marker
        try:
            coordinate_inline(event["bucket"], event["job_id"], reason, next_task_here=here)
        finally:
            _final.reset(token)
    return result


def _hold_slots(bucket: str, slots: list[str]) -> bool:
    """Whether this delivery runs in its slots: the first to claim them (Lambda may deliver an
    async event twice), and not presumed dead while queued (its slots freed already, or so old
    that the coordinator deleted them)."""
    return (all(exists(bucket, k) for k in slots)
            and all(put_if_absent(bucket, protocol.slot_run_key(k)) for k in slots)
            and not any(exists(bucket, protocol.slot_free_key(k)) for k in slots))


def _free_slots(bucket: str, slots: list[str]) -> None:
    for key in slots:
        try:
            put_bytes(bucket, protocol.slot_free_key(key), b"")
        except Exception:  # the coordinator frees it when it presumes the attempt dead
            log.exception("could not free slot %s", key)


def _run_task(event: dict[str, Any], phase: str,
              body: Callable[[dict[str, Any], Plan, JobSpec, TaskMetrics], dict[str, Any]],
              slots: list[str], inline: list[tuple[str, bool, Any]]) -> dict[str, Any]:
    bucket, job_id = event["bucket"], event["job_id"]
    step, task, attempt = event["step"], event["task"], event["attempt"]
    metrics = start_metrics()
    context.begin_task(step, phase, task, attempt)
    started = time.time()
    plan: Plan | None = None
    written, marker = 0, ""  # the done marker's bytes_out, and the marker
    inline_call = False  # whether this task, if it wins, makes the coordinator's call itself
    try:
        if exists(bucket, protocol.cancel_key(job_id)):
            return {"cancelled": True}
        put_bytes(bucket, protocol.start_marker_key(job_id, step, phase, task, attempt), b"")
        plan = load_plan(bucket, job_id)
        job = load_job(bucket, job_id)
        context.activate(job, files=functools.partial(jobfiles.local_path, bucket, job_id,
                                                      dict(getattr(job, "files", None) or {})))
        fields = body(event, plan, job, metrics)
        finished = time.time()
        done: dict[str, Any] = {"task": task, "attempt": attempt, "step": step, "phase": phase, **fields,
                "bytes_in": metrics.bytes_in, "bytes_out": metrics.bytes_out,
                "started": started, "finished": finished, "duration_s": round(finished - started, 4),
                "memory_mb": memory_mb(), "max_rss_mb": max_rss_mb()}
        done.setdefault("bad_records", 0)
        # what the result counts as Lambda invokes: none for a task run in the function before
        # it, none for the coordinator's call when this task makes it
        inline_call = coordinates_inline(plan, step, phase, finished - started)
        if inline_call:
            done["coordinated_inline"] = True
        if _running_next.get():
            done["ran_inline"] = True
        written = int(done["bytes_out"] or 0)
        user_counters = context.task_counters()
        if user_counters:
            done["counters"] = user_counters
        with metrics.lock:
            done["requests"] = dict(metrics.requests)
        done["requests"]["PutObject"] = done["requests"].get("PutObject", 0) + 1  # the marker itself
        marker = json.dumps(done, sort_keys=True)
        won = put_if_absent(bucket, protocol.done_marker_key(job_id, step, phase, task), marker)
        result: dict[str, Any] = {"done": True, "won": won}
        log_task_line(job_id, phase, step, task, attempt, "done" if won else "done, lost to an earlier attempt",
                      duration_s=done["duration_s"], records_in=done.get("records_in"),
                      records_out=done.get("records_out"), max_rss_mb=done["max_rss_mb"])
        if not won and not slots:  # an earlier attempt finished first and notified the coordinator
            return result
        reason = f"{phase}-{step}-{task}-done"
    except (Exception, SystemExit) as exc:  # a user's sys.exit() is a failed attempt, not a crash
        if _in_process.get() is not None:  # the caller debugs it: no marker, no retry
            raise
        log.exception("%s task %s/%s attempt %s of job %s failed", phase, step, task, attempt, job_id)
        fail_now = (plan is not None and not plan.options.retry_on_user_errors and is_user_error(exc))
        try:
            write_error(bucket, event, phase, exc, fail_job_now=fail_now)
        except Exception:
            log.exception("could not write the error detail")
        result = {"error": f"{type(exc).__name__}: {exc}"}
        log_task_line(job_id, phase, step, task, attempt, "failed", error=result["error"][:300])
        reason = f"{phase}-{step}-{task}-error"
    if slots:  # free the slots before the coordinator admits into them
        _free_slots(bucket, slots)
        slots.clear()
    elapsed = time.time() - started
    if inline_call and plan is not None and result.get("won"):
        # the one task the call may start runs here only after a short task that wrote little, on
        # a function of this one's memory, and not from a task itself run so
        here = (written <= protocol.NEXT_TASK_MAX_BYTES and elapsed < plan.limits.task_timeout_s / 4
                and plan.limits.reducer_memory_mb == plan.limits.memory_mb and not _running_next.get())
        inline.append((reason, here, (protocol.done_marker_key(job_id, step, phase, task), marker)))
    else:
        notify_coordinator(bucket, job_id, reason)
    return result


def coordinates_inline(plan: Plan | None, step: int, phase: str, elapsed_s: float = 0.0) -> bool:
    """Whether the task that won ``phase`` of ``step`` makes the coordinator call its done
    notification asks for itself, in its own function, instead of invoking the coordinator.

    Only when that call starts the next transition at once and cheaply: the phase has this one
    task (its winning done marker completes the phase), no admission pass runs (no
    ``max_running_tasks``: the next phase starts with a claim and its invokes, or the commit
    copies one part), the output is not a table (whose commit writes every item, sized for the
    coordinator function), the task took less than half its function's timeout (``elapsed_s``:
    the call has time to finish), and the tasks run on Lambda (a run inside one process, or
    tests that replace the invoke, keep the coordinator's own calls). The coordinator is stateless and
    its claims start every transition once, whoever calls it; this saves a Lambda hop (an invoke
    and the coordinator's start) per phase of a small job.
    """
    if plan is None or _invoker is not None or _in_process.get() is not None:
        return False
    from lambda_handlers import admission

    return (step < len(plan.steps) and plan.steps[step].tasks(phase) == 1 and not admission.enabled(plan)
            and plan.output.table is None and elapsed_s < plan.limits.task_timeout_s / 2)


_next_tasks: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "smr_next_tasks", default=None)
_running_next: contextvars.ContextVar[bool] = contextvars.ContextVar("smr_running_next", default=False)
#: JSON bodies this function wrote that never change (the winning done marker of the task that
#: coordinates inline, the map manifest it writes), by (bucket, key): its own reads of them
#: while it coordinates and runs the next task are answered from memory
_final: contextvars.ContextVar[dict[tuple[str, str], bytes] | None] = contextvars.ContextVar(
    "smr_final", default=None)


def coordinate_inline(bucket: str, job_id: str, reason: str, next_task_here: bool = False) -> None:
    """The coordinator's call for ``reason`` in this function; on an error the coordinator
    function is notified as usual (its claims make a half-done call harmless).

    ``next_task_here`` (the finished task wrote little, and the next task's function has this
    one's memory; never for a task itself run so: one such task per invocation): when the call
    starts exactly one task (the next phase has one task, e.g. the reducer of a one-split,
    one-reducer job), that task runs here, once the call is done, as its invocation would run it
    (same event, markers, retries): no invoke, no function start, no new job session.
    """
    from lambda_handlers import coordinator  # it imports this module

    tasks: list[dict[str, Any]] = []
    token = _next_tasks.set(tasks if next_task_here else None)
    try:
        coordinator.coordinate(bucket, job_id, reason)
    except Exception:
        log.exception("coordinating job %s inline (%s) failed: notifying the coordinator", job_id, reason)
        notify_coordinator(bucket, job_id, reason)
    finally:
        _next_tasks.reset(token)
    if len(tasks) == 1:
        _run_next_task(tasks[0])
        return
    for event in tasks:
        invoke(event)


def _run_next_task(event: dict[str, Any]) -> None:
    """Run a task event in this function, as its own invocation would (invoke it on an error
    before the task started: a second delivery of one attempt is harmless)."""
    from lambda_handlers import mapper, reducer

    handler = mapper.handler if event["kind"] == protocol.EVENT_MAP else reducer.handler
    token = _running_next.set(True)
    try:
        handler(event)
    except Exception:
        log.exception("running %s task %s of job %s here failed: invoking it", event["kind"], event["task"],
                      event["job_id"])
        invoke(event)
    finally:
        _running_next.reset(token)


def accept(event: Any, kind: str) -> dict[str, Any]:
    """``event`` validated for a handler of ``kind``, before anything is read or written.

    :raises protocol.InvalidEventError: naming what is wrong with it (Lambda reports the raise as
        a ``FunctionError`` and counts it in the function's ``Errors`` metric).
    """
    bucket = work_bucket()
    try:
        valid = protocol.validate_event(event, kind, work_bucket=bucket)
    except protocol.ProtocolError as exc:
        log.error("rejected event: %s", exc)
        raise protocol.InvalidEventError(f"invalid {kind} event: {exc}") from None
    enter_job(bucket, valid["job_id"])  # its tasks work with this job's session from here
    return valid
