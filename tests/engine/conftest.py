"""Fixtures of the control-plane tests: S3 on moto's in-process backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def mock_s3(monkeypatch):
    """A boto3 S3 client on moto's in-process backend (``mock_aws``), fake credentials in the env."""
    import boto3
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")
