"""SMRJobTrigger: wait for an SMR job in the triggerer, one LIST of its status prefix per poll."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypedDict

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_smr.engine.watch import DEFAULT_WAITER_DELAY_S
from lambda_handlers import protocol
from lambda_handlers.aws_errors import is_not_found
from lambda_handlers.plan import Plan

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from airflow_provider_smr.engine.watch import ProgressTracker

# The statuses an SMRJobTrigger event can carry.
SUCCESS = "success"
FAILED = "failed"  # the job failed or was cancelled; "message" holds the remote error
NEEDS_ATTENTION = "needs_attention"  # a task went silent past its deadline: resume and retry it
TIMED_OUT = "timed_out"  # waiter_max_attempts polls passed and the job still runs
ERROR = "error"  # the trigger itself could not watch the job
EVENT_STATUSES = (SUCCESS, FAILED, NEEDS_ATTENTION, TIMED_OUT, ERROR)
# Airflow >= 3.3 cancels a trigger whose task a user acted on (mark failed or success, clear) with
# this message, then calls BaseTrigger.on_kill(); a restart or redistribution cancels it without
# one. Older triggerers never send it, and a library between (asgiref's sync_to_async, under the
# Amazon hook's get_async_conn) can drop it: without it, run() asks for the task's state instead.
TRIGGERER_CALLS_ON_KILL = "on_kill" in vars(BaseTrigger)
USER_ACTION_CANCEL = "__airflow_user_action__"  # airflow.jobs.triggerer_job_runner's
# Done markers read concurrently (once each) for the progress line's records and bytes.
MARKER_READS_IN_FLIGHT = 16


class _EventKeys(TypedDict):
    status: str  # one of EVENT_STATUSES
    job_id: str


class JobEvent(_EventKeys, total=False):
    """The payload of the one event an SMRJobTrigger yields."""

    state: str  # the job's state when the watch ended
    message: str  # the remote error, or which tasks went silent
    overdue: list[list[Any]]  # [step, phase, task, attempt] of each silent attempt


class SMRJobTrigger(BaseTrigger):
    """
    Yield one event when an SMR job finishes, fails, or has a task silent past its deadline.

    Each poll is one paginated LIST of the job's ``status/`` prefix (plus a GET of ``plan.json``
    once, of each done marker once for the progress line's records and bytes, and of
    ``failed.json`` on failure), read through the connection's S3 endpoint. Each poll goes through
    :func:`~airflow_provider_smr.engine.watch.watch_step`, the policy ``JobRunner.wait`` applies
    too: the task log gets a progress line (phase, tasks, records, bytes, throughput, elapsed) at
    most every 10 s and at once when the state or phase changes, and the coordinator is asked to
    check deadlines when nothing moved for a while or (with speculation on) to look for
    stragglers. Tasks silent past their deadline end the watch: the resuming task retries them.
    Polls are adaptive (:func:`~airflow_provider_smr.engine.watch.poll_delay`): tens of
    milliseconds apart at first and when a phase begins or its tasks are due, backing off to
    ``waiter_delay``.

    With ``cancel_on_kill``, a user acting on the deferred task (mark failed or success, clear)
    cancels the job (:meth:`on_kill`): no further tasks start and nothing is committed. A
    triggerer restarting or handing the trigger to another triggerer does not.

    :param job_id: the job to watch.
    :param work_bucket: the stack's work bucket holding ``jobs/<job_id>/``.
    :param stack_name: the SMR stack (carried for the resuming task).
    :param waiter_delay: the longest gap between two polls (seconds).
    :param waiter_max_attempts: the watch ends with a ``timed_out`` event while the job still runs
        after ``waiter_delay`` x ``waiter_max_attempts`` seconds (None: wait until the job ends or
        the deferral times out). A time limit: adaptive polls may be more than this many.
    :param cancel_on_kill: cancel the job when a user kills the deferred task (the operator that
        submitted it passes True; a sensor watching someone else's job leaves it False).
    :param poll_interval: deprecated alias of ``waiter_delay`` (triggers serialized before it).
    :param aws_conn_id: the Airflow ``aws`` connection.
    :param region_name: AWS region; the connection's when None.
    :param verify: whether to verify SSL certificates.
    :param botocore_config: botocore client configuration dict.
    """

    def __init__(
        self,
        *,
        job_id: str,
        work_bucket: str,
        stack_name: str = "smr",
        waiter_delay: float = DEFAULT_WAITER_DELAY_S,
        waiter_max_attempts: int | None = None,
        cancel_on_kill: bool = False,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
        poll_interval: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in Airflow
        self.job_id = protocol.validate_job_id(job_id)
        self.work_bucket = work_bucket
        self.stack_name = stack_name
        self.waiter_delay = poll_interval if poll_interval is not None else waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.cancel_on_kill = cancel_on_kill
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    # Epoch seconds for elapsed time and the progress line's rate limit (tests replace it).
    clock = staticmethod(time.time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "work_bucket": self.work_bucket,
                "stack_name": self.stack_name,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
                "cancel_on_kill": self.cancel_on_kill,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def s3_hook(self) -> AwsBaseHook:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
            client_type="s3",
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event: JobEvent = await self._watch()
        except asyncio.CancelledError as err:
            told = TRIGGERER_CALLS_ON_KILL and bool(err.args) and err.args[0] == USER_ACTION_CANCEL
            if self.cancel_on_kill and not told:  # on_kill() will not be called: check the task
                # In a thread: it completes even if the triggerer cancels this coroutine again.
                await asyncio.to_thread(self._cancel_if_task_was_killed)
            raise
        except Exception as err:  # the task must hear about it, not wait for a timeout
            self.log.exception("Watching SMR job %s failed", self.job_id)
            event = {"status": ERROR, "job_id": self.job_id, "message": f"{type(err).__name__}: {err}"}
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]  # unannotated in Airflow

    async def on_kill(self) -> None:
        """Cancel the job: the user marked the deferred task failed or success, or cleared it.

        The triggerer calls this only for such a user action, never when it restarts or hands the
        trigger to another triggerer, and bounds it (``[triggerer] on_kill_timeout``).
        """
        if not self.cancel_on_kill:
            return
        self.log.info("Task killed: cancelling SMR job %s", self.job_id)
        # In a thread, so the cancel completes even if the triggerer cancels this coroutine again
        # (it repeats the cancel request until the trigger is gone).
        await asyncio.to_thread(self._cancel_job)

    def _cancel_job(self) -> None:
        """The job's cancel markers, written through the trigger's own S3 connection (no
        CloudFormation call: the work bucket is known)."""
        from airflow_provider_smr.engine.submit import request_cancel

        try:
            cancelled = request_cancel(self.s3_hook().conn, self.work_bucket, self.job_id)
        except Exception:  # noqa: BLE001 - logged here: nobody may be awaiting this thread any more
            self.log.exception("SMR job %s: cancelling it failed", self.job_id)
            return
        self.log.info("SMR job %s: %s", self.job_id,
                      "cancelled" if cancelled else "already committing or finished; not cancelled")

    def _cancel_if_task_was_killed(self) -> None:
        """Cancel the job if the trigger was stopped because its task left the deferred state.

        A task still deferred means the triggerer is stopping or moving the trigger: the job must
        keep running. When the state cannot be read, the job is left running too.
        """
        ti = self.task_instance
        if ti is None:
            return
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, task_ids=[ti.task_id],
                                                         run_ids=[ti.run_id], map_index=ti.map_index)
            # the API keys a mapped task instance as "<task_id>_<map_index>"
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
            state = states[ti.run_id][key]
        except Exception:  # noqa: BLE001 - unknown: leave the job running
            self.log.warning("SMR job %s: cannot read the task's state; not cancelling", self.job_id,
                             exc_info=True)
            return
        if state == "deferred":
            self.log.info("SMR job %s: trigger stopped while its task is still deferred (triggerer "
                          "restart): the job keeps running", self.job_id)
            return
        self.log.info("Task left the deferred state (%s): cancelling SMR job %s", state, self.job_id)
        self._cancel_job()

    async def _watch(self) -> JobEvent:
        from airflow_provider_smr.engine import watch

        plan: Plan | None = None
        tracker: watch.ProgressTracker | None = None
        policy: watch.WatchPolicy | None = None
        last_progress = None
        # The task has just submitted the job or asked for a deadline check before deferring.
        state = watch.WatchState.begin(time.monotonic(), just_checked=True)
        timeout = watch.waiter_timeout_s(self.waiter_delay, self.waiter_max_attempts)
        async with s3_reader(self.s3_hook()) as s3:
            while True:
                if plan is None:
                    doc = await s3.get_json(self.work_bucket, protocol.plan_key(self.job_id))
                    plan = Plan.from_json(doc) if doc is not None else None
                listed = await s3.list(self.work_bucket, protocol.status_prefix(self.job_id))
                if plan is None:  # not planned yet (the driver function plans): only a verdict counts
                    event = await self._event_for_state(terminal_state(self.job_id, listed), s3)
                    if event is None and time.monotonic() - state.last_check > watch.DEADLINE_CHECK_MIN_INTERVAL_S:
                        # The check retries a driver attempt that died after its claim.
                        state = dataclasses.replace(state, last_check=time.monotonic())
                        request = await s3.get_json(self.work_bucket, protocol.planning_request_key(self.job_id))
                        if request is not None:
                            await asyncio.to_thread(self._ask_coordinator, request.get("versions") or {})
                    if event is None and timeout is not None and time.monotonic() - state.began > timeout:
                        event = self._timed_out(protocol.PENDING, "not planned yet")
                    progress = "PENDING (not planned yet)"
                    if event is None and progress != last_progress:
                        self.log.info("SMR job %s: %s", watch.job_label(self.job_id), progress)
                    last_progress = progress
                    delay = watch.poll_delay(self.waiter_delay, state.delay)
                    state = dataclasses.replace(state, delay=delay)
                else:
                    if tracker is None or policy is None:
                        tracker = watch.ProgressTracker(plan)
                        policy = watch.WatchPolicy.for_plan(plan, defer_attention=True, timeout=timeout,
                                                            waiter_delay=self.waiter_delay)
                    await self._read_done_markers(s3, tracker, listed)
                    status = watch.status_from_listing(plan, listed)
                    step = watch.watch_step(policy, state, status, tracker, now=time.monotonic(),
                                            wall=self.clock())
                    state, delay = step.state, step.delay
                    if step.line is not None:
                        self.log.info("SMR job %s: %s", watch.job_label(self.job_id), step.line)
                    if step.outcome == watch.NEEDS_ATTENTION:
                        event = self._needs_attention(status.state, status.overdue)
                    elif step.outcome == watch.TIMED_OUT:
                        event = self._timed_out(status.state, status.describe())
                    else:
                        event = await self._event_for_state(step.outcome, s3)
                    if event is None and step.check_deadlines:
                        if step.check_reason:
                            self.log.info("SMR job %s: asking the coordinator to check deadlines (%s)",
                                          watch.job_label(self.job_id), step.check_reason)
                        await asyncio.to_thread(self._check_for_stragglers, plan)
                if event is not None:
                    return event
                await asyncio.sleep(delay)

    async def _read_done_markers(self, s3: S3Reader, tracker: ProgressTracker,
                                 listed: list[dict[str, Any]]) -> None:
        """GET the done markers not read yet (each once per trigger run), a few at a time."""
        keys = tracker.new_done_keys(listed)
        if not keys:
            return
        limit = asyncio.Semaphore(MARKER_READS_IN_FLIGHT)

        async def read(key: str) -> Any:
            async with limit:
                return await s3.get_json(self.work_bucket, key)

        bodies = await asyncio.gather(*(read(key) for key in keys))
        tracker.ingest(dict(zip(keys, bodies, strict=True)))

    async def _event_for_state(self, state: str | None, s3: S3Reader) -> JobEvent | None:
        if state == protocol.SUCCEEDED:
            return {"status": SUCCESS, "job_id": self.job_id, "state": state}
        if state in (protocol.FAILED, protocol.CANCELLED):
            from airflow_provider_smr.engine.watch import failure_message

            detail = await s3.get_json(self.work_bucket, protocol.failed_key(self.job_id))
            message = failure_message(detail) if detail else f"job {self.job_id} {state.lower()}"
            return {"status": FAILED, "job_id": self.job_id, "state": state, "message": message}
        return None

    @cached_property
    def _lambda_client(self) -> Any:
        """One Lambda client per trigger run (a straggler check runs every few seconds)."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                           config=self.botocore_config, client_type="lambda").get_conn()

    def _check_for_stragglers(self, plan: Plan) -> None:
        """Invoke the coordinator (the version the job is pinned to) with ``check-deadlines``: it
        launches speculative backups of stragglers and moves a stalled job on."""
        self._ask_coordinator(plan.versions)

    def _ask_coordinator(self, versions: Mapping[str, str]) -> None:
        """Invoke the coordinator (the version ``versions`` pins) with ``check-deadlines``; before
        the job is planned, that retries a serverless driver that died after its claim."""
        from airflow_provider_smr.deploy.template import function_name
        from airflow_provider_smr.engine.submit import invoke_async
        from lambda_handlers.plan import qualified

        try:
            client = self._lambda_client
            event = protocol.coordinate_event(self.work_bucket, self.job_id, reason="check-deadlines")
            invoke_async(client, qualified(function_name(self.stack_name, "coordinator"),
                                           versions.get("coordinator")), event)
        except Exception:  # noqa: BLE001 - a missed check only delays a backup attempt
            self.log.warning("SMR job %s: could not ask for straggler checks", self.job_id, exc_info=True)

    def _timed_out(self, state: str, progress: str) -> JobEvent:
        return {
            "status": TIMED_OUT,
            "job_id": self.job_id,
            "state": state,
            "message": (f"still {progress} after waiter_max_attempts {self.waiter_max_attempts} x "
                        f"waiter_delay {self.waiter_delay:g}s"),
        }

    def _needs_attention(self, state: str, overdue: list[tuple[int, str, int, int]]) -> JobEvent:
        tasks = [f"step {step} {phase} task {task} attempt {attempt}" for step, phase, task, attempt in overdue]
        return {
            "status": NEEDS_ATTENTION,
            "job_id": self.job_id,
            "state": state,
            "overdue": [list(o) for o in overdue],
            "message": f"{len(tasks)} task(s) silent past their deadline: {'; '.join(tasks[:5])}",
        }


def terminal_state(job_id: str, listed: list[dict[str, Any]]) -> str | None:
    """The terminal state mirrored under ``status/job/``, if the listing holds one."""
    for obj in listed:
        key = protocol.parse_status_key(job_id, obj["Key"])
        if key is not None and key.kind == "job" and key.name in protocol.TERMINAL_STATES:
            return key.name
    return None


class S3Reader:
    """The two S3 reads the trigger needs, on an aiobotocore client or a boto3 one in a thread."""

    def __init__(self, client: Any, is_async: bool) -> None:
        self.client = client
        self.is_async = is_async

    async def _call(self, method: str, **kwargs: Any) -> Any:
        fn = getattr(self.client, method)
        if self.is_async:
            return await fn(**kwargs)
        return await asyncio.to_thread(fn, **kwargs)

    async def list(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """All objects under ``prefix`` (one paginated LIST)."""
        objects: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = await self._call("list_objects_v2", **kwargs)
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    async def get_json(self, bucket: str, key: str) -> Any:
        """The parsed JSON object at ``key``, or None when it does not exist."""
        try:
            obj = await self._call("get_object", Bucket=bucket, Key=key)
        except Exception as err:
            if is_not_found(err):
                return None
            raise
        body = obj["Body"]
        data = await body.read() if self.is_async else await asyncio.to_thread(body.read)
        return json.loads(data)


@asynccontextmanager
async def s3_reader(hook: AwsBaseHook) -> AsyncIterator[S3Reader]:
    """An :class:`S3Reader` on the hook's aiobotocore client, or its boto3 client off the loop.

    aiobotocore pins botocore tightly; where it is not installed the sync client runs each call in
    a thread, which keeps the triggerer's event loop free just the same.
    """
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        client = await asyncio.to_thread(lambda: hook.conn)
        yield S3Reader(client, is_async=False)
        return
    async with await hook.get_async_conn() as client:  # type: ignore[no-untyped-call]  # unannotated in Airflow
        yield S3Reader(client, is_async=True)
