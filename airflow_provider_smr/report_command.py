"""``smr report JOB_ID [--out FILE]``: save a job's HTML report.

Without ``--out`` the report is stored next to the job's output as ``_report.html`` (where the
Airflow task's "SMR Report" link points; under the job's prefix in the work bucket for a job that
did not commit) and its URI is printed; with ``--out FILE`` it is written to a local file instead
(``-`` for stdout). Works for running, failed and cancelled jobs too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``report`` to the ``smr`` command."""
    from airflow_provider_smr.engine.commands import _add_stack_arguments, main_errors

    parser = subparsers.add_parser(
        "report", help="save a job's HTML report (timeline, stats, cost)",
        description="Render a job's HTML report: a timeline of every task attempt, per-phase stats, "
                    "request counts and the estimated cost.")
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("--out", metavar="FILE",
                        help="write the report to this local file ('-' for stdout) instead of "
                             "next to the job's output in S3")
    _add_stack_arguments(parser, local=False)
    parser.set_defaults(func=main_errors(report_command))


def report_command(args: argparse.Namespace) -> int:
    from airflow_provider_smr.deploy import describe_stack
    from airflow_provider_smr.engine.commands import _clients
    from airflow_provider_smr.report import collect_report, render_html, write_report

    with _clients(args) as (clients, _):
        bucket = describe_stack(clients, args.stack_name).work_bucket
        if args.out is None:
            print(write_report(clients, bucket, args.job_id))
            return 0
        page = render_html(collect_report(clients, bucket, args.job_id))
    if args.out == "-":
        sys.stdout.write(page)
    else:
        path = Path(args.out).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        print(path)
    return 0
