"""Run several DAGs in one interpreter, each as ``airflow dags test <dag_id>`` runs it, and print
each run's outcome, task results and asset events as one JSON line.

``python tests/airflow/dag_test_batch.py DAG_ID...`` (with the environment of
:func:`airflow_provider_smr.demo.airflow_env`). Each DAG goes through the Airflow CLI's own
``dags test`` command (its parser and function), so the DAG folder is parsed and the run made
exactly as the CLI does; only the interpreter start and Airflow's imports are shared between runs
(about 20 s each on 2 cores). Lines printed for a DAG sit between ``BEGIN`` and ``RESULT``.
"""

from __future__ import annotations

import json
import sys
import traceback

BEGIN = "SMR-DAG-TEST-BEGIN "
RESULT = "SMR-DAG-TEST-RESULT "


def latest_return_values(dag_id: str) -> dict:
    """{task_id: its latest ``return_value`` XCom} of the DAG (what ``demo.read_xcom`` reads)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict = {}
    with create_session() as session:
        rows = (session.query(XComModel)
                .filter(XComModel.dag_id == dag_id, XComModel.key == "return_value")
                .order_by(XComModel.timestamp.desc()).all())
        for row in rows:
            if row.task_id not in values:
                values[row.task_id] = XComModel.deserialize_value(row)
    return values


def asset_events(dag_id: str) -> list[dict]:
    """The asset events the DAG's tasks emitted, oldest first: ``{"task_id", "uri", "extra"}``."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).filter(AssetEvent.source_dag_id == dag_id)
                .order_by(AssetEvent.timestamp).all())
        return [{"task_id": row.source_task_id, "uri": row.uri, "extra": row.extra} for row in rows]


def run(dag_id: str, parser) -> dict:
    """``airflow dags test dag_id``; its state ("success" or why not) and its task results."""
    try:
        args = parser.parse_args(["dags", "test", dag_id])
        args.func(args)
        state = "success"
    except SystemExit as exc:  # the CLI's way of saying "DagRun failed"
        state = f"failed: SystemExit({exc.code!r})"
    except Exception:  # noqa: BLE001 - reported to the test, which fails with it
        state = f"failed: {traceback.format_exc()}"
    return {"dag_id": dag_id, "state": state, "xcoms": latest_return_values(dag_id),
            "asset_events": asset_events(dag_id)}


def main(dag_ids: list[str]) -> int:
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    for dag_id in dag_ids:
        print(BEGIN + dag_id, flush=True)
        outcome = run(dag_id, parser)
        sys.stderr.flush()
        print(RESULT + json.dumps(outcome, default=str), flush=True)
    return 0


def parse_output(output: str) -> dict[str, dict]:
    """{dag_id: {"state", "xcoms", "asset_events", "logs"}} from the merged stdout/stderr of :func:`main`."""
    runs: dict[str, dict] = {}
    current, lines = None, []
    for line in output.splitlines():
        if line.startswith(BEGIN):
            current, lines = line[len(BEGIN):].strip(), []
        elif line.startswith(RESULT) and current is not None:
            runs[current] = {**json.loads(line[len(RESULT):]), "logs": "\n".join(lines)}
            current = None
        elif current is not None:
            lines.append(line)
    return runs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
