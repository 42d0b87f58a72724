"""Fixtures of the data plane's readers."""

from __future__ import annotations

import pytest

from lambda_handlers.io import signed_get


@pytest.fixture
def client_gets(s3):
    """Keys of the GetObject calls the data plane's botocore client makes during the test (the
    routes of signed GETs forgotten first, so the bucket's first GET goes through the client)."""
    seen: list[str] = []

    def record(params, **_):
        seen.append(params["Key"])

    s3.meta.events.register("provide-client-params.s3.GetObject", record)
    signed_get.reset()
    yield seen
    s3.meta.events.unregister("provide-client-params.s3.GetObject", record)
