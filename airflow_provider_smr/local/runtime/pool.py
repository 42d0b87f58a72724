"""Warm worker processes: reuse per function version, spawn on demand, watch resident memory."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from typing import Callable

from airflow_provider_smr.local.runtime.worker import (
    Worker,
    WorkerDied,
    WorkerTimedOut,
    assign,
    spawn,
    spawn_spare,
)

INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit
_WATCH_INTERVAL_S = 0.02


class InitFailed(Exception):
    """The handler could not be loaded; ``error`` is Lambda's error payload."""

    def __init__(self, error: dict, logs: str = ""):
        super().__init__(error.get("errorMessage", "init failed"))
        self.error = error
        self.logs = logs


class WorkerPool:
    """Idle workers per function version, a cap on processes, and an RSS watchdog."""

    def __init__(self, max_processes: int, site_dir: str | None = None, spares: int = 0):
        self.max_processes = max_processes
        self.site_dir, self.spares = site_dir, spares
        self._spares: list[Worker] = []
        self._spares_starting = 0
        self._idle: dict[tuple, list[Worker]] = defaultdict(list)
        self._busy: dict[int, tuple[Worker, float]] = {}  # pid -> (worker, memory limit MB)
        self._lock = threading.Lock()
        self._spare_ready = threading.Condition(self._lock)
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="rss-watchdog", daemon=True)
        self._watchdog.start()
        self._refill_spares()

    def acquire(self, key: tuple, memory_mb: float,
                start: Callable[[str], tuple[str, str, list[str], dict[str, str]]]) -> tuple[Worker, bool]:
        """Return a warm worker for ``key`` or start one; the bool says whether it was cold.

        ``start(log_stream)`` gives the task root, site dir, layer dirs and environment.
        """
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                worker = idle.pop()
                if worker.alive():
                    self._busy[worker.pid] = (worker, memory_mb)
                    return worker, False
                worker.kill()
            self._evict_for_one_more()
        log_stream = _log_stream_name()
        task_root, site_dir, layer_dirs, env = start(log_stream)
        env = {**env, "AWS_LAMBDA_LOG_STREAM_NAME": log_stream}
        spare = self._take_spare() if site_dir == self.site_dir and _no_vendored_sdk(task_root) \
            else None
        if spare is not None:
            worker = assign(spare, key, task_root, layer_dirs, env, log_stream)
        else:
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

    def _take_spare(self) -> Worker | None:
        """A ready spare; if one is still booting, wait for it (it is further along than a
        fresh process would be)."""
        deadline = time.monotonic() + INIT_TIMEOUT_S
        with self._spare_ready:
            while not self._spares and self._spares_starting and time.monotonic() < deadline:
                self._spare_ready.wait(deadline - time.monotonic())
            spare = self._spares.pop() if self._spares else None
        self._refill_spares()
        return spare if spare is not None and spare.alive() else None

    def _refill_spares(self) -> None:
        """Keep ``spares`` preloaded interpreters ready, started in the background."""
        with self._lock:
            missing = self.spares - len(self._spares) - self._spares_starting
            if self._closed.is_set() or not self.site_dir or missing <= 0:
                return
            self._spares_starting += missing
        for _ in range(missing):
            threading.Thread(target=self._start_spare, daemon=True).start()

    def _start_spare(self) -> None:
        spare = None
        try:
            spare = spawn_spare(self.site_dir)
            spare.read(INIT_TIMEOUT_S * 3)
        except (WorkerDied, WorkerTimedOut, OSError):
            if spare is not None:
                spare.kill()
            spare = None
        with self._lock:
            self._spares_starting -= 1
            self._spare_ready.notify_all()
            if spare is not None and not self._closed.is_set():
                self._spares.append(spare)
                return
        if spare is not None:
            spare.kill()

    def release(self, worker: Worker, reusable: bool = True) -> None:
        with self._lock:
            self._busy.pop(worker.pid, None)
            if reusable and worker.alive() and not self._closed.is_set():
                worker.last_used = time.monotonic()
                self._idle[worker.key].append(worker)
                return
        worker.kill()

    def retire_other_versions(self, arn: str, current_key: tuple) -> None:
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
            workers += [w for w, _ in self._busy.values()] + self._spares
            self._spares = []
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.kill()

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
    """A spare has boto3 preloaded: only use one if the package does not bring its own."""
    import os

    return not any(os.path.exists(os.path.join(task_root, name))
                   for name in ("boto3", "botocore", "s3transfer", "urllib3"))


def _log_stream_name() -> str:
    day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    return f"{day}/[$LATEST]{uuid.uuid4().hex}"
