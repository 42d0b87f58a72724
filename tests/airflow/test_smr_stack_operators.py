"""SMRDeployStackOperator / SMRDeleteStackOperator, and locations checked before any deploy.

The operators run against the session's local stack through an Airflow ``aws`` connection; what
they did is read back with boto3 (the stack, its outputs, its events).
"""

from __future__ import annotations

import inspect

import pytest

from airflow_provider_smr.engine.runner import OutputExistsError
from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator
from airflow_provider_smr.operators.stack import SMRDeleteStackOperator, SMRDeployStackOperator
from lambda_handlers.options import StackSettings, declared
from lambda_handlers.planning import InputNotFoundError
from lambda_handlers.s3uri import InputError

CONN = "smr_stack_ops"
DATA = "smr-stack-ops-data"


class FakeTI:
    dag_id, run_id, task_id, map_index = "stack_ops", "manual__2026-01-01T00:00:00+00:00", "count", -1
    stats_tags: dict = {}

    def xcom_push(self, key, value):
        pass


def context():
    return {"ti": FakeTI(), "task_state_store": None}


@pytest.fixture
def conn(aws_endpoint, airflow_conn, monkeypatch, aws_clients):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", airflow_conn(aws_endpoint))
    clients = aws_clients(aws_endpoint)
    try:
        clients.s3.create_bucket(Bucket=DATA)
    except clients.s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    clients.s3.put_object(Bucket=DATA, Key="words/a.txt", Body=b"a b a\n")
    return clients


def stack_events(cf, name):
    return [e["EventId"] for e in cf.describe_stack_events(StackName=name)["StackEvents"]]


def stack_exists(cf, name):
    return any(s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"
               for page in cf.get_paginator("list_stacks").paginate() for s in page["StackSummaries"])


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize("option", declared(StackSettings), ids=lambda o: o.name)
def test_every_stack_setting_is_a_deploy_argument_with_the_declared_default(option):
    params = inspect.signature(SMRDeployStackOperator.__init__).parameters
    assert option.name in params, f"SMRDeployStackOperator has no argument {option.name}"
    assert params[option.name].default == option.default
    doc = " ".join((SMRDeployStackOperator.__doc__ or "").split())
    assert f":param {option.name}: {' '.join(option.help.split())}" in doc


def test_deploy_arguments_build_the_same_settings_as_the_job_operator():
    kwargs = {"memory_mb": "512", "timeout_s": 60, "layers": ["arn:aws:lambda:us-east-1:1:layer:x:1"]}
    deploy = SMRDeployStackOperator(task_id="d", **kwargs)
    job = ServerlessMapReduceOperator(task_id="j", job="jobs.x:y", input="s3://b/", output="s3://c/", **kwargs)
    assert deploy.stack_settings() == job.stack_settings() == StackSettings(**kwargs)


def test_locations_become_grants_with_tables_split_out():
    op = SMRDeployStackOperator(task_id="d", input_locations={"users": "s3://in-bucket/users/", "t": "dynamodb://T"},
                                output_locations="out-bucket", tables=["U"])
    assert op.grants() == {"input_buckets": ["s3://in-bucket/users/"], "output_buckets": ["s3://out-bucket/"],
                           "tables": ["U", "T"]}


@pytest.mark.parametrize("kwargs, named", [
    ({"input_locations": ["s3://Bad_Bucket/x"]}, "input_locations"),
    ({"output_locations": [42]}, "output_locations"),
    ({"input_locations": [""]}, "input_locations"),
])
def test_a_bad_location_is_refused_naming_its_argument(kwargs, named):
    with pytest.raises(ValueError, match=f"^{named}"):
        SMRDeployStackOperator(task_id="d", **kwargs).grants()


# -- on the local stack -----------------------------------------------------------------------


def test_deploy_then_delete_operator_creates_and_removes_the_stack(conn):
    cf, name = conn.cloudformation, "smr-ops-lifecycle"
    deploy = SMRDeployStackOperator(task_id="deploy", stack_name=name, aws_conn_id=CONN, memory_mb=256,
                                    input_locations=[f"s3://{DATA}/words/"], output_locations=[f"s3://{DATA}/out/"])
    info = deploy.execute(context())
    assert info["stack_name"] == name and info["memory_mb"] == 256
    assert info["input_locations"] == [f"s3://{DATA}/words/"]
    assert info["output_locations"] == [f"s3://{DATA}/out/"]
    assert cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    events = stack_events(cf, name)
    assert deploy.execute(context()) == info  # unchanged: no update
    assert stack_events(cf, name) == events

    SMRDeleteStackOperator(task_id="delete", stack_name=name, aws_conn_id=CONN).execute(context())
    assert not stack_exists(cf, name)
    SMRDeleteStackOperator(task_id="delete", stack_name=name, aws_conn_id=CONN, missing_ok=True).execute(context())
    with pytest.raises(Exception, match="nothing to delete"):
        SMRDeleteStackOperator(task_id="delete", stack_name=name, aws_conn_id=CONN).execute(context())


@pytest.fixture(scope="module")
def deployed(aws_endpoint, aws_clients):
    """A stack deployed at 256 MB: a job operator with other settings would update it if it got
    that far."""
    from airflow_provider_smr.deploy import delete_stack
    from tests.deployments import deploy

    clients = aws_clients(aws_endpoint)
    name = "smr-ops-validate"
    yield deploy(clients, name, input_buckets=[DATA], memory_mb=256).stack
    delete_stack(clients, name, missing_ok=True)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"input": "s3://smr-no-such-bucket/in/"}, InputNotFoundError,
     r"^input 's3://smr-no-such-bucket/in/': bucket 'smr-no-such-bucket' does not exist"),
    ({"input": {"words": f"s3://{DATA}/words/", "more": f"s3://{DATA}/nothing-here/"}}, InputNotFoundError,
     rf"^input 'more' \(s3://{DATA}/nothing-here/\) matched no objects"),
    ({"output": "s3://smr-no-such-bucket/out/"}, InputNotFoundError,
     r"^output 's3://smr-no-such-bucket/out/': bucket 'smr-no-such-bucket' does not exist"),
    ({"output": f"s3://{DATA}/words/sub/"}, InputError, r"^output .* lies inside input"),
    ({"output": f"s3://{DATA}/committed/"}, OutputExistsError, r"^output .* already holds a committed result"),
])
def test_bad_locations_fail_before_the_stack_is_touched(conn, deployed, kwargs, error, message):
    cf = conn.cloudformation
    conn.s3.put_object(Bucket=DATA, Key="committed/_SUCCESS", Body=b'{"job_id": "someone-else"}')
    before = stack_events(cf, deployed.stack_name)
    args = {"task_id": "count", "job": "jobs.word_count:word_count", "input": f"s3://{DATA}/words/",
            "output": f"s3://{DATA}/out/", "stack_name": deployed.stack_name, "aws_conn_id": CONN,
            "memory_mb": 512, **kwargs}  # deploy=True with other settings: an update, were it reached
    with pytest.raises(error, match=message):
        ServerlessMapReduceOperator(**args).execute(context())
    assert stack_events(cf, deployed.stack_name) == before
    assert cf.describe_stacks(StackName=deployed.stack_name)["Stacks"][0].get("LastUpdatedTime") is None


def test_an_output_this_task_committed_is_not_refused_on_retry(conn):
    base = ServerlessMapReduceOperator.task_job_id(context())
    conn.s3.put_object(Bucket=DATA, Key="mine/_SUCCESS", Body=f'{{"job_id": "{base}.2"}}'.encode())
    op = ServerlessMapReduceOperator(task_id="count", job="jobs.word_count:word_count", aws_conn_id=CONN,
                                     input=f"s3://{DATA}/words/", output=f"s3://{DATA}/mine/")
    op.check_locations(context())  # no error: the retry returns that result
    other = ServerlessMapReduceOperator(task_id="other", job="jobs.word_count:word_count", aws_conn_id=CONN,
                                        input=f"s3://{DATA}/words/", output=f"s3://{DATA}/mine/")
    ctx = context()
    ctx["ti"].task_id = "other"
    with pytest.raises(OutputExistsError):
        other.check_locations(ctx)


# -- a DAG: deploy task, deploy=False job, delete task ----------------------------------------

LIFECYCLE_DAG = "smr_test_stack_lifecycle"


BATCH_DAGS = [LIFECYCLE_DAG]  # run in the session's batch (``dag_test_runs`` in tests/airflow/conftest.py)


def test_dag_deploys_runs_a_deploy_false_job_and_deletes_the_stack(dag_test_runs, aws_endpoint, aws_clients):
    run = dag_test_runs(BATCH_DAGS).get(LIFECYCLE_DAG)
    assert run is not None and run["state"] == "success", (run or {}).get("logs", "")[-5000:]
    stack, result = run["xcoms"]["deploy_stack"], run["xcoms"]["count_words"]
    assert stack["stack_name"] == "smr-lifecycle" and stack["memory_mb"] == 256
    assert result["status"] == "SUCCEEDED" and result["parts"]
    assert not stack_exists(aws_clients(aws_endpoint).cloudformation, "smr-lifecycle")
    event = next(e for e in run["asset_events"] if e["task_id"] == "count_words")
    assert event["uri"] == "s3://smr-examples/lifecycle"  # the templated output's folder (as Airflow spells it)
    assert event["extra"] == {"output": result["output"], "job_id": result["job_id"]}
    assert result["output"].startswith("s3://smr-examples/lifecycle/2")  # that run's day
