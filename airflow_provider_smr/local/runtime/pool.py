"""Warm worker processes: reuse per function version, spawn on demand, watch resident memory."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from airflow_provider_smr.local.runtime.worker import (
    Worker,
    WorkerDied,
    WorkerTimedOut,
    Zygote,
    ZygoteUnavailable,
    spawn,
)

if TYPE_CHECKING:
    from airflow_provider_smr.local.runtime.functions import WorkerKey
    from airflow_provider_smr.local.runtime.worker import LambdaError

# What ``acquire``'s ``start`` gives for a cold start: task root, site dir, layer dirs, environment.
StartArgs = tuple[str, str, list[str], dict[str, str]]

INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit
_WATCH_INTERVAL_S = 0.02


class InitFailed(Exception):
    """The handler could not be loaded; ``error`` is Lambda's error payload."""

    def __init__(self, error: LambdaError, logs: str = ""):
        super().__init__(error.get("errorMessage", "init failed"))
        self.error = error
        self.logs = logs


class WorkerPool:
    """Idle workers per function version, a cap on processes, and an RSS watchdog."""

    def __init__(self, max_processes: int, site_dir: str | None = None, zygote: bool = False):
        self.max_processes = max_processes
        self.site_dir = site_dir
        self._zygote: Zygote | None = None
        self._zygote_ready = threading.Event()
        self._idle: dict[WorkerKey, list[Worker]] = defaultdict(list)
        self._busy: dict[int, tuple[Worker, float]] = {}  # pid -> (worker, memory limit MB)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="rss-watchdog", daemon=True)
        self._watchdog.start()
        if zygote and site_dir:
            threading.Thread(target=self._start_zygote, args=(site_dir,), name="zygote",
                             daemon=True).start()
        else:
            self._zygote_ready.set()

    def acquire(self, key: WorkerKey, memory_mb: float,
                start: Callable[[str], StartArgs]) -> tuple[Worker, bool]:
        """Return a warm worker for ``key`` or start one; the bool says whether it was cold.

        ``start(log_stream)`` gives the task root, site dir, layer dirs and environment.
        """
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                warm = idle.pop()
                if warm.alive():
                    self._busy[warm.pid] = (warm, memory_mb)
                    return warm, False
                warm.kill()
            self._evict_for_one_more()
        log_stream = _log_stream_name()
        task_root, site_dir, layer_dirs, env = start(log_stream)
        env = {**env, "AWS_LAMBDA_LOG_STREAM_NAME": log_stream}
        zygote = self._zygote_for(site_dir, task_root)
        worker: Worker | None = None
        if zygote is not None:
            try:
                worker = zygote.fork(key, task_root, layer_dirs, env, log_stream)
            except ZygoteUnavailable:
                worker = None
        if worker is None:
            worker = spawn(key, task_root, site_dir, layer_dirs, env, log_stream)
        try:
            hello = worker.read(INIT_TIMEOUT_S)
        except (WorkerDied, WorkerTimedOut) as exc:
            worker.kill()
            raise InitFailed({"errorMessage": f"Runtime exited during init: {exc}",
                              "errorType": "Runtime.ExitError", "stackTrace": []}) from None
        if "init_error" in hello:
            worker.kill()
            raise InitFailed(hello["init_error"], hello.get("logs", ""))
        worker.init_ms, worker.init_logs = hello.get("init_ms", 0.0), hello.get("logs", "")
        with self._lock:
            self._busy[worker.pid] = (worker, memory_mb)
        return worker, True

    def _zygote_for(self, site_dir: str, task_root: str) -> Zygote | None:
        """The zygote, if it can start this function: same site folder, no vendored SDK (the
        zygote's preloaded boto3 would shadow the package's own). Waits for it while it boots:
        it is further along than a fresh interpreter would be."""
        if site_dir != self.site_dir or not _no_vendored_sdk(task_root):
            return None
        self._zygote_ready.wait(INIT_TIMEOUT_S)
        zygote = self._zygote
        return zygote if zygote is not None and zygote.alive() else None

    def _start_zygote(self, site_dir: str) -> None:
        zygote: Zygote | None
        try:
            zygote = Zygote(site_dir)
        except (ZygoteUnavailable, OSError):
            zygote = None
        with self._lock:
            if self._closed.is_set() and zygote is not None:
                zygote.close()
                zygote = None
            self._zygote = zygote
        self._zygote_ready.set()

    def release(self, worker: Worker, reusable: bool = True) -> None:
        with self._lock:
            self._busy.pop(worker.pid, None)
            if reusable and worker.alive() and not self._closed.is_set():
                worker.last_used = time.monotonic()
                self._idle[worker.key].append(worker)
                return
        worker.kill()

    def retire_other_versions(self, arn: str, current_key: WorkerKey) -> None:
        """Drop idle workers of older code or configuration of the same function."""
        with self._lock:
            stale = [k for k in self._idle if k[0] == arn and k != current_key]
            workers = [w for k in stale for w in self._idle.pop(k)]
        for worker in workers:
            worker.kill()

    def process_count(self) -> int:
        with self._lock:
            return len(self._busy) + sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            workers = [w for ws in self._idle.values() for w in ws]
            workers += [w for w, _ in self._busy.values()]
            self._idle.clear()
            self._busy.clear()
            zygote, self._zygote = self._zygote, None
        # Workers first, all signalled before any is awaited: while the zygote lives (it ignores
        # SIGCHLD) the kernel reaps its killed children at once; orphaned, each waits ~2 s for init.
        for worker in workers:
            worker.signal_kill()
        for worker in workers:
            worker.kill()
        if zygote is not None:
            zygote.close()

    def _evict_for_one_more(self) -> None:
        """Kill the least recently used idle worker while at the process cap (lock held)."""
        total = len(self._busy) + sum(len(v) for v in self._idle.values())
        while total >= self.max_processes:
            candidates = [(w.last_used, k, w) for k, ws in self._idle.items() for w in ws]
            if not candidates:
                return
            _, key, victim = min(candidates, key=lambda c: c[0])
            self._idle[key].remove(victim)
            victim.kill()
            total -= 1

    def _watch(self) -> None:
        while not self._closed.wait(_WATCH_INTERVAL_S):
            with self._lock:
                busy = list(self._busy.values())
            for worker, limit_mb in busy:
                rss = worker.rss_mb()
                worker.peak_rss_mb = max(worker.peak_rss_mb, rss)
                if rss > limit_mb and worker.killed_for is None:
                    worker.killed_for = "memory"
                    worker.signal_kill()


def _no_vendored_sdk(task_root: str) -> bool:
    """The zygote has boto3 preloaded: only fork from it if the package does not bring its own."""
    import os

    return not any(os.path.exists(os.path.join(task_root, name))
                   for name in ("boto3", "botocore", "s3transfer", "urllib3"))


def _log_stream_name() -> str:
    day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    return f"{day}/[$LATEST]{uuid.uuid4().hex}"
