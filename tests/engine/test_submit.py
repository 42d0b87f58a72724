"""Submitting: plan.json claims the job id, the fan-out backs off on throttling and caps concurrency."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from airflow_provider_smr.engine.submit import (
    FanOutError,
    fan_out,
    invoke_async,
    map_events,
    unstarted_map_tasks,
    write_job,
)
from lambda_handlers import protocol
from lambda_handlers.plan import Plan

PLAN = Plan.from_json({"job_id": "j1", "work_bucket": "work-bucket",
                       "steps": [{"index": 0, "num_map_tasks": 4, "num_reducers": 1}]})


def throttled():
    return ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": 429}}, "Invoke")


class FakeLambda:
    """Records Event invokes; throttles the first ``throttle`` calls; tracks calls in flight."""

    def __init__(self, throttle=0, delay=0.0):
        self.calls, self.throttle, self.delay = [], throttle, delay
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def invoke(self, FunctionName, InvocationType, Payload):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            throttle = self.throttle > 0
            self.throttle -= 1
        try:
            time.sleep(self.delay)
            if throttle:
                raise throttled()
            self.calls.append((FunctionName, InvocationType, json.loads(Payload)))
            return {"StatusCode": 202}
        finally:
            with self.lock:
                self.in_flight -= 1


def test_invoke_backs_off_on_throttling_then_succeeds():
    fake, sleeps = FakeLambda(throttle=3), []
    tries = invoke_async(fake, "mapper", {"x": 1}, sleep=sleeps.append)
    assert tries == 4 and len(fake.calls) == 1 and fake.calls[0][1] == "Event"
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]


def test_invoke_gives_up_after_max_tries_with_a_clear_error():
    with pytest.raises(FanOutError, match="still throttled after 3 tries"):
        invoke_async(FakeLambda(throttle=10), "mapper", {}, max_tries=3, sleep=lambda s: None)


def test_invoke_does_not_retry_other_errors():
    class Denied:
        def invoke(self, **kw):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Invoke")

    with pytest.raises(FanOutError, match="AccessDeniedException"):
        invoke_async(Denied(), "mapper", {}, sleep=lambda s: None)


def test_fan_out_invokes_every_map_task_once_within_the_concurrency_cap():
    fake = FakeLambda(delay=0.01)
    stats = fan_out(fake, "mapper", map_events(PLAN), max_concurrency=2)
    assert stats == {"invokes": 4, "tries": 4}
    assert sorted(c[2]["task"] for c in fake.calls) == [0, 1, 2, 3]
    assert all(c[2]["kind"] == "map" and c[2]["attempt"] == 0 for c in fake.calls)
    assert fake.max_in_flight <= 2


def test_unstarted_tasks_are_those_without_any_marker():
    listed = [{"Key": protocol.start_marker_key("j1", 0, "map", 1, 0)},
              {"Key": protocol.done_marker_key("j1", 0, "map", 3)},
              {"Key": protocol.start_marker_key("j1", 0, "reduce", 0, 0)}]
    assert unstarted_map_tasks(PLAN, listed) == [0, 2]


def test_plan_is_written_once_and_a_second_submit_is_refused(aws_clients, aws_endpoint):
    s3 = aws_clients(aws_endpoint).s3
    s3.create_bucket(Bucket="work-bucket")
    job_id = f"j1-{uuid.uuid4().hex[:8]}"
    assert write_job(s3, "work-bucket", job_id, PLAN, b"pickle-1")
    assert not write_job(s3, "work-bucket", job_id, PLAN.with_driver(n=2), b"pickle-2")
    plan = json.loads(s3.get_object(Bucket="work-bucket", Key=protocol.plan_key(job_id))["Body"].read())
    pickled = s3.get_object(Bucket="work-bucket", Key=protocol.job_pickle_key(job_id))["Body"].read()
    assert plan == json.loads(json.dumps(PLAN.to_json())) and pickled == b"pickle-1"
