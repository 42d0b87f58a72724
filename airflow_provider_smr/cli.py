"""The ``smr`` command: run jobs, watch them, and serve the local stack.

Each group of subcommands lives with the code it drives; this module only assembles them, so
``smr --help`` stays fast (nothing heavy is imported before a subcommand runs).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import threading


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
    if args.command != "run":  # ``smr run`` resumes it itself, just before its wait (or a deploy)
        resume_gc()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The ``smr`` command's process: :func:`main` with the cyclic garbage collector paused
    until the command has started (:func:`resume_gc`) and regular expressions compiled from
    SMR's cache (:mod:`airflow_provider_smr.regex_cache`), then :func:`exit_now`."""
    from airflow_provider_smr import regex_cache

    pause_gc()
    regex_cache.install()
    exit_now(main())


_gc_paused = False


def pause_gc() -> None:
    """Pause the cyclic garbage collector for a command's startup.

    Starting ``smr run`` makes ~65,000-80,000 tracked objects that live as long as the process
    (modules, the job's, botocore's models and client classes) and no cyclic garbage worth a
    pass: Python's collector still ran ~150 passes over them (a full one among them), 0.04-0.07 s
    of a warm ``smr run``'s CPU. :func:`resume_gc` ends the pause.
    """
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def resume_gc() -> None:
    """End :func:`pause_gc`'s pause (once; nothing if there was none): the objects made so far
    are frozen (``gc.freeze``: no later pass looks at them again; the few hundred unreachable
    ones a warm ``smr run`` has made by then stay with them) and the collector runs as usual
    from here, for whatever the command does next (a deploy, a long wait, a server)."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def exit_now(code: int) -> None:
    """End the process with ``code`` once the command is done, without Python's own teardown.

    Finalizing an interpreter that imported botocore (~450 modules, ~65,000 objects) took
    0.05-0.15 s of a warm ``smr run``'s 0.6-0.9 s, and frees nothing anyone waits for. The
    streams are flushed and the ``atexit`` callbacks run first, as at a normal exit; with a
    thread still running, a stream that cannot be flushed, or a profiler or debugger attached
    (``python -m cProfile`` writes its figures after the program exits), it is a normal exit.
    """
    if threading.active_count() > 1 or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. a closed pipe: Python reports it (and exits 120) as usual
        sys.exit(code)
    atexit._run_exitfuncs()  # logging's shutdown, coverage, the job's own callbacks
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":  # ``python -m airflow_provider_smr.cli``: the package's module runs it, so
    from airflow_provider_smr import cli  # the commands' resume_gc ends this process's pause

    cli.entry()
