"""Count the requests a local stack serves, by S3 request type and Lambda function (WSGI middleware).

The count comes from the server side, so it includes the data plane's requests made inside the
worker processes, which the driver cannot see. :func:`classify` is pure and tested.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations")


def classify(environ: dict) -> str | None:
    """``"GET"``, ``"PUT"``, ``"LIST"``, ... for S3; ``"invoke:<function>"`` for Lambda; else None."""
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET").upper()
    m = _INVOKE.match(path)
    if m and method == "POST":
        return f"invoke:{m.group(1)}"
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope is None or scope.group(1) != "s3":
        return None
    query = environ.get("QUERY_STRING", "")
    key_part = path.lstrip("/").partition("/")[2]
    if method == "GET":
        if not key_part and ("list-type" in query or "prefix=" in query or query == ""
                             or "delimiter" in query or "marker" in query):
            return "LIST"
        return "GET"
    if method == "HEAD":
        return "HEAD"
    if method == "PUT":
        if environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return "COPY"
        return "PUT" if key_part else "PUT_BUCKET"
    if method == "DELETE":
        return "DELETE"
    if method == "POST":
        if "delete" in query:
            return "DELETE"
        return "POST"
    return method


class RequestCounter:
    """Wrap a WSGI ``app``; :meth:`snapshot` returns the counts so far."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        kind = classify(environ)
        if kind is not None:
            with self._lock:
                self._counts[kind] += 1
        return self.app(environ, start_response)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def split_counts(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``(S3 requests by type, Lambda invokes by function)``."""
    s3 = {k: v for k, v in counts.items() if not k.startswith("invoke:")}
    invokes = {k[len("invoke:"):]: v for k, v in counts.items() if k.startswith("invoke:")}
    return s3, invokes
