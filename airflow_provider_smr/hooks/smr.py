"""SMRHook: deploy the stack and run MapReduce jobs on it through the standard ``aws`` connection.

Thin by design: each method is one remote action and returns plain values (dicts, ids). The work
is done by :mod:`airflow_provider_smr.engine` and :mod:`airflow_provider_smr.deploy`; the hook only
provides boto3 clients built from the Airflow connection, so its ``endpoint_url``, credentials,
``verify`` and ``botocore_config`` apply to every call (the local stack included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from airflow_provider_smr.engine.runner import (
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    OutputExistsError,
)

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients
    from airflow_provider_smr.engine.runner import JobRunner
    from airflow_provider_smr.job import MapReduceJob

__all__ = ["JobCancelledError", "JobFailedError", "JobNotFoundError", "JobTimeoutError",
           "OutputExistsError", "SMRHook"]

DEFAULT_STACK = "smr"


class SMRHook(AwsBaseHook):
    """Interact with Serverless MapReduce: deploy its stack, submit, watch, cancel and collect jobs.

    Additional arguments (``aws_conn_id``, ``region_name``, ``verify``, ``config``) are passed to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    hook_name = "Serverless MapReduce"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("client_type", None)
        super().__init__(*args, client_type="s3", **kwargs)
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
        from botocore.config import Config

        from airflow_provider_smr.engine.aws import DEFAULT_MAX_POOL_CONNECTIONS

        config = Config(max_pool_connections=DEFAULT_MAX_POOL_CONNECTIONS,
                        retries={"max_attempts": 5, "mode": "standard"}).merge(self._get_config())
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

    def deploy_stack(self, stack_name: str = DEFAULT_STACK, **settings: Any) -> dict:
        """Create or update the stack (no AWS writes when nothing changed); return its ``StackInfo`` dict.

        :param settings: ``memory_mb``, ``timeout_s``, ``input_buckets``, ``output_buckets``,
            ``log_retention_days``, ``jobs_expire_days``, ``layers`` (see ``deploy.deploy_stack``).
        """
        from airflow_provider_smr.deploy import deploy_stack

        info = deploy_stack(self.clients, stack_name, **settings).to_dict()
        self._stacks[stack_name] = info
        self._runners.pop(stack_name, None)
        return info

    def get_stack_info(self, stack_name: str = DEFAULT_STACK) -> dict:
        """The deployed stack's ``StackInfo`` dict; raises ``StackNotFoundError`` if not deployed."""
        if stack_name not in self._stacks:
            from airflow_provider_smr.deploy import describe_stack

            self._stacks[stack_name] = describe_stack(self.clients, stack_name).to_dict()
        return self._stacks[stack_name]

    def delete_stack(self, stack_name: str = DEFAULT_STACK) -> None:
        """Empty the stack's work bucket and delete the stack."""
        from airflow_provider_smr.deploy import delete_stack

        delete_stack(self.clients, stack_name)
        self._stacks.pop(stack_name, None)
        self._runners.pop(stack_name, None)

    # -- jobs -------------------------------------------------------------------------------------

    def submit_job(self, job: MapReduceJob | str, *, input: Any, output: str,
                   stack_name: str = DEFAULT_STACK, job_id: str | None = None,
                   num_reducers: int | None = None, split_size: int | str | None = None,
                   max_concurrency: int | None = None, max_attempts: int = 3, overwrite: bool = False,
                   job_params: dict | None = None, max_bad_records: int = 0,
                   speculation: bool = False, speculation_threshold: float = 3.0,
                   deadline_grace_s: int = 30, driver: str = "worker",
                   create_table: bool = False) -> str:
        """Plan the job and start its map tasks; return the job id.

        A ``job_id`` that already exists is not run twice: its id is returned so the caller can
        reconnect (see :meth:`job_exists` and :meth:`get_job_status`).

        :param job: a ``MapReduceJob`` or an import string ``"package.module:attr"``.
        :param input: an S3 URI (prefix, key or glob), a list of them, or a dict of named inputs.
        :param output: the S3 prefix the parts and ``_SUCCESS`` are committed to.
        :param split_size: bytes per map task, or a size such as ``"64MiB"``.
        :param max_concurrency: ``Invoke`` calls in flight during the fan-out.
        :param max_attempts: attempts per task before the job fails.
        :param overwrite: replace an output that already holds a committed result.
        :param job_params: JSON-able parameters the job's functions can read.
        :param max_bad_records: records a mapper may fail on (skipped and counted) before failing.
        :param speculation: launch backup attempts for stragglers.
        :param speculation_threshold: a running task is a straggler once it ran this many times the
            median duration of its phase's finished tasks.
        :param deadline_grace_s: a started attempt silent for the function timeout plus this long is
            presumed killed (timeout, out of memory) and retried.
        :param driver: ``"worker"`` (this process fans the map tasks out) or ``"lambda"`` (the
            stack's driver function does, through an invoke tree for large jobs).
        :param create_table: create a ``dynamodb://`` output table when missing (on-demand billing).
        """
        return self.runner(stack_name).submit(
            job, input=input, output=output, job_id=job_id, num_reducers=num_reducers,
            split_size=split_size, max_concurrency=max_concurrency, max_attempts=max_attempts,
            overwrite=overwrite, job_params=job_params, max_bad_records=max_bad_records,
            speculation=speculation, speculation_threshold=speculation_threshold,
            deadline_grace_s=deadline_grace_s, driver=driver, create_table=create_table)

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

    def wait_for_job(self, job_id: str, stack_name: str = DEFAULT_STACK, poll_interval: float = 5,
                     timeout: float | None = None) -> dict:
        """Block until the job ends; return its result dict.

        :raises JobFailedError: with the remote error and traceback.
        """
        return self.runner(stack_name).wait(job_id, poll_interval=poll_interval, timeout=timeout)

    def get_job_error(self, job_id: str, stack_name: str = DEFAULT_STACK) -> str:
        """A failed job's error: cause, input, remote traceback and the task's CloudWatch log tail."""
        return str(self.runner(stack_name)._failure(job_id))

    def cancel_job(self, job_id: str, stack_name: str = DEFAULT_STACK) -> None:
        """Stop the job: no new tasks start and nothing is committed."""
        self.runner(stack_name).cancel(job_id)

    def get_job_result(self, job_id: str, stack_name: str = DEFAULT_STACK) -> dict:
        """The result dict of a succeeded job (raises ``JobFailedError`` for a failed one)."""
        return self.runner(stack_name).result(job_id)

    def run_job(self, job: MapReduceJob | str, *, input: Any, output: str,
                stack_name: str = DEFAULT_STACK, poll_interval: float = 5,
                timeout: float | None = None, **submit_kw: Any) -> dict:
        """Submit the job, wait for it and return the result dict."""
        job_id = self.submit_job(job, input=input, output=output, stack_name=stack_name, **submit_kw)
        return self.wait_for_job(job_id, stack_name=stack_name, poll_interval=poll_interval,
                                 timeout=timeout)
