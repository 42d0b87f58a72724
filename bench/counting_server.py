"""The local stack's server with a request counter in front (``python -m bench.counting_server``).

Same arguments as ``python -m airflow_provider_smr.local.server``. Every request the stack serves,
from the driver and from the worker processes alike, is classified by
:func:`bench.requests_count.classify`; ``GET /_smr_bench/requests`` returns the counts as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from airflow_provider_smr.local import gateway as _gateway
from airflow_provider_smr.local import server as _server
from bench.requests_count import classify

COUNTS_PATH = "/_smr_bench/requests"
TIMELINE_PATH = "/_smr_bench/timeline"
TIMELINE_REQUESTS = 20_000  # the log is bounded: a long soak keeps only its last requests


class CountingGateway(_gateway.Gateway):
    """The local stack's gateway, counting what it serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter = Counter()
        self.timeline: deque = deque(maxlen=TIMELINE_REQUESTS)
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO")
        if path in (COUNTS_PATH, TIMELINE_PATH):
            with self.lock:
                body = json.dumps(dict(self.counts) if path == COUNTS_PATH else list(self.timeline)).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        kind = classify(environ)
        if kind is not None:
            with self.lock:
                self.counts[kind] += 1
        started = time.time()
        out = super().__call__(environ, start_response)
        if kind is not None:
            with self.lock:
                self.timeline.append([started, time.time(), kind, path])
        return out


if __name__ == "__main__":
    _gateway.Gateway = CountingGateway  # server.main imports it from the module when it runs
    sys.exit(_server.main())
