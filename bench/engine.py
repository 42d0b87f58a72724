"""The benchmark's side of the engine: a local stack, a deployed stack, uploads, one timed job.

Everything the harness needs from other packages goes through here, so a change in their API is
one edit. Loopback endpoints and fake credentials only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

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

    def __enter__(self) -> "PeakRss":
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


class Bench:
    """A local stack with the SMR stack deployed, for the duration of a ``with`` block."""

    data_bucket = DATA_BUCKET

    def __init__(self, memory_mb: int = 1024, timeout_s: int = 300, stack_name: str = "smrbench"):
        self.memory_mb, self.timeout_s, self.stack_name = memory_mb, timeout_s, stack_name
        self._local = None

    def __enter__(self) -> "Bench":
        os.environ.update(FAKE_ENV)
        from airflow_provider_smr.local import LocalStack

        self._local = LocalStack()
        self.local = self._local.__enter__()
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

            name = self.stack_name if memory_mb == self.memory_mb else f"{self.stack_name}{memory_mb}"
            self.stacks[memory_mb] = deploy_stack(self.clients, name, memory_mb=memory_mb,
                                                  timeout_s=self.timeout_s,
                                                  input_buckets=(DATA_BUCKET,),
                                                  output_buckets=(DATA_BUCKET,))
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
        """Requests the local stack served, by type, if it counts them (else ``{}``)."""
        counter = getattr(self.local, "request_counts", None)
        return dict(counter()) if callable(counter) else {}

    def run(self, job: Any, *, input: Any, output: str, memory_mb: int | None = None,
            poll_interval: float = 0.1, **submit_kw: Any) -> Run:
        """Submit a job, wait for it, and time it (from submit to the result dict)."""
        from airflow_provider_smr.engine.runner import JobRunner

        runner = JobRunner(self.clients, self.deploy(memory_mb or self.memory_mb))
        catcher = _FanOutLog()
        runner_log = logging.getLogger("airflow_provider_smr.engine.runner")
        runner_log.addHandler(catcher)
        runner_log.setLevel(logging.INFO)
        before = self.stack_request_counts()
        try:
            with PeakRss() as rss:
                began = time.perf_counter()
                job_id = runner.submit(job, input=input, output=output, overwrite=True, **submit_kw)
                submitted = time.perf_counter()
                result = runner.wait(job_id, poll_interval=poll_interval)
                wall = time.perf_counter() - began
        finally:
            runner_log.removeHandler(catcher)
        after = self.stack_request_counts()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        return Run(result, wall, submitted - began, catcher.invoke_seconds, rss.peak, rss.start, delta)

    def read_parts(self, result: dict) -> Iterator[list[bytes]]:
        """Each output part's lines, parts in order."""
        from airflow_provider_smr.engine.inputs import parse_s3_uri

        for uri in result["parts"]:
            bucket, key = parse_s3_uri(uri, what="part")
            body = self.clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
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
