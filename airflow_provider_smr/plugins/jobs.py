"""What the plugin reads about a task instance's job: where it is, its state, logs and output.

:func:`find_job` reads the task's :data:`~airflow_provider_smr.links.smr.JOB_XCOM_KEY` XCom from
the metadata DB: the job id, the ``aws`` connection and the stack the task ran with. A
:class:`JobSource` then reads the job through that connection, the way the task itself did:
its status from ONE LIST of the ``status/`` prefix (:func:`~airflow_provider_smr.engine.watch.
status_from_listing`), progress from the done markers (a :class:`~airflow_provider_smr.engine.
watch.ProgressTracker` kept per job and API-server process, so each marker is read once however
often a page refreshes), failures from ``failed.json`` and the error details, the report from
:mod:`airflow_provider_smr.report`, log lines from CloudWatch Logs and the output's listing.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambda_handlers import protocol
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.s3uri import S3Uri

if TYPE_CHECKING:
    from airflow_provider_smr.engine.watch import JobStatus, ProgressTracker
    from lambda_handlers.plan import Plan

# Bounds on what one page reads, so a huge or chatty job cannot stall the API server.
MAX_FAILURES = 20  # failed attempts whose error detail (traceback) is read
MAX_LOG_EVENTS = 2000
MAX_LOG_INVOCATIONS = 25  # invocations whose whole log (START ... REPORT) is shown
MAX_LISTED_OBJECTS = 1000
_TRACKERS_KEPT = 64
# CloudWatch is searched from a little before the job's plan was written.
LOG_LEAD_S = 300
# A Lambda log line: "[LEVEL]\t<time>\t<request id>\t<message>", or START/END/REPORT RequestId: <id>.
_REQUEST_ID = re.compile(r"(?:RequestId: |^\[[A-Z]+\]\t\S+\t)([0-9a-fA-F-]{36})")


class JobNotFound(LookupError):
    """No SMR job for this task instance, or no such job in its stack's work bucket."""


@dataclass(frozen=True)
class JobRef:
    """Where a task instance's job is, as the task persisted it (see ``persist_job_links``)."""

    job_id: str
    stack_name: str
    output: str
    aws_conn_id: str | None = None
    region_name: str | None = None
    endpoint_url: str | None = None
    work_bucket: str | None = None
    functions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_link_data(cls, data: Any) -> JobRef | None:
        """The reference in a persisted link dict; None when it names no job."""
        if not isinstance(data, dict) or not data.get("job_id"):
            return None
        return cls(job_id=str(data["job_id"]), stack_name=str(data.get("stack_name") or "smr"),
                   output=str(data.get("output") or ""), aws_conn_id=data.get("aws_conn_id"),
                   region_name=data.get("region_name"), endpoint_url=data.get("endpoint_url"),
                   work_bucket=data.get("work_bucket"), functions=dict(data.get("functions") or {}))


def find_job(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> JobRef:
    """The job a task instance ran, from its XCom; raises :class:`JobNotFound`."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from airflow_provider_smr.links.smr import JOB_XCOM_KEY

    with create_session() as session:
        row = session.scalars(XComModel.get_many(key=JOB_XCOM_KEY, run_id=run_id, dag_ids=dag_id,
                                                 task_ids=task_id, map_indexes=map_index)).first()
        ref = JobRef.from_link_data(XComModel.deserialize_value(row)) if row is not None else None
    if ref is None:
        raise JobNotFound(f"task {task_id!r} (map index {map_index}) of DAG {dag_id!r} run {run_id!r} "
                          "recorded no SMR job: it has not submitted one yet, or is not an SMR task")
    return ref


@dataclass
class JobView:
    """One reading of a job: what the status page shows."""

    ref: JobRef
    plan: Plan
    listed: list[dict]
    status: JobStatus
    tracker: ProgressTracker
    failure: str | None  # failure_message of failed.json (with the remote traceback)
    failures: list[dict]  # error details of failed attempts, newest last (at most MAX_FAILURES)

    @property
    def line(self) -> str:
        return self.tracker.line(self.status, time.time())


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # epoch milliseconds
    function: str
    stream: str
    message: str


@dataclass(frozen=True)
class ListedObject:
    key: str  # relative to the output prefix
    size: int
    last_modified: float | None


class _Trackers:
    """Progress trackers by (work bucket, job id), the least recently used dropped first; each
    with its lock, so two page loads of one job never hand the same done marker out twice."""

    def __init__(self, keep: int = _TRACKERS_KEPT) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._by_job: OrderedDict[tuple[str, str], tuple[ProgressTracker, threading.Lock]] = OrderedDict()

    def get(self, bucket: str, plan: Plan) -> tuple[ProgressTracker, threading.Lock]:
        from airflow_provider_smr.engine.watch import ProgressTracker

        key = (bucket, plan.job_id)
        with self._lock:
            entry = self._by_job.get(key)
            if entry is None or entry[0].plan.created != plan.created:  # a job id reused after expiry
                entry = self._by_job[key] = (ProgressTracker(plan), threading.Lock())
            self._by_job.move_to_end(key)
            while len(self._by_job) > self.keep:
                self._by_job.popitem(last=False)
            return entry

    def forget(self, bucket: str, job_id: str) -> None:
        """Drop a tracker whose markers could not all be read (the next page reads them again)."""
        with self._lock:
            self._by_job.pop((bucket, job_id), None)


TRACKERS = _Trackers()


class JobSource:
    """Reads one job through the ``aws`` connection its task used.

    :param ref: where the job is.
    :param clients: an :class:`~airflow_provider_smr.engine.aws.AwsClients`; by default built
        by :class:`~airflow_provider_smr.hooks.smr.SMRHook` from ``ref.aws_conn_id``.
    """

    def __init__(self, ref: JobRef, clients: Any = None) -> None:
        self.ref = ref
        self._clients = clients
        self._stack: dict[str, Any] | None = None

    @property
    def clients(self) -> Any:
        if self._clients is None:
            from airflow_provider_smr.hooks.smr import SMRHook

            self._clients = SMRHook(aws_conn_id=self.ref.aws_conn_id, region_name=self.ref.region_name).clients
        return self._clients

    def _stack_info(self) -> dict[str, Any]:
        if self._stack is None:
            if self.ref.work_bucket and self.ref.functions:
                self._stack = {"work_bucket": self.ref.work_bucket, "functions": self.ref.functions}
            else:  # persisted by an older task: ask CloudFormation
                from airflow_provider_smr.deploy import describe_stack

                self._stack = describe_stack(self.clients, self.ref.stack_name).to_dict()
        return self._stack

    @property
    def work_bucket(self) -> str:
        return str(self._stack_info()["work_bucket"])

    def _get_json(self, bucket: str, key: str) -> dict | None:
        from airflow_provider_smr.report import _get_json

        return _get_json(self.clients.s3, bucket, key)

    def plan(self) -> Plan:
        from lambda_handlers.plan import Plan

        doc = self._get_json(self.work_bucket, protocol.plan_key(self.ref.job_id))
        if doc is None:
            raise JobNotFound(f"no SMR job {self.ref.job_id!r} in s3://{self.work_bucket}/ (never planned, "
                              "or expired)")
        return Plan.from_json(doc)

    # -- status -----------------------------------------------------------------------------

    def view(self) -> JobView:
        """The job now: ONE LIST, the done markers not read before, and its failures."""
        from airflow_provider_smr.engine.watch import failure_message, list_status, status_from_listing

        plan = self.plan()
        bucket, job_id = self.work_bucket, self.ref.job_id
        listed = list_status(self.clients.s3, bucket, job_id)
        status = status_from_listing(plan, listed)
        tracker, lock = TRACKERS.get(bucket, plan)
        error_keys = self._error_detail_keys(listed)[-MAX_FAILURES:]
        failed_key = [protocol.failed_key(job_id)] if status.state == protocol.FAILED else []
        with lock:
            fresh = tracker.new_done_keys(listed)
            try:
                bodies = self._get_many(bucket, [*fresh, *error_keys, *failed_key])
            except Exception:
                TRACKERS.forget(bucket, job_id)
                raise
            tracker.ingest({k: bodies[k] for k in fresh})
        failed = bodies.get(failed_key[0]) if failed_key else None
        failures = [body for body in (bodies[k] for k in error_keys) if body]
        return JobView(ref=self.ref, plan=plan, listed=listed, status=status, tracker=tracker,
                       failure=failure_message(failed) if failed else None, failures=failures)

    def _error_detail_keys(self, listed: list[dict]) -> list[str]:
        job_id, keys = self.ref.job_id, []
        for obj in sorted(listed, key=lambda o: (epoch_seconds(o.get("LastModified")) or 0.0, o["Key"])):
            k = protocol.parse_status_key(job_id, obj["Key"])
            if (k is not None and k.kind == "error" and k.step is not None and k.phase is not None
                    and k.task is not None and k.attempt is not None):
                keys.append(protocol.error_detail_key(job_id, k.step, k.phase, k.task, k.attempt))
        return keys

    def _get_many(self, bucket: str, keys: list[str]) -> dict[str, dict | None]:
        if len(keys) <= 1:
            return {k: self._get_json(bucket, k) for k in keys}
        with ThreadPoolExecutor(max_workers=min(16, len(keys)), thread_name_prefix="smr-plugin") as pool:
            return dict(zip(keys, pool.map(lambda k: self._get_json(bucket, k), keys), strict=True))

    # -- report -----------------------------------------------------------------------------

    def report_html(self, view: JobView, refresh_s: int | None = None) -> str:
        """The job's HTML report: the stored one of a finished job, else built now from ``view``."""
        from airflow_provider_smr.report import collect_report, render_html, report_location

        if view.status.terminal:
            bucket, key = report_location(self.work_bucket, self.ref.job_id, view.plan.output.uri,
                                          committed=view.status.state == protocol.SUCCEEDED)
            stored = self._get_text(bucket, key)
            if stored is not None:
                return stored
        report = collect_report(self.clients, self.work_bucket, self.ref.job_id, plan=view.plan,
                                listed=view.listed, done_markers=dict(view.tracker.bodies))
        return render_html(report, refresh_s=None if view.status.terminal else refresh_s)

    def _get_text(self, bucket: str, key: str) -> str | None:
        from botocore.exceptions import ClientError

        from lambda_handlers.aws_errors import is_not_found

        try:
            return str(self.clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    # -- logs -------------------------------------------------------------------------------

    def log_groups(self) -> dict[str, str]:
        """``{role: log group}`` of the stack's functions (a qualified name logs to its function's group)."""
        groups = {}
        for role, name in sorted(self._stack_info().get("functions", {}).items()):
            if name.startswith("arn:"):  # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
                name = name.split(":")[6]
            groups[role] = f"/aws/lambda/{name.split(':')[0]}"
        return groups

    def log_events(self, plan: Plan, limit: int = MAX_LOG_EVENTS) -> list[LogEvent]:
        """The functions' log lines that name the job, with the whole log of the invocations that
        wrote them (their START, END and REPORT lines), oldest first."""
        start = epoch_seconds(plan.created or None)
        since = int(((start or time.time()) - LOG_LEAD_S) * 1000)
        found: dict[str, LogEvent] = {}
        for role, group in self.log_groups().items():
            hits = self._filter(group, f'"{self.ref.job_id}"', since, limit)
            requests = []
            for event_id, event in hits:
                found[event_id] = LogEvent(event["timestamp"], role, event["logStreamName"], event["message"])
                match = _REQUEST_ID.search(event["message"])
                if match and match.group(1) not in requests:
                    requests.append(match.group(1))
            for request_id in requests[:MAX_LOG_INVOCATIONS]:
                for event_id, event in self._filter(group, f'"{request_id}"', since, limit):
                    found[event_id] = LogEvent(event["timestamp"], role, event["logStreamName"], event["message"])
            if len(found) >= limit:
                break
        return sorted(found.values(), key=lambda e: (e.timestamp, e.function, e.stream))[:limit]

    def _filter(self, group: str, pattern: str, since: int, limit: int) -> list[tuple[str, dict]]:
        from botocore.exceptions import ClientError

        from lambda_handlers.aws_errors import is_not_found

        out: list[tuple[str, dict]] = []
        kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": pattern, "startTime": since}
        try:
            while len(out) < limit:
                page = self.clients.logs.filter_log_events(**kwargs, limit=min(10000, limit - len(out)))
                for event in page.get("events", []):
                    event_id = event.get("eventId") or f"{event['logStreamName']}/{event['timestamp']}/{len(out)}"
                    out.append((event_id, event))
                if not page.get("nextToken") or not page.get("events"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except ClientError as exc:
            if is_not_found(exc) or "ResourceNotFound" in str(exc):  # the function never logged
                return out
            raise
        return out

    # -- output -----------------------------------------------------------------------------

    def output_objects(self, limit: int = MAX_LISTED_OBJECTS) -> tuple[S3Uri, list[ListedObject], bool]:
        """(the output location, its objects, whether more were left out)."""
        location = S3Uri.parse(self.ref.output, what="output")
        prefix = location.key if not location.key or location.key.endswith("/") else location.key + "/"
        objects: list[ListedObject] = []
        paginator = self.clients.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                if len(objects) >= limit:
                    return location, objects, True
                objects.append(ListedObject(obj["Key"][len(prefix):], int(obj.get("Size", 0)),
                                            epoch_seconds(obj.get("LastModified"))))
        return location, objects, False
