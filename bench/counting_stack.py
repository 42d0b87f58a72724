"""A :class:`LocalStack` whose server counts requests by type (see ``bench.counting_server``)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from airflow_provider_smr.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]


class CountingLocalStack(LocalStack):
    """Runs ``python -m bench.counting_server`` instead of the plain server; same behaviour."""

    server_module = "bench.counting_server"

    def server_env(self) -> dict[str, str]:
        paths = [str(ROOT), os.environ.get("PYTHONPATH")]
        return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))

    def request_counts(self) -> dict[str, int]:
        from bench.counting_server import COUNTS_PATH

        with urllib.request.urlopen(self.endpoint_url + COUNTS_PATH, timeout=10) as resp:
            return json.loads(resp.read())

    def request_timeline(self) -> list[list]:
        """The server's last classified requests, ``[start, end, kind, path]`` (epoch seconds)."""
        from bench.counting_server import TIMELINE_PATH

        with urllib.request.urlopen(self.endpoint_url + TIMELINE_PATH, timeout=10) as resp:
            return json.loads(resp.read())
