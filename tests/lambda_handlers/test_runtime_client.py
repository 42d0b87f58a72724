"""The tasks' S3 client: what it sends to the endpoint."""

from __future__ import annotations

import time

from lambda_handlers import runtime
from tests.lambda_handlers.conftest import WORK_BUCKET


def test_uploads_are_not_sha256_signed_over_plain_http_and_arrive_whole(s3):
    sent = []
    s3.meta.events.register("before-send.s3.PutObject",
                            lambda request, **_: sent.append(dict(request.headers)))
    body = b"shuffle bytes " * 100_000
    runtime.put_bytes(WORK_BUCKET, "client-test/obj", body)
    assert s3.meta.endpoint_url.startswith("http://")
    (headers,) = sent
    assert headers["X-Amz-Content-SHA256"] in ("UNSIGNED-PAYLOAD", b"UNSIGNED-PAYLOAD")
    assert "x-amz-checksum-crc32" in {k.lower() for k in headers}  # the body is still checked
    assert runtime.get_bytes(WORK_BUCKET, "client-test/obj") == body



def test_a_jobs_first_task_reads_its_plan_once_though_its_session_needs_it_too(harness, monkeypatch):
    """On a stack with a role, a task's first client assumes the job's session, whose grants come
    from the plan (read with the function's own credentials); the task's own plan read then reuses
    that plan rather than GETting it again with the session."""
    from lambda_handlers import protocol
    from lambda_handlers.jobspec import JobSpec, StepSpec

    plan = harness.submit(JobSpec(steps=[StepSpec(mapper=lambda line: [(line, 1)])]), [], [0])
    assumed = []

    def assume(bucket, job_id):  # the real one's reads, with the caller's keys (no role here)
        runtime.job_grants(bucket, job_id)
        assumed.append(job_id)
        return runtime._JobSession(expires=time.time() + 3600, credentials={
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})

    monkeypatch.setenv(protocol.ENV_ROLE_ARN, "arn:aws:iam::123456789012:role/smr-test")
    monkeypatch.setattr(runtime, "_assume", assume)
    runtime.reset()
    runtime.enter_job(WORK_BUCKET, plan["job_id"])
    metrics = runtime.start_metrics()
    assert runtime.load_plan(WORK_BUCKET, plan["job_id"]).job_id == plan["job_id"]
    assert runtime.load_plan(WORK_BUCKET, plan["job_id"]).job_id == plan["job_id"]
    assert assumed == [plan["job_id"]]
    assert metrics.requests["GetObject"] == 1


def test_tasks_of_any_job_invoke_with_the_functions_own_lambda_client(harness, monkeypatch):
    """A job's session grants exactly the role's Lambda invokes, so a task's invokes use the
    function's own client: no Lambda client is made per job (a warm container serves many)."""
    import pytest

    from lambda_handlers import protocol
    from lambda_handlers.jobspec import JobSpec, StepSpec

    spec = JobSpec(steps=[StepSpec(mapper=lambda line: [(line, 1)])])
    jobs = [harness.submit(spec, [], [0])["job_id"] for _ in range(2)]

    def assume(bucket, job_id):
        return runtime._JobSession(expires=time.time() + 3600, credentials={
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})

    monkeypatch.setenv(protocol.ENV_ROLE_ARN, "arn:aws:iam::123456789012:role/smr-test")
    monkeypatch.setattr(runtime, "_assume", assume)
    runtime.reset()
    for job_id in jobs:
        runtime.enter_job(WORK_BUCKET, job_id)
        runtime.load_plan(WORK_BUCKET, job_id)  # the task's S3 work, with its job's session
        with pytest.raises(Exception, match="ResourceNotFound|Function not found"):
            runtime.invoke(protocol.coordinate_event(WORK_BUCKET, job_id, "check-deadlines"), attempts=1,
                           function="smr-test-no-such-function")
        assert "lambda" not in runtime._sessions[job_id].clients
    assert "lambda" in runtime._clients
