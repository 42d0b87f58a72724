"""The example DAGs: they import cleanly, and each one runs on the local stack as it is.

All seven run once per session, one after another in ONE Airflow process (the session fixture
``dag_test_runs``, which also runs other modules' DAGs in it), each through the CLI's own
``airflow dags test`` (see ``dag_test_batch.py``), with a test-only cluster policy that makes SMR
tasks poll every 0.5 s (``local_settings/``); each test then asserts on its DAG's run.
"""

from __future__ import annotations

import sys

import pytest

from airflow_provider_smr.demo import DAGS_FOLDER

EXAMPLE_DAGS = {
    "smr_word_count", "smr_word_count_deferrable", "smr_amplab_revenue", "smr_pipeline", "smr_join",
    "smr_mapped", "smr_production",
}


def test_example_dags_import_without_errors(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.syspath_prepend(str(DAGS_FOLDER))  # Airflow puts the DAG folder on sys.path
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXAMPLE_DAGS
    modules = [m for m in sys.modules if m.startswith("jobs")]
    assert modules  # job modules import by the same names the tasks use
    for dag in bag.dags.values():  # they are documentation: in the UI too
        assert dag.doc_md and len(dag.doc_md) > 80, dag.dag_id
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.description, f"{dag.dag_id}: Param {name} has no description"
            if name in ("input", "output"):
                assert param.schema.get("pattern", "").startswith("^s3://"), f"{dag.dag_id}: Param {name}"


BATCH_DAGS = sorted(EXAMPLE_DAGS)  # run in the session's batch (``dag_test_runs`` in tests/airflow/conftest.py)


@pytest.fixture(scope="module")
def dag_runs(dag_test_runs) -> dict[str, dict]:
    """{dag_id: {"state", "xcoms" (task_id: latest return value), "logs"}} of every example DAG."""
    return dag_test_runs(BATCH_DAGS)


def succeeded(runs: dict, dag_id: str) -> dict:
    """The DAG's task results, once its run is known to have succeeded."""
    run = runs[dag_id]
    assert run["state"] == "success", f"{dag_id}: {run['state']}\n{run['logs'][-5000:]}"
    return run["xcoms"]


def test_word_count_counts_words_and_reports_the_top_ten(dag_runs):
    xcoms = succeeded(dag_runs, "smr_word_count")
    result = xcoms["count_words"]
    assert result["status"] == "SUCCEEDED"
    assert result["output"].startswith("s3://smr-examples/word_count/output/")
    assert len(result["parts"]) == 2  # num_reducers Param default
    top = xcoms["show_top_words"]
    counts = [count for _, count in top]
    assert len(top) == 10 and counts == sorted(counts, reverse=True)


def test_deferrable_word_count_waits_in_the_trigger(dag_runs):
    result = succeeded(dag_runs, "smr_word_count_deferrable")["count_words"]
    logs = dag_runs["smr_word_count_deferrable"]["logs"]
    assert result["status"] == "SUCCEEDED"
    assert f"Deferring: waiting for SMR job {result['job_id']}" in logs  # the trigger did the waiting
    assert f"SMR job {result['job_id']}: SUCCEEDED" in logs  # the sensor saw the same job finished


@pytest.mark.parametrize("dag_id,task_id", [
    ("smr_amplab_revenue", "revenue_by_ip_prefix"),
    ("smr_join", "join_users_orders"),
])
def test_example_dag_runs_and_returns_its_result(dag_runs, dag_id, task_id):
    result = succeeded(dag_runs, dag_id)[task_id]
    assert result["status"] == "SUCCEEDED" and result["parts"]


def test_pipeline_feeds_the_first_jobs_output_to_the_second(dag_runs):
    xcoms = succeeded(dag_runs, "smr_pipeline")
    counts, histogram, report = xcoms["count_words"], xcoms["count_histogram"], xcoms["report"]
    assert counts["status"] == "SUCCEEDED"
    assert histogram["status"] == "SUCCEEDED"
    assert sum(report["histogram"].values()) > 0
    assert len(report["top"]) == 10


def test_mapped_dag_runs_one_job_per_input(dag_runs):
    outputs = succeeded(dag_runs, "smr_mapped")["outputs"]
    assert sorted(outputs) == [f"s3://smr-examples/mapped/output/{i}/" for i in range(3)]


def test_asset_event_extra_holds_the_exact_output_prefix(dag_runs):
    run = dag_runs["smr_amplab_revenue"]
    result = succeeded(dag_runs, "smr_amplab_revenue")["revenue_by_ip_prefix"]
    events = [e for e in run["asset_events"] if e["task_id"] == "revenue_by_ip_prefix"]
    assert events, run["asset_events"]
    assert events[-1]["uri"] == "s3://smr-examples/amplab/revenue"  # the templated output's folder
    assert events[-1]["extra"] == {"output": result["output"], "job_id": result["job_id"]}
    assert result["output"].startswith("s3://smr-examples/amplab/revenue/2")  # that run's day


def test_production_dag_deploys_once_and_runs_its_jobs_on_the_deployed_stack(dag_runs):
    import re

    xcoms = succeeded(dag_runs, "smr_production")
    logs = dag_runs["smr_production"]["logs"]
    assert xcoms["deploy_stack"]["stack_name"] == "smr"
    for task_id in ("count_words", "top_words"):
        assert xcoms[task_id]["status"] == "SUCCEEDED"
    # Only the deploy task touched the stack (created, updated or found up to date): the jobs
    # (deploy=False) only read its description.
    assert len(re.findall(r"(creating|updating) stack smr\b|stack smr is up to date", logs)) == 1, logs[-5000:]
    extras = {e["task_id"]: e["extra"] for e in dag_runs["smr_production"]["asset_events"]}
    assert extras["count_words"]["output"] == xcoms["count_words"]["output"]
