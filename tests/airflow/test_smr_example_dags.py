"""The example DAGs: they import cleanly, and each one runs on the local stack as it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_smr.demo import DAGS_FOLDER, airflow, read_xcom

EXAMPLE_DAGS = {
    "smr_word_count", "smr_word_count_deferrable", "smr_amplab_revenue", "smr_pipeline", "smr_join",
    "smr_mapped",
}


def test_example_dags_import_without_errors(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.syspath_prepend(str(DAGS_FOLDER))  # Airflow puts the DAG folder on sys.path
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXAMPLE_DAGS
    modules = [m for m in sys.modules if m.startswith("jobs")]
    assert modules  # job modules import by the same names the tasks use


def run_dag(env, dag_id):
    return airflow("dags", "test", dag_id, env=env, timeout=400)


def test_word_count_counts_words_and_reports_the_top_ten(airflow_local_env):
    run_dag(airflow_local_env, "smr_word_count")
    result = read_xcom(airflow_local_env, "smr_word_count", "count_words")
    assert result["status"] == "SUCCEEDED"
    assert result["output"].startswith("s3://smr-examples/word_count/output/")
    assert len(result["parts"]) == 2  # num_reducers Param default
    top = read_xcom(airflow_local_env, "smr_word_count", "show_top_words")
    counts = [count for _, count in top]
    assert len(top) == 10 and counts == sorted(counts, reverse=True)


def test_deferrable_word_count_waits_in_the_trigger(airflow_local_env):
    env = {**airflow_local_env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test",
                           "smr_word_count_deferrable"], env=env, capture_output=True, text=True, timeout=400)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-5000:]
    result = read_xcom(airflow_local_env, "smr_word_count_deferrable", "count_words")
    assert result["status"] == "SUCCEEDED"
    assert f"Deferring: waiting for SMR job {result['job_id']}" in logs  # the trigger did the waiting
    assert f"SMR job {result['job_id']}: SUCCEEDED" in logs  # the sensor saw the same job finished


@pytest.mark.parametrize("dag_id,task_id", [
    ("smr_amplab_revenue", "revenue_by_ip_prefix"),
    ("smr_join", "join_users_orders"),
])
def test_example_dag_runs_and_returns_its_result(airflow_local_env, dag_id, task_id):
    run_dag(airflow_local_env, dag_id)
    result = read_xcom(airflow_local_env, dag_id, task_id)
    assert result["status"] == "SUCCEEDED" and result["parts"]


def test_pipeline_feeds_the_first_jobs_output_to_the_second(airflow_local_env):
    run_dag(airflow_local_env, "smr_pipeline")
    counts = read_xcom(airflow_local_env, "smr_pipeline", "count_words")
    report = read_xcom(airflow_local_env, "smr_pipeline", "report")
    assert counts["status"] == "SUCCEEDED"
    assert sum(report["histogram"].values()) > 0
    assert len(report["top"]) == 10


def test_mapped_dag_runs_one_job_per_input(airflow_local_env):
    run_dag(airflow_local_env, "smr_mapped")
    outputs = read_xcom(airflow_local_env, "smr_mapped", "outputs")
    assert sorted(outputs) == [f"s3://smr-examples/mapped/output/{i}/" for i in range(3)]
