"""Fixtures for the deploy tests: a plain moto server (CloudFormation, S3, IAM, Lambda control plane)."""

from __future__ import annotations

import socket
import warnings

import pytest

READ_PREFIXES = ("Describe", "Get", "List", "Head")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    import moto.cloudformation.parsing  # noqa: F401 - pay its import (all backends) here, not in a request
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class CallLog:
    """Operation names of every API call made through the clients (botocore ``before-call``)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def record(self, model, **_kwargs) -> None:
        self.calls.append(f"{model.service_model.service_name}:{model.name}")

    def writes(self) -> list[str]:
        return [c for c in self.calls if not c.split(":", 1)[1].startswith(READ_PREFIXES)]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def call_log() -> CallLog:
    return CallLog()


@pytest.fixture
def clients(moto_endpoint, call_log):
    """AwsClients on the moto server with fake credentials; every call is recorded in ``call_log``."""
    import boto3
    from botocore.config import Config

    from airflow_provider_smr.engine.aws import AwsClients

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")

    def factory(service: str):
        # moto creates a whole stack inside one request; a loaded machine must not time it out.
        config = Config(read_timeout=300, retries={"mode": "standard", "max_attempts": 3})
        client = session.client(service, endpoint_url=moto_endpoint, region_name="us-east-1",
                                config=config)
        client.meta.events.register("before-call", call_log.record)
        return client

    return AwsClients(session, endpoint_url=moto_endpoint, region_name="us-east-1",
                      client_factory=factory)


@pytest.fixture(autouse=True)
def _quiet_moto_cloudformation_warnings():
    # moto warns for every resource type its CloudFormation skips (listed in the deploy report).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not supported by moto's CloudFormation.*")
        yield
