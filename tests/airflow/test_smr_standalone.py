"""End to end under a real scheduler, triggerer and API server (``airflow standalone``).

smr_word_count is triggered through the REST API with a conf that overrides its Params, and its
XCom result is read back through the REST API.
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
from pathlib import Path

import pytest

from airflow_provider_smr.demo import airflow_env

DAG_ID = "smr_word_count"
OUTPUT = "s3://smr-examples/word_count/rest-api/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str):
        self.base = base

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

    def wait_for(self, what: str, check, timeout: float, log: Path) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = check()
            if status:
                return body
            time.sleep(1)
        pytest.fail(f"timed out waiting for {what}; standalone log tail:\n{log.read_text()[-5000:]}")


@pytest.fixture
def standalone(airflow_home, aws_endpoint, tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(airflow_home / "airflow.db", home / "airflow.db")  # already migrated
    env = airflow_env(home, aws_endpoint)
    env.update({
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
        "PYTHONPATH": str(Path(__file__).parent / "local_settings"),  # SMR tasks poll every 0.5 s
    })
    log = tmp_path / "standalone.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Api(f"http://127.0.0.1:{port}/api/v2"), log
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


def test_word_count_triggered_through_the_rest_api_with_params_from_conf(standalone):
    api, log = standalone
    api.wait_for("the API server", lambda: (api.call("GET", "/monitor/health")[0] == 200, {}), 180, log)
    api.wait_for(f"{DAG_ID} to be parsed", lambda: (api.call("GET", f"/dags/{DAG_ID}")[0] == 200, {}),
                 180, log)
    assert api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})[0] == 200

    status, run = api.call("POST", f"/dags/{DAG_ID}/dagRuns",
                           {"logical_date": None, "conf": {"output": OUTPUT, "num_reducers": 3}})
    assert status == 200, run
    run_path = f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"

    def finished():
        body = api.call("GET", run_path)[1]
        return body.get("state") in ("success", "failed"), body

    final = api.wait_for("the DAG run to finish", finished, 300, log)
    assert final["state"] == "success", log.read_text()[-5000:]

    status, entry = api.call("GET", f"{run_path}/taskInstances/count_words/xcomEntries/return_value")
    assert status == 200, entry
    result = entry["value"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["status"] == "SUCCEEDED"
    assert result["output"].rstrip("/") == OUTPUT.rstrip("/")  # the conf overrode the Param
    assert len(result["parts"]) == 3
