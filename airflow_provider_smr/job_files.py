"""Side files of a job (``MapReduceJob(files=[...])``, mrjob's ``FILES``): resolved when the job is
built, checked when it is submitted, and uploaded beside ``job.pkl``.

A relative path is relative to the folder of the module that builds the job (as mrjob's ``FILES``
are relative to the job's script), so a DAG finds its files wherever the worker's current folder
is; with no such module (a REPL, ``python -c``) it is relative to the current folder. ``smr run
--file PATH`` adds files relative to the shell's current folder. A task reads a file by its name
with :func:`lambda_handlers.context.job_file`.

The files are checked at submit, not when the job is built, so a DAG still parses while a file is
being produced by an upstream task: a missing file, a folder, two files of one name, or files
together larger than :data:`~lambda_handlers.protocol.MAX_JOB_FILES_BYTES` are errors naming the
file before anything runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_smr.job import JobDefinitionError
from lambda_handlers import protocol


class JobFileError(JobDefinitionError):
    """A side file that cannot travel with the job; the message names it."""


@dataclass(frozen=True)
class SideFile:
    """One side file: the name a task asks for, and where it is read from at submit."""

    name: str
    path: Path


def caller_folder() -> Path:
    """The folder of the module that builds the job (the first caller outside this package), else
    the current folder."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("airflow_provider_smr."):
        frame = frame.f_back
    path = frame.f_globals.get("__file__")
    return Path(path).resolve().parent if path else Path.cwd()


def declare(files: Iterable[str | os.PathLike[str]], base: Path) -> tuple[SideFile, ...]:
    """``files`` as :class:`SideFile` (absolute paths), each name once."""
    if isinstance(files, (str, os.PathLike)):
        raise JobFileError(f"files must be a list of paths, got the single path {files!r}: "
                           f"write files=[{str(files)!r}]")
    out: dict[str, SideFile] = {}
    for f in files:
        if not isinstance(f, (str, os.PathLike)) or not str(f):  # type: ignore[redundant-expr]  # untyped callers
            raise JobFileError(f"files: each entry must be a path, got {f!r}")
        path = Path(f).expanduser()
        path = path if path.is_absolute() else base / path
        name = path.name
        try:
            protocol.validate_file_name(name)
        except protocol.ProtocolError as exc:
            raise JobFileError(f"files: {exc}") from None
        if name in out and out[name].path != path:
            raise JobFileError(f"files: {str(out[name].path)!r} and {str(path)!r} have the same name "
                               f"{name!r}; a task asks for a file by its name, so names must differ")
        out[name] = SideFile(name, path)
    return tuple(out.values())


def describe(files: Iterable[SideFile]) -> dict[str, dict[str, Any]]:
    """``{name: {"size", "source"}}`` for ``job.pkl``; raises :class:`JobFileError` naming a file
    that is missing, not a file, or takes the job's files over the limit."""
    limit = protocol.MAX_JOB_FILES_BYTES
    out: dict[str, dict[str, Any]] = {}
    total = 0
    for f in files:
        if not f.path.is_file():
            what = "is a folder, not a file" if f.path.is_dir() else "does not exist"
            raise JobFileError(f"files: {str(f.path)!r} {what}")
        size = f.path.stat().st_size
        total += size
        if total > limit:
            alone = "is" if size == total else "brings the job's files to"
            raise JobFileError(
                f"files: {str(f.path)!r} ({_mib(size)}) {alone} {_mib(total)}, over the limit of "
                f"{_mib(limit)} for a job's side files (each task copies the files it reads to its "
                "/tmp); read large data as an input instead")
        out[f.name] = {"size": size, "source": str(f.path)}
    return out


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def upload(s3: Any, bucket: str, job_id: str, files: Mapping[str, Mapping[str, Any]]) -> None:
    """Put each side file (as :func:`describe` lists them) beside the job's ``job.pkl``."""
    for name, entry in files.items():
        with open(entry["source"], "rb") as body:
            s3.put_object(Bucket=bucket, Key=protocol.job_file_key(job_id, name), Body=body)
