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
