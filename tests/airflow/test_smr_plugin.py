"""The UI plugin's app (FastAPI TestClient) against jobs on the local stack, behind Airflow's auth.

The app is mounted as Airflow's API server mounts it (``SMRPlugin.fastapi_apps``), with Airflow's
auth manager (simple, in a migrated metadata DB) and a real ``aws`` connection to the local stack.
Only the XCom lookup of the task instance's job is swapped for the JobRef the task would have
persisted; ``test_smr_plugin_standalone.py`` covers that lookup under ``airflow standalone``.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from airflow_provider_smr.plugins import jobs
from airflow_provider_smr.plugins.smr import SMRPlugin
from lambda_handlers.options import JobOptions

DATA = "smr-plugin-data"
STACK = "smr-plugin"
CONN_ID = "smr_plugin_local"
PAGES = "/smr/dags/plugin_dag/runs/manual__1/tasks/{task}/{page}"
POLL = 0.25
TIMEOUT = 300

pytestmark = pytest.mark.timeout(900)


# -- the job's functions (pickled by value into the local stack's workers) -------------------------

def gated_tokenize(line):
    """Wait until the test opens the job's gate (an S3 object), then count words."""
    import time

    import boto3

    from lambda_handlers import context

    s3, key = boto3.client("s3"), context.job_params().get("gate")
    deadline = time.time() + 120
    while key and time.time() < deadline:
        try:
            s3.head_object(Bucket="smr-plugin-data", Key=key)
            break
        except Exception:  # noqa: BLE001 - not open yet
            time.sleep(0.2)
    for word in line.split():
        yield word.lower(), 1


def fail_on_poison(line):
    if "poison" in line:
        raise ValueError("poisoned record")
    for word in line.split():
        yield word.lower(), 1


def total(key, values):
    yield key, sum(values)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metadata_db(airflow_home):
    """This process's metadata DB, migrated (the auth checks read it): a copy of the session's."""
    import sqlalchemy as sa
    from airflow import settings

    with settings.engine.connect() as connection:
        migrated = sa.inspect(connection).has_table("alembic_version")
    if not migrated:
        settings.engine.dispose()
        shutil.copy(airflow_home / "airflow.db", settings.engine.url.database)
        settings.engine.dispose()


@pytest.fixture(scope="module")
def engine(deploy_engine):
    return deploy_engine(STACK, input_buckets=[DATA])


@pytest.fixture(scope="module")
def connection(aws_endpoint, airflow_conn):
    """The task's ``aws`` connection, pointing at the local stack."""
    name = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[name] = airflow_conn(aws_endpoint)
    yield CONN_ID
    os.environ.pop(name, None)


@pytest.fixture(scope="module")
def refs():
    """{task_id: JobRef}: what each "task" persisted (the XCom lookup reads this instead)."""
    return {}


@pytest.fixture(scope="module")
def app(metadata_db, refs):
    from airflow.api_fastapi.app import init_auth_manager
    from fastapi import FastAPI

    from airflow_provider_smr.plugins.app import locate_job

    init_auth_manager()
    (mounted,) = SMRPlugin.fastapi_apps
    plugin_app = mounted["app"].app

    def lookup(dag_id: str, run_id: str, task_id: str) -> jobs.JobRef:
        if task_id not in refs:
            raise jobs.JobNotFound(f"task {task_id!r} recorded no SMR job")
        return refs[task_id]

    plugin_app.dependency_overrides[locate_job] = lookup
    root = FastAPI()
    root.mount(mounted["url_prefix"], mounted["app"])
    yield root
    plugin_app.dependency_overrides.clear()


@pytest.fixture(scope="module")
def client(app):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def submit(engine, connection, aws_endpoint, task: str, refs: dict, job: MapReduceJob, text: str,
           **options) -> str:
    """Run ``job`` as a task would, and record the JobRef the task persists under ``task``."""
    prefix = f"{task}-{uuid.uuid4().hex[:8]}"
    engine.s3.put_object(Bucket=DATA, Key=f"{prefix}/in.txt", Body=text.encode())
    output = f"s3://{DATA}/{prefix}/out/"
    job_id = engine.runner.submit(job, input=f"s3://{DATA}/{prefix}/in.txt", output=output,
                                  options=JobOptions(**options), job_params={"gate": f"{prefix}/gate"})
    refs[task] = jobs.JobRef.from_link_data({
        "job_id": job_id, "stack_name": STACK, "output": output, "aws_conn_id": connection,
        "region_name": "us-east-1", "endpoint_url": aws_endpoint,
        "work_bucket": engine.stack.work_bucket, "functions": engine.stack.functions})
    return job_id


def open_gate(engine, ref: jobs.JobRef) -> None:
    prefix = ref.output[len(f"s3://{DATA}/"):].removesuffix("out/")
    engine.s3.put_object(Bucket=DATA, Key=f"{prefix}gate", Body=b"")


def url(task: str, page: str) -> str:
    return PAGES.format(task=task, page=page)


TEXT = "the quick brown fox\njumps over the lazy dog\nthe end\n"


# -- tests ---------------------------------------------------------------------------------------


def test_the_plugin_is_what_airflow_accepts():
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse
    from airflow.plugins_manager import is_valid_plugin

    assert is_valid_plugin(SMRPlugin)
    (view,) = SMRPlugin.external_views
    assert ExternalViewResponse(**view).destination == "task_instance"
    assert view["href"].startswith("/smr/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}/job")


def test_pages_need_a_user_airflow_accepts(app, client):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        assert anonymous.get(url("any", "job")).status_code == 401
        assert anonymous.get(url("any", "report"), headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get(url("any", "job")).status_code == 404  # authenticated: now it looks the job up


def test_status_and_report_while_the_job_runs_and_after(engine, connection, aws_endpoint, refs, client):
    job_id = submit(engine, connection, aws_endpoint, "running", refs, MapReduceJob(mapper=gated_tokenize,
                    reducer=total), TEXT, num_reducers=2)
    running = client.get(url("running", "job"))
    assert running.status_code == 200, running.text
    assert re.search(r'class="state (PENDING|RUNNING)"', running.text)
    assert '<meta http-equiv="refresh"' in running.text  # reloads itself while the job runs
    assert job_id in running.text and "1 map" in running.text and "records" in running.text
    live = client.get(url("running", "report"))
    assert live.status_code == 200 and '<meta http-equiv="refresh"' in live.text and "<svg" in live.text

    open_gate(engine, refs["running"])
    engine.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)

    done = client.get(url("running", "job"))
    assert 'class="state SUCCEEDED"' in done.text and '<meta http-equiv="refresh"' not in done.text
    assert "1 reduce" in done.text and "3 records" in done.text  # 3 lines read
    report = client.get(url("running", "report"))
    assert report.status_code == 200 and '<meta http-equiv="refresh"' not in report.text
    assert 'aria-label="timeline of task attempts"' in report.text
    assert len(re.findall(r'<rect class="attempt ', report.text)) == 3  # 1 map + 2 reduce attempts
    logs = client.get(url("running", "logs"))
    assert logs.status_code == 200  # a job that succeeded has log lines too: one per task attempt
    assert logs.text.count("&quot;outcome&quot;: &quot;done&quot;") == 3, logs.text[-3000:]


def test_a_failed_job_shows_its_failure_traceback_and_log_lines(engine, connection, aws_endpoint, refs,
                                                                client):
    job_id = submit(engine, connection, aws_endpoint, "failing", refs,
                    MapReduceJob(mapper=fail_on_poison, reducer=total), TEXT + "poison\n", max_attempts=1)
    from airflow_provider_smr.engine.runner import JobFailedError

    with pytest.raises(JobFailedError):
        engine.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    status = client.get(url("failing", "job"))
    assert 'class="state FAILED"' in status.text
    assert "ValueError: poisoned record" in status.text and "Traceback (most recent call last)" in status.text
    logs = client.get(url("failing", "logs"))
    assert logs.status_code == 200
    assert f"of job {job_id} failed" in logs.text  # the mapper's own error line, found by the job id
    assert "START RequestId:" in logs.text and "REPORT RequestId:" in logs.text  # that invocation's log


def test_output_page_lists_what_the_job_committed(client, refs):
    assert "running" in refs, "runs after test_status_and_report_while_the_job_runs_and_after"
    page = client.get(url("running", "output"))
    assert page.status_code == 200
    assert "part-00000" in page.text and "part-00001" in page.text and "_SUCCESS" in page.text


def test_unknown_jobs_are_not_found(client, refs, connection, aws_endpoint, engine):
    assert client.get(url("never-ran", "report")).status_code == 404
    refs["expired"] = jobs.JobRef(job_id="no-such-job", stack_name=STACK, output=f"s3://{DATA}/x/",
                                  aws_conn_id=connection, endpoint_url=aws_endpoint,
                                  work_bucket=engine.stack.work_bucket, functions=engine.stack.functions)
    page = client.get(url("expired", "job"))
    assert page.status_code == 404 and "no SMR job &#x27;no-such-job&#x27;" in page.text


def test_log_groups_of_plain_qualified_and_arn_function_names():
    ref = jobs.JobRef(job_id="j", stack_name="s", output="s3://b/o/", work_bucket="w", functions={
        "mapper": "smr-mapper", "reducer": "smr-reducer:7",
        "coordinator": "arn:aws:lambda:eu-west-1:123456789012:function:smr-coordinator:live"})
    assert jobs.JobSource(ref, clients=object()).log_groups() == {
        "coordinator": "/aws/lambda/smr-coordinator", "mapper": "/aws/lambda/smr-mapper",
        "reducer": "/aws/lambda/smr-reducer"}


@pytest.mark.parametrize(("line", "request_id"), [
    ("[ERROR]\t2026-01-01T00:00:00.000Z\t0f6b2c1e-9d2a-4c57-a0a8-3f1f0e6d2b11\tmap task failed",
     "0f6b2c1e-9d2a-4c57-a0a8-3f1f0e6d2b11"),
    ("REPORT RequestId: 0f6b2c1e-9d2a-4c57-a0a8-3f1f0e6d2b11\tDuration: 1.00 ms",
     "0f6b2c1e-9d2a-4c57-a0a8-3f1f0e6d2b11"),
    ("a user's print() line", None),
])
def test_the_invocation_of_a_log_line_comes_from_its_request_id(line, request_id):
    match = jobs._REQUEST_ID.search(line)
    assert (match.group(1) if match else None) == request_id


def test_the_tab_of_a_task_that_is_not_mapped_keeps_the_placeholder():
    from airflow_provider_smr.plugins.app import _map_index

    assert _map_index("{MAP_INDEX}") == -1 and _map_index(None) == -1 and _map_index("4") == 4
