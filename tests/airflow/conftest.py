"""Fixtures for the Airflow-side tests: one throw-away AIRFLOW_HOME and metadata DB per session.

Airflow reads AIRFLOW_HOME when it is first imported, so it is pointed at a temporary folder here,
before the test modules import it (never ``~/airflow``). ``airflow`` CLI runs go through
subprocesses with :func:`airflow_provider_smr.demo.airflow_env`, the same isolation ``make demo`` uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="smr-airflow-tests-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """An AIRFLOW_HOME with a migrated SQLite DB (``airflow db migrate`` once per session)."""
    from airflow_provider_smr.demo import airflow, airflow_env

    home = tmp_path_factory.mktemp("airflow_home")
    airflow("db", "migrate", env=airflow_env(home, "http://127.0.0.1:9"), timeout=300)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_local_env(airflow_home, aws_endpoint):
    """Environment for ``airflow`` subprocesses whose ``aws_default`` is the local stack."""
    from airflow_provider_smr.demo import airflow_env

    return airflow_env(airflow_home, aws_endpoint)


@pytest.fixture(scope="session")
def dag_test_runs(request, airflow_local_env, tmp_path_factory):
    """``runs(dag_ids)``: {dag_id: {"state", "xcoms", "asset_events", "logs"}} of those DAGs, each run
    once per session through ``airflow dags test`` (``dag_test_batch.py``) over a DAG folder of the
    example DAGs plus ``standalone_dags/``, with the test-only cluster policy of ``local_settings/``.

    An Airflow start-up costs seconds, so the first call runs, in ONE Airflow process, the DAGs of
    every selected test's module that uses this fixture (its ``BATCH_DAGS``); later calls find their
    runs done. Under pytest-xdist a worker does not know which modules it will get: there each call
    runs only the DAGs it asks for (not run yet on that worker).
    """
    from pathlib import Path

    from tests.airflow import dag_test_batch
    from tests.airflow.standalone import dag_folder

    here = Path(__file__).parent
    done: dict[str, dict] = {}
    wanted: list[str] = []
    failed: dict[str, str] = {}  # dag_id: why the batch that ran it failed
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        for item in request.session.items:
            if "dag_test_runs" in getattr(item, "fixturenames", ()):
                module_dags = getattr(getattr(item, "module", None), "BATCH_DAGS", ())
                wanted += [d for d in module_dags if d not in wanted]

    def runs(dag_ids) -> dict[str, dict]:
        missing = [d for d in dag_ids if d not in done]
        for d in missing:
            if d in failed:  # its batch already failed: say so again rather than rerun it
                pytest.fail(failed[d])
        if missing:
            batch = [d for d in wanted if d not in done] + [d for d in missing if d not in wanted]
            env = {**airflow_local_env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                   "AIRFLOW__CORE__DAGS_FOLDER": str(dag_folder(tmp_path_factory.mktemp("dag_test_batch") / "dags")),
                   # this checkout before the installed one (a worktree tests its own code)
                   "PYTHONPATH": os.pathsep.join([str(here / "local_settings"), str(here.parents[1])])}
            proc = subprocess.run([sys.executable, str(here / "dag_test_batch.py"), *batch], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
            ran = dag_test_batch.parse_output(proc.stdout)
            if proc.returncode != 0 or set(ran) != set(batch):
                failed.update(dict.fromkeys(batch, f"dag_test_batch.py {' '.join(batch)} failed:\n"
                                                  f"{proc.stdout[-5000:]}"))
                pytest.fail(failed[batch[0]])
            done.update(ran)
        return {d: done[d] for d in dag_ids}

    return runs


@pytest.fixture(scope="session")
def standalone(airflow_home, aws_endpoint, tmp_path_factory):
    """One ``airflow standalone`` for the session (see ``tests/airflow/standalone.py``)."""
    from tests.airflow.standalone import start

    with start(airflow_home, aws_endpoint, tmp_path_factory.mktemp("standalone")) as api:
        yield api


@pytest.fixture(autouse=True)
def dags_folder_on_path(monkeypatch):
    """The example DAGs' folder on ``sys.path``, as Airflow puts its DAGs folder, so job references
    such as ``"jobs.word_count:word_count"`` import in the operator's own checks."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "dags_examples"
    monkeypatch.syspath_prepend(str(folder))
    jobs = sys.modules.get("jobs")  # another suite's top-level ``jobs`` (bench/jobs.py) must not shadow
    if jobs is not None and not str(getattr(jobs, "__file__", "")).startswith(str(folder)):
        for name in [n for n in sys.modules if n == "jobs" or n.startswith("jobs.")]:
            monkeypatch.delitem(sys.modules, name)
