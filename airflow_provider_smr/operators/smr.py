"""ServerlessMapReduceOperator: run a MapReduce job on AWS Lambda + S3 from an Airflow task."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, cast

from airflow.configuration import conf
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_smr.engine.watch import (
    DEFAULT_WAITER_DELAY_S,
    DEFAULT_WAITER_MAX_ATTEMPTS,
    DEFERRAL_TIMEOUT_MARGIN_S,
    waiter_timeout_s,
)
from airflow_provider_smr.hooks.smr import JobTimeoutError, SMRHook, waiter_delay_or_alias
from airflow_provider_smr.links.smr import SMRLogsLink, SMROutputLink, SMRReportLink, persist_job_links
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions, StackSettings, declared, declared_values
from lambda_handlers.planning import dynamodb_tables, s3_locations, spec_uris
from lambda_handlers.s3uri import SCHEME, S3Uri, is_s3_uri

try:  # Airflow >= 3.3: task_state_store survives retries (AIP-103).
    from airflow.sdk import ResumableJobMixin
except ImportError:  # pragma: no cover - older Airflow: S3 markers alone make submit_job idempotent
    # A stand-in with the same interface, so not the same class.
    from airflow_provider_smr.operators._resumable import ResumableJobMixin  # type: ignore[assignment]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_smr.job import MapReduceJob
    from airflow_provider_smr.triggers.smr import JobEvent

_JOB, _STACK = JobOptions(), StackSettings()

# Room left under protocol's 200-character limit for a generation suffix (".2", ".3", ...).
MAX_BASE_JOB_ID = 190
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")

# Resume decisions, from the state of the job a previous try left behind.
SUBMIT = "submit"  # no job yet
RECONNECT = "reconnect"  # still running: wait for it
RETURN = "return"  # finished: return its result
RESUBMIT = "resubmit"  # failed or cancelled: run a fresh job under the next generation id


def resume_decision(prior_state: str | None) -> str:
    """Decide what a (re)starting task does with the job an earlier try may have left."""
    if prior_state is None:
        return SUBMIT
    if prior_state in protocol.ACTIVE_STATES:
        return RECONNECT
    if prior_state in protocol.SUCCESS_STATES:
        return RETURN
    return RESUBMIT


def deterministic_job_id(dag_id: str, run_id: str, task_id: str, map_index: int | None = -1) -> str:
    """The job id of one task instance: readable, a valid protocol job id, the same on every try.

    Characters outside the protocol's alphabet become ``-``; a short hash of the exact tuple keeps
    ids that sanitize alike (``a:b`` / ``a+b``) apart, and long ids are cut before the hash.
    """
    parts = [dag_id, task_id, run_id]
    if map_index is not None and map_index >= 0:
        parts.append(f"m{map_index}")
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]
    readable = _UNSAFE.sub("-", ".".join(parts))
    readable = re.sub(r"\.{2,}", ".", readable).lstrip("_.=-") or "job"
    readable = readable[: MAX_BASE_JOB_ID - len(digest) - 1].rstrip(".")
    return protocol.validate_job_id(f"{readable}.{digest}")


def generation_job_id(base_id: str, generation: int) -> str:
    """Job id of the n-th fresh run of one task instance (after a failed or cancelled one)."""
    return base_id if generation <= 1 else protocol.validate_job_id(f"{base_id}.{generation}")


def asset_uri(output: str) -> str | None:
    """The Asset URI of an output location; for a templated one, the folder above the template.

    ``s3://b/revenue/{{ ds }}/`` is announced as ``s3://b/revenue/`` (its run's exact prefix goes in
    the asset event's ``extra``). None when no static bucket is left to name.
    """
    if "{{" not in output:
        return output
    root = S3Uri.parse_or_none(output.split("{{", 1)[0].rsplit("/", 1)[0] + "/")
    return str(root) if root is not None else None


class ServerlessMapReduceOperator(ResumableJobMixin, AwsBaseOperator[SMRHook]):
    """
    Run a MapReduce job on AWS Lambda with S3 as the shuffle, and return its result dict.

    The task deploys (or reuses) the SMR stack, submits the job under an id derived from the task
    instance, and waits for it: in the worker, or deferred to the triggerer. On a retry after a
    worker crash it reconnects to the job the earlier try started, or returns its result if it
    already finished, instead of running it twice.

    :param job: a ``MapReduceJob`` or an import string ``"package.module:attr"``.
    :param input: ``s3://`` URI(s) of the input: a string, a list, or ``{name: URI}`` for jobs with
        named inputs (joins). (templated)
    :param output: ``s3://`` prefix the parts and ``_SUCCESS`` go to; stored as ``output_uri``
        because ``output`` is the operator's XComArg. (templated)
    :param job_params: JSON-able parameters the job's functions can read (``job_params()``); merged
        over the defaults the job declares (``MapReduceJob(params=...)``) and checked before
        anything is deployed. (templated)
{options}
    :param stack_name: the SMR stack (CloudFormation stack and name prefix) to run on.
    :param deploy: deploy or update the stack before submitting (idempotent, cached by content hash).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param waiter_delay: the longest gap between status polls (one S3 LIST each), in the worker
        or the triggerer; polls come sooner when the job starts, a phase begins or its tasks are
        due (adaptive polling).
    :param waiter_max_attempts: the task gives up on a job still running (and, with
        ``cancel_on_kill``, cancels it) after ``waiter_delay`` x ``waiter_max_attempts`` seconds,
        however many polls that took; the deferral's timeout is that plus a minute, within
        ``execution_timeout`` when that is set.
    :param cancel_on_kill: cancel the job (no further tasks start, nothing is committed) when the
        task is killed, cleared, marked failed or success by hand, or times out, whether it waits
        in a worker or deferred in the triggerer. A triggerer restarting does not cancel it.
    :param poll_interval: deprecated alias of ``waiter_delay``.
    :param durable: reconnect to a running job on retry (task_state_store + S3 markers).
    :param aws_conn_id: the Airflow ``aws`` connection (``endpoint_url`` in its extra points the
        whole job at another endpoint, e.g. the local stack).
    :param region_name: AWS region; the connection's when None.
    :param verify: whether to verify SSL certificates.
    :param botocore_config: botocore client configuration dict.
    """

    aws_hook_class = SMRHook
    template_fields: Sequence[str] = aws_template_fields("input", "output_uri", "job_params", "num_reducers")
    template_fields_renderers = {"job_params": "json", "input": "json"}
    operator_extra_links = (SMROutputLink(), SMRLogsLink(), SMRReportLink())
    ui_color = "#f9c915"
    external_id_key = "smr_job_id"

    def __init__(
        self,
        *,
        job: MapReduceJob | str,
        input: str | list[str] | dict[str, str],
        output: str,
        job_params: dict[str, Any] | None = None,
        num_reducers: int | str | None = _JOB.num_reducers,
        split_size: int | str | None = _JOB.split_size,
        max_concurrency: int | None = _JOB.max_concurrency,
        max_attempts: int = _JOB.max_attempts,
        max_bad_records: int = _JOB.max_bad_records,
        speculation: bool = _JOB.speculation,
        speculation_threshold: float = _JOB.speculation_threshold,
        deadline_grace_s: int = _JOB.deadline_grace_s,
        driver: str = _JOB.driver,
        invoke_tree_threshold: int = _JOB.invoke_tree_threshold,
        create_table: bool = _JOB.create_table,
        overwrite: bool = _JOB.overwrite,
        encoding: str = _JOB.encoding,
        errors: str = _JOB.errors,
        columns: Sequence[str] | Mapping[str, Sequence[str]] = _JOB.columns,
        max_running_tasks: int | None = _JOB.max_running_tasks,
        retry_on_user_errors: bool = _JOB.retry_on_user_errors,
        optimize: str = _JOB.optimize,
        max_cost_usd: float | str | None = _JOB.max_cost_usd,
        deadline_s: float | str | None = _JOB.deadline_s,
        memory_mb: int = _STACK.memory_mb,
        timeout_s: int = _STACK.timeout_s,
        layers: Sequence[str] = _STACK.layers,
        requirements: Sequence[str] = _STACK.requirements,
        log_retention_days: int = _STACK.log_retention_days,
        jobs_expire_days: int = _STACK.jobs_expire_days,
        architecture: str = _STACK.architecture,
        mapper_memory_mb: int | None = _STACK.mapper_memory_mb,
        reducer_memory_mb: int | None = _STACK.reducer_memory_mb,
        reserved_concurrency: int = _STACK.reserved_concurrency,
        stack_max_running_tasks: int = _STACK.stack_max_running_tasks,
        kms_key_arn: str | None = _STACK.kms_key_arn,
        subnet_ids: Sequence[str] = _STACK.subnet_ids,
        security_group_ids: Sequence[str] = _STACK.security_group_ids,
        on_failure_destination: str | None = _STACK.on_failure_destination,
        stack_name: str = "smr",
        deploy: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: float = DEFAULT_WAITER_DELAY_S,
        waiter_max_attempts: int = DEFAULT_WAITER_MAX_ATTEMPTS,
        cancel_on_kill: bool = True,
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and is_s3_uri(output):
            uri = asset_uri(output)
            if uri:
                from airflow.sdk import Asset

                kwargs["outlets"] = [Asset(uri)]
        super().__init__(**kwargs)
        self.job = job
        self.input = input
        # BaseOperator.output is the task's XComArg (``op.output``), so the location is kept as
        # ``output_uri``; the argument keeps the name users know.
        self.output_uri = output
        self.job_params = job_params or {}
        self.num_reducers = num_reducers
        self.split_size = split_size
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.max_bad_records = max_bad_records
        self.speculation = speculation
        self.speculation_threshold = speculation_threshold
        self.deadline_grace_s = deadline_grace_s
        self.driver = driver
        self.invoke_tree_threshold = invoke_tree_threshold
        self.create_table = create_table
        self.overwrite = overwrite
        self.encoding = encoding
        self.errors = errors
        self.columns = columns
        self.max_running_tasks = max_running_tasks
        self.retry_on_user_errors = retry_on_user_errors
        self.optimize = optimize
        self.max_cost_usd = max_cost_usd
        self.deadline_s = deadline_s
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.layers = layers
        self.requirements = requirements
        self.log_retention_days = log_retention_days
        self.jobs_expire_days = jobs_expire_days
        self.architecture = architecture
        self.mapper_memory_mb = mapper_memory_mb
        self.reducer_memory_mb = reducer_memory_mb
        self.reserved_concurrency = reserved_concurrency
        self.stack_max_running_tasks = stack_max_running_tasks
        self.kms_key_arn = kms_key_arn
        self.subnet_ids = subnet_ids
        self.security_group_ids = security_group_ids
        self.on_failure_destination = on_failure_destination
        self.stack_name = stack_name
        self.deploy = deploy
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay_or_alias(waiter_delay, poll_interval)
        self.waiter_max_attempts = waiter_max_attempts
        self.cancel_on_kill = cancel_on_kill
        check_waiter(self.waiter_delay, self.waiter_max_attempts)
        self.job_id: str | None = None
        self.stack: dict[str, Any] | None = None
        self._result: dict[str, Any] | None = None  # the finished job's result, read once

    # -- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_smr.job import load_job

        load_job(self.job).resolve_params(self.job_params)  # a bad parameter: before anything runs
        self.check_locations(context)  # before any deploy: a bad location changes nothing
        self.stack = self._ensure_stack()
        if not self.deferrable:
            return self.execute_resumable(context)
        job_id = self.submit_job(context)
        store = context.get("task_state_store")
        if store is not None:
            store.set(self.external_id_key, job_id)
        self._persist_links(context)
        if self._submitted:  # a job started just now: the triggerer waits for it, however soon it ends
            self._defer(job_id)
        return self._defer_or_finish(context, job_id)

    def job_options(self) -> JobOptions:
        """This task's :class:`JobOptions`, from its (rendered) arguments of the same names."""
        return declared_values(JobOptions, self)

    def stack_settings(self) -> StackSettings:
        """This task's :class:`StackSettings`, from its arguments of the same names."""
        return declared_values(StackSettings, self)

    def check_locations(self, context: Context) -> None:
        """Refuse bad ``input`` / ``output`` locations (and options) before anything is deployed or
        submitted; a committed output is accepted when this task instance committed it itself (a
        retry returns that result instead of running the job again)."""
        base = self.task_job_id(context)
        self.hook.check_job_locations(input=self.input, output=self.output_uri, options=self.job_options(),
                                      own_job=lambda job_id: job_id == base or job_id.startswith(f"{base}."))

    def _ensure_stack(self) -> dict[str, Any]:
        if not self.deploy:
            return self.hook.get_stack_info(self.stack_name)
        return self.hook.deploy_stack(
            self.stack_name,
            self.stack_settings(),
            input_buckets=s3_locations(self.input),
            output_buckets=s3_locations(self.output_uri),
            tables=dynamodb_tables(self.input, self.output_uri),
        )

    def _defer_or_finish(self, context: Context, job_id: str) -> dict[str, Any]:
        status = self.hook.get_job_status(job_id, stack_name=self.stack_name)
        if status["state"] in protocol.SUCCESS_STATES:
            return self.get_job_result(job_id, context)
        if status["state"] in protocol.FAILURE_STATES:
            raise AirflowException(f"SMR job {job_id} {status['state']}: {status.get('error')}")
        self._defer(job_id)

    def _defer(self, job_id: str) -> NoReturn:
        from airflow_provider_smr.triggers.smr import SMRJobTrigger

        if self.stack is None:  # resumed on a fresh operator instance (needs-attention round)
            self.stack = self.hook.get_stack_info(self.stack_name)
        self.log.info("Deferring: waiting for SMR job %s in the triggerer", job_id)
        self.defer(
            trigger=SMRJobTrigger(
                job_id=job_id,
                stack_name=self.stack_name,
                work_bucket=self.stack["work_bucket"],
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                cancel_on_kill=self.cancel_on_kill,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=self.deferral_timeout(),
        )
        raise AssertionError("defer() returned")  # pragma: no cover

    def deferral_timeout(self) -> timedelta:
        """How long the task may stay deferred: ``waiter_delay`` x ``waiter_max_attempts`` plus a
        margin (the trigger's own ``timed_out`` event comes first), within ``execution_timeout``
        (which Airflow does not apply to a deferred task by itself)."""
        timeout = timedelta(seconds=(waiter_timeout_s(self.waiter_delay, self.waiter_max_attempts) or 0)
                            + DEFERRAL_TIMEOUT_MARGIN_S)
        if self.execution_timeout is not None:
            timeout = min(timeout, self.execution_timeout)
        return timeout

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after the deferral; when it timed out, the job is cancelled as the task gives up.

        The triggerer does not call the trigger's ``on_kill`` on a deferral timeout: Airflow fails
        the task through this method instead.
        """
        try:
            from airflow.sdk.exceptions import TaskDeferralTimeout
        except ImportError:  # pragma: no cover - Airflow < 3.1 layout
            from airflow.exceptions import TaskDeferralTimeout  # type: ignore[no-redef]
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            job_id = self._current_job_id(context)
            if job_id is not None:
                self._cancel_on_kill(job_id, "The deferral timed out")
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the result, raise the remote error, or re-defer."""
        checked = validate_event(event)
        self.job_id = checked["job_id"]
        if checked["status"] == "success":
            return self.get_job_result(checked["job_id"], context)
        if checked["status"] == "timed_out":
            self._cancel_on_kill(self.job_id, "The wait ran out")
            raise AirflowException(f"SMR job {self.job_id} {checked.get('message')}")
        if checked["status"] == "needs_attention":
            self.log.warning("SMR job %s: %s; retrying them", self.job_id, checked.get("message"))
            self.hook.retry_overdue_tasks(self.job_id, stack_name=self.stack_name)
            return self._defer_or_finish(context, self.job_id)
        message = checked.get("message")
        if checked.get("state") == protocol.FAILED:  # add the failed task's CloudWatch log tail
            message = self.hook.get_job_error(self.job_id, stack_name=self.stack_name)
        raise AirflowException(f"SMR job {checked['job_id']} {checked['status']}: {message}")

    # -- ResumableJobMixin --------------------------------------------------------------------

    def submit_job(self, context: Context) -> str:
        """Submit this task instance's job, or return the id of the one an earlier try started.

        S3 holds the truth (XCom is cleared between tries): the deterministic id and its
        generations ``<id>.2``, ``<id>.3`` ... are probed; a running or finished one is reused, a
        failed or cancelled one makes the next generation run.
        """
        base = self.task_job_id(context)
        generation = 1
        self._submitted = False
        while True:
            job_id = generation_job_id(base, generation)
            decision = resume_decision(self._prior_state(job_id))
            if decision in (RECONNECT, RETURN):
                self.log.info("SMR job %s already exists (%s): not submitting again", job_id, decision)
                break
            if decision == SUBMIT:
                self.log.info("Submitting SMR job %s", job_id)
                self.hook.submit_job(
                    self.job,
                    input=self.input,
                    output=self.output_uri,
                    options=self.job_options(),
                    stack_name=self.stack_name,
                    job_id=job_id,
                    job_params=self.job_params,
                )
                self._submitted = True
                break
            generation += 1
        self.job_id = job_id
        return job_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        return self._prior_state(str(external_id)) or protocol.FAILED

    def is_job_active(self, status: str) -> bool:
        return status in protocol.ACTIVE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        return status in protocol.SUCCESS_STATES

    # The mixin returns this method's value when it reconnects, so it returns the result too
    # (Airflow declares it None).
    def poll_until_complete(self, external_id: Any, context: Context) -> dict[str, Any]:  # type: ignore[override]
        self.job_id = str(external_id)
        self._persist_links(context)
        try:
            result = self.hook.wait_for_job(self.job_id, stack_name=self.stack_name,
                                            waiter_delay=self.waiter_delay,
                                            waiter_max_attempts=self.waiter_max_attempts)
        except JobTimeoutError as err:
            self._cancel_on_kill(self.job_id, "The wait ran out")
            raise AirflowException(f"SMR job {self.job_id} did not finish within waiter_max_attempts "
                                   f"{self.waiter_max_attempts} x waiter_delay {self.waiter_delay:g}s") from err
        return self._finished(context, result)

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        self.job_id = str(external_id)
        # The mixin asks for the result right after poll_until_complete returned it: not read twice.
        if self._result is not None and self._result.get("job_id") == self.job_id:
            return self._result
        self._persist_links(context)  # a retry that finds the job done: XCom was cleared since
        return self._finished(context, self.hook.get_job_result(str(external_id), stack_name=self.stack_name))

    def _finished(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        """Announce the finished job once: the asset event's ``extra``, and one log line."""
        self._result = result
        self._emit_asset_event(context, result)
        self.log.info("SMR job %s: %s records in %s", result.get("job_id"), result.get("records"),
                      result.get("output"))
        return result

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def task_job_id(context: Context) -> str:
        ti = context["ti"]
        return deterministic_job_id(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))

    def _prior_state(self, job_id: str) -> str | None:
        """State of the job under ``job_id``, None if no job was ever submitted under it."""
        if not self.hook.job_exists(job_id, stack_name=self.stack_name):
            return None
        return self.hook.get_job_status(job_id, stack_name=self.stack_name)["state"]

    def _persist_links(self, context: Context) -> None:
        if self.job_id is None:
            return
        persist_job_links(context, self, job_id=self.job_id, aws_conn_id=self.aws_conn_id,
                          region_name=self.hook.conn_region_name, aws_partition=self.hook.conn_partition,
                          endpoint_url=self.hook.conn_config.endpoint_url, output=self.output_uri,
                          stack_name=self.stack_name, stack=self.stack)

    def _emit_asset_event(self, context: Context, result: dict[str, Any]) -> None:
        events = context.get("outlet_events")
        if events is None:  # not ``not events``: accessors are created on access, so it starts empty
            return
        for outlet in self.outlets or []:
            try:
                events[outlet].extra = {"output": result.get("output"), "job_id": result.get("job_id")}
            except (KeyError, TypeError):  # not an Asset we know how to annotate
                continue

    def on_kill(self) -> None:
        """Cancel the job (``cancel_on_kill``): no further tasks start and nothing is committed.

        Airflow calls it when the task running in a worker is killed, cleared, marked failed or
        success, or passes its ``execution_timeout``; while deferred, the trigger's ``on_kill``
        does the same.
        """
        if self.job_id:
            self._cancel_on_kill(self.job_id, "Task killed")

    def _cancel_on_kill(self, job_id: str, why: str) -> None:
        if not self.cancel_on_kill:
            self.log.info("%s: SMR job %s keeps running (cancel_on_kill=False)", why, job_id)
            return
        self.log.info("%s: cancelling SMR job %s", why, job_id)
        self.hook.cancel_job(job_id, stack_name=self.stack_name)

    def _current_job_id(self, context: Context) -> str | None:
        """The job this task instance started last: the task-state store's, else the newest
        generation found in S3 (None when it never submitted one)."""
        store = context.get("task_state_store")
        remembered = store.get(self.external_id_key) if store is not None else None
        if remembered:
            return str(remembered)
        base, generation, found = self.task_job_id(context), 1, None
        while self.hook.job_exists(generation_job_id(base, generation), stack_name=self.stack_name):
            found = generation_job_id(base, generation)
            generation += 1
        return found

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Report the job's input and output as OpenLineage datasets (needs the openlineage provider)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        def datasets(locations: Any) -> list[Any]:
            return [Dataset(namespace=ns, name=name) for ns, name in lineage_datasets(locations)]

        return OperatorLineage(inputs=datasets(self.input), outputs=datasets(self.output_uri))


def lineage_datasets(locations: Any) -> list[tuple[str, str]]:
    """OpenLineage ``(namespace, name)`` pairs of an input/output spec (``s3://bucket``, key prefix)."""
    found = (S3Uri.parse_or_none(uri) for uri in spec_uris(locations))
    return [(f"{SCHEME}{loc.bucket}", loc.key or "/") for loc in found if loc is not None]


def check_waiter(waiter_delay: Any, waiter_max_attempts: Any) -> None:
    """Refuse waiter settings no wait can follow, naming the argument."""
    if isinstance(waiter_delay, bool) or not isinstance(waiter_delay, (int, float)) or waiter_delay <= 0:
        raise ValueError(f"waiter_delay must be a number of seconds > 0, got {waiter_delay!r}")
    if (isinstance(waiter_max_attempts, bool) or not isinstance(waiter_max_attempts, int)
            or waiter_max_attempts < 1):
        raise ValueError(f"waiter_max_attempts must be a whole number >= 1, got {waiter_max_attempts!r}")


def validate_event(event: dict[str, Any] | None) -> JobEvent:
    """Check a trigger event before acting on it (first as every Amazon operator does); raise on a
    malformed one."""
    from airflow.providers.amazon.aws.utils import validate_execute_complete_event

    from airflow_provider_smr.triggers.smr import EVENT_STATUSES

    event = validate_execute_complete_event(event)  # None: "Trigger error: event is None"
    if not isinstance(event, dict):
        raise AirflowException(f"SMR trigger sent no event (got {event!r})")
    if event.get("status") not in EVENT_STATUSES or not event.get("job_id"):
        raise AirflowException(f"SMR trigger sent a malformed event: {event!r}")
    return cast("JobEvent", event)  # an SMRJobTrigger's: the keys it always sets are checked



def _param_docs() -> str:
    lines = []
    for cls, note in ((JobOptions, ""), (StackSettings, " (deployment setting)")):
        for o in declared(cls):
            templated = " (templated)" if o.name in ServerlessMapReduceOperator.template_fields else ""
            lines.append(f"    :param {o.name}: {o.help}{note}.{templated}")
    return "\n".join(lines)


ServerlessMapReduceOperator.__doc__ = (ServerlessMapReduceOperator.__doc__ or "").replace(
    "{options}", _param_docs())
