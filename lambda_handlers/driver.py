"""Driver handler: ``drive`` starts a planned job's map tasks; ``invoke`` fans a batch out.

A ``drive`` event (the serverless driver) names a job whose ``plan.json`` and ``job.pkl`` are
written: the driver invokes step 0's map tasks and exits (the coordinator runs the rest, so no
Lambda time limit applies to the job). From the plan's ``invoke_tree_threshold`` map tasks on
(default :data:`TREE_THRESHOLD`), the fan-out is a two-level tree: the driver invokes invokers
(this function, ``invoke`` events) with batches of :data:`INVOKER_BATCH` task events, so the first
mapper starts within seconds however large the job.
A duplicated ``drive`` event fans out once (claim ``drive``).

A driver attempt that dies after its claim (a timeout or out of memory writes nothing) is caught by
its deadline: the claim records when the attempt's time runs out, and the coordinator's deadline
check (:func:`check_driver`, asked for by whoever waits on the job) invokes the next attempt once
that deadline and the job's ``deadline_grace_s`` have passed, up to the job's ``max_attempts``;
then the job fails naming the cause. A retried attempt plans only if no ``plan.json`` exists and
invokes only the map tasks that have not started.

An ``invoke`` event is one node of the fan-out tree: it async-invokes each task event it carries
(map, reduce, coordinate, or a nested ``invoke`` batch) with backoff on throttling.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from lambda_handlers import admission, aws_errors, planning, protocol, runtime
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.io import dynamodb
from lambda_handlers.options import JobOptions
from lambda_handlers.parallel import ordered_parallel
from lambda_handlers.plan import Plan, PlanningRequest, qualified, stored_documents

log = logging.getLogger("smr.driver")
TREE_THRESHOLD = JobOptions().invoke_tree_threshold
INVOKER_BATCH = 200
DRIVE_CLAIM = protocol.drive_claim(0)
FANOUT_CLAIM = "map-0"
MAX_FUNCTION_TIMEOUT_S = 900  # Lambda's longest timeout


def fan_out_events(bucket: str, job_id: str, num_map_tasks: int,
                   threshold: int = TREE_THRESHOLD, batch: int = INVOKER_BATCH,
                   tasks: list[int] | None = None) -> list[dict[str, Any]]:
    """What the driver invokes: the map events (of ``tasks``, default all), or ``invoke`` batches
    of them for large jobs."""
    events = [protocol.task_event(protocol.EVENT_MAP, bucket, job_id, 0, i, 0)
              for i in (range(num_map_tasks) if tasks is None else tasks)]
    if len(events) < threshold:
        return events
    return [protocol.invoke_event(bucket, job_id, events[i:i + batch])
            for i in range(0, len(events), batch)]


def send_all(events: list[dict[str, Any]]) -> list[str]:
    """Async-invoke every event in parallel; the failures, described."""
    failed: list[str] = []

    def send(task: dict[str, Any]) -> None:
        try:
            runtime.invoke(task)
        except Exception as exc:
            log.exception("could not invoke %s", task.get("kind"))
            failed.append(f"{task.get('kind')} {task.get('step')}/{task.get('task')}: {exc}")

    for _ in ordered_parallel(send, events):
        pass
    return failed


def plan_job(bucket: str, req: PlanningRequest) -> Plan:
    """List the inputs and build the plan exactly as the control plane would."""
    began = time.monotonic()
    named = dict(req.inputs)
    with planning.gc_paused():  # the listed objects are freed before the collector sees them
        objects = planning.resolve_inputs(runtime.s3(), named)
        planning.check_output_outside_inputs(req.output, named, objects)
        tables = (planning.describe_tables(runtime.client("dynamodb"), named)
                  if any(dynamodb.is_dynamodb_uri(u) for uris in named.values() for u in uris) else [])
        plan = planning.build_plan(job_id=req.job_id, work_bucket=bucket, job=req.job, inputs=named,
                                   objects=objects, output_uri=req.output, tables=tables,
                                   options=req.options, limits=req.limits, concurrency=req.concurrency,
                                   s3=runtime.s3())
        del objects
    plan = replace(plan, versions=dict(req.versions))
    return plan.with_driver(plan_s=round(time.monotonic() - began, 3), where="lambda")


def _plan_or_fail(bucket: str, job_id: str) -> Plan | None:
    try:
        return runtime.load_plan(bucket, job_id)
    except Exception as exc:
        if not aws_errors.is_not_found(exc):
            raise
    try:
        req = PlanningRequest.from_json(runtime.get_json(bucket, protocol.planning_request_key(job_id)))
        plan = plan_job(bucket, req)
    except Exception as exc:
        log.exception("planning job %s failed", job_id)
        _fail(bucket, job_id, f"planning failed: {type(exc).__name__}: {exc}")
        return None
    doc, chunks = stored_documents(plan)  # a large plan's splits first (in parallel), then plan.json
    for _ in ordered_parallel(lambda chunk: runtime.put_bytes(bucket, *chunk), chunks):
        pass
    runtime.put_if_absent(bucket, protocol.plan_key(job_id), doc)
    return runtime.load_plan(bucket, job_id)


def _fail(bucket: str, job_id: str, reason: str) -> None:
    body = {"job_id": job_id, "state": protocol.FAILED, "phase": "plan", "reason": reason}
    if runtime.put_if_absent(bucket, protocol.failed_key(job_id), json.dumps(body)):
        runtime.put_bytes(bucket, protocol.job_state_key(job_id, protocol.FAILED), b"")


def _remaining_s(context: Any) -> float:
    """Seconds this invocation has left (Lambda's context); the longest timeout if unknown."""
    try:
        return float(context.get_remaining_time_in_millis()) / 1000
    except (AttributeError, TypeError, ValueError):
        return float(MAX_FUNCTION_TIMEOUT_S)


def started_map_tasks(bucket: str, job_id: str) -> set[int]:
    """Step 0's map tasks with any marker (started, failed or done): a retried driver skips them."""
    found = set()
    for obj in runtime.list_keys(bucket, protocol.phase_status_prefix(job_id, 0, protocol.MAP)):
        k = protocol.parse_status_key(job_id, obj["Key"])
        if k is not None and k.task is not None:
            found.add(k.task)
    return found


def drive(ev: dict[str, Any], context: Any = None) -> dict[str, Any]:
    bucket, job_id, attempt = ev["bucket"], ev["job_id"], int(ev.get("attempt", 0))
    try:
        if runtime.exists(bucket, protocol.cancel_key(job_id)):
            return {"cancelled": True}
        claim = json.dumps({"attempt": attempt, "deadline": time.time() + _remaining_s(context)})
        if not runtime.put_if_absent(bucket, protocol.claim_key(job_id, protocol.drive_claim(attempt)),
                                     claim):
            return {"duplicate": True}
        plan = _plan_or_fail(bucket, job_id)
        if plan is None:
            return {"error": "planning failed (see failed.json)"}
        n = plan.steps[0].num_map_tasks
        threshold = plan.options.invoke_tree_threshold
        if admission.enabled(plan):  # the coordinator starts the tasks as its slots allow
            events = [protocol.coordinate_event(bucket, job_id, admission.ADMIT)]
        elif attempt:  # an earlier attempt died: some tasks may be running already
            started = started_map_tasks(bucket, job_id)
            events = fan_out_events(bucket, job_id, n, threshold,
                                    tasks=[t for t in range(n) if t not in started])
        else:
            events = fan_out_events(bucket, job_id, n, threshold)
        failed = send_all(events)
    except Exception as exc:
        log.exception("driving job %s failed", job_id)
        return {"error": f"{type(exc).__name__}: {exc}"}
    if failed:
        return {"error": f"{len(failed)} invokes failed", "errors": failed[:20]}
    runtime.put_if_absent(bucket, protocol.claim_key(job_id, FANOUT_CLAIM), "fanned-out")
    invokers = sum(1 for e in events if e["kind"] == protocol.EVENT_INVOKE)
    log.info("job %s: invoked %d map tasks (%d invokers)", job_id, n, invokers)
    return {"invoked": n, "invokers": invokers}


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    kind = event.get("kind") if isinstance(event, dict) else None
    if kind == protocol.EVENT_DRIVE:
        ev = runtime.accept(event, protocol.EVENT_DRIVE)
        return drive(ev, context)
    ev = runtime.accept(event, protocol.EVENT_INVOKE)
    failed = send_all(ev["tasks"])
    out: dict[str, Any] = {"invoked": len(ev["tasks"]) - len(failed)}
    if failed:
        out["errors"] = failed
    return out


# ---------------------------------------------------------------------------------------------
# A driver that died after its claim


@dataclass(frozen=True)
class DriverVerdict:
    """What a deadline check decides about a job the serverless driver has not fanned out yet:
    ``wait``, ``retry`` (invoke driver attempt ``attempt``) or ``fail``."""

    action: str
    attempt: int = 0
    reason: str = ""


def driver_verdict(deadlines: dict[int, float], requested_at: float | None, now: float,
                   timeout_s: float, grace_s: float, max_attempts: int) -> DriverVerdict:
    """Pure: ``deadlines`` maps each driver attempt that claimed the job to the time its
    invocation's time ran out; ``requested_at`` is when the job was handed to the driver."""
    if not deadlines:  # the first drive event never arrived (or still waits in Lambda's queue)
        if requested_at is not None and now > requested_at + timeout_s + grace_s:
            return DriverVerdict("retry", 0)
        return DriverVerdict("wait")
    latest = max(deadlines)
    if now <= deadlines[latest] + grace_s:
        return DriverVerdict("wait", latest)
    if latest + 1 < max_attempts:
        return DriverVerdict("retry", latest + 1)
    return DriverVerdict("fail", latest, (
        f"the driver function ended {latest + 1} time(s) without planning and starting the job "
        f"(max_attempts={max_attempts}): it timed out or ran out of memory; see its logs"))


def check_driver(bucket: str, job_id: str, now: float) -> dict[str, Any] | None:
    """The coordinator's deadline check for a serverless-driven job: None when the driver's work is
    done (the map tasks were fanned out) or the job has no serverless driver; else what was done
    about a driver attempt past its deadline (nothing, a retry, or the job failed)."""
    claims = {obj["Key"].rsplit("/", 1)[-1]: obj
              for obj in runtime.list_keys(bucket, protocol.claims_prefix(job_id))}
    if FANOUT_CLAIM in claims:
        return None
    try:
        request_obj = runtime.s3().get_object(Bucket=bucket, Key=protocol.planning_request_key(job_id))
    except Exception as exc:
        if aws_errors.is_not_found(exc):
            return None  # a worker-side driver: its own caller resumes an interrupted fan-out
        raise
    if runtime.list_keys(bucket, protocol.job_states_prefix(job_id)):
        return {"state": "ended", "actions": []}
    req = PlanningRequest.from_json(json.loads(request_obj["Body"].read()))
    deadlines: dict[int, float] = {}
    for name, obj in claims.items():
        attempt = protocol.drive_attempt(name)
        if attempt is not None:
            deadlines[attempt] = _claim_deadline(bucket, obj, req.limits.task_timeout_s)
    verdict = driver_verdict(deadlines, epoch_seconds(request_obj.get("LastModified")), now,
                             req.limits.task_timeout_s, req.options.deadline_grace_s,
                             req.options.max_attempts)
    if verdict.action == "fail":
        _fail(bucket, job_id, verdict.reason)
        return {"state": protocol.FAILED, "actions": [["fail-driver", verdict.attempt]]}
    if verdict.action == "retry":
        name = f"retry-{protocol.drive_claim(verdict.attempt)}"
        if runtime.put_if_absent(bucket, protocol.claim_key(job_id, name), ""):
            log.warning("job %s: driver attempt %d is past its deadline: invoking attempt %d",
                        job_id, verdict.attempt - 1, verdict.attempt)
            function = qualified(runtime.function_for(protocol.EVENT_DRIVE), req.versions.get("driver"))
            runtime.invoke(protocol.drive_event(bucket, job_id, verdict.attempt), function=function)
            return {"state": protocol.PENDING, "actions": [["retry-driver", verdict.attempt]]}
    return {"state": protocol.PENDING, "actions": []}


def _claim_deadline(bucket: str, obj: dict[str, Any], timeout_s: float) -> float:
    """When a driver attempt's invocation ran out of time: from its claim's body, else (a claim
    written by an older driver) its time plus the function timeout."""
    try:
        return float(runtime.get_json(bucket, obj["Key"])["deadline"])
    except (ValueError, KeyError, TypeError):
        return (epoch_seconds(obj.get("LastModified")) or 0.0) + timeout_s
