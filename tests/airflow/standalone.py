"""One ``airflow standalone`` (scheduler, triggerer, API server) shared by the tests that need it.

:func:`start` runs it over a DAG folder holding the example DAGs plus the test-only DAGs of
``tests/airflow/standalone_dags/``; :class:`Api` talks to its REST API. The session fixture
``standalone`` in ``conftest.py`` starts it once, so each test file only adds DAGs and tests.
DAGs start paused: a test unpauses the one it triggers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from airflow_provider_smr.demo import DAGS_FOLDER, airflow_env

TEST_DAGS = Path(__file__).parent / "standalone_dags"
# Between two checks of :meth:`Api.wait_for`: each check is one cheap REST call, and every wait
# (API up, DAG parsed, run finished, ...) otherwise ends on average half a gap after the fact.
POLL_S = 0.25
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str, log: Path):
        self.base = base
        self.log = log

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, {"error": err.read().decode(errors="replace")}
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            return 0, {"error": str(err)}

    def wait_for(self, what: str, check: Callable[[], tuple[bool, dict]], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = check()
            if status:
                return body
            time.sleep(POLL_S)
        pytest.fail(f"timed out waiting for {what}; standalone log tail:\n{self.log.read_text()[-5000:]}")

    def ready(self, dag_id: str) -> None:
        """Wait for the API server and for ``dag_id`` to be parsed, then unpause it."""
        # Minutes on a loaded 2-core box.
        self.wait_for("the API server", lambda: (self.call("GET", "/monitor/health")[0] == 200, {}), 420)
        self.wait_for(f"{dag_id} to be parsed",
                      lambda: (self.call("GET", f"/dags/{dag_id}")[0] == 200, {}), 180)
        # The API may answer a PATCH with a transient error while the scheduler holds the
        # metadata database (SQLite here); unpausing is idempotent, so ask again.
        self.wait_for(f"{dag_id} to be unpaused",
                      lambda: (self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})[0] == 200, {}), 60)

    def trigger(self, dag_id: str, conf: dict) -> tuple[str, str]:
        """Start a run of ``dag_id`` with ``conf``: (its run id, its REST path).

        The API may answer with a transient database error while the scheduler holds the metadata
        database (SQLite here); the run has its own id, so asking again starts it at most once (a
        409 says an earlier answer was lost after the run was made)."""
        run_id = f"manual__smr_test_{uuid.uuid4().hex}"
        path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}

        def started() -> tuple[bool, dict]:
            status, run = self.call("POST", f"/dags/{dag_id}/dagRuns", body)
            assert status in (0, 200, 409) or status >= 500, run
            return status in (200, 409), run

        self.wait_for(f"a run of {dag_id} to start", started, 60)
        return run_id, path

    def finish(self, run_path: str, timeout: float) -> dict:
        """Wait for the run at ``run_path`` to end; return it, asserting it succeeded."""
        def ended() -> tuple[bool, dict]:
            body = self.call("GET", run_path)[1]
            return body.get("state") in ("success", "failed"), body

        final = self.wait_for("the DAG run to finish", ended, timeout)
        assert final["state"] == "success", self.log.read_text()[-5000:]
        return final


def dag_folder(into: Path) -> Path:
    """The example DAGs (with their ``jobs`` package) and the test-only DAGs in one folder."""
    shutil.copytree(DAGS_FOLDER, into, ignore=shutil.ignore_patterns("__pycache__"))
    for dag in TEST_DAGS.glob("*.py"):
        shutil.copy(dag, into / dag.name)
    return into


def plugin_entry_point(workdir: Path) -> list[str]:
    """A folder to add to ``PYTHONPATH`` when the installed distribution predates the plugin's
    ``airflow.plugins`` entry point (an editable install made before it was added), else none."""
    from importlib.metadata import entry_points

    if any(ep.name == "smr" for ep in entry_points(group="airflow.plugins")):
        return []
    info = workdir / "entry_points" / "smr_plugin_entry_point-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: smr-plugin-entry-point\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[airflow.plugins]\nsmr = airflow_provider_smr.plugins.smr:SMRPlugin\n")
    return [str(info.parent)]


@contextmanager
def start(airflow_home: Path, aws_endpoint: str, workdir: Path) -> Iterator[Api]:
    port = free_port()
    home = workdir / "home"
    home.mkdir()
    shutil.copy(airflow_home / "airflow.db", home / "airflow.db")  # already migrated
    env = airflow_env(home, aws_endpoint)
    env.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(dag_folder(workdir / "dags")),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # only the DAG under test runs
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",  # a busy 2-core box answers slowly
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # SMR tasks poll every 0.5 s (local_settings); this checkout's code, whatever the venv installed.
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent / "local_settings"), str(REPO),
                                       *plugin_entry_point(workdir)]),
    })
    log = workdir / "standalone.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Api(f"http://127.0.0.1:{port}/api/v2", log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:  # standalone can exit before its scheduler does: nothing of the group may outlive the test
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
