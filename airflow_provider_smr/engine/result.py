"""The result dict of a finished job (what ``run`` returns and the operator pushes to XCom).

:func:`build_result` is pure: it takes the plan, ``done.json``, the ``_SUCCESS`` manifest and the
done markers' bodies (read once, after the job finished) and returns small JSON-able data: URIs,
counters, timings, request counts and the estimated cost (next to the planner's estimate made
before the job ran, under ``estimate``). Never records.

Data-plane S3 requests: a marker may report its own counts by operation (``"requests":
{"GetObject": n, ...}``); for markers that do not, a per-task estimate from the contract is used.
"""

from __future__ import annotations

from collections import Counter

from airflow_provider_smr.cost import estimate_cost_usd, gb_seconds, prices_for
from airflow_provider_smr.cost import lambda_invokes as attempt_invokes
from airflow_provider_smr.engine.requests import S3_TYPES
from airflow_provider_smr.engine.watch import user_counters
from lambda_handlers import protocol
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.plan import Plan


def _span(bodies: list[dict]) -> float:
    if not bodies:
        return 0.0
    start = min(b.get("started", 0.0) for b in bodies)
    end = max(b.get("finished", 0.0) for b in bodies)
    return max(0.0, end - start)


def estimated_task_requests(phase: str, step: int, num_map_tasks: int) -> Counter:
    """S3 requests one task attempt makes by the contract (used when its marker reports none)."""
    if phase == protocol.MAP:
        # job.pkl, plan.json, the input range (+ the previous step's done marker after step 0);
        # cancel check; start marker, data object, done marker.
        return Counter({"GET": 3 + (1 if step else 0), "HEAD": 1, "PUT": 3})
    # job.pkl, plan.json, the step's map manifest and one slice per map; cancel check; start,
    # data, done.
    return Counter({"GET": 3 + num_map_tasks, "HEAD": 1, "PUT": 3})


def build_result(plan: Plan, done: dict, manifest: dict, markers: dict[tuple[int, str], list[dict]],
                 *, attempts: int, memory_mb: int, driver_requests: dict[str, int] | None = None,
                 driver_invokes: int = 0, architecture: str = "x86_64") -> dict:
    """The result dict of a succeeded job.

    :param markers: done-marker bodies by ``(step, phase)``.
    :param attempts: task attempts started (start markers listed).
    :param driver_requests: S3 requests the control plane made, by type.
    :param driver_invokes: Lambda invokes the control plane made beyond the tasks' (the driver
        function, deadline checks, throttled tries).
    :param architecture: the stack's functions' architecture, which sets the GB-s price.
    """
    steps = plan.steps
    first_maps = markers.get((0, protocol.MAP), [])
    last = steps[-1]
    last_phase = protocol.REDUCE if last.num_reducers else protocol.MAP
    last_bodies = markers.get((last.index, last_phase), [])
    shuffle = sum(b.get("bytes_out", 0) for s in steps if s.num_reducers
                  for b in markers.get((s.index, protocol.MAP), []))
    all_bodies = [b for bodies in markers.values() for b in bodies]
    tasks = sum(s.num_map_tasks + s.num_reducers for s in steps)
    counters = {
        "records_read": sum(b.get("records_in", 0) for b in first_maps),
        "map_output_records": sum(b.get("records_out", 0) for b in first_maps),
        "reduce_output_records": sum(b.get("records_out", 0) for b in last_bodies),
        "output_records": manifest.get("records", sum(b.get("records_out", 0) for b in last_bodies)),
        "bytes_read": sum(b.get("bytes_in", 0) for b in first_maps),
        "shuffle_bytes": shuffle,
        "map_tasks": sum(s.num_map_tasks for s in steps),
        "reduce_tasks": sum(s.num_reducers for s in steps),
        "attempts": attempts,
        "retried_attempts": max(0, attempts - tasks),
        "bad_records": sum(b.get("bad_records", 0) for b in all_bodies),
        # increment_counter's totals over each task's winning attempt: {group: {name: total}}
        "user": user_counters(all_bodies),
    }

    created = epoch_seconds(plan.created) or 0.0
    committed = epoch_seconds(done.get("committed")) or created
    driver = plan.driver
    last_finished = max((b.get("finished", 0.0) for b in all_bodies), default=created)
    timings = {
        "plan_s": round(driver.get("plan_s", 0.0), 3),
        "map_s": round(sum(_span(markers.get((s.index, protocol.MAP), [])) for s in steps), 3),
        "reduce_s": round(sum(_span(markers.get((s.index, protocol.REDUCE), [])) for s in steps), 3),
        "commit_s": round(max(0.0, committed - last_finished), 3),
        "total_s": round(max(0.0, committed - created) + driver.get("plan_s", 0.0), 3),
    }

    task_requests: Counter = Counter()
    for (step, phase), bodies in markers.items():
        maps = steps[step].num_map_tasks
        for b in bodies:
            reported = b.get("requests")
            if reported:  # by operation name (GetObject, ...) -> by request type (GET, ...)
                task_requests.update({S3_TYPES.get(op, op.upper()): n for op, n in reported.items()})
            else:
                task_requests.update(estimated_task_requests(phase, step, maps))
    # Coordinator: one LIST per notification (one per task attempt), claims and the commit.
    num_parts = len(done.get("parts", []))
    task_requests.update({"LIST": attempts + 1, "PUT": len(steps) * 2 + 3, "COPY": num_parts,
                          "GET": last.num_reducers or last.num_map_tasks})
    driver_requests = Counter(driver_requests or {})
    s3_requests = dict(sorted((task_requests + driver_requests).items()))
    lambda_invokes = attempt_invokes(attempts, all_bodies) + driver_invokes
    gb_s = sum(gb_seconds(b.get("duration_s", 0.0), b.get("memory_mb") or memory_mb) for b in all_bodies)

    cost_usd = estimate_cost_usd(gb_s, lambda_invokes, s3_requests, prices_for(architecture))
    table = {"table": plan.output.table.table} if plan.output.table is not None else {}
    return {
        **table,
        "job_id": plan.job_id,
        "status": protocol.SUCCEEDED,
        "job_name": plan.job_name or None,
        "output": plan.output.uri,
        "manifest": done.get("manifest") or plan.output.uri + protocol.SUCCESS_MARKER,
        "parts": list(done.get("parts", [])),
        "records": counters["output_records"],
        "counters": counters,
        "timings": timings,
        "requests": {"s3": s3_requests, "s3_driver": dict(sorted(driver_requests.items())),
                     "lambda_invokes": lambda_invokes},
        "lambda_gb_seconds": round(gb_s, 3),
        "estimated_cost_usd": cost_usd,
        **({"estimate": estimate_vs_actual(plan, cost_usd, timings["total_s"])} if plan.estimate else {}),
    }


def estimate_vs_actual(plan: Plan, cost_usd: float, total_s: float) -> dict[str, object]:
    """The planner's estimate (``plan.json``'s, modelled for AWS: :mod:`lambda_handlers.costmodel`)
    next to what the job measured: ``usd``/``wall_s`` beside ``actual_usd``/``actual_wall_s``."""
    return {**plan.estimate, "actual_usd": cost_usd, "actual_wall_s": total_s}
