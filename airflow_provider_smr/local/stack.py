"""``LocalStack``: start the local stack's server process, wait until it answers, stop it cleanly."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

from airflow_provider_smr.local.server import READY

START_TIMEOUT_S = 60.0


class LocalStackError(RuntimeError):
    """The local stack's server did not start or stopped unexpectedly."""


class LocalStack:
    """AWS without AWS on one loopback endpoint, in its own process.

    :param host: interface to listen on.
    :param port: TCP port; 0 picks a free one (see ``endpoint_url``).
    :param workers: warm worker processes per function for Event invocations (None: 2-4).
    :param max_concurrency: stack-wide cap on concurrent invocations.
    :param region: the region the stack pretends to be.
    :param retry_base_s: delay before the first async retry (doubled for the second); AWS waits
        minutes, which no local run wants.
    :param max_processes: cap on warm worker processes kept in total (default 12).
    :param fast_s3: answer plain S3 GET/HEAD/PUT from moto's backend directly (False: all via moto).
    :param zygote: fork each new worker from an interpreter that already imported boto3 and
        parsed the S3, Lambda and DynamoDB models (False: a fresh ``python -I -S`` each time).
    :param http_server: the HTTP server in front of the stack (None: the stack's own; see
        :mod:`airflow_provider_smr.local.http_servers`).
    """

    #: the module run as the server (``python -m``); a subclass may serve through another one
    #: that wraps it (bench/counting_stack.py counts requests this way)
    server_module = "airflow_provider_smr.local.server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workers: int | None = None,
                 max_concurrency: int = 64, region: str = "us-east-1", *,
                 retry_base_s: float = 0.1, max_processes: int | None = None,
                 fast_s3: bool = True, zygote: bool = True, http_server: str | None = None):
        self.host, self.port, self.workers = host, port, workers
        self.max_concurrency, self.region = max_concurrency, region
        self.retry_base_s, self.max_processes = retry_base_s, max_processes
        self.fast_s3, self.zygote, self.http_server = fast_s3, zygote, http_server
        self.endpoint_url: str | None = None
        self._process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client needs in its environment to talk to this stack."""
        return {
            "AWS_ENDPOINT_URL": self._require_endpoint(),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
        }

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client bound to this stack."""
        import boto3

        params = {"endpoint_url": self._require_endpoint(), "region_name": self.region,
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        params.update(kwargs)
        return boto3.client(service, **params)

    def start(self) -> LocalStack:
        """Start the server and wait until it answers (:meth:`launch`, then :meth:`wait_ready`)."""
        return self.launch().wait_ready()

    def launch(self) -> LocalStack:
        """Start the server process and return at once: the caller may prepare its clients while
        the server boots, then call :meth:`wait_ready` (or :meth:`start`)."""
        if self._process is not None:
            return self
        from airflow_provider_smr.local.moto_internals import UnsupportedMotoError, check_version

        try:
            check_version()
        except UnsupportedMotoError as exc:
            raise LocalStackError(str(exc)) from None
        command = [sys.executable, "-m", self.server_module,
                   "--host", self.host, "--port", str(self.port), "--region", self.region,
                   "--max-concurrency", str(self.max_concurrency),
                   "--retry-base", str(self.retry_base_s), "--parent-pid", str(os.getpid())]
        if self.workers:
            command += ["--workers", str(self.workers)]
        if self.max_processes:
            command += ["--max-processes", str(self.max_processes)]
        if not self.fast_s3:
            command.append("--no-fast-s3")
        if not self.zygote:
            command.append("--no-zygote")
        if self.http_server:
            command += ["--http-server", self.http_server]
        self.endpoint_url = None  # a restarted stack answers on a new port
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None,
                                          start_new_session=True, env=self.server_env())
        return self

    def wait_ready(self) -> LocalStack:
        """Wait until the launched server answers; set :attr:`endpoint_url`."""
        if self.endpoint_url is None:
            if self._process is None:
                raise LocalStackError("the local stack is not launched; use 'with LocalStack() as s:'")
            try:
                self.endpoint_url = self._wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def server_env(self) -> dict[str, str] | None:
        """The server process's environment (None: this process's)."""
        return None

    def stop(self, wait: bool = True) -> None:
        """Stop the server and every worker it started; idempotent.

        :param wait: wait until they are gone. Without, the server is only told to stop, and
            stops its workers and removes its files on its own (as it does when the process that
            started it is gone); for a process that ends next (``smr run --local``), so its user
            does not wait for the stack's teardown.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if not wait and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            if process.stdout:
                process.stdout.close()
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the server's session (workers) goes too
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
        _wait_group_gone(process.pid, timeout=10.0)
        if process.stdout:
            process.stdout.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self) -> str:
        assert self._process and self._process.stdout
        deadline = time.monotonic() + START_TIMEOUT_S
        fd = self._process.stdout.fileno()
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith(READY):
                        return line.split()[1]
            elif self._process.poll() is not None:
                break
        code = self._process.poll()
        raise LocalStackError(f"local stack did not start (exit code {code}); see its stderr")

    def _require_endpoint(self) -> str:
        if not self.endpoint_url:
            raise LocalStackError("the local stack is not started; use 'with LocalStack() as s:'")
        return self.endpoint_url


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """SIGKILL is asynchronous: wait until no process of the group is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)
