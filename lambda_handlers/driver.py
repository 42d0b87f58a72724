"""Driver handler: ``invoke`` events fan a batch of task events out; ``drive`` is issue 6.

An ``invoke`` event is one node of the fan-out tree: it async-invokes each task event it carries
(map, reduce, coordinate, or a nested ``invoke`` batch) with backoff on throttling.
"""

from __future__ import annotations

import logging
from typing import Any

from lambda_handlers import protocol, runtime
from lambda_handlers.reducer import ordered_parallel

log = logging.getLogger("smr.driver")


def handler(event: Any, context: Any = None) -> dict:
    kind = event.get("kind") if isinstance(event, dict) else None
    if kind == protocol.EVENT_DRIVE:
        ev, rejected = runtime.accept(event, protocol.EVENT_DRIVE)
        if rejected:
            return rejected
        return {"error": "NotImplementedError: the serverless driver ('drive' events) is not "
                         "available in this version; run the job from the Airflow hook or `smr run`"}
    ev, rejected = runtime.accept(event, protocol.EVENT_INVOKE)
    if rejected:
        return rejected
    failed = []

    def send(task: dict) -> None:
        try:
            runtime.invoke(task)
        except Exception as exc:
            log.exception("could not invoke %s", task)
            failed.append(f"{task.get('kind')} {task.get('step')}/{task.get('task')}: {exc}")

    for _ in ordered_parallel(send, ev["tasks"]):
        pass
    out: dict = {"invoked": len(ev["tasks"]) - len(failed)}
    if failed:
        out["errors"] = failed
    return out
