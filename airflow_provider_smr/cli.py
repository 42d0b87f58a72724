"""The ``smr`` command: run jobs, watch them, and serve the local stack.

Each group of subcommands lives with the code it drives; this module only assembles them, so
``smr --help`` stays fast (nothing heavy is imported before a subcommand runs).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from airflow_provider_smr.engine.commands import register as register_job_commands
    from airflow_provider_smr.local.command import register as register_local_commands
    from airflow_provider_smr.report_command import register as register_report_command

    parser = argparse.ArgumentParser(
        prog="smr", description="Serverless MapReduce on AWS Lambda and S3 (or the local stack)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_job_commands(sub)
    register_local_commands(sub)
    register_report_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
