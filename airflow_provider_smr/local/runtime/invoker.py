"""Lambda ``Invoke`` for real: limits, concurrency, the async queue, retries and error shapes."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_smr.local.runtime import logs
from airflow_provider_smr.local.runtime.functions import FunctionNotFound, FunctionSpec, lookup
from airflow_provider_smr.local.runtime.pool import InitFailed, StartArgs, WorkerPool
from airflow_provider_smr.local.runtime.sandbox import (
    BrokenZipError,
    Bytecode,
    CodeCache,
    build_site_dir,
    host_architecture,
    native_files,
)
from airflow_provider_smr.local.runtime.worker import WorkerDied, WorkerTimedOut

if TYPE_CHECKING:
    from airflow_provider_smr.local.iam import Credentials
    from airflow_provider_smr.local.runtime.worker import InvokeReply, InvokeRequest

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # RequestResponse request and response
ASYNC_PAYLOAD_LIMIT = 1024 * 1024  # Event request


def _check_architecture(spec: FunctionSpec) -> None:
    """Refuse to start a function whose native code is built for another CPU than this one.

    The local stack runs every function on this machine's CPU. Pure-Python code runs the same
    under either of Lambda's architectures, so an ``arm64`` function without ``.so`` files runs
    here; one whose code or layers carry native code would not load, and says why instead.
    """
    host = host_architecture()
    if spec.architecture == host:
        return
    native = [name for blob in (spec.code, *spec.layers) for name in native_files(blob)][:3]
    if native:
        raise InitFailed({
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": (
                f"the local stack runs functions on this machine's {host} CPU, and "
                f"{spec.name} is an {spec.architecture} function whose code or layers hold native "
                f"code built for {spec.architecture} ({', '.join(native)}): it cannot be loaded "
                f"here. Deploy with architecture='{host}' to run it on the local stack (on AWS it "
                f"runs as {spec.architecture})."),
            "stackTrace": []})


class LambdaApiError(Exception):
    """An error Lambda's API itself returns (not a function error)."""

    def __init__(self, status: int, code: str, message: str, reason: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason


@dataclass
class InvokeResult:
    status: int
    request_id: str
    payload: bytes = b""
    function_error: str | None = None
    log_tail: str | None = None
    version: str = "$LATEST"  # the version that ran (``X-Amz-Executed-Version``)


@dataclass
class _Outcome:
    payload: bytes
    error: bool
    lines: list[str]


@dataclass
class _AsyncEvent:
    spec: FunctionSpec
    payload: bytes
    request_id: str
    enqueued_at: float = field(default_factory=time.time)
    attempt: int = 0
    not_before: float = 0.0


@dataclass(frozen=True)
class RuntimeSettings:
    """How the local stack runs functions (see ``smr local up --help``)."""

    account_id: str
    region: str
    endpoint_url: str
    workers_per_function: int
    max_concurrency: int
    max_processes: int
    retry_base_s: float = 0.1
    zygote: bool = True  # fork cold starts from an interpreter that preloaded boto3
    bytecode_dir: str | None = None  # functions' compiled packages kept here between stacks


class Invoker:
    """Runs invocations in warm sandboxed workers with Lambda's limits and error shapes."""

    def __init__(self, settings: RuntimeSettings, root: Path, credentials: Credentials | None = None):
        self.settings = settings
        self.credentials = credentials  # None: every function gets the shared "testing" keys
        self.site_dir = str(build_site_dir(root))
        self.code = CodeCache(root, Bytecode(settings.bytecode_dir) if settings.bytecode_dir else None)
        self.pool = WorkerPool(settings.max_processes, self.site_dir, settings.zygote)
        self._cond = threading.Condition()
        self._inflight: Counter[str] = Counter()
        self._ready: dict[str, deque[_AsyncEvent]] = {}  # per function, in arrival order
        self._delayed: list[_AsyncEvent] = []  # retries waiting for their backoff
        self._closed = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="event-queue", daemon=True)
        self._dispatcher.start()

    # -- API ------------------------------------------------------------------------------------
    def invoke(self, name: str, qualifier: str | None, payload: bytes, invocation_type: str,
               log_type: str | None = None, client_context: str | None = None) -> InvokeResult:
        s = self.settings
        try:
            spec = lookup(s.account_id, s.region, name, qualifier)
        except FunctionNotFound as exc:
            raise LambdaApiError(404, "ResourceNotFoundException", f"Function not found: {exc}") from None
        is_event = invocation_type == "Event"
        limit = ASYNC_PAYLOAD_LIMIT if is_event else SYNC_PAYLOAD_LIMIT
        if len(payload) > limit:
            operation = "InvokeAsync" if is_event else "Invoke"
            raise LambdaApiError(413, "RequestEntityTooLargeException",
                                 f"{len(payload)} byte payload is too large for the {operation} "
                                 f"operation (limit {limit} bytes)")
        _check_json(payload)
        request_id = str(uuid.uuid4())
        if invocation_type == "DryRun":
            return InvokeResult(204, request_id)
        if is_event:
            with self._cond:
                self._ready.setdefault(spec.name, deque()).append(
                    _AsyncEvent(spec, payload, request_id))
                self._cond.notify()
            return InvokeResult(202, request_id, version=_executed(spec))
        if invocation_type not in ("RequestResponse", "", None):
            raise LambdaApiError(400, "InvalidParameterValueException",
                                 f"Unsupported InvocationType {invocation_type!r}")
        self._admit_sync(spec)
        try:
            outcome = self._execute(spec, payload, request_id, client_context)
        finally:
            self._finish(spec)
        result = InvokeResult(200, request_id, outcome.payload,
                              "Unhandled" if outcome.error else None, version=_executed(spec))
        if log_type == "Tail":
            result.log_tail = logs.tail(outcome.lines)
        return result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._delayed.clear()
            self._cond.notify_all()
        self.pool.close()

    def queued(self) -> int:
        with self._cond:
            return sum(map(len, self._ready.values())) + len(self._delayed)

    # -- concurrency ----------------------------------------------------------------------------
    def _admit_sync(self, spec: FunctionSpec) -> None:
        with self._cond:
            if spec.reserved_concurrency is not None and \
                    self._inflight[spec.name] >= spec.reserved_concurrency:
                raise LambdaApiError(429, "TooManyRequestsException", "Rate Exceeded.",
                                     "ReservedFunctionConcurrentInvocationLimitExceeded")
            if sum(self._inflight.values()) >= self.settings.max_concurrency:
                raise LambdaApiError(429, "TooManyRequestsException", "Rate Exceeded.",
                                     "ConcurrentInvocationLimitExceeded")
            self._inflight[spec.name] += 1

    def _finish(self, spec: FunctionSpec) -> None:
        with self._cond:
            self._inflight[spec.name] -= 1
            if self._inflight[spec.name] <= 0:
                del self._inflight[spec.name]
            self._cond.notify_all()

    def _event_slots(self, spec: FunctionSpec) -> int:
        cap = self.settings.workers_per_function
        if spec.reserved_concurrency is not None:
            cap = min(cap, spec.reserved_concurrency)
        return cap - self._inflight[spec.name]

    def _dispatch(self) -> None:
        with self._cond:
            while not self._closed:
                event, wait = self._next_event()
                if event is None:
                    self._cond.wait(wait)
                    continue
                self._inflight[event.spec.name] += 1
                threading.Thread(target=self._run_event, args=(event,), daemon=True).start()

    def _next_event(self) -> tuple[_AsyncEvent | None, float | None]:
        """Pop the oldest runnable event of a function with a free slot (lock held); else say
        how long to wait. Costs O(functions), not O(queued events): a fan-out queues thousands."""
        now, wait = time.time(), None
        if self._delayed:
            due = [e for e in self._delayed if e.not_before <= now]
            if due:
                self._delayed = [e for e in self._delayed if e.not_before > now]
                for event in due:
                    self._ready.setdefault(event.spec.name, deque()).append(event)
            if self._delayed:
                wait = min(e.not_before for e in self._delayed) - now
        if sum(self._inflight.values()) >= self.settings.max_concurrency:
            return None, None
        best = None
        for name, queue in list(self._ready.items()):
            if not queue:
                del self._ready[name]
            elif self._event_slots(queue[0].spec) > 0 and \
                    (best is None or queue[0].enqueued_at < best[0].enqueued_at):
                best = queue
        if best is not None:
            return best.popleft(), None
        return None, wait

    def _run_event(self, event: _AsyncEvent) -> None:
        spec = event.spec
        try:
            age = time.time() - event.enqueued_at
            if spec.max_event_age_s is not None and age > spec.max_event_age_s:
                _note(f"dropped event {event.request_id} for {spec.name}: {age:.1f}s old "
                      f"> MaximumEventAgeInSeconds {spec.max_event_age_s}")
                return
            outcome = self._execute(spec, event.payload, event.request_id, None)
        except Exception as exc:  # noqa: BLE001 - never let one event kill the queue
            _note(f"event {event.request_id} for {spec.name} failed: {exc}")
            outcome = None
        finally:
            self._finish(spec)
        if outcome is not None and not outcome.error:
            return
        if event.attempt < spec.max_retry_attempts:
            event.attempt += 1
            event.not_before = time.time() + self.settings.retry_base_s * 2 ** (event.attempt - 1)
            with self._cond:
                if not self._closed:
                    self._delayed.append(event)
                    self._cond.notify_all()
        else:
            _note(f"event {event.request_id} for {spec.name} failed after "
                  f"{event.attempt + 1} attempt(s); discarded")

    # -- running one invocation -------------------------------------------------------------------
    def _execute(self, spec: FunctionSpec, payload: bytes, request_id: str,
                 client_context: str | None) -> _Outcome:
        self.pool.retire_other_versions(spec.arn, spec.worker_key)
        try:
            worker, cold = self.pool.acquire(spec.worker_key, spec.memory_mb,
                                             lambda stream: self._start_args(spec, stream))
        except BrokenZipError as exc:
            raise LambdaApiError(502, "InvalidZipFileException",
                                 f"Lambda was unable to unzip the deployment package of "
                                 f"{spec.name}: {exc}") from None
        except InitFailed as exc:
            lines = logs.invocation_lines(
                logs.InvocationRecord(request_id, 0.0, spec.memory_mb, 0),
                exc.logs + f"[ERROR] {exc.error['errorType']}: {exc.error['errorMessage']}")
            self._write_logs(spec, "init-failed", lines)
            return _Outcome(json.dumps(exc.error).encode(), True, lines)
        started = time.time()
        message: InvokeRequest = {
            "request_id": request_id, "payload": payload.decode("utf-8"),
            "deadline": started + spec.timeout_s, "client_context": _decode_cc(client_context)}
        reusable = True
        reply: InvokeReply | None = None
        error: dict[str, str] = {}  # Lambda's error payload when the worker gave no reply
        try:
            reply = worker.call(message, spec.timeout_s)
        except WorkerTimedOut:
            reusable = False
            worker.signal_kill()
            error = {"errorType": "Sandbox.Timedout",
                     "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                                     f"{spec.timeout_s:.2f} seconds"}
        except WorkerDied:
            reusable = False
            if worker.killed_for == "memory":
                error = {"errorType": "Runtime.OutOfMemory",
                         "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                                         f"error: out of memory (Max Memory Used > Memory Size "
                                         f"{spec.memory_mb} MB)"}
            else:
                error = {"errorType": "Runtime.ExitError",
                         "errorMessage": f"RequestId: {request_id} Error: Runtime exited "
                                         f"without providing a reason"}
        duration_ms = (time.time() - started) * 1000
        if reply is not None:
            reusable = not reply.get("exit")
            if "error" in reply:
                body, failed = json.dumps(reply["error"]).encode(), True
            else:
                body, failed = reply["payload"].encode(), False
                if len(body) > SYNC_PAYLOAD_LIMIT:
                    body, failed = json.dumps({
                        "errorMessage": f"Response payload size ({len(body)} bytes) exceeded "
                                        f"maximum allowed payload size ({SYNC_PAYLOAD_LIMIT} bytes).",
                        "errorType": "Function.ResponseSizeTooLarge"}).encode(), True
            handler_logs = reply.get("logs", "")
            max_mb = max(reply.get("max_rss_kb", 0) / 1024, worker.peak_rss_mb)
        else:
            body, failed = json.dumps(error).encode(), True
            handler_logs = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {error['errorMessage']}"
            max_mb = max(worker.peak_rss_mb, spec.memory_mb if worker.killed_for else 0)
        if cold and worker.init_logs:
            handler_logs = worker.init_logs + handler_logs
        record = logs.InvocationRecord(request_id, duration_ms, spec.memory_mb, round(max_mb),
                                       worker.init_ms if cold else None)
        lines = logs.invocation_lines(record, handler_logs)
        self._write_logs(spec, worker.log_stream, lines)
        worker.invocations += 1
        self.pool.release(worker, reusable)
        return _Outcome(body, failed, lines)

    def _start_args(self, spec: FunctionSpec, log_stream: str) -> StartArgs:
        _check_architecture(spec)
        task_root = self.code.task_root(spec.code, compiled=True)
        layer_dirs = []
        shas = spec.layer_shas if len(spec.layer_shas) == len(spec.layers) else ("",) * len(spec.layers)
        for layer, sha in reversed(list(zip(spec.layers, shas, strict=True))):  # later ones win (/opt)
            root = Path(self.code.task_root(layer, sha))
            layer_dirs += [str(root / "python" / "lib" / "python3.11" / "site-packages"),
                           str(root / "python")]
        return task_root, self.site_dir, layer_dirs, self._environment(spec, task_root)

    def _environment(self, spec: FunctionSpec, task_root: str) -> dict[str, str]:
        s = self.settings
        env = dict(spec.environment)
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_REGION": s.region,
            "AWS_DEFAULT_REGION": s.region,
            "AWS_ENDPOINT_URL": s.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": self.site_dir,
            "SMR_LOCAL_FUNCTION_ARN": spec.arn,
            "_HANDLER": spec.handler,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        if self.credentials is not None and spec.role:  # as Lambda: the execution role's keys
            env.update(self.credentials.for_role(spec.role, spec.name))
        return env

    def _write_logs(self, spec: FunctionSpec, stream: str, lines: list[str]) -> None:
        try:
            logs.write(self.settings.account_id, self.settings.region, spec.name, stream, lines)
        except Exception as exc:  # noqa: BLE001 - logging must never fail an invocation
            _note(f"could not write logs for {spec.name}: {exc}")


def _executed(spec: FunctionSpec) -> str:
    return spec.version if spec.version.isdigit() else "$LATEST"


def _check_json(payload: bytes) -> None:
    if not payload:
        return
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LambdaApiError(400, "InvalidRequestContentException",
                             f"Could not parse request body into json: {exc}") from None


def _decode_cc(client_context: str | None) -> object:
    if not client_context:
        return None
    import base64

    try:
        return json.loads(base64.b64decode(client_context))
    except ValueError:
        return None


def _note(message: str) -> None:
    print(f"smr local: {message}", file=sys.stderr, flush=True)
