"""The benchmark's side of the engine: a local stack, a deployed stack, uploads, one timed job.

Everything the harness needs from other packages goes through here, so a change in their API is
one edit. Loopback endpoints and fake credentials only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lambda_handlers.options import JobOptions

FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
DATA_BUCKET = "smr-bench-data"


def rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Sample this process's RSS every ``interval`` seconds while the block runs."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak, self.start = interval, 0.0, 0.0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


class _FanOutLog(logging.Handler):
    """Catches the runner's "invoked N map tasks in S s" line (the fan-out time)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.invoke_seconds: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("invoked ") and len(record.args or ()) >= 2:
            self.invoke_seconds = float(record.args[1])


@dataclass
class Run:
    result: dict
    wall_s: float
    submit_s: float
    invoke_s: float | None
    peak_rss_mb: float
    rss_start_mb: float
    stack_requests: dict = field(default_factory=dict)
    handler_seconds: dict = field(default_factory=dict)
    timed_out: bool = False


class Bench:
    """A local stack with the SMR stack deployed, for the duration of a ``with`` block."""

    data_bucket = DATA_BUCKET

    def __init__(self, memory_mb: int = 1024, timeout_s: int = 300, stack_name: str = "smrbench"):
        self.memory_mb, self.timeout_s, self.stack_name = memory_mb, timeout_s, stack_name
        self._local = None

    def __enter__(self) -> Bench:
        os.environ.update(FAKE_ENV)
        from bench.counting_stack import CountingLocalStack

        self._local = CountingLocalStack()
        self.local = self._local.__enter__()
        self.counter = None
        os.environ["AWS_ENDPOINT_URL"] = self.local.endpoint_url
        from airflow_provider_smr.engine.aws import AwsClients

        self.clients = AwsClients(endpoint_url=self.local.endpoint_url, region_name="us-east-1")
        self.stacks: dict[int, Any] = {}
        self.stack = self.deploy(self.memory_mb)
        self.clients.s3.create_bucket(Bucket=DATA_BUCKET)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._local is not None:
            self._local.__exit__(*exc)

    def deploy(self, memory_mb: int) -> Any:
        """The SMR stack at ``memory_mb`` (one per memory size; deploys are idempotent)."""
        if memory_mb not in self.stacks:
            from airflow_provider_smr.deploy import deploy_stack
            from lambda_handlers.options import StackSettings

            name = self.stack_name if memory_mb == self.memory_mb else f"{self.stack_name}{memory_mb}"
            self.stacks[memory_mb] = deploy_stack(self.clients, name,
                StackSettings(memory_mb=memory_mb, timeout_s=self.timeout_s),
                input_buckets=(DATA_BUCKET,), output_buckets=(DATA_BUCKET,))
        return self.stacks[memory_mb]

    def upload(self, path: str, key: str) -> str:
        from boto3.s3.transfer import TransferConfig

        self.clients.s3.upload_file(str(path), DATA_BUCKET, key,
                                    Config=TransferConfig(multipart_threshold=8 << 30))
        return f"s3://{DATA_BUCKET}/{key}"

    def put(self, key: str, body: bytes) -> str:
        self.clients.s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)
        return f"s3://{DATA_BUCKET}/{key}"

    def stack_request_counts(self) -> dict:
        """Requests the local stack served so far (S3 by type, ``invoke:<fn>``), or ``{}``."""
        if self.counter is not None:
            return self.counter.snapshot()
        counts = getattr(self.local, "request_counts", None)
        return counts() if callable(counts) else {}

    def run(self, job: Any, *, input: Any, output: str, memory_mb: int | None = None,
            poll_interval: float = 0.1, timeout: float | None = None, **submit_kw: Any) -> Run:
        """Submit a job, wait for it, and time it (from submit to the result dict).

        After ``timeout`` seconds the job is cancelled and the run comes back with ``timed_out``
        set and an empty result (the fan-out time is still known).
        """
        from airflow_provider_smr.engine.runner import JobRunner, JobTimeoutError

        runner = JobRunner(self.clients, self.deploy(memory_mb or self.memory_mb))
        catcher = _FanOutLog()
        runner_log = logging.getLogger("airflow_provider_smr.engine.runner")
        runner_log.addHandler(catcher)
        runner_log.setLevel(logging.INFO)
        runner_log.propagate = False  # keep progress lines out of the table
        before = self.stack_request_counts()
        busy_before = dict(getattr(self, "handler_seconds", {}))
        try:
            with PeakRss() as rss:
                began = time.perf_counter()
                job_id = runner.submit(job, input=input, output=output,
                                       options=JobOptions(overwrite=True, **submit_kw))
                submitted = time.perf_counter()
                timed_out = False
                try:
                    result = runner.wait(job_id, poll_interval=poll_interval, timeout=timeout)
                except JobTimeoutError:
                    timed_out, result = True, {"job_id": job_id, "status": runner.status(job_id).describe()}
                    runner.cancel(job_id)
                wall = time.perf_counter() - began
        finally:
            runner_log.removeHandler(catcher)
            runner_log.propagate = True
        after = self.stack_request_counts()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        busy = {k: round(v - busy_before.get(k, 0.0), 3)
                for k, v in getattr(self, "handler_seconds", {}).items() if v != busy_before.get(k, 0.0)}
        return Run(result, wall, submitted - began, catcher.invoke_seconds, rss.peak, rss.start, delta, busy,
                   timed_out)

    def read_parts(self, result: dict) -> Iterator[list[bytes]]:
        """Each output part's lines, parts in order."""
        from lambda_handlers.s3uri import S3Uri

        for uri in result["parts"]:
            part = S3Uri.parse(uri, what="part")
            body = self.clients.s3.get_object(Bucket=part.bucket, Key=part.key)["Body"].read()
            yield body.splitlines()

    def job_objects(self, job_id: str, work_bucket: str | None = None) -> list[str]:
        """Every key under the job's prefix in the work bucket (paginated)."""
        from lambda_handlers import protocol

        paginator = self.clients.s3.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=work_bucket or self.stack.work_bucket,
                                       Prefix=protocol.job_prefix(job_id)):
            keys += [o["Key"] for o in page.get("Contents", ())]
        return keys

    def done_markers(self, job_id: str, work_bucket: str | None = None) -> list[dict]:
        """Bodies of the job's done markers, each with its ``phase`` added."""
        import json

        from lambda_handlers import protocol

        bucket = work_bucket or self.stack.work_bucket
        out = []
        for key in self.job_objects(job_id, bucket):
            parsed = protocol.parse_status_key(job_id, key)
            if parsed and parsed.kind == "done":
                body = json.loads(self.clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                out.append({**body, "phase": parsed.phase, "step": parsed.step})
        return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


class _QueueLambda:
    """The control plane's Lambda client in in-process mode: ``invoke`` queues the event."""

    def __init__(self, enqueue: Callable[[str, dict], None]) -> None:
        from types import SimpleNamespace

        self.enqueue = enqueue
        self.meta = SimpleNamespace(events=SimpleNamespace(register=lambda *a, **k: None))

    def invoke(self, FunctionName: str, InvocationType: str = "Event", Payload: bytes = b"{}") -> dict:
        import json

        self.enqueue(FunctionName, json.loads(Payload))
        return {"StatusCode": 202}


class InProcessBench(Bench):
    """No local stack: a moto S3 server and the real handlers on ``workers`` threads of this process.

    Measures the data plane and the driver without worker processes or the Lambda emulation (one
    GIL: CPU-bound tasks do not run in parallel). Same interface as :class:`Bench`.
    """

    def __init__(self, memory_mb: int = 1024, timeout_s: int = 300, stack_name: str = "smrbench",
                 workers: int = 2):
        super().__init__(memory_mb, timeout_s, stack_name)
        self.workers = workers

    def __enter__(self) -> InProcessBench:
        import queue
        import socket
        from types import SimpleNamespace

        from moto.server import ThreadedMotoServer

        from airflow_provider_smr.engine.aws import AwsClients
        from bench.requests_count import RequestCounter
        from lambda_handlers import coordinator, mapper, protocol, reducer, runtime

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()
        self.counter = RequestCounter(self._moto._server.app)
        self._moto._server.app = self.counter
        endpoint = f"http://127.0.0.1:{port}"
        names = {"mapper": "bench-mapper", "reducer": "bench-reducer",
                 "coordinator": "bench-coordinator", "driver": "bench-driver"}
        os.environ.update(FAKE_ENV, AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
        work_bucket = f"{self.stack_name}-work"
        os.environ.update({protocol.ENV_WORK_BUCKET: work_bucket, protocol.ENV_STACK_NAME: self.stack_name,
                           protocol.ENV_MAPPER_FUNCTION: names["mapper"],
                           protocol.ENV_REDUCER_FUNCTION: names["reducer"],
                           protocol.ENV_COORDINATOR_FUNCTION: names["coordinator"],
                           protocol.ENV_DRIVER_FUNCTION: names["driver"]})
        runtime.reset()
        self._handlers = {names["mapper"]: mapper.handler, names["reducer"]: reducer.handler,
                          names["coordinator"]: coordinator.handler}
        self._queue: queue.Queue = queue.Queue()
        self.handler_errors: list = []
        self.handler_seconds: dict[str, float] = {}
        self._busy_lock = threading.Lock()

        def enqueue(name: str, event: dict) -> None:
            self.counter._counts[f"invoke:{name}"] += 1
            self._queue.put((name, event))

        runtime.set_invoker(enqueue)
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        for t in self._threads:
            t.start()
        self.clients = AwsClients(endpoint_url=endpoint, region_name="us-east-1")
        self.clients._clients["lambda"] = _QueueLambda(enqueue)
        self.clients.s3.create_bucket(Bucket=work_bucket)
        self.clients.s3.create_bucket(Bucket=DATA_BUCKET)
        runtime_name = f"python{os.sys.version_info[0]}.{os.sys.version_info[1]}"
        self.stack = SimpleNamespace(work_bucket=work_bucket, functions=names, memory_mb=self.memory_mb,
                                     timeout_s=self.timeout_s, runtime=runtime_name,
                                     stack_name=self.stack_name, max_running_tasks=0)
        self.stacks = {self.memory_mb: self.stack}
        return self

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, event = item
            began = time.perf_counter()
            try:
                self._handlers[name](event)
                with self._busy_lock:
                    self.handler_seconds[name] = self.handler_seconds.get(name, 0.0) + (
                        time.perf_counter() - began)
            except Exception as exc:  # noqa: BLE001 - e.g. InvalidEventError: keep the worker alive, say so
                self.handler_errors.append(repr(exc))

    def __exit__(self, *exc: Any) -> None:
        from lambda_handlers import runtime

        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=5)
        runtime.set_invoker(None)
        self._moto.stop()

    def deploy(self, memory_mb: int) -> Any:
        from types import SimpleNamespace

        if memory_mb not in self.stacks:
            self.stacks[memory_mb] = SimpleNamespace(**{**vars(self.stack), "memory_mb": memory_mb})
        return self.stacks[memory_mb]
