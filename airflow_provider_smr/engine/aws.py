"""Where the control plane gets its boto3 clients: one small object shared by hook, CLI and deploy.

``SMRHook`` builds it from an Airflow connection (so ``endpoint_url`` in the connection extra points
everything at the local stack); the CLI builds it from a plain boto3 session. Clients are created
once and reused (boto3 clients are thread-safe; the fan-out pool shares them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

# Enough pooled connections for the fan-out and watcher threads.
DEFAULT_MAX_POOL_CONNECTIONS = 64


def client_config(overrides: Config | None = None) -> Config:
    """The ``botocore.config.Config`` of every control-plane client, with ``overrides`` (a
    ``Config``: the connection's ``botocore_config``) merged over it."""
    from botocore.config import Config

    config = Config(max_pool_connections=DEFAULT_MAX_POOL_CONNECTIONS,
                    retries={"max_attempts": 5, "mode": "standard"})
    return config if overrides is None else config.merge(overrides)


class AwsClients:
    """Lazily created, cached boto3 clients for one account/region/endpoint.

    :param session: a boto3 session; a default one is made when omitted.
    :param endpoint_url: one endpoint for every service (the local stack), or None for AWS.
    :param region_name: AWS region; the session's when omitted.
    :param config: a ``botocore.config.Config`` merged into every client's config.
    :param client_factory: alternative ``(service_name) -> client`` (the hook passes its own so the
        Airflow connection's credentials, endpoint and botocore config apply).
    """

    def __init__(
        self,
        session: boto3.session.Session | None = None,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        config: Config | None = None,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self._session = session
        self.endpoint_url = endpoint_url
        self._region_name = region_name
        self._config = config
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            from lambda_handlers.clock import fast_timestamp_session

            # the planner lists every input object: botocore's dateutil parse of each
            # LastModified was most of its time (same datetimes, parsed faster)
            self._session = fast_timestamp_session(region_name=self._region_name)
        return self._session

    @property
    def region_name(self) -> str:
        if self._region_name:
            return self._region_name
        return self.session.region_name or "us-east-1"

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._make(service)
            return self._clients[service]

    def _make(self, service: str) -> Any:
        if self._client_factory is not None:
            return self._client_factory(service)
        return self.session.client(service, region_name=self.region_name,
                                   endpoint_url=self.endpoint_url, config=client_config(self._config))

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def cloudformation(self) -> Any:
        return self.client("cloudformation")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def dynamodb(self) -> Any:
        """Made on first use: most jobs only hand it to checks that skip S3 locations."""
        return _OnFirstUse(lambda: self.client("dynamodb"))

    @property
    def sts(self) -> Any:
        return self.client("sts")


class _OnFirstUse:
    """A client whose creation (loading its service model, ~50 ms) waits until it is used."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)
