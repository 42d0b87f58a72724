"""The serverless driver dying after its claim: caught by the claim's deadline and retried.

A driver killed by Lambda (timeout, out of memory) right after it claimed a job leaves exactly
this behind: its ``drive`` claim (which records when its time ran out), no ``plan.json``, no map
task. The tests leave that state by swallowing the drive event the runner sends and writing the
claim as the driver would, on the 6 s stack; the waiter's deadline checks must then have the
coordinator start the next driver attempt (or fail the job once the attempts are used up).
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_smr.engine import submit as submit_mod
from airflow_provider_smr.engine.runner import JobFailedError
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from tests.reliability import faults
from tests.reliability.conftest import POLL, TIMEOUT

pytestmark = pytest.mark.timeout(300)
GRACE = 2


@pytest.fixture
def driver_dies_after_its_claim(tight, monkeypatch):
    """The first drive event of each job claims the job and dies there."""
    real = submit_mod.invoke_async

    def invoke_async(client, function, event, *args, **kwargs):
        if event.get("kind") != protocol.EVENT_DRIVE:
            return real(client, function, event, *args, **kwargs)
        claim = {"attempt": 0, "deadline": time.time()}  # killed at once: its time ran out now
        tight.s3.put_object(Bucket=tight.stack.work_bucket,
                            Key=protocol.claim_key(event["job_id"], protocol.drive_claim(0)),
                            Body=json.dumps(claim).encode())
        return 1

    monkeypatch.setattr(submit_mod, "invoke_async", invoke_async)


def claims(env, job_id: str) -> set[str]:
    return {k.rsplit("/", 1)[-1] for k in env.job_objects(job_id) if "/status/claims/" in k}


def test_a_driver_that_died_after_its_claim_is_retried_and_the_job_completes(tight,
                                                                               driver_dies_after_its_claim):
    text = faults.words_text(5, 40)
    uri = tight.put(f"{tight.fresh('drv')}/in.txt", text)
    job = MapReduceJob(mapper=faults.tokenize, reducer=faults.total)
    job_id = tight.runner.submit(job, input=uri, output=tight.output(),
                                 options=JobOptions(driver="lambda", num_reducers=1, deadline_grace_s=GRACE))
    result = tight.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    assert tight.records(result) == faults.word_count(text)
    assert {"drive", "retry-drive-1", "drive-1"} <= claims(tight, job_id)
    assert not any("drive-2" in c for c in claims(tight, job_id))


def test_a_driver_dying_on_every_attempt_fails_the_job_naming_the_cause(tight, driver_dies_after_its_claim):
    uri = tight.put(f"{tight.fresh('drv')}/in.txt", faults.words_text(6, 10))
    output = tight.output()
    job_id = tight.runner.submit(MapReduceJob(mapper=faults.tokenize, reducer=faults.total), input=uri,
                                 output=output, options=JobOptions(driver="lambda", max_attempts=1,
                                                                   deadline_grace_s=GRACE))
    with pytest.raises(JobFailedError, match=r"the driver function ended 1 time\(s\) without planning "
                                             r"and starting the job \(max_attempts=1\)"):
        tight.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    written = tight.job_objects(job_id)
    assert protocol.failed_key(job_id) in written and protocol.plan_key(job_id) not in written
    assert "retry-drive-1" not in claims(tight, job_id)
