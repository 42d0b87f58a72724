"""The local stack's server with a request counter in front (``python -m bench.counting_server``).

Same arguments as ``python -m airflow_provider_smr.local.server``. Every request the stack serves,
from the driver and from the worker processes alike, is classified by
:func:`bench.requests_count.classify`; ``GET /_smr_bench/requests`` returns the counts as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from airflow_provider_smr.local import gateway as _gateway
from airflow_provider_smr.local import server as _server
from bench.requests_count import classify

COUNTS_PATH = "/_smr_bench/requests"


class CountingGateway(_gateway.Gateway):
    """The local stack's gateway, counting what it serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self.lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        kind = classify(environ)
        if kind is not None:
            with self.lock:
                self.counts[kind] += 1
        return super().__call__(environ, start_response)


if __name__ == "__main__":
    _gateway.Gateway = CountingGateway  # server.main imports it from the module when it runs
    sys.exit(_server.main())
