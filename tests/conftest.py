"""Shared fixtures: one local stack per test session, and the one way tests reach AWS on it.

Every test that talks to AWS uses the session's local stack (``aws_endpoint``) through
``aws_clients`` (boto3 clients) or ``aws_env`` (the environment a process or a Lambda function
would have). The fake credentials and the region are defined here and nowhere else in the tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients

# ``smr run`` keeps a stack's description between processes (engine.stack_cache): test stacks come
# and go on reused ports, so the suite runs without it (tests/engine/test_stack_cache.py turns it on)
os.environ["SMR_STACK_CACHE_S"] = "0"

REGION = "us-east-1"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def make_aws_clients(endpoint: str, *, region_name: str = REGION, config: Any = None,
                     **credentials: str) -> AwsClients:
    """Clients for ``endpoint`` with the fake credentials (``credentials`` overrides them)."""
    import boto3

    from airflow_provider_smr.engine.aws import AwsClients

    session = boto3.session.Session(region_name=region_name, **{**FAKE_CREDENTIALS, **credentials})
    return AwsClients(session, endpoint_url=endpoint, region_name=region_name, config=config)


@pytest.fixture(scope="session")
def local_stack():
    """A started :class:`~airflow_provider_smr.local.LocalStack` (moto + real Lambda execution).

    Nothing global is changed: use ``aws_clients(aws_endpoint)`` or ``aws_env`` (e.g. with
    ``monkeypatch.setenv``) to point code at it.
    """
    from airflow_provider_smr.local import LocalStack

    with LocalStack(port=0, region=REGION) as stack:
        yield stack


@pytest.fixture(scope="session")
def aws_endpoint(local_stack) -> str:
    """The session's local stack endpoint: every AWS service the tests use answers there."""
    return local_stack.endpoint_url


@pytest.fixture(scope="session")
def aws_clients() -> Callable[..., AwsClients]:
    """``aws_clients(endpoint, region_name=..., config=..., **credentials)``: an ``AwsClients``
    (``.s3``, ``.lambda_``, ``.dynamodb``, ``.client(name)``) with the fake credentials."""
    return make_aws_clients


@pytest.fixture(scope="session")
def aws_env(aws_endpoint) -> dict[str, str]:
    """The AWS part of the environment a Lambda function on the local stack has."""
    return {"AWS_ENDPOINT_URL": aws_endpoint, "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


@pytest.fixture(scope="session")
def airflow_conn() -> Callable[..., str]:
    """``airflow_conn(endpoint, region_name=...)``: an Airflow AWS connection with the fake
    credentials, as JSON for an ``AIRFLOW_CONN_<ID>`` variable."""

    def make(endpoint: str, region_name: str = REGION) -> str:
        return json.dumps({"conn_type": "aws", "login": FAKE_CREDENTIALS["aws_access_key_id"],
                           "password": FAKE_CREDENTIALS["aws_secret_access_key"],
                           "extra": {"endpoint_url": endpoint, "region_name": region_name}})

    return make


@pytest.fixture(scope="session")
def deploy_engine(aws_endpoint):
    """A factory: ``deploy_engine(name, input_buckets=[...], memory_mb=..., timeout_s=...)`` deploys
    an SMR stack on the session's local stack and returns a :class:`tests.deployments.Deployment`
    (``.clients``, ``.s3``, ``.stack``, ``.runner``)."""
    from tests.deployments import deploy

    return lambda name, **kw: deploy(make_aws_clients(aws_endpoint), name, **kw)
