"""``reserved_concurrency``: Lambda's own cap on each of the stack's functions, on the local stack
as on AWS (deployed, updated and removed; async invokes past it wait in the queue)."""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_smr.deploy import deploy_stack
from lambda_handlers.options import JobOptions, StackSettings
from tests.lambda_handlers.test_admission import (
    SLOW_COUNT,
    expected_counts,
    most_at_once,
    output_counts,
    put_input,
    task_intervals,
)

DATA = "smr-admission-data"  # put_input's bucket

pytestmark = pytest.mark.timeout(600)


def reservations(clients, stack) -> set:
    return {clients.lambda_.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
            for name in stack.functions.values()}


def test_reserved_concurrency_caps_each_function_and_a_redeploy_removes_it(deploy_engine):
    engine = deploy_engine("smr-reserved", input_buckets=[DATA], reserved_concurrency=2)
    assert reservations(engine.clients, engine.stack) == {2}
    uri, body = put_input(engine.s3, 12)
    output = f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"
    result = engine.runner.run(SLOW_COUNT, input=uri, output=output, poll_interval=0.25, timeout=300,
                               options=JobOptions(split_size="1KiB", num_reducers=1))
    assert output_counts(engine.s3, result) == expected_counts(body)
    # the fan-out invoked every map task at once: Lambda's queue held all but two
    assert most_at_once(task_intervals(engine.s3, engine.runner.bucket, result["job_id"])) <= 2

    settings = StackSettings(memory_mb=512, timeout_s=60)
    stack = deploy_stack(engine.clients, "smr-reserved", settings, input_buckets=[DATA],
                         output_buckets=[DATA])
    assert reservations(engine.clients, stack) == {None}
