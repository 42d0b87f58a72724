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
from typing import IO, TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from airflow_provider_smr.local.runtime.functions import WorkerKey

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class LambdaError(TypedDict):
    """Lambda's error payload: what the caller of a failed function reads."""

    errorMessage: str
    errorType: str
    stackTrace: list[str]


class Hello(TypedDict, total=False):
    """A worker's first message: the handler loaded (``ready``) or not (``init_error``)."""

    ready: bool
    init_error: LambdaError
    init_ms: float
    logs: str


class InvokeRequest(TypedDict):
    """One invocation, sent to a worker."""

    request_id: str
    payload: str  # the event as JSON text ("" for none)
    deadline: float  # time.time() by which the handler must return
    client_context: object  # the decoded ClientContext JSON, handed to the handler as it is


class InvokeReply(TypedDict, total=False):
    """A worker's answer to one invocation: ``payload`` or ``error``, and what it logged."""

    payload: str
    error: LambdaError
    exit: bool  # the handler called sys.exit: the worker ends after this reply
    logs: str
    max_rss_kb: int


class ZygoteAssignment(TypedDict):
    """What the zygote's forked child becomes: one function's worker."""

    task_root: str
    layer_dirs: list[str]
    env: dict[str, str]


class WorkerDied(Exception):
    """The worker process ended (or was killed) before answering."""


class WorkerTimedOut(Exception):
    """The worker did not answer before the deadline."""


@dataclass
class Worker:
    """A started worker; ``call`` sends one invocation and waits for its reply."""

    key: WorkerKey
    process: subprocess.Popen[bytes] | ForkedProcess
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

    def call(self, message: InvokeRequest, timeout: float) -> InvokeReply:
        data = json.dumps(message).encode()
        try:
            self._write_all(struct.pack(">I", len(data)) + data)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(str(exc)) from None
        reply: InvokeReply = self._read_message(timeout)
        return reply

    def _write_all(self, data: bytes) -> None:
        view, fd = memoryview(data), self._pipes()[0].fileno()
        while view:
            view = view[os.write(fd, view):]

    def read(self, timeout: float) -> Hello:
        """The worker's first message, sent once it has loaded the handler (or failed to)."""
        hello: Hello = self._read_message(timeout)
        return hello

    def _read_message(self, timeout: float) -> Any:  # JSON: the caller knows which message it is
        deadline = time.monotonic() + timeout
        head = self._read_exact(4, deadline)
        (size,) = struct.unpack(">I", head)
        return json.loads(self._read_exact(size, deadline))

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        """The worker's stdin and stdout: ``spawn`` and ``Zygote.fork`` always make both pipes."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        return stdin, stdout

    def _read_exact(self, size: int, deadline: float) -> bytes:
        fd = self._pipes()[1].fileno()
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
        for stream in self._pipes():
            try:
                stream.close()
            except OSError:
                pass

    def alive(self) -> bool:
        return self.process.poll() is None


def spawn(key: WorkerKey, task_root: str, site_dir: str, layer_dirs: list[str], env: dict[str, str],
          log_stream: str) -> Worker:
    """Start a worker process; the caller reads its hello message with ``Worker.read``."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(BOOTSTRAP), task_root, site_dir, *layer_dirs],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env, cwd=task_root,
        close_fds=True, bufsize=0,
    )
    return Worker(key=key, process=process, log_stream=log_stream)


class ZygoteUnavailable(Exception):
    """The zygote is not running (any more); start a fresh interpreter instead."""


class ForkedProcess:
    """The part of ``subprocess.Popen`` a :class:`Worker` uses, for a child of the zygote.

    The zygote ignores SIGCHLD, so the kernel reaps its children: a gone pid means an ended
    process. The server is not the parent, so there is no exit status (``returncode`` is -9).
    """

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]):
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -signal.SIGKILL
            except PermissionError:  # the pid was reused by another user's process
                self.returncode = -signal.SIGKILL
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        started = time.monotonic()
        while (returncode := self.poll()) is None:
            if timeout is not None and time.monotonic() - started > timeout:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.002)
        return returncode


class Zygote:
    """An interpreter that imported boto3 and parsed the S3, Lambda and DynamoDB models once, and
    forks a worker for each cold start: the same isolation as a fresh ``python -I -S`` worker
    (the child only adds the function's code and layers to its path), without the import cost.
    """

    def __init__(self, site_dir: str, start_timeout_s: float = 60.0):
        import socket
        import threading

        self.site_dir = site_dir
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
               "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
               "AWS_EC2_METADATA_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(BOOTSTRAP), "--zygote", site_dir,
                 str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), stderr=None, env=env,
                close_fds=True, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        ours.settimeout(start_timeout_s)
        try:
            ready = ours.recv(16)
        except OSError:
            ready = b""
        ours.settimeout(10.0)
        if ready != b"ready":
            self.close()
            raise ZygoteUnavailable("the zygote did not start")

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, key: WorkerKey, task_root: str, layer_dirs: list[str], env: dict[str, str],
             log_stream: str) -> Worker:
        """A new worker for one function; the caller reads its hello with ``Worker.read``."""
        import socket

        assignment: ZygoteAssignment = {"task_root": task_root, "layer_dirs": layer_dirs, "env": env}
        data = json.dumps(assignment).encode()
        in_read, in_write = os.pipe()
        out_read, out_write = os.pipe()
        try:
            with self._lock:
                if not self.alive():
                    raise ZygoteUnavailable("the zygote has exited")
                socket.send_fds(self._sock, [data], [in_read, out_write])
                reply = self._sock.recv(4)
        except OSError as exc:
            os.close(in_write)
            os.close(out_read)
            raise ZygoteUnavailable(f"the zygote did not fork: {exc}") from None
        finally:
            os.close(in_read)
            os.close(out_write)
        if len(reply) != 4:
            os.close(in_write)
            os.close(out_read)
            raise ZygoteUnavailable("the zygote did not answer")
        (pid,) = struct.unpack(">I", reply)
        process = ForkedProcess(pid, os.fdopen(in_write, "wb", 0), os.fdopen(out_read, "rb", 0))
        return Worker(key=key, process=process, log_stream=log_stream)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
