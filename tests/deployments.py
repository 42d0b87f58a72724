"""SMR stacks deployed on a local stack for tests: one way to get clients, a stack and a runner.

``deploy(clients, name, input_buckets=[...])`` creates the buckets, deploys the stack with
``deploy_stack`` and returns a :class:`Deployment`. The session fixture ``deploy_engine``
(tests/conftest.py) binds it to clients on the session's local stack.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients


@dataclass
class Deployment:
    """A deployed stack: its clients, its ``StackInfo`` and a ``JobRunner`` on it."""

    clients: Any
    stack: Any
    runner: Any

    @property
    def s3(self):
        return self.clients.s3


def deploy(clients: AwsClients, name: str, *, input_buckets: Iterable[str],
           output_buckets: Iterable[str] = (), create_buckets: Iterable[str] = (), memory_mb: int = 512,
           timeout_s: int = 60, **settings: Any) -> Deployment:
    """Deploy stack ``name`` whose functions read ``input_buckets`` and write ``output_buckets``
    (default: the input buckets); those and ``create_buckets`` are created first if missing.
    ``settings``: further :class:`~lambda_handlers.options.StackSettings`."""
    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.engine.runner import JobRunner
    from lambda_handlers.options import StackSettings

    inputs = list(input_buckets)
    outputs = list(output_buckets) or inputs
    for bucket in dict.fromkeys([*inputs, *create_buckets, *outputs]):
        try:
            clients.s3.create_bucket(Bucket=bucket)
        except clients.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    stack = deploy_stack(clients, name,
        StackSettings(memory_mb=memory_mb, timeout_s=timeout_s, **settings),
        input_buckets=inputs, output_buckets=outputs)
    return Deployment(clients, stack, JobRunner(clients, stack))
