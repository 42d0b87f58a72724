"""Fixtures for the deploy tests: clients on the local stack that record every call they make."""

from __future__ import annotations

import pytest

READ_PREFIXES = ("Describe", "Get", "List", "Head")


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
def clients(aws_endpoint, aws_clients, call_log):
    """AwsClients on the local stack; every call is recorded in ``call_log``."""
    from botocore.config import Config

    # Creating a whole stack is one request; a loaded machine must not time it out.
    config = Config(read_timeout=300, retries={"mode": "standard", "max_attempts": 3})
    clients = aws_clients(aws_endpoint, config=config)
    clients.session.events.register("before-call", call_log.record)  # copied into each new client
    return clients
