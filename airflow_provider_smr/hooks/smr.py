"""SMRHook: deploy the stack and run MapReduce jobs on it through the standard ``aws`` connection.

Thin by design: each method is one remote action and returns plain values (dicts, ids). The work
is done by :mod:`airflow_provider_smr.engine` and :mod:`airflow_provider_smr.deploy`; the hook only
provides boto3 clients built from the Airflow connection, so its ``endpoint_url``, credentials,
``verify`` and ``botocore_config`` apply to every call (the local stack included).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from airflow_provider_smr.engine.runner import (
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    OutputExistsError,
)
from airflow_provider_smr.engine.watch import DEFAULT_WAITER_DELAY_S, DEFAULT_WAITER_MAX_ATTEMPTS, waiter_timeout_s
from lambda_handlers.options import JobOptions, StackSettings

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients
    from airflow_provider_smr.engine.runner import JobRunner
    from airflow_provider_smr.job import MapReduceJob

__all__ = ["JobCancelledError", "JobFailedError", "JobNotFoundError", "JobTimeoutError",
           "OutputExistsError", "SMRHook"]

DEFAULT_STACK = "smr"


def waiter_delay_or_alias(waiter_delay: float, poll_interval: float | None, *, stacklevel: int = 3) -> float:
    """``waiter_delay``, or the deprecated ``poll_interval`` it replaces (with a warning) when given."""
    if poll_interval is None:
        return waiter_delay
    warnings.warn("`poll_interval` is deprecated: use `waiter_delay` (seconds between status polls)",
                  AirflowProviderDeprecationWarning, stacklevel=stacklevel)
    return poll_interval


class SMRHook(AwsBaseHook):
    """Interact with Serverless MapReduce: deploy its stack, submit, watch, cancel and collect jobs.

    Additional arguments (``aws_conn_id``, ``region_name``, ``verify``, ``config``) are passed to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    hook_name = "Serverless MapReduce"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "s3"
        super().__init__(*args, **kwargs)
        self._clients: AwsClients | None = None
        self._stacks: dict[str, dict] = {}
        self._runners: dict[str, JobRunner] = {}

    # -- clients ----------------------------------------------------------------------------------

    @property
    def clients(self) -> AwsClients:
        """Boto3 clients of every service the engine uses, from this hook's connection."""
        if self._clients is None:
            from airflow_provider_smr.engine.aws import AwsClients

            self._clients = AwsClients(region_name=self.conn_region_name,
                                       client_factory=self._make_client)
        return self._clients

    def _make_client(self, service: str) -> Any:
        from airflow_provider_smr.engine.aws import client_config

        config = client_config(self._get_config())
        session = self.get_session(region_name=self.region_name)
        return session.client(service, region_name=self.conn_region_name,
                              endpoint_url=self.conn_config.get_service_endpoint_url(service_name=service),
                              config=config, verify=self.verify)

    def runner(self, stack_name: str = DEFAULT_STACK) -> JobRunner:
        """The engine's :class:`~airflow_provider_smr.engine.runner.JobRunner` for a deployed stack."""
        if stack_name not in self._runners:
            from airflow_provider_smr.deploy import StackInfo
            from airflow_provider_smr.engine.runner import JobRunner

            stack = StackInfo.from_dict(self.get_stack_info(stack_name))
            self._runners[stack_name] = JobRunner(self.clients, stack, logger=self.log)
        return self._runners[stack_name]

    # -- stack ------------------------------------------------------------------------------------

    def deploy_stack(self, stack_name: str = DEFAULT_STACK, settings: StackSettings | None = None, *,
                     input_buckets: Iterable[str] = (), output_buckets: Iterable[str] = (),
                     tables: Iterable[str] = (), replace_locations: bool = False) -> dict:
        """Create or update the stack (no AWS writes when nothing changed); return its ``StackInfo`` dict.

        :param settings: memory, timeout, layers, requirements, log retention, job expiry,
            architecture (``lambda_handlers.options.StackSettings``; its defaults when None).
        :param input_buckets: locations the functions may read (``bucket`` or ``s3://bucket/prefix``).
        :param output_buckets: locations the functions may write.
        :param tables: DynamoDB tables the functions may scan and write.
        :param replace_locations: grant exactly these locations instead of adding to the granted ones.
        """
        from airflow_provider_smr.deploy import deploy_stack

        info = deploy_stack(self.clients, stack_name, settings, input_buckets=input_buckets,
                            output_buckets=output_buckets, tables=tables,
                            replace_locations=replace_locations).to_dict()
        self._stacks[stack_name] = info
        self._runners.pop(stack_name, None)
        return info

    def get_stack_info(self, stack_name: str = DEFAULT_STACK) -> dict:
        """The deployed stack's ``StackInfo`` dict; raises ``StackNotFoundError`` if not deployed."""
        if stack_name not in self._stacks:
            from airflow_provider_smr.deploy import describe_stack

            self._stacks[stack_name] = describe_stack(self.clients, stack_name).to_dict()
        return self._stacks[stack_name]

    def delete_stack(self, stack_name: str = DEFAULT_STACK, *, missing_ok: bool = False) -> None:
        """Empty the stack's work bucket and delete the stack.

        :param missing_ok: do nothing when there is no such stack (else ``StackNotFoundError``).
        """
        from airflow_provider_smr.deploy import delete_stack

        delete_stack(self.clients, stack_name, missing_ok=missing_ok)
        self._stacks.pop(stack_name, None)
        self._runners.pop(stack_name, None)

    # -- jobs -------------------------------------------------------------------------------------

    def check_job_locations(self, *, input: Any, output: str, options: JobOptions | None = None,
                            own_job: Callable[[str], bool] | None = None) -> None:
        """Refuse input/output locations a job cannot use, before any deploy or submit: URIs that
        do not parse, missing buckets or tables, an empty input, an output inside an input, a
        committed output without ``overwrite``. Needs no stack.

        :param own_job: a committed output whose manifest names a job id this accepts is not
            refused (the caller's own earlier result, which a retry returns).
        :raises InputError: naming the argument (``input``, ``output``).
        :raises OutputExistsError: for a committed output.
        """
        from airflow_provider_smr.engine.preflight import check_locations

        options = options or JobOptions()
        check_locations(self.clients.s3, self.clients.dynamodb, input, output, overwrite=options.overwrite,
                        create_table=options.create_table, own_job=own_job)

    def submit_job(self, job: MapReduceJob | str, *, input: Any, output: str,
                   options: JobOptions | None = None, stack_name: str = DEFAULT_STACK,
                   job_id: str | None = None, job_params: dict | None = None) -> str:
        """Plan the job and start its map tasks; return the job id.

        A ``job_id`` that already exists is not run twice: its id is returned so the caller can
        reconnect (see :meth:`job_exists` and :meth:`get_job_status`).

        :param job: a ``MapReduceJob`` or an import string ``"package.module:attr"``.
        :param input: an S3 URI (prefix, key or glob), a list of them, or a dict of named inputs.
        :param output: the S3 prefix the parts and ``_SUCCESS`` are committed to.
        :param options: how the job runs (``lambda_handlers.options.JobOptions``; its defaults
            when None): reducers, split size, attempts, speculation, driver, overwrite, ...
        :param job_params: JSON-able parameters the job's functions can read, merged over the
            job's declared ``params`` and checked before anything is written.
        """
        from airflow_provider_smr.deploy.errors import GrantsMissingError
        from airflow_provider_smr.deploy.stack import missing_grants

        runner = self.runner(stack_name)
        if missing := missing_grants(runner.stack, input, output):
            raise GrantsMissingError(
                f"stack {stack_name!r} does not grant this job's {', '.join(missing)}: its functions may "
                "touch only the locations deployed with it; deploy it with them (the operator's "
                "deploy=True does, or SMRHook.deploy_stack(input_buckets=..., output_buckets=...))")
        return runner.submit(job, input=input, output=output,
                                              options=options or JobOptions(), job_id=job_id,
                                              job_params=job_params)

    def job_exists(self, job_id: str, stack_name: str = DEFAULT_STACK) -> bool:
        return self.runner(stack_name).job_exists(job_id)

    def get_job_status(self, job_id: str, stack_name: str = DEFAULT_STACK) -> dict:
        """``{"job_id", "state", "phase", "progress", "error"}`` from one LIST of the job's markers.

        :raises JobNotFoundError: when no job has this id.
        """
        return self.runner(stack_name).status(job_id).to_dict()

    def retry_overdue_tasks(self, job_id: str, stack_name: str = DEFAULT_STACK) -> None:
        """Ask the coordinator to retry attempts silent past their deadline (killed by Lambda)."""
        self.runner(stack_name).check_deadlines(job_id)

    def wait_for_job(self, job_id: str, stack_name: str = DEFAULT_STACK, *,
                     waiter_delay: float = DEFAULT_WAITER_DELAY_S,
                     waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
                     timeout: float | None = None, poll_interval: float | None = None) -> dict:
        """Block until the job ends; return its result dict.

        :param waiter_delay: the longest gap between status polls (one S3 LIST each); polls come
            sooner when the job starts, a phase begins or its tasks are due (adaptive polling).
        :param waiter_max_attempts: give up with ``JobTimeoutError`` after ``waiter_delay`` x
            ``waiter_max_attempts`` seconds (the job keeps running); None waits as long as the job
            runs. A time limit: adaptive polls may be more than this many.
        :param timeout: seconds before giving up, instead of ``waiter_delay`` x ``waiter_max_attempts``.
        :param poll_interval: deprecated alias of ``waiter_delay``.
        :raises JobFailedError: with the remote error and traceback.
        :raises JobCancelledError: when the job was cancelled.
        :raises JobTimeoutError: when the wait ran out (the job keeps running).
        """
        delay = waiter_delay_or_alias(waiter_delay, poll_interval)
        if timeout is None:
            timeout = waiter_timeout_s(delay, waiter_max_attempts)
        return self.runner(stack_name).wait(job_id, poll_interval=delay, timeout=timeout)

    def get_job_error(self, job_id: str, stack_name: str = DEFAULT_STACK) -> str:
        """A failed job's error: cause, input, remote traceback and the task's CloudWatch log tail."""
        return str(self.runner(stack_name)._failure(job_id))

    def cancel_job(self, job_id: str, stack_name: str = DEFAULT_STACK) -> bool:
        """Stop the job: no new tasks start and nothing is committed.

        :return: True if this call cancelled it; False if it was already committing or finished.
        """
        return self.runner(stack_name).cancel(job_id)

    def get_job_result(self, job_id: str, stack_name: str = DEFAULT_STACK) -> dict:
        """The result dict of a succeeded job (raises ``JobFailedError`` for a failed one)."""
        return self.runner(stack_name).result(job_id)

    def run_job(self, job: MapReduceJob | str, *, input: Any, output: str,
                options: JobOptions | None = None, stack_name: str = DEFAULT_STACK,
                job_id: str | None = None, job_params: dict | None = None,
                waiter_delay: float = DEFAULT_WAITER_DELAY_S,
                waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
                timeout: float | None = None, poll_interval: float | None = None) -> dict:
        """Submit the job, wait for it (as :meth:`wait_for_job`) and return the result dict."""
        delay = waiter_delay_or_alias(waiter_delay, poll_interval)
        job_id = self.submit_job(job, input=input, output=output, options=options,
                                 stack_name=stack_name, job_id=job_id, job_params=job_params)
        return self.wait_for_job(job_id, stack_name=stack_name, waiter_delay=delay,
                                 waiter_max_attempts=waiter_max_attempts, timeout=timeout)
