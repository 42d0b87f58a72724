"""Issue 5, faults 10 and 11 and the security guarantees checked on a running stack.

- bad submissions fail with one clear error before anything is invoked or written;
- malformed events are errors (FunctionError) naming the fault, logged by every handler, with no
  S3 write anywhere; a job pickle planted in another bucket is never loaded (pickle runs code);
- recognisable fake credentials never show up in the work bucket, the logs, the invoke payloads,
  the result dict or the error of a failed job.

The CloudFormation template itself (no ``*`` on ``*``, S3 scoped to the declared buckets, no
``iam:PassRole``, private encrypted TLS-only work bucket) is checked in
``tests/deploy/test_deploy_template.py``.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import threading

import pytest

from airflow_provider_smr.engine.runner import JobFailedError, JobRunner
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from tests.reliability import faults
from tests.reliability.conftest import DATA, POLL, TIMEOUT

pytestmark = pytest.mark.timeout(300)
ROLES = ("mapper", "reducer", "coordinator", "driver")
FAKE_KEY_ID = "AKIASMRRELFAKE7Q2Z9X"
FAKE_SECRET = "smrRelFakeSecret/DoNotLeak+9f8e7d6c5b4a"
FAKE_TOKEN = "smrRelFakeSessionToken0123456789"


def log_events(env) -> list[str]:
    out = []
    for role in ROLES:
        group = f"/aws/lambda/{env.stack.functions[role]}"
        try:
            pages = env.clients.logs.get_paginator("filter_log_events").paginate(logGroupName=group)
            for page in pages:
                out += [e["message"] for e in page.get("events", [])]
        except env.clients.logs.exceptions.ResourceNotFoundException:
            pass
    return out


def unpicklable_mapper():
    lock = threading.Lock()

    def mapper(line):
        with lock:
            yield line, 1

    return mapper


@pytest.fixture(scope="module")
def some_input(rel):
    prefix = rel.fresh("bad-input")
    rel.put(f"{prefix}/a.txt", "a b\n")
    return prefix


CASES = {
    "no such bucket": (lambda p: "s3://smr-rel-no-such-bucket/x/", lambda p: f"s3://{DATA}/o-{p}/",
                       {}, "smr-rel-no-such-bucket"),
    "prefix matching nothing": (lambda p: f"s3://{DATA}/{p}-nothing/", lambda p: f"s3://{DATA}/o-{p}/",
                                {}, "nothing"),
    "output inside the input": (lambda p: f"s3://{DATA}/{p}/", lambda p: f"s3://{DATA}/{p}/out/",
                                {}, "input"),
    "unpicklable job": (lambda p: f"s3://{DATA}/{p}/", lambda p: f"s3://{DATA}/o-{p}/",
                        {"mapper": unpicklable_mapper()}, "lock"),
    "worker python the stack cannot run": (lambda p: f"s3://{DATA}/{p}/",
                                           lambda p: f"s3://{DATA}/o-{p}/",
                                           {"runtime": "python3.9"}, "3.9"),
}


@pytest.fixture(scope="module")
def last_seen() -> dict:
    """Every bucket's objects and the stack's log-event count as the previous bad submission left
    them, so the next case starts from there instead of listing everything again (a full
    snapshot takes seconds late in the suite). Only a case that passed leaves its figures: anything
    written in between would fail the next case, never pass it."""
    return {}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_submission_fails_with_one_clear_error_and_invokes_and_writes_nothing(rel, some_input, last_seen,
                                                                                 case):
    input_uri, output_uri, change, named = CASES[case]
    runner = rel.runner
    if "runtime" in change:
        runner = JobRunner(rel.clients, dataclasses.replace(rel.stack, runtime=change["runtime"]))
    job = MapReduceJob(mapper=change.get("mapper", faults.tokenize), reducer=faults.total)
    before, logs_before = last_seen.pop("snapshot", None), last_seen.pop("logs", None)
    if before is None or logs_before is None:
        before, logs_before = rel.snapshot(), len(log_events(rel))
    with pytest.raises(Exception) as err:
        runner.submit(job, input=input_uri(some_input), output=output_uri(some_input))
    assert named.lower() in str(err.value).lower(), str(err.value)
    assert "\n" not in str(err.value).strip() or len(str(err.value)) < 2000
    after, logs_after = rel.snapshot(), len(log_events(rel))
    assert after == before  # nothing written anywhere
    assert logs_after == logs_before  # no function ran
    last_seen.update(snapshot=after, logs=logs_after)


def planted_job_pickle(env, job_id: str) -> None:
    """A job.pkl in the DATA bucket whose unpickling would write an object (it must never run)."""

    class Evil:
        def __reduce__(self):
            return (exec, (f"import boto3; boto3.client('s3').put_object(Bucket={DATA!r}, "
                           f"Key='pwned/{job_id}', Body=b'!')",))

    env.s3.put_object(Bucket=DATA, Key=protocol.job_pickle_key(job_id), Body=pickle.dumps(Evil()))
    env.s3.put_object(Bucket=DATA, Key=protocol.plan_key(job_id), Body=b"{}")


WHAT_WAS_WRONG = {"not an object": "event must be a JSON object", "missing fields": "step must be",
                  "wrong types": "step must be", "job id with ../": "invalid job id",
                  "job id with /": "invalid job id", "negative attempt": "attempt must be",
                  "another bucket": "is not this stack's work bucket", "unknown kind": "'exec'"}


def malformed_events(work: str, job_id: str) -> dict[str, object]:
    good = protocol.task_event(protocol.MAP, work, job_id, 0, 0, 0)
    return {
        "not an object": ["map"],
        "missing fields": {"kind": "map", "bucket": work, "job_id": job_id},
        "wrong types": {**good, "step": "0", "task": 1.5},
        "job id with ../": {**good, "job_id": "../other-job"},
        "job id with /": {**good, "job_id": "a/b"},
        "negative attempt": {**good, "attempt": -1},
        "another bucket": {**good, "bucket": DATA},
        "unknown kind": {**good, "kind": "exec"},
    }


def test_malformed_events_are_function_errors_naming_the_fault_without_any_s3_write(rel):
    job_id = rel.fresh("planted")
    planted_job_pickle(rel, job_id)
    events = malformed_events(rel.stack.work_bucket, job_id)
    before = rel.snapshot()
    for role in ROLES:
        for name, event in events.items():
            if role == "coordinator" and isinstance(event, dict) and event.get("kind") == "map":
                event = {**event, "kind": "coordinate"} if name == "another bucket" else event
            response = rel.clients.lambda_.invoke(FunctionName=rel.stack.functions[role],
                                                  Payload=json.dumps(event).encode())
            body = json.loads(response["Payload"].read())
            assert response.get("FunctionError") == "Unhandled", (role, name, body)  # counted in Errors
            assert body["errorType"] == "InvalidEventError", (role, name, body)
            assert body["errorMessage"].startswith("invalid "), (role, name, body)
            if role == "mapper":  # the events are map events: other handlers first see the kind
                assert WHAT_WAS_WRONG[name] in body["errorMessage"], (role, name, body)
    assert rel.snapshot() == before  # no marker, no error detail, the planted pickle never ran
    assert sum("rejected event" in m for m in log_events(rel)) >= len(ROLES) * len(events)


def test_no_credentials_in_objects_logs_payloads_result_or_errors(rel, aws_endpoint, aws_clients,
                                                                  monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                 "AWS_SESSION_TOKEN": FAKE_TOKEN}.items():
        monkeypatch.setenv(k, v)
    clients = aws_clients(aws_endpoint, aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET,
                          aws_session_token=FAKE_TOKEN)
    payloads: list[bytes] = []
    clients.lambda_.meta.events.register(
        "before-call.lambda.Invoke", lambda params, **_: payloads.append(params["body"]))
    runner = JobRunner(clients, rel.stack)
    prefix = rel.fresh("secrets")
    rel.put(f"{prefix}/a.txt", faults.words_text(1, 30))
    rel.put(f"{prefix}/b.txt", faults.words_text(2, 30))

    result = runner.run(MapReduceJob(mapper=faults.tokenize, reducer=faults.total),
                        input=f"s3://{DATA}/{prefix}/", output=rel.output("secrets"),
                        job_params={"note": "harmless"}, poll_interval=POLL, timeout=TIMEOUT,
                        options=JobOptions(num_reducers=2))
    with pytest.raises(JobFailedError) as err:
        runner.run(MapReduceJob(mapper=faults.failing_mapper, reducer=faults.total),
                   input=f"s3://{DATA}/{prefix}/", output=rel.output("secrets"), poll_interval=POLL,
                   timeout=TIMEOUT, options=JobOptions(max_attempts=1))

    haystacks = {"result": json.dumps(result), "error": str(err.value) + json.dumps(err.value.failed),
                 "payloads": b"".join(payloads).decode(), "logs": "\n".join(log_events(rel))}
    for job_id in (result["job_id"], err.value.failed["job_id"]):
        for key in rel.job_objects(job_id):
            body = rel.s3.get_object(Bucket=rel.stack.work_bucket, Key=key)["Body"].read()
            haystacks[key] = body.decode("latin-1")
    for uri in result["parts"] + [result["output"] + "_SUCCESS"]:
        bucket, key = uri[5:].split("/", 1)
        haystacks[uri] = rel.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert payloads and len(haystacks) > 10
    for where, text in haystacks.items():
        for secret in (FAKE_KEY_ID, FAKE_SECRET, FAKE_TOKEN, "smrRelFake"):
            assert secret not in text, f"{secret!r} leaked into {where}"
