"""Driver handler: ``drive`` starts a planned job's map tasks; ``invoke`` fans a batch out.

A ``drive`` event (the serverless driver) names a job whose ``plan.json`` and ``job.pkl`` are
written: the driver invokes step 0's map tasks and exits (the coordinator runs the rest, so no
Lambda time limit applies to the job). From :data:`TREE_THRESHOLD` tasks on, the fan-out is a
two-level tree: the driver invokes invokers (this function, ``invoke`` events) with batches of
:data:`INVOKER_BATCH` task events, so the first mapper starts within seconds however large the job.
A duplicated ``drive`` event fans out once (claim ``drive``).

An ``invoke`` event is one node of the fan-out tree: it async-invokes each task event it carries
(map, reduce, coordinate, or a nested ``invoke`` batch) with backoff on throttling.
"""

from __future__ import annotations

import logging
from typing import Any

from lambda_handlers import protocol, runtime
from lambda_handlers.reducer import ordered_parallel

log = logging.getLogger("smr.driver")
TREE_THRESHOLD = 2000
INVOKER_BATCH = 200
DRIVE_CLAIM = "drive"
FANOUT_CLAIM = "map-0"


def fan_out_events(bucket: str, job_id: str, num_map_tasks: int,
                   threshold: int = TREE_THRESHOLD, batch: int = INVOKER_BATCH) -> list[dict]:
    """What the driver invokes: the map events, or ``invoke`` batches of them for large jobs."""
    events = [protocol.task_event(protocol.EVENT_MAP, bucket, job_id, 0, i, 0)
              for i in range(num_map_tasks)]
    if num_map_tasks < threshold:
        return events
    return [protocol.invoke_event(bucket, job_id, events[i:i + batch])
            for i in range(0, len(events), batch)]


def send_all(events: list[dict]) -> list[str]:
    """Async-invoke every event in parallel; the failures, described."""
    failed = []

    def send(task: dict) -> None:
        try:
            runtime.invoke(task)
        except Exception as exc:
            log.exception("could not invoke %s", task.get("kind"))
            failed.append(f"{task.get('kind')} {task.get('step')}/{task.get('task')}: {exc}")

    for _ in ordered_parallel(send, events):
        pass
    return failed


def drive(ev: dict) -> dict:
    bucket, job_id = ev["bucket"], ev["job_id"]
    try:
        if runtime.exists(bucket, protocol.cancel_key(job_id)):
            return {"cancelled": True}
        if not runtime.put_if_absent(bucket, protocol.claim_key(job_id, DRIVE_CLAIM), "driving"):
            return {"duplicate": True}
        plan = runtime.load_plan(bucket, job_id)
        n = int(plan["steps"][0]["num_map_tasks"])
        events = fan_out_events(bucket, job_id, n)
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


def handler(event: Any, context: Any = None) -> dict:
    kind = event.get("kind") if isinstance(event, dict) else None
    if kind == protocol.EVENT_DRIVE:
        ev, rejected = runtime.accept(event, protocol.EVENT_DRIVE)
        if rejected:
            return rejected
        return drive(ev)
    ev, rejected = runtime.accept(event, protocol.EVENT_INVOKE)
    if rejected:
        return rejected
    failed = send_all(ev["tasks"])
    out: dict = {"invoked": len(ev["tasks"]) - len(failed)}
    if failed:
        out["errors"] = failed
    return out
