"""One warm worker process: a sandboxed interpreter that has loaded one function's handler."""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class WorkerDied(Exception):
    """The worker process ended (or was killed) before answering."""


class WorkerTimedOut(Exception):
    """The worker did not answer before the deadline."""


@dataclass
class Worker:
    """A started worker; ``call`` sends one invocation and waits for its reply."""

    key: tuple
    process: subprocess.Popen
    log_stream: str
    init_ms: float = 0.0
    init_logs: str = ""
    invocations: int = 0
    last_used: float = field(default_factory=time.monotonic)
    killed_for: str | None = None  # "memory" when the watchdog killed it
    peak_rss_mb: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE / 2**20
        except (OSError, IndexError, ValueError):
            return 0.0

    def call(self, message: dict, timeout: float) -> dict:
        data = json.dumps(message).encode()
        try:
            self._write_all(struct.pack(">I", len(data)) + data)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(str(exc)) from None
        return self.read(timeout)

    def _write_all(self, data: bytes) -> None:
        view, fd = memoryview(data), self.process.stdin.fileno()
        while view:
            view = view[os.write(fd, view):]

    def read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        head = self._read_exact(4, deadline)
        (size,) = struct.unpack(">I", head)
        return json.loads(self._read_exact(size, deadline))

    def _read_exact(self, size: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        chunks, remaining = [], size
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimedOut()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise WorkerTimedOut()
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise WorkerDied(f"worker {self.pid} exited")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def signal_kill(self) -> None:
        """SIGKILL without reaping: safe while another thread is reading the reply."""
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.signal_kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def alive(self) -> bool:
        return self.process.poll() is None


def spawn(key: tuple, task_root: str, site_dir: str, layer_dirs: list[str], env: dict[str, str],
          log_stream: str) -> Worker:
    """Start a worker process; the caller reads its hello message with ``Worker.read``."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(BOOTSTRAP), task_root, site_dir, *layer_dirs],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env, cwd=task_root,
        close_fds=True, bufsize=0,
    )
    return Worker(key=key, process=process, log_stream=log_stream)


def spawn_spare(site_dir: str) -> Worker:
    """Start an interpreter that preloads boto3 and waits to be given a function (see assign)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_EC2_METADATA_DISABLED": "true"}
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(BOOTSTRAP), "--spare", site_dir],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env, close_fds=True,
        bufsize=0,
    )
    return Worker(key=(), process=process, log_stream="")


def assign(spare: Worker, key: tuple, task_root: str, layer_dirs: list[str], env: dict[str, str],
           log_stream: str) -> Worker:
    """Turn a ready spare into a worker for one function; the caller reads its hello."""
    spare.key, spare.log_stream = key, log_stream
    data = json.dumps({"task_root": task_root, "layer_dirs": layer_dirs, "env": env}).encode()
    spare._write_all(struct.pack(">I", len(data)) + data)
    return spare
