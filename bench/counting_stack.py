"""A :class:`LocalStack` whose server counts requests by type (see ``bench.counting_server``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from airflow_provider_smr.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]


class CountingLocalStack(LocalStack):
    """Starts ``python -m bench.counting_server`` instead of the plain server; same behaviour."""

    def start(self) -> "CountingLocalStack":
        if self._process is not None:
            return self
        command = [sys.executable, "-m", "bench.counting_server",
                   "--host", self.host, "--port", str(self.port), "--region", self.region,
                   "--max-concurrency", str(self.max_concurrency),
                   "--retry-base", str(self.retry_base_s), "--parent-pid", str(os.getpid())]
        if self.workers:
            command += ["--workers", str(self.workers)]
        if self.max_processes:
            command += ["--max-processes", str(self.max_processes)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None,
                                          start_new_session=True, cwd=str(ROOT), env=env)
        try:
            self.endpoint_url = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def request_counts(self) -> dict[str, int]:
        from bench.counting_server import COUNTS_PATH

        with urllib.request.urlopen(self.endpoint_url + COUNTS_PATH, timeout=10) as resp:
            return json.loads(resp.read())
