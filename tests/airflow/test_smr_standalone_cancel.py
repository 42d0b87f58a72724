"""cancel_on_kill under a real scheduler, triggerer and worker (``airflow standalone``).

A slow job (tests/airflow/standalone_dags/) is started through the REST API; once it runs, its task
is marked failed through the REST API, deferred (the triggerer calls the trigger's ``on_kill``) or
in a worker (the supervisor stops the task and Airflow calls the operator's ``on_kill``). The job
must be cancelled while its map task still runs and never commit.
"""

from __future__ import annotations

import time
import uuid

import pytest

from airflow_provider_smr.deploy.errors import StackNotFoundError
from airflow_provider_smr.engine.runner import JobNotFoundError
from airflow_provider_smr.operators.smr import deterministic_job_id
from lambda_handlers import protocol
from tests.airflow.standalone import POLL_S

pytestmark = pytest.mark.timeout(1500)  # standalone starts slowly on a loaded 2-core box
BUCKET, TASK_ID = "smr-cancel-standalone", "slow_count"
LINES = 60  # x 0.5 s per record: a map task of 30 s


@pytest.fixture(scope="module")
def aws(aws_endpoint):
    from airflow_provider_smr.deploy import describe_stack
    from airflow_provider_smr.engine.runner import JobRunner
    from tests.conftest import make_aws_clients

    clients = make_aws_clients(aws_endpoint)
    try:
        clients.s3.create_bucket(Bucket=BUCKET)
    except clients.s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    clients.s3.put_object(Bucket=BUCKET, Key="in/lines.txt",
                          Body="".join(f"w{i % 5} w{i % 2}\n" for i in range(LINES)).encode())

    def runner() -> JobRunner:  # the DAG's task deploys the stack: read it once it exists
        return JobRunner(clients, describe_stack(clients, "smr"))

    return clients, runner


def task_logs(api, dag_id: str) -> str:
    """The task's and its trigger's log files (the standalone's AIRFLOW_HOME is next to its log)."""
    logs = sorted((api.log.parent / "home" / "logs").glob(f"dag_id={dag_id}/**/*.log*"))
    return "\n".join(f"== {path.name}\n{path.read_text()[-4000:]}" for path in logs)


@pytest.mark.parametrize(("dag_id", "waiting_state"), [("smr_cancel_deferred", "deferred"),
                                                       ("smr_cancel_worker", "running")])
def test_marking_the_task_failed_cancels_its_job_which_never_commits(standalone, aws, dag_id, waiting_state):
    api, (clients, runner) = standalone, aws
    # standalone starts slowly on a loaded machine: more patience than ready()'s own 180 s
    api.wait_for("the API server", lambda: (api.call("GET", "/monitor/health")[0] == 200, {}), 600)
    api.ready(dag_id)
    output = f"s3://{BUCKET}/out/{dag_id}-{uuid.uuid4().hex[:8]}/"
    run_id, run_path = api.trigger(dag_id, {"output": output})
    ti_path = f"{run_path}/taskInstances/{TASK_ID}"
    job_id = deterministic_job_id(dag_id, run_id, TASK_ID, -1)

    def waiting_on_a_running_job():
        ti = api.call("GET", ti_path)[1]
        if ti.get("state") != waiting_state:
            assert ti.get("state") not in ("success", "failed", "upstream_failed"), ti
            return False, ti
        if waiting_state == "deferred" and not (ti.get("trigger") or {}).get("triggerer_id"):
            return False, ti  # deferred, but no triggerer runs its trigger yet: nothing could cancel
        try:
            return runner().status(job_id).state == protocol.RUNNING, ti
        except (StackNotFoundError, JobNotFoundError):  # not deployed or not submitted yet
            return False, ti

    api.wait_for(f"{TASK_ID} {waiting_state} on a running job", waiting_on_a_running_job, 240)
    status, body = api.call("PATCH", ti_path, {"new_state": "failed"})
    assert status == 200, body

    def cancelled():
        job = runner().status(job_id)
        return job.state == protocol.CANCELLED, job.to_dict()

    deadline = time.monotonic() + 60
    while not (found := cancelled())[0]:
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} was not cancelled: {found[1]['state']}; task logs:\n{task_logs(api, dag_id)}")
        time.sleep(POLL_S)
    job = found[1]
    assert job["progress"]["map"]["done"] == 0  # cancelled while its one map task still ran
    claim = clients.s3.get_object(Bucket=runner().stack.work_bucket, Key=protocol.claim_key(job_id, "commit"))
    assert claim["Body"].read() == b"cancelled"  # no commit can ever win the claim
    prefix = output.removeprefix(f"s3://{BUCKET}/")
    assert "Contents" not in clients.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)  # no parts, no _SUCCESS
    assert api.call("GET", ti_path)[1]["state"] == "failed"
