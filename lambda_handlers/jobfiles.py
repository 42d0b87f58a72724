"""Side files inside a task: each is copied from the job's prefix to ``/tmp`` once per process and
its local path handed out again to every later call, task and attempt of the same job.

Lambda runs one task at a time per container (one process), whose ``/tmp`` outlives the
invocation: a warm container reads a file once per job, not once per task. The copies of a process
live in their own folder (local runtimes run several processes on one ``/tmp``), are written under
a temporary name and renamed into place (a reader never sees half a file), and are bounded: when a
new job's file would take the folder past the limit of one job's files, the copies of the jobs
least recently used are deleted first. Standard library + boto3 (the runtime's client).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from lambda_handlers import protocol

ROOT_NAME = "smr-job-files"
_lock = threading.Lock()
_jobs: OrderedDict[str, dict[str, str]] = OrderedDict()  # job id -> {name: local path}, LRU order


class JobFileError(LookupError):
    """A side file the job does not ship, or one whose copy is not what was shipped."""


def _folder() -> Path:
    return Path(tempfile.gettempdir()) / ROOT_NAME / str(os.getpid())


def local_path(bucket: str, job_id: str, files: dict[str, dict[str, Any]], name: str) -> str:
    """The local path of side file ``name`` of job ``job_id`` (downloaded on first use)."""
    entry = files.get(name)
    if entry is None:
        raise JobFileError(_unknown(files, name))
    with _lock:
        cached = _jobs.get(job_id, {}).get(name)
        if cached is not None and os.path.exists(cached):
            _jobs.move_to_end(job_id)
            return cached
        size = int(entry.get("size", 0))
        _make_room(job_id, size)
        if not _jobs:
            _remove_dead_processes()
        target = _folder() / protocol.validate_job_id(job_id) / protocol.validate_file_name(name)
        _download(bucket, job_id, name, size, target)
        _jobs.setdefault(job_id, {})[name] = str(target)
        _jobs.move_to_end(job_id)
        return str(target)


def _download(bucket: str, job_id: str, name: str, size: int, target: Path) -> None:
    """Copy the file to ``target`` through a temporary name (no reader sees half a file)."""
    from lambda_handlers import runtime

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.{threading.get_ident()}.partial")
    try:
        body = runtime.s3().get_object(Bucket=bucket, Key=protocol.job_file_key(job_id, name))["Body"]
        with open(partial, "wb") as out:  # streamed in this thread: the GET counts for the task
            shutil.copyfileobj(body, out, 1024 * 1024)
        got = partial.stat().st_size
        if got != size:
            raise JobFileError(f"side file {name!r} of job {job_id} has {got} bytes, but {size} were "
                               "shipped (was it changed while the job was submitted?)")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def source_path(files: dict[str, dict[str, Any]], name: str) -> str:
    """Side file ``name`` where it was read at submit (a runner in the submitting process)."""
    entry = files.get(name)
    if entry is None:
        raise JobFileError(_unknown(files, name))
    return str(entry["source"])


def _unknown(files: dict[str, dict[str, Any]], name: str) -> str:
    shipped = ", ".join(sorted(files)) or "none (give MapReduceJob(files=[...]))"
    return f"job_file({name!r}): the job ships no file {name!r}; its files: {shipped}"


def _make_room(job_id: str, size: int) -> None:
    """Delete the copies of other jobs, least recently used first, until ``size`` more bytes fit
    under the limit of one job's files (the current job's copies are never deleted)."""
    def held() -> int:
        return sum(os.path.getsize(p) for paths in _jobs.values() for p in paths.values()
                   if os.path.exists(p))

    for other in [j for j in _jobs if j != job_id]:
        if held() + size <= protocol.MAX_JOB_FILES_BYTES:
            return
        del _jobs[other]
        shutil.rmtree(_folder() / other, ignore_errors=True)


def _remove_dead_processes() -> None:
    """Delete the copies left by processes that are gone (a local runtime's recycled workers)."""
    root = _folder().parent
    for folder in root.glob("*") if root.is_dir() else ():
        if not folder.name.isdigit() or int(folder.name) == os.getpid():
            continue
        try:
            os.kill(int(folder.name), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive (another user's process)
