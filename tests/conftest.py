"""Shared fixtures: one local stack per test session, started on a free loopback port."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_stack():
    """A started :class:`~airflow_provider_smr.local.LocalStack` (moto + real Lambda execution).

    Nothing global is changed: use ``local_stack.client("s3")`` or ``local_stack.env`` (e.g. with
    ``monkeypatch.setenv``) to point code at it.
    """
    from airflow_provider_smr.local import LocalStack

    with LocalStack(port=0) as stack:
        yield stack


@pytest.fixture(scope="session")
def deploy_engine(local_stack):
    """A factory: ``deploy_engine(name, input_buckets=[...], memory_mb=..., timeout_s=...)`` deploys
    an SMR stack on the session's local stack and returns a :class:`tests.deployments.Deployment`
    (``.clients``, ``.s3``, ``.stack``, ``.runner``)."""
    from tests.deployments import deploy

    return lambda name, **kw: deploy(local_stack, name, **kw)
