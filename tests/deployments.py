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
           timeout_s: int = 60, grant_tables_per_job: bool = False, tables: Iterable[str] = (),
           **settings: Any) -> Deployment:
    """Deploy stack ``name`` whose functions read ``input_buckets`` and write ``output_buckets``
    (default: the input buckets; buckets or ``s3://bucket/prefix`` locations); their buckets and
    ``create_buckets`` are created first if missing. ``grant_tables_per_job``: the runner deploys
    the DynamoDB tables each job names before submitting it (as an operator with ``deploy=True``
    does), since the local stack enforces the role's grants; ``tables``: tables (or name patterns)
    granted up front.
    ``settings``: further :class:`~lambda_handlers.options.StackSettings`."""
    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.engine.runner import JobRunner
    from lambda_handlers.options import StackSettings

    inputs = list(input_buckets)
    outputs = list(output_buckets) or inputs
    from lambda_handlers.s3uri import S3Uri

    named = [*inputs, *create_buckets, *outputs]
    for bucket in dict.fromkeys((S3Uri.parse_or_none(b) or S3Uri(b)).bucket for b in named):
        try:
            clients.s3.create_bucket(Bucket=bucket)
        except clients.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    stack_settings = StackSettings(memory_mb=memory_mb, timeout_s=timeout_s, **settings)
    stack = deploy_stack(clients, name, stack_settings, input_buckets=inputs, output_buckets=outputs,
                         tables=list(tables))
    if not grant_tables_per_job:
        return Deployment(clients, stack, JobRunner(clients, stack))

    class GrantingRunner(JobRunner):
        granted: set[str] = set()

        def submit(self, job: Any, *, input: Any, output: str, **kw: Any) -> str:
            from lambda_handlers.planning import dynamodb_tables

            tables = set(dynamodb_tables(input, output))
            if not tables <= self.granted:
                self.granted = self.granted | tables
                self.stack = deploy_stack(clients, name, stack_settings, input_buckets=inputs,
                                          output_buckets=outputs, tables=sorted(self.granted))
            return super().submit(job, input=input, output=output, **kw)

    return Deployment(clients, stack, GrantingRunner(clients, stack))
