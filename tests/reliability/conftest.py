"""Fixtures of the reliability tests: stacks deployed on the session's local stack, helpers to
run jobs, snapshot buckets and read outputs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.reliability.faults import FLAGS

DATA = "smr-rel-data"
POLL = 0.2
TIMEOUT = 240


@dataclass
class Env:
    """A deployed stack: clients, its StackInfo, a JobRunner, the data bucket."""

    clients: Any
    stack: Any
    runner: Any
    s3: Any

    def put(self, key: str, body: str) -> str:
        self.s3.put_object(Bucket=DATA, Key=key, Body=body.encode())
        return f"s3://{DATA}/{key}"

    def fresh(self, name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:8]}"

    def output(self, name: str = "out") -> str:
        return f"s3://{DATA}/out/{self.fresh(name)}/"

    def records(self, result: dict) -> dict:
        """Committed records as {key: value}; asserts every key appears exactly once."""
        got: dict = {}
        n = 0
        for uri in result["parts"]:
            bucket, key = uri[5:].split("/", 1)
            for line in self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines():
                rec = json.loads(line)
                got[rec["key"]] = rec["value"]
                n += 1
        assert n == len(got), "a key was committed twice"
        return got

    def objects(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """{key: etag} of every object under ``prefix``."""
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["ETag"]
        return out

    def snapshot(self) -> dict[str, dict[str, str]]:
        """Every object of every bucket on the endpoint."""
        return {b["Name"]: self.objects(b["Name"]) for b in self.s3.list_buckets()["Buckets"]}

    def job_objects(self, job_id: str) -> dict[str, str]:
        return self.objects(self.stack.work_bucket, f"jobs/{job_id}/")


def make_env(clients, name: str, *, memory_mb: int = 512, timeout_s: int = 60,
             extra_buckets: tuple = (), tables: tuple = ()) -> Env:
    from tests.deployments import deploy

    # The injected faults read and write their flags with the functions' own role: granted here.
    engine = deploy(clients, name, input_buckets=[DATA], output_buckets=[DATA, FLAGS, *extra_buckets],
                    memory_mb=memory_mb, timeout_s=timeout_s, tables=tables)
    return Env(engine.clients, engine.stack, engine.runner, engine.s3)


@pytest.fixture(scope="session")
def rel(aws_endpoint, aws_clients) -> Env:
    """The stack most reliability tests share (60 s timeout, 512 MB)."""
    return make_env(aws_clients(aws_endpoint), "smr-rel", extra_buckets=("smr-rel-versioned",))


@pytest.fixture(scope="session")
def tight(aws_endpoint, aws_clients) -> Env:
    """A stack with a 6 s function timeout and 256 MB, for killed tasks."""
    return make_env(aws_clients(aws_endpoint), "smr-rel-tight", memory_mb=256, timeout_s=6,
                    tables=("soak-*",))  # the soak's DynamoDB outputs (bench/soak.py names them)
