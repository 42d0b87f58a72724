"""The driver: plan, submit, watch, cancel and collect a job on one deployed stack.

Used by ``SMRHook`` and the ``smr`` CLI alike. Every method is one step a caller can resume from:
state lives in S3 under the job's prefix, so another process (a retried Airflow task) can pick up a
job by id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_smr import job_files
from airflow_provider_smr.engine import requests as reqs
from airflow_provider_smr.engine import submit as submit_mod
from airflow_provider_smr.engine.result import build_result
from airflow_provider_smr.engine.watch import (
    DEADLINE_CHECK_MIN_INTERVAL_S,
    TIMED_OUT,
    JobStatus,
    ProgressTracker,
    WatchPolicy,
    WatchState,
    driver_wait_limit_s,
    failure_message,
    job_label,
    list_status,
    status_from_listing,
    watch_step,
)
from airflow_provider_smr.job import MapReduceJob, check_pickle_runtime, load_job
from lambda_handlers import admission, protocol
from lambda_handlers.aws_errors import is_not_found
from lambda_handlers.grants import JobGrants, session_policy
from lambda_handlers.io import dynamodb
from lambda_handlers.options import JobOptions, TaskLimits
from lambda_handlers.plan import JobShape, Plan, PlanningRequest, StepShape, qualified
from lambda_handlers.planning import (
    build_plan,
    check_output_outside_inputs,
    describe_tables,
    dynamodb_tables,
    gc_paused,
    normalize_inputs,
    resolve_inputs,
)
from lambda_handlers.s3uri import S3Uri

if TYPE_CHECKING:
    from airflow_provider_smr.deploy import StackInfo
    from airflow_provider_smr.engine.aws import AwsClients

log = logging.getLogger(__name__)
DEFAULT_OPTIONS = JobOptions()

DEFAULT_POLL_INTERVAL = 5.0


class JobError(RuntimeError):
    """Base class of the driver's errors about a job."""


class JobFailedError(JobError):
    """The job failed; the message carries the remote error and traceback."""

    def __init__(self, message: str, failed: dict | None = None) -> None:
        super().__init__(message)
        self.failed = failed or {}


class JobCancelledError(JobError):
    """The job was cancelled before it committed."""


class JobNotFoundError(JobError):
    """No job with this id exists in the stack's work bucket."""


class JobTimeoutError(JobError):
    """The job did not finish within the caller's timeout (it keeps running)."""


class OutputExistsError(JobError):
    """The output already holds a committed result and ``overwrite`` is false."""


class RunnerLog(Protocol):
    """Where the runner's lines go: a ``logging.Logger``, or an Airflow hook's ``log``."""

    def debug(self, msg: str, /, *args: Any) -> object: ...

    def info(self, msg: str, /, *args: Any) -> object: ...

    def warning(self, msg: str, /, *args: Any) -> object: ...


def new_job_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60] or "job"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{slug}-{stamp}-{os.urandom(4).hex()}"  # uuid4's first 8 hex digits (uuid imports platform)


class JobRunner:
    """Run jobs on a deployed stack.

    :param clients: the boto3 clients to use.
    :param stack: the deployed stack (work bucket, function names, memory, timeout, runtime).
    :param logger: where progress lines go (the hook passes its own).
    :param account_concurrency: the account's concurrency as :attr:`account_concurrency` read it
        before (the CLI keeps it with the stack's description); None: read on first need.
    """

    def __init__(self, clients: AwsClients, stack: StackInfo, logger: RunnerLog | None = None,
                 account_concurrency: int | None = None) -> None:
        self.clients = clients
        self.stack = stack
        self.log = logger or log
        self._plans: dict[str, Plan] = {}
        self._account_concurrency: int | None = account_concurrency
        self._trackers: dict[str, ProgressTracker] = {}
        #: the id of the job the latest :meth:`submit` call started (set before it writes anything)
        self.submitting: str | None = None
        self._written: set[str] = set()  # jobs this runner wrote (no result.json before it sees them end)
        self._results: dict[str, dict] = {}

    @property
    def account_concurrency(self) -> int | None:
        """The account's unreserved concurrency as read by :meth:`concurrency` (0: unreadable),
        or None when it was not needed yet."""
        return self._account_concurrency

    @property
    def s3(self) -> Any:
        return reqs.attach(self.clients.s3)

    @property
    def lambda_(self) -> Any:
        return reqs.attach(self.clients.lambda_)

    @property
    def bucket(self) -> str:
        return self.stack.work_bucket

    # -- submit -----------------------------------------------------------------------------------

    def submit(self, job: MapReduceJob | str, *, input: Any, output: str,
               options: JobOptions = DEFAULT_OPTIONS, job_id: str | None = None,
               job_params: dict | None = None) -> str:
        """Plan and start a job; return its id. Nothing is invoked if any check fails.

        :param options: how the job runs (sizing, retries, speculation, driver, output rules).
            With ``driver="lambda"``, a job of ``invoke_tree_threshold`` map tasks or more is fanned
            out through invoker functions (a two-level tree) rather than by the driver function alone.

        A ``job_id`` that already exists is not started again: its id is returned (and a fan-out a
        crashed driver left unfinished is completed).
        """
        job = load_job(job)
        given = bool(job_id)
        job_id = protocol.validate_job_id(job_id) if job_id else new_job_id(job.name)
        self.submitting = job_id
        with reqs.job_context(job_id):
            # a generated id is new (its uuid part): only a caller's id may name a job already
            # submitted (plan.json, written put-if-absent, still decides a race)
            if given and self.job_exists(job_id):
                self.log.info("job %s exists already: not starting it again", job_id)
                self._finish_fan_out(job_id, job, job_params, options)
                return job_id
            began = time.monotonic()
            check_pickle_runtime(self.stack.runtime)
            pickled = job.dumps(params=job_params)
            files = job_files.describe(job.files)
            named = normalize_inputs(input)
            job.check_inputs(list(named))
            check_output_outside_inputs(output, named)
            # The tasks' per-job STS session must fit AWS's limit: refuse now, not in every task.
            session_policy(JobGrants.of(job_id, self.bucket, named, output, dynamodb_tables(named, output),
                                        bool(self.stack.max_running_tasks), next(iter(dynamodb_tables(output)), None)),
                           self.clients.region_name, "0" * 12)
            self._check_output(output, options.overwrite, options.create_table)
            limits = TaskLimits(memory_mb=self.stack.mapper_memory_mb or self.stack.memory_mb,
                                task_timeout_s=self.stack.timeout_s,
                                reducer_memory_mb=self.stack.reducer_memory_mb or self.stack.memory_mb,
                                stack_max_running_tasks=self.stack.max_running_tasks)
            concurrency = self.concurrency(options.max_concurrency)
            if options.driver == "lambda":  # the driver function lists, plans and fans out
                self._pin(job_id)  # it runs on the pinned versions: pinned before it is invoked
                self._request_plan(job_id, job, named, output, options, limits, concurrency, pickled,
                                   files)
                return job_id
            with gc_paused():  # the listed objects are freed before the collector sees them
                objects = resolve_inputs(self.s3, named)
                check_output_outside_inputs(output, named, objects)
                tables = describe_tables(self.clients.dynamodb, named)
                plan = build_plan(job_id=job_id, work_bucket=self.bucket, job=job, inputs=named,
                                  objects=objects, output_uri=output, tables=tables, options=options,
                                  limits=limits, concurrency=concurrency, s3=self.s3)
                del objects
            plan = replace(plan, versions=dict(self.stack.versions))
            self._pin(job_id)  # after planning (a refused job writes nothing), before any invoke
            plan = plan.with_driver(plan_s=round(time.monotonic() - began, 3))
            if not submit_mod.write_job(self.s3, self.bucket, job_id, plan, pickled, files):
                self.log.info("job %s was created concurrently: not starting it again", job_id)
                self._pin(job_id, self.plan(job_id).versions)  # the winner's versions, not ours
                return job_id
            self._plans[job_id] = plan
            self._written.add(job_id)
            steps = ", ".join(f"{s.num_map_tasks}x{s.num_reducers}" for s in plan.steps)
            self.log.info("job %s (%s): %d splits, %d input bytes, steps (maps x reducers) %s -> %s",
                          job_id, job.name, plan.num_splits, plan.input_bytes, steps, plan.output.uri)
            if plan.estimate:
                self.log.info("job %s: estimated on AWS at $%.4f, ~%.0f s (optimize=%s)", job_id,
                              plan.estimate["usd"], plan.estimate["wall_s"], plan.estimate["optimize"])
            self._fan_out(plan, None, options.max_concurrency)
        return job_id

    def _pin(self, job_id: str, versions: Mapping[str, str] | None = None) -> None:
        """Record which function versions the job runs on (this stack's, unless given) before
        anything can invoke them, so no deploy's garbage collection deletes them while the job
        may still need them."""
        versions = self.stack.versions if versions is None else versions
        if not versions:
            return
        body = {"job_id": job_id, "stack_name": self.stack.stack_name, "versions": dict(versions)}
        self.s3.put_object(Bucket=self.bucket, Key=protocol.pin_key(job_id),
                           Body=json.dumps(body).encode())

    def function(self, plan: Plan, role: str) -> str:
        """The job's ``role`` function, qualified with the version the job is pinned to."""
        return plan.function(role, self.stack.functions[role])

    def concurrency(self, max_concurrency: int | None = None) -> int | None:
        """How many functions a job's tasks can run at once, which the planner sizes splits and
        reducers for: the caller's ``max_concurrency``, else the account's unreserved concurrency
        (``GetAccountSettings``, read once per runner; None, the planner's default, if unreadable)."""
        if max_concurrency:
            return int(max_concurrency)
        if self._account_concurrency is None:
            try:
                limit = self.lambda_.get_account_settings()["AccountLimit"]
                self._account_concurrency = int(limit.get("UnreservedConcurrentExecutions")
                                                or limit.get("ConcurrentExecutions") or 0)
            except Exception as exc:  # noqa: BLE001 - e.g. no lambda:GetAccountSettings permission
                self.log.debug("account concurrency unknown (%s); the planner assumes its default", exc)
                self._account_concurrency = 0
        return self._account_concurrency or None

    def _request_plan(self, job_id: str, job: MapReduceJob, named: dict, output: str,
                      options: JobOptions, limits: TaskLimits, concurrency: int | None,
                      pickled: bytes, files: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Serverless driver: upload job.pkl and the planning request, then invoke the driver
        function, which lists the inputs, writes ``plan.json``, fans the map tasks out and exits."""
        shape = JobShape(job.name, job.output_format,
                         tuple(StepShape(s.reducer is not None, s.num_reducers) for s in job.steps),
                         job.num_reducers,
                         {name: job.input_format_for(name) for name, uris in named.items()
                          if not any(dynamodb.is_dynamodb_uri(u) for u in uris)})
        request = PlanningRequest(job_id, named, output, shape, options, limits, concurrency,
                                  versions=dict(self.stack.versions))
        key = protocol.planning_request_key(job_id)
        if not submit_mod.put_if_absent(self.s3, self.bucket, key, json.dumps(request.to_json()).encode()):
            self.log.info("job %s was requested concurrently: not starting it again", job_id)
            return
        submit_mod.write_pickle(self.s3, self.bucket, job_id, pickled, files)
        event = protocol.drive_event(self.bucket, job_id)
        driver = qualified(self.stack.functions["driver"], self.stack.versions.get("driver"))
        tries = submit_mod.invoke_async(self.lambda_, driver, event)
        reqs.add(job_id, reqs.LAMBDA_INVOKE, tries)
        self.log.info("job %s (%s): the driver function plans and fans out", job_id, job.name)

    def _check_output(self, output: str, overwrite: bool, create_table: bool = False) -> None:
        if dynamodb.is_dynamodb_uri(output):  # a table output: it must exist (or be created now)
            loc = dynamodb.parse_uri(output)
            dynamodb.ensure_table(self.clients.dynamodb, loc["table"], loc["key_attribute"],
                                  loc["key_type"], create=create_table or loc["create_table"])
            return
        from airflow_provider_smr.engine.preflight import check_output_free

        check_output_free(self.s3, output, overwrite)

    def _fan_out(self, plan: Plan, tasks: list[int] | None, max_concurrency: int | None) -> None:
        if admission.enabled(plan):  # the coordinator starts the tasks as its slots allow
            self.check_deadlines(plan.job_id, reason=admission.ADMIT)
            submit_mod.put_if_absent(self.s3, self.bucket, protocol.claim_key(plan.job_id,
                                     submit_mod.FANOUT_CLAIM), b"admitting")
            self.log.info("the coordinator admits the map tasks: at most %s running for this job, "
                          "%s on the stack", plan.options.max_running_tasks or "no cap",
                          plan.limits.stack_max_running_tasks or "no cap")
            return
        events = submit_mod.map_events(plan, tasks)
        began = time.monotonic()
        stats = submit_mod.fan_out(self.lambda_, self.function(plan, "mapper"), events,
                                   max_concurrency=max_concurrency)
        reqs.add(plan.job_id, reqs.LAMBDA_INVOKE, stats["tries"])
        reqs.add(plan.job_id, reqs.TASK_INVOKE, stats["invokes"])
        submit_mod.put_if_absent(self.s3, self.bucket, protocol.claim_key(plan.job_id,
                                 submit_mod.FANOUT_CLAIM), b"fanned-out")
        self.log.info("invoked %d map tasks in %.2fs (%d throttled tries)", stats["invokes"],
                      time.monotonic() - began, stats["tries"] - stats["invokes"])

    def _finish_fan_out(self, job_id: str, job: MapReduceJob, job_params: dict | None,
                        options: JobOptions) -> None:
        listed = list_status(self.s3, self.bucket, job_id)
        status = status_from_listing(self.plan(job_id), listed)
        if status.terminal or submit_mod.FANOUT_CLAIM in status.claims:
            return
        if not self._exists(protocol.job_pickle_key(job_id)):
            submit_mod.write_pickle(self.s3, self.bucket, job_id, job.dumps(params=job_params),
                                    job_files.describe(job.files))
        todo = submit_mod.unstarted_map_tasks(self.plan(job_id), listed)
        self.log.info("job %s: finishing an interrupted fan-out (%d map tasks)", job_id, len(todo))
        self._fan_out(self.plan(job_id), todo, options.max_concurrency)

    # -- state ------------------------------------------------------------------------------------

    def _exists(self, key: str) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", ())
        return any(o["Key"] == key for o in listed)

    def _get_json(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return json.loads(body)

    def job_exists(self, job_id: str) -> bool:
        """True when a job with this id was submitted (its ``plan.json`` exists)."""
        with reqs.job_context(job_id):
            return (self._exists(protocol.plan_key(job_id))
                    or self._exists(protocol.planning_request_key(job_id)))

    def plan(self, job_id: str) -> Plan:
        """The job's plan (``plan.json``, read once per runner: it never changes)."""
        if job_id not in self._plans:
            with reqs.job_context(job_id):
                doc = self._get_json(protocol.plan_key(job_id))
            if doc is None:
                doc = self._await_driver_plan(job_id)
            if doc is None:
                raise JobNotFoundError(f"no job {job_id!r} in s3://{self.bucket}/ (stack "
                                       f"{self.stack.stack_name})")
            self._plans[job_id] = Plan.from_json(doc)
        return self._plans[job_id]

    def _await_driver_plan(self, job_id: str) -> dict | None:
        """A job handed to the serverless driver: wait for its plan (or its planning failure).

        While waiting, the coordinator is asked to check the driver's deadline (a driver attempt
        that died after its claim is retried, or the job failed); the wait lasts as long as the
        job's driver attempts may (:func:`~airflow_provider_smr.engine.watch.driver_wait_limit_s`).
        """
        doc = self._get_json(protocol.planning_request_key(job_id))
        if doc is None:
            return None
        req = PlanningRequest.from_json(doc)
        limit = driver_wait_limit_s(req.limits.task_timeout_s, req.options.deadline_grace_s,
                                    req.options.max_attempts)
        began = last_check = time.monotonic()
        while time.monotonic() - began < limit:
            plan = self._get_json(protocol.plan_key(job_id))
            if plan is not None:
                return plan
            failed = self._get_json(protocol.failed_key(job_id))
            if failed is not None:
                raise JobFailedError(f"job {job_id} failed: {failed.get('reason')}", failed)
            if time.monotonic() - last_check > DEADLINE_CHECK_MIN_INTERVAL_S:
                last_check = time.monotonic()
                self._check_driver(job_id, req)
            time.sleep(0.25)
        raise JobTimeoutError(f"the driver function did not plan job {job_id} within {limit:.0f}s "
                              f"({req.options.max_attempts} attempts of {req.limits.task_timeout_s}s "
                              "and their grace) and no failure was recorded; see the coordinator's "
                              "and the driver's logs")

    def _check_driver(self, job_id: str, req: PlanningRequest) -> None:
        """Ask the coordinator (the version the job is pinned to) to check the driver's deadline."""
        with reqs.job_context(job_id):
            event = protocol.coordinate_event(self.bucket, job_id, reason="check-deadlines")
            function = qualified(self.stack.functions["coordinator"], req.versions.get("coordinator"))
            reqs.add(job_id, reqs.LAMBDA_INVOKE, submit_mod.invoke_async(self.lambda_, function, event))

    def status(self, job_id: str) -> JobStatus:
        """The job's status from one LIST (plus ``failed.json`` when it failed)."""
        return self._poll(job_id)[0]

    def _poll(self, job_id: str) -> tuple[JobStatus, list[dict]]:
        plan = self.plan(job_id)
        with reqs.job_context(job_id):
            listed = list_status(self.s3, self.bucket, job_id)
            status = status_from_listing(plan, listed)
            if status.state == protocol.FAILED:
                failed = self._get_json(protocol.failed_key(job_id)) or {}
                status.error = failure_message(failed)
        return status, listed

    def tracker(self, job_id: str) -> ProgressTracker:
        """The job's :class:`ProgressTracker` in this runner (done markers read so far)."""
        if job_id not in self._trackers:
            self._trackers[job_id] = ProgressTracker(self.plan(job_id))
        return self._trackers[job_id]

    def _read_done_markers(self, job_id: str, listed: list[dict]) -> ProgressTracker:
        """GET the listed done markers this runner has not read yet (each once) into the tracker."""
        tracker = self.tracker(job_id)
        keys = tracker.new_done_keys(listed)
        if keys:
            with reqs.job_context(job_id):
                if len(keys) == 1:
                    bodies = [self._get_json(keys[0])]
                else:
                    with ThreadPoolExecutor(max_workers=min(16, len(keys)),
                                            thread_name_prefix="smr-markers") as pool:
                        bodies = list(pool.map(reqs.bind_job(self._get_json), keys))
            tracker.ingest(dict(zip(keys, bodies, strict=True)))
        return tracker

    def check_deadlines(self, job_id: str, reason: str = "check-deadlines") -> None:
        """Ask the coordinator to treat silent attempts past their deadline as failed (and retry)."""
        with reqs.job_context(job_id):
            event = protocol.coordinate_event(self.bucket, job_id, reason=reason)
            coordinator = self.function(self.plan(job_id), "coordinator")
            tries = submit_mod.invoke_async(self.lambda_, coordinator, event)
            reqs.add(job_id, reqs.LAMBDA_INVOKE, tries)

    # -- wait -------------------------------------------------------------------------------------

    def wait(self, job_id: str, poll_interval: float = DEFAULT_POLL_INTERVAL,
             timeout: float | None = None, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.time,
             on_progress: Callable[[JobStatus, ProgressTracker, float], None] | None = None) -> dict:
        """Poll (one LIST each time, plus one GET per newly done task) until the job ends; return
        the result dict.

        Each poll goes through :func:`~airflow_provider_smr.engine.watch.watch_step`, the policy
        the deferrable trigger applies too: a progress line (phase, tasks, records, bytes,
        throughput, elapsed) at most every
        :data:`~airflow_provider_smr.engine.watch.PROGRESS_LOG_INTERVAL_S` seconds and at once when
        the state or phase changes, and a deadline check of the coordinator when tasks are overdue,
        nothing moved for a while, or speculation is on. ``on_progress(status, tracker, now)``,
        when given, is called on every poll INSTEAD of that line (e.g. the CLI's progress bars).

        Polls are adaptive (:func:`~airflow_provider_smr.engine.watch.poll_delay`): the first
        comes at once (for a job this runner has just submitted, after
        :data:`~airflow_provider_smr.engine.watch.FIRST_POLL_DELAY_S`: its tasks are only
        starting), the next ones tens of milliseconds apart, backing off to ``poll_interval``,
        and again soon after the running tasks are due; a short job is seen done soon after it is.

        :param poll_interval: the longest gap between two polls (seconds).
        :param clock: epoch seconds, for elapsed time and the line's rate limit.
        :raises JobFailedError: with the remote error and traceback.
        :raises JobCancelledError: when the job was cancelled.
        :raises JobTimeoutError: after ``timeout`` seconds (the job keeps running).
        """
        from airflow_provider_smr import report  # noqa: F401 - imported while the job runs, for its result
        from airflow_provider_smr.engine import watch

        state = WatchState.begin(time.monotonic())  # the timeout counts a serverless driver's planning
        policy = WatchPolicy.for_plan(self.plan(job_id), timeout=timeout, waiter_delay=poll_interval)
        if job_id in self._written and job_id not in self._results:  # a LIST now finds nothing new
            sleep(min(watch.FIRST_POLL_DELAY_S, poll_interval))
        while True:
            status, listed = self._poll(job_id)
            tracker = self._read_done_markers(job_id, listed)
            wall = clock()
            step = watch_step(policy, state, status, tracker, now=time.monotonic(), wall=wall)
            state = step.state
            if on_progress is not None:
                on_progress(status, tracker, wall)
            elif step.line is not None:
                self.log.info("job %s: %s", job_label(job_id), step.line)
            if step.outcome == protocol.SUCCEEDED:
                return self.result(job_id, listed=listed)
            if step.outcome == protocol.FAILED:
                raise self._failure(job_id)
            if step.outcome == protocol.CANCELLED:
                raise JobCancelledError(f"job {job_id} was cancelled")
            if step.check_deadlines:
                if step.check_reason:
                    self.log.info("job %s: asking the coordinator to check deadlines (%s)", job_label(job_id),
                                  step.check_reason)
                self.check_deadlines(job_id)
            if step.outcome == TIMED_OUT:
                raise JobTimeoutError(f"job {job_id} still {status.describe()} after {timeout:.0f}s; it "
                                      "keeps running: wait again or cancel it")
            sleep(step.delay)

    def _failure(self, job_id: str) -> JobFailedError:
        """The error of a failed job: cause, input, remote traceback and the task's log tail."""
        with reqs.job_context(job_id):
            failed = self._get_json(protocol.failed_key(job_id)) or {}
        message = failure_message(failed) if failed else f"job {job_id} failed"
        tail = self.log_tail(job_id, failed.get("phase"))
        if tail:
            message += "\nlog tail:\n" + "\n".join(tail)
        killed = self.kill_reasons(job_id, failed)
        if killed:
            message += "\nLambda killed the function while the attempt ran:\n" + "\n".join(killed)
        return JobFailedError(message, failed)

    def kill_reasons(self, job_id: str, failed: dict, lines: int = 5) -> list[str]:
        """Timeout / out-of-memory lines Lambda logged for the failed phase's function since the
        failed attempt started, when that attempt left no result (killed attempts write nothing,
        and their log lines do not name the job). Best effort."""
        error, phase = failed.get("error") or {}, failed.get("phase")
        if not str(error.get("message", "")).startswith("no result") or phase not in (
                protocol.MAP, protocol.REDUCE):
            return []
        function = self.stack.functions.get("mapper" if phase == protocol.MAP else "reducer")
        key = protocol.start_marker_key(job_id, failed.get("step") or 0, phase, failed.get("task") or 0,
                                        failed.get("attempt") or 0)
        try:
            began = self.s3.head_object(Bucket=self.bucket, Key=key)["LastModified"].timestamp()
            response = self.clients.logs.filter_log_events(
                logGroupName=f"/aws/lambda/{function}", startTime=int(began * 1000) - 1000)
        except Exception as exc:  # noqa: BLE001 - the remote error matters more than this hint
            self.log.debug("no kill reason for job %s: %s", job_id, exc)
            return []
        found = [e["message"].rstrip() for e in response.get("events", [])
                 if re.search(r"out of memory|Task timed out|Runtime exited", e["message"])]
        return found[-lines:]

    def log_tail(self, job_id: str, phase: str | None, lines: int = 20) -> list[str]:
        """Last CloudWatch log lines mentioning the job in the failed phase's function (best effort).

        A failure outside the tasks (e.g. the commit) is the coordinator's; the task of a phase
        that has only it makes the coordinator's call itself, and may run the one task that call
        starts (``runtime.coordinate_inline``), so the logs of the functions that may have run
        it are read too when the phase's own have no line."""
        roles = {protocol.MAP: ["mapper", "reducer"], protocol.REDUCE: ["reducer", "mapper"]}.get(
            phase or "", ["coordinator", "reducer", "mapper"])
        for role in roles:
            function = self.stack.functions.get(role)
            if not function:
                continue
            try:
                response = self.clients.logs.filter_log_events(
                    logGroupName=f"/aws/lambda/{function}", filterPattern=f'"{job_id}"', limit=200)
            except Exception as exc:  # noqa: BLE001 - the remote error matters more than its log tail
                self.log.debug("no log tail for job %s: %s", job_id, exc)
                return []
            found = [e["message"].rstrip() for e in response.get("events", [])][-lines:]
            if found:
                return found
        return []

    # -- cancel -----------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        """Stop a job: no new tasks start and nothing is committed. True if this call cancelled it."""
        self.plan(job_id)
        with reqs.job_context(job_id):
            won = submit_mod.request_cancel(self.s3, self.bucket, job_id)
        self.log.info("job %s: %s", job_id, "cancelled" if won else "already committing; not cancelled")
        return won

    # -- result -----------------------------------------------------------------------------------

    def result(self, job_id: str, listed: list[dict] | None = None) -> dict:
        """The result dict of a succeeded job (computed once, then cached under the job's prefix).

        Done markers this runner read while waiting are not read again, here or by the report.

        :param listed: the job's ``status/`` listing taken after it succeeded (else listed here).
        """
        if job_id in self._results:
            return self._results[job_id]
        with reqs.job_context(job_id):
            # a job this runner submitted has no cached result before this runner computes it
            # (another process computing it too would write the same figures): no GET to ask
            cached = None if job_id in self._written else self._get_json(protocol.result_key(job_id))
            if cached is not None:
                return cached
            done = self._get_json(protocol.done_key(job_id))
            if done is None:
                status = self.status(job_id)
                if status.state == protocol.FAILED:
                    raise self._failure(job_id)
                if status.state == protocol.CANCELLED:
                    raise JobCancelledError(f"job {job_id} was cancelled")
                raise JobError(f"job {job_id} has not finished ({status.describe()})")
            plan = self.plan(job_id)
            if listed is None:
                listed = list_status(self.s3, self.bucket, job_id)
            tracker = self._read_done_markers(job_id, listed)
            manifest = self._read_uri_json(done.get("manifest")) or {}
            attempts = sum(1 for o in listed
                           if (k := protocol.parse_status_key(job_id, o["Key"])) and k.kind == "start")
            result = build_result(plan, done, manifest, tracker.markers(), attempts=attempts,
                                  memory_mb=plan.limits.memory_mb,
                                  architecture=self.stack.architecture,
                                  driver_requests=reqs.s3_counts(job_id),
                                  driver_invokes=reqs.invokes(job_id))
            self.s3.put_object(Bucket=self.bucket, Key=protocol.result_key(job_id),
                               Body=json.dumps(result).encode())
            self._results[job_id] = result
        # Once per job (later calls return the cached result): the HTML report next to the output,
        # from what was read above (no marker is read twice).
        from airflow_provider_smr.report import try_write_report

        try_write_report(self.clients, self.bucket, job_id, result=result, logger=self.log,
                         plan=plan, listed=listed, done_markers=dict(tracker.bodies), done=done)
        return result

    def _read_uri_json(self, uri: str | None) -> dict | None:
        if not uri:
            return None
        location = S3Uri.parse(uri, what="manifest")
        body = self.s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        return json.loads(body)

    # -- all in one -------------------------------------------------------------------------------

    def run(self, job: MapReduceJob | str, *, input: Any, output: str,
            options: JobOptions = DEFAULT_OPTIONS, job_id: str | None = None,
            job_params: dict | None = None, poll_interval: float = DEFAULT_POLL_INTERVAL,
            timeout: float | None = None) -> dict:
        """Submit, wait and return the result dict."""
        job_id = self.submit(job, input=input, output=output, options=options, job_id=job_id,
                             job_params=job_params)
        return self.wait(job_id, poll_interval=poll_interval, timeout=timeout)
