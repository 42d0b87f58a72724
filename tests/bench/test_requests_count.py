"""Server-side request classification for the benchmark's request counts."""

from __future__ import annotations

import pytest

from bench.requests_count import RequestCounter, classify, split_counts

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261127/us-east-1/{svc}/aws4_request, SignedHeaders=host"


def env(method, path, query="", svc="s3", **extra):
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "HTTP_AUTHORIZATION": AUTH.format(svc=svc), **extra}


@pytest.mark.parametrize("environ, kind", [
    (env("GET", "/b/k"), "GET"),
    (env("GET", "/b", "list-type=2&prefix=jobs/"), "LIST"),
    (env("HEAD", "/b/k"), "HEAD"),
    (env("PUT", "/b/k"), "PUT"),
    (env("PUT", "/b/k", HTTP_X_AMZ_COPY_SOURCE="/b/src"), "COPY"),
    (env("PUT", "/b"), "PUT_BUCKET"),
    (env("POST", "/b", "delete"), "DELETE"),
    (env("DELETE", "/b/k"), "DELETE"),
    (env("POST", "/2015-03-31/functions/smr-mapper/invocations", svc="lambda"), "invoke:smr-mapper"),
    (env("POST", "/", svc="cloudformation"), None),
])
def test_classify_names_s3_request_types_and_lambda_invokes(environ, kind):
    assert classify(environ) == kind


def test_counter_counts_and_passes_requests_through():
    seen = []
    counter = RequestCounter(lambda environ, start: seen.append(environ) or [b"ok"])
    assert counter(env("GET", "/b/k"), None) == [b"ok"]
    counter(env("POST", "/2015-03-31/functions/f/invocations", svc="lambda"), None)
    assert len(seen) == 2
    s3, invokes = split_counts(counter.snapshot())
    assert s3 == {"GET": 1} and invokes == {"f": 1}
