"""Fixtures for the data plane: the local stack's S3 and an in-process handler chain.

The chain replaces Lambda's async invoke (``runtime.set_invoker``) with a queue whose events are
run by the real handlers, optionally duplicated and concurrently, against the local stack's S3
through boto3 exactly as inside Lambda (only the env vars of ``s3_endpoint``).
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest

from lambda_handlers import coordinator, driver, mapper, protocol, reducer, runtime
from lambda_handlers.options import JobOptions, TaskLimits

WORK_BUCKET = "smr-work-test"
DATA_BUCKET = "smr-data-test"
FUNCTIONS = {"smr-mapper": mapper.handler, "smr-reducer": reducer.handler,
             "smr-coordinator": coordinator.handler, "smr-driver": driver.handler}
STACK_ENV = {
    protocol.ENV_WORK_BUCKET: WORK_BUCKET, protocol.ENV_STACK_NAME: "smr-test",
    protocol.ENV_MAPPER_FUNCTION: "smr-mapper", protocol.ENV_REDUCER_FUNCTION: "smr-reducer",
    protocol.ENV_COORDINATOR_FUNCTION: "smr-coordinator", protocol.ENV_DRIVER_FUNCTION: "smr-driver",
}


@pytest.fixture(scope="session")
def buckets(aws_endpoint, aws_clients) -> str:
    """The work and data buckets on the session's local stack."""
    s3 = aws_clients(aws_endpoint).s3
    for b in (WORK_BUCKET, DATA_BUCKET):
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    return aws_endpoint


@pytest.fixture
def s3_endpoint(buckets, aws_env, monkeypatch):
    """The env a Lambda function would have, pointing at the local stack (this test only)."""
    for k, v in {**aws_env, **STACK_ENV}.items():
        monkeypatch.setenv(k, v)
    runtime.reset()
    yield buckets
    runtime.set_invoker(None)
    runtime.reset()


@pytest.fixture
def s3(s3_endpoint):
    return runtime.s3()


class Chain:
    """Runs invoked events through the real handlers until nothing is left to run."""

    def __init__(self, duplicate: bool = False, workers: int = 1):
        self.duplicate, self.workers = duplicate, workers
        self.q: queue.Queue = queue.Queue()
        self.calls: Counter = Counter()
        self.results: list = []
        self._lock = threading.Lock()

    def invoker(self, function_name: str, event: dict) -> None:
        json.dumps(event)  # payloads must be JSON, as for Lambda
        for _ in range(2 if self.duplicate else 1):
            self.q.put((function_name, copy.deepcopy(event)))

    def _run_one(self, item):
        name, event = item
        with self._lock:
            self.calls[(event["kind"], event.get("step"), event.get("task"), event.get("attempt"))] += 1
        result = FUNCTIONS[name](event)
        with self._lock:
            self.results.append((event, result))
        return result

    def run(self, events: list[dict] = ()) -> None:
        for e in events:
            self.invoker(runtime.function_for(e["kind"]), e)
        with ThreadPoolExecutor(self.workers) as pool:
            pending = set()
            while True:
                while not self.q.empty():
                    pending.add(pool.submit(self._run_one, self.q.get()))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()


@pytest.fixture
def chain(s3_endpoint):
    made = []

    def make(duplicate: bool = False, workers: int = 1) -> Chain:
        c = Chain(duplicate, workers)
        runtime.set_invoker(c.invoker)
        made.append(c)
        return c

    yield make
    runtime.set_invoker(None)


# ---------------------------------------------------------------------------------------------
# A minimal test planner (the real one is the control plane's): splits, plan.json, job.pkl.


def put_object(s3, key: str, body: bytes, bucket: str = DATA_BUCKET) -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return {"bucket": bucket, "key": key}


def plan_splits(s3, objects: list[dict], split_size: int, fmt: str, input_name: str = "default") -> list[dict]:
    splits = []
    for o in objects:
        head = s3.head_object(Bucket=o["bucket"], Key=o["key"])
        size, etag = head["ContentLength"], head["ETag"]
        base = {"input": input_name, "bucket": o["bucket"], "key": o["key"], "etag": etag,
                "size": size, "format": fmt, "compression": None}
        if o["key"].endswith(".gz"):
            splits.append({**base, "start": 0, "end": size, "compression": "gzip"})
            continue
        for start in range(0, max(size, 1), split_size):
            splits.append({**base, "start": start, "end": min(size, start + split_size)})
    for i, sp in enumerate(splits):
        sp["task"] = i
    return splits


LIMITS = ("memory_mb", "task_timeout_s", "memory_budget_bytes", "stack_max_running_tasks")


def submit(s3, spec, splits: list[dict], reducers: list[int], output_prefix: str | None = None,
           output_format: str = "jsonl", overwrite: bool = False, job_id: str | None = None,
           **settings) -> dict:
    """Write job.pkl + plan.json; return the plan (with the step-0 map events under 'events')."""
    import cloudpickle

    job_id = job_id or f"t-{uuid.uuid4().hex[:12]}"
    prefix = output_prefix if output_prefix is not None else f"out/{job_id}/"
    steps, m = [], len(splits)
    for i, r in enumerate(reducers):
        steps.append({"index": i, "num_map_tasks": m, "num_reducers": r})
        m = r
    plan = {
        "v": 2, "job_id": job_id, "work_bucket": WORK_BUCKET, "created": "2026-01-01T00:00:00Z",
        "job_name": spec.name,
        "options": JobOptions(**{k: v for k, v in settings.items() if k not in LIMITS}).to_dict(),
        "limits": TaskLimits(**{"task_timeout_s": 60, "memory_budget_bytes": 64 << 20,
                                **{k: v for k, v in settings.items() if k in LIMITS}}).to_dict(),
        "inputs": {}, "splits": splits, "steps": steps,
        "output": {"uri": f"s3://{DATA_BUCKET}/{prefix}", "bucket": DATA_BUCKET, "prefix": prefix,
                   "format": output_format, "overwrite": overwrite, "inputs": []},
    }
    s3.put_object(Bucket=WORK_BUCKET, Key=protocol.job_pickle_key(job_id), Body=cloudpickle.dumps(spec))
    s3.put_object(Bucket=WORK_BUCKET, Key=protocol.plan_key(job_id), Body=json.dumps(plan).encode())
    plan["events"] = [protocol.task_event("map", WORK_BUCKET, job_id, 0, t, 0) for t in range(len(splits))]
    return plan


def read_output(s3, plan: dict) -> tuple[list[bytes], dict]:
    """(lines of all parts in part order, the _SUCCESS manifest)."""
    out = plan["output"]
    manifest = json.loads(s3.get_object(Bucket=out["bucket"], Key=out["prefix"] + "_SUCCESS")["Body"].read())
    lines = []
    for p in manifest["parts"]:
        lines += s3.get_object(Bucket=out["bucket"], Key=p["key"])["Body"].read().splitlines()
    return lines, manifest


def job_state(s3, job_id: str) -> list[str]:
    resp = s3.list_objects_v2(Bucket=WORK_BUCKET, Prefix=protocol.status_prefix(job_id) + "job/")
    return [o["Key"].rsplit("/", 1)[1] for o in resp.get("Contents", [])]


@pytest.fixture
def harness(s3):
    class H:
        put = staticmethod(lambda key, body, bucket=DATA_BUCKET: put_object(s3, key, body, bucket))
        splits = staticmethod(lambda objs, ss, fmt="text", name="default": plan_splits(s3, objs, ss, fmt, name))
        submit = staticmethod(lambda spec, splits, reducers, **kw: submit(s3, spec, splits, reducers, **kw))
        output = staticmethod(lambda plan: read_output(s3, plan))
        state = staticmethod(lambda job_id: job_state(s3, job_id))
    H.s3 = s3
    return H
