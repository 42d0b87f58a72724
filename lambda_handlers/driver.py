"""Driver handler: ``drive`` starts a planned job's map tasks; ``invoke`` fans a batch out.

A ``drive`` event (the serverless driver) names a job whose ``plan.json`` and ``job.pkl`` are
written: the driver invokes step 0's map tasks and exits (the coordinator runs the rest, so no
Lambda time limit applies to the job). From the plan's ``invoke_tree_threshold`` map tasks on
(default :data:`TREE_THRESHOLD`), the fan-out is a two-level tree: the driver invokes invokers
(this function, ``invoke`` events) with batches of :data:`INVOKER_BATCH` task events, so the first
mapper starts within seconds however large the job.
A duplicated ``drive`` event fans out once (claim ``drive``).

An ``invoke`` event is one node of the fan-out tree: it async-invokes each task event it carries
(map, reduce, coordinate, or a nested ``invoke`` batch) with backoff on throttling.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

from lambda_handlers import admission, aws_errors, planning, protocol, runtime
from lambda_handlers.io import dynamodb
from lambda_handlers.options import JobOptions
from lambda_handlers.parallel import ordered_parallel
from lambda_handlers.plan import Plan, PlanningRequest, stored_documents

log = logging.getLogger("smr.driver")
TREE_THRESHOLD = JobOptions().invoke_tree_threshold
INVOKER_BATCH = 200
DRIVE_CLAIM = "drive"
FANOUT_CLAIM = "map-0"


def fan_out_events(bucket: str, job_id: str, num_map_tasks: int,
                   threshold: int = TREE_THRESHOLD, batch: int = INVOKER_BATCH) -> list[dict[str, Any]]:
    """What the driver invokes: the map events, or ``invoke`` batches of them for large jobs."""
    events = [protocol.task_event(protocol.EVENT_MAP, bucket, job_id, 0, i, 0)
              for i in range(num_map_tasks)]
    if num_map_tasks < threshold:
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
    objects = planning.resolve_inputs(runtime.s3(), named)
    planning.check_output_outside_inputs(req.output, named, objects)
    tables = (planning.describe_tables(runtime.client("dynamodb"), named)
              if any(dynamodb.is_dynamodb_uri(u) for uris in named.values() for u in uris) else [])
    plan = planning.build_plan(job_id=req.job_id, work_bucket=bucket, job=req.job, inputs=named,
                               objects=objects, output_uri=req.output, tables=tables,
                               options=req.options, limits=req.limits, concurrency=req.concurrency,
                               s3=runtime.s3())
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
        body = {"job_id": job_id, "state": protocol.FAILED, "phase": "plan",
                "reason": f"planning failed: {type(exc).__name__}: {exc}"}
        if runtime.put_if_absent(bucket, protocol.failed_key(job_id), json.dumps(body)):
            runtime.put_bytes(bucket, protocol.job_state_key(job_id, protocol.FAILED), b"")
        return None
    doc, chunks = stored_documents(plan)  # a large plan's splits first, then plan.json
    for key, chunk in chunks:
        runtime.put_bytes(bucket, key, chunk)
    runtime.put_if_absent(bucket, protocol.plan_key(job_id), doc)
    return runtime.load_plan(bucket, job_id)


def drive(ev: dict[str, Any]) -> dict[str, Any]:
    bucket, job_id = ev["bucket"], ev["job_id"]
    try:
        if runtime.exists(bucket, protocol.cancel_key(job_id)):
            return {"cancelled": True}
        if not runtime.put_if_absent(bucket, protocol.claim_key(job_id, DRIVE_CLAIM), "driving"):
            return {"duplicate": True}
        plan = _plan_or_fail(bucket, job_id)
        if plan is None:
            return {"error": "planning failed (see failed.json)"}
        n = plan.steps[0].num_map_tasks
        threshold = plan.options.invoke_tree_threshold
        if admission.enabled(plan):  # the coordinator starts the tasks as its slots allow
            events = [protocol.coordinate_event(bucket, job_id, admission.ADMIT)]
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
        ev, rejected = runtime.accept(event, protocol.EVENT_DRIVE)
        if rejected:
            return rejected
        assert ev is not None  # accept returns the event or a rejection
        return drive(ev)
    ev, rejected = runtime.accept(event, protocol.EVENT_INVOKE)
    if rejected:
        return rejected
    assert ev is not None  # accept returns the event or a rejection
    failed = send_all(ev["tasks"])
    out: dict[str, Any] = {"invoked": len(ev["tasks"]) - len(failed)}
    if failed:
        out["errors"] = failed
    return out
