"""``make demo``: run the word-count example DAG on the local stack in a throw-away Airflow.

Starts the local stack (moto + local Lambda workers on a loopback port), makes a temporary
``AIRFLOW_HOME`` with a SQLite metadata DB, points ``aws_default`` at the stack through
``AIRFLOW_CONN_AWS_DEFAULT``, runs ``airflow dags test smr_word_count``, then prints the task's XCom
result, where the output is and the top words. The embedded stack stops when the demo ends, so the
committed output (parts, ``_SUCCESS``) and the job's ``_report.html`` are copied to ``demo-output/``
first. Nothing touches ``~/airflow`` or real AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags_examples"
OUTPUT_COPY = REPO / "demo-output"
DAG_ID = "smr_word_count"
TASK_ID = "count_words"
TOP_TASK_ID = "show_top_words"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def airflow_env(home: str | os.PathLike, endpoint_url: str, *, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an isolated Airflow whose ``aws_default`` connection is the local stack."""
    env = dict(os.environ if base is None else base)
    for name in [n for n in env if n.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AWS_"))]:
        del env[name]  # nothing from the caller's Airflow or AWS setup leaks in
    connection = {
        "conn_type": "aws",
        "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "password": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": endpoint_url, "region_name": FAKE_CREDENTIALS["AWS_DEFAULT_REGION"]},
    }
    env.update(FAKE_CREDENTIALS)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{Path(home) / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "AWS_ENDPOINT_URL": endpoint_url,
        "PYTHONWARNINGS": "ignore",
        # `airflow standalone` starts its components as `airflow ...` from PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    return env


def start_airflow(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the ``airflow`` CLI of this interpreter in the background."""
    return subprocess.Popen([str(Path(sys.executable).parent / "airflow"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _shown(proc: subprocess.Popen[str]) -> str:
    """The ``airflow`` command of ``proc`` as an error message shows it."""
    return " ".join(cast("list[str]", proc.args)[1:])  # start_airflow passes a list


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    """Wait for an ``airflow`` command; return its stdout, or raise with its output if it failed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"`{_shown(proc)}` timed out after {timeout:.0f}s:\n"
                           f"{out[-6000:]}\n{err[-6000:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"`{_shown(proc)}` failed ({proc.returncode}):\n"
                           f"{out[-6000:]}\n{err[-6000:]}")
    return out


def airflow(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run the ``airflow`` CLI of this interpreter; raise with its output if it fails."""
    return finish(start_airflow(*args, env=env), timeout)


_READ_XCOM = """
import json, sys
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
dag_id, task_id = sys.argv[1:3]
with create_session() as session:
    row = (session.query(XComModel)
           .filter(XComModel.dag_id == dag_id, XComModel.task_id == task_id, XComModel.key == "return_value")
           .order_by(XComModel.timestamp.desc()).first())
    print(json.dumps(None if row is None else XComModel.deserialize_value(row)))
"""


def read_xcom(env: dict[str, str], dag_id: str, task_id: str) -> Any:
    """The latest ``return_value`` XCom of a task, read from the metadata DB."""
    proc = subprocess.run([sys.executable, "-c", _READ_XCOM, dag_id, task_id], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    started = time.monotonic()
    from airflow_provider_smr.local import LocalStack

    with tempfile.TemporaryDirectory(prefix="smr-demo-") as home:
        # The metadata DB is migrated while the stack starts: neither needs the other.
        migrate = start_airflow("db", "migrate", env=airflow_env(home, "http://127.0.0.1:9"))
        with LocalStack() as stack:
            endpoint_url = stack.env["AWS_ENDPOINT_URL"]  # its endpoint_url, known to be set
            print(f"local stack up at {endpoint_url}; AIRFLOW_HOME={home}")
            env = airflow_env(home, endpoint_url)
            finish(migrate)
            _run_dag(env, endpoint_url, started)
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s")
    return 0


def _run_dag(env: dict[str, str], endpoint_url: str, started: float) -> None:
    """Run the word-count DAG and print its result, output location and top words."""
    print(f"[{time.monotonic() - started:5.1f}s] metadata DB ready; running `airflow dags test {DAG_ID}`")
    airflow("dags", "test", DAG_ID, env=env)
    result = read_xcom(env, DAG_ID, TASK_ID)
    top = read_xcom(env, DAG_ID, TOP_TASK_ID)
    print(f"[{time.monotonic() - started:5.1f}s] DAG run finished\n")
    print(f"XCom result of {TASK_ID}:")
    print(json.dumps(result, indent=2, default=str))
    print(f"\noutput: {result['output']} ({len(result.get('parts') or [])} parts, "
          f"{result.get('records')} records) on the local stack at {endpoint_url}")
    copied = copy_output(env, result, OUTPUT_COPY)
    print(f"copied to {OUTPUT_COPY}/ (the embedded stack stops with the demo; `smr local up` keeps one):")
    for path in copied:
        print(f"  {path}")
    first = next((Path(p) for p in copied if Path(p).name.startswith("part-")), None)
    if first is not None:
        print(f"\nfirst lines of {first.name}:")
        with open(first, encoding="utf-8") as f:
            for _, line in zip(range(3), f, strict=False):
                print(f"  {line.rstrip()}")
    print("\ntop 10 words:")
    for word, count in top or []:
        print(f"  {count:7d}  {word}")


def copy_output(env: dict[str, str], result: dict, folder: Path) -> list[str]:
    """Copy the committed output and its ``_report.html`` from the stack into ``folder``."""
    import boto3

    from airflow_provider_smr.engine.commands import download_parts
    from airflow_provider_smr.engine.output_folder import replace_output_folder
    from lambda_handlers import protocol
    from lambda_handlers.s3uri import S3Uri

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                      region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
                      aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def copy_report(staging: Path) -> None:
        report = S3Uri.parse(result["output"], what="output").join(protocol.REPORT_NAME)
        try:
            s3.download_file(report.bucket, report.key, str(staging / protocol.REPORT_NAME))
        except Exception as exc:  # noqa: BLE001 - the report is a bonus; the output is copied
            print(f"(no job report copied: {exc})")

    def fill(staging: Path) -> None:
        download_parts(s3, result, staging)
        copy_report(staging)

    # The demo's copy folder is its own: each run replaces the previous copy.
    return replace_output_folder(folder, fill, overwrite=True)


if __name__ == "__main__":
    sys.exit(main())
