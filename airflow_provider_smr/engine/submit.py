"""Start a planned job: write ``plan.json`` and ``job.pkl``, then async-invoke step 0's map tasks.

``plan.json`` is written put-if-absent first, so it claims the job id: submitting an id that exists
starts nothing twice. The fan-out runs in a thread pool whose size caps the in-flight ``Invoke``
calls, with exponential backoff and jitter when Lambda throttles. When every map task has been
invoked, the claim ``map-0`` records it, so a driver that crashed mid-fan-out can finish it later.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lambda_handlers import protocol
from lambda_handlers.aws_errors import is_precondition_failed
from lambda_handlers.parallel import ordered_parallel
from lambda_handlers.plan import Plan, stored_documents

DEFAULT_MAX_CONCURRENCY = 32
FANOUT_CLAIM = "map-0"
THROTTLE_CODES = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling",
                            "ServiceException", "EC2ThrottledException", "RequestLimitExceeded",
                            "SlowDown"})


class FanOutError(RuntimeError):
    """An ``Invoke`` failed for a reason retrying cannot fix (or kept being throttled).

    :param code: the AWS error code of the failed ``Invoke`` (``ResourceNotFoundException``: the
        function or version does not exist), ``""`` when it had none.
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def put_if_absent(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    """Create ``key`` unless it exists; True when this call created it."""
    from botocore.exceptions import ClientError

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        return True
    except ClientError as exc:
        if is_precondition_failed(exc):
            return False
        raise


def request_cancel(s3: Any, bucket: str, job_id: str) -> bool:
    """Cancel a job with S3 writes alone: the cancel marker (no task or transition starts after
    it), the job's commit claim (so no commit can win it) and, when this call took the claim, the
    CANCELLED state. True when this call cancelled it; False when it was already committing,
    finished or cancelled."""
    s3.put_object(Bucket=bucket, Key=protocol.cancel_key(job_id), Body=b"cancel")
    won = put_if_absent(s3, bucket, protocol.claim_key(job_id, "commit"), b"cancelled")
    if won:
        s3.put_object(Bucket=bucket, Key=protocol.job_state_key(job_id, protocol.CANCELLED), Body=b"")
    return won


def write_job(s3: Any, bucket: str, job_id: str, plan: Plan, pickled: bytes,
              files: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """Write ``plan.json`` (put-if-absent), the side ``files`` (as ``job_files.describe`` lists
    them), then ``job.pkl``; False when the job id already exists.

    A large plan's splits go first, in chunks named by their content's digest (see
    :func:`~lambda_handlers.plan.stored_documents`), so ``plan.json`` never names a missing chunk."""
    body, chunks = stored_documents(plan)
    for _ in ordered_parallel(lambda chunk: s3.put_object(Bucket=bucket, Key=chunk[0], Body=chunk[1]),
                              chunks):
        pass  # every chunk written (in parallel: 100,000 objects make 100 of them) before plan.json
    if not put_if_absent(s3, bucket, protocol.plan_key(job_id), body):
        return False
    write_pickle(s3, bucket, job_id, pickled, files)
    return True


def write_pickle(s3: Any, bucket: str, job_id: str, pickled: bytes,
                 files: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Upload the job's side files, then ``job.pkl`` (no task starts before both are there)."""
    from airflow_provider_smr import job_files

    job_files.upload(s3, bucket, job_id, files or {})
    s3.put_object(Bucket=bucket, Key=protocol.job_pickle_key(job_id), Body=pickled)


def invoke_async(lambda_client: Any, function_name: str, payload: dict, *, max_tries: int = 10,
                 base_delay: float = 0.1, max_delay: float = 20.0,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """``Invoke`` with ``InvocationType="Event"``, backing off on throttling; returns the tries used."""
    from botocore.exceptions import ClientError

    data = json.dumps(payload, separators=(",", ":")).encode()
    for attempt in range(max_tries):
        try:
            response = lambda_client.invoke(FunctionName=function_name, InvocationType="Event",
                                            Payload=data)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in THROTTLE_CODES:
                raise FanOutError(f"invoking {function_name} failed: {code}: {exc}", code) from None
            if attempt < max_tries - 1:
                sleep(min(max_delay, base_delay * 2**attempt) * random.uniform(0.5, 1.0))
            continue
        _drain(response)
        status = response.get("StatusCode")
        if status not in (200, 202):
            raise FanOutError(f"invoking {function_name} returned status {status}")
        return attempt + 1
    raise FanOutError(f"invoking {function_name}: still throttled after {max_tries} tries")


def _drain(response: dict) -> None:
    """Read the (empty) response body so the connection goes back to the client's pool.

    botocore leaves ``Payload`` streaming: an unread body makes urllib3 close the connection,
    and every further invoke pays a new TCP connection (and a new server thread) instead.
    """
    payload = response.get("Payload")
    if payload is not None:
        payload.read()
        payload.close()


def fan_out(lambda_client: Any, function_name: str, events: Iterable[dict], *,
            max_concurrency: int | None = None, **invoke_kw: Any) -> dict:
    """Invoke every event; at most ``max_concurrency`` ``Invoke`` calls in flight.

    :return: ``{"invokes": n, "tries": total tries including throttled ones}``.
    """
    events = list(events)
    if not events:
        return {"invokes": 0, "tries": 0}
    workers = max(1, min(max_concurrency or DEFAULT_MAX_CONCURRENCY, len(events)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smr-fanout") as pool:
        tries = list(pool.map(lambda e: invoke_async(lambda_client, function_name, e, **invoke_kw),
                              events))
    return {"invokes": len(events), "tries": sum(tries)}


def map_events(plan: Plan, tasks: Iterable[int] | None = None) -> list[dict]:
    """Attempt-0 events of step 0's map tasks (all of them, or ``tasks``)."""
    bucket, job_id = plan.work_bucket, plan.job_id
    indices = range(plan.steps[0].num_map_tasks) if tasks is None else tasks
    return [protocol.task_event(protocol.EVENT_MAP, bucket, job_id, 0, i, 0) for i in indices]


def unstarted_map_tasks(plan: Plan, listed: Iterable[dict]) -> list[int]:
    """Step 0 map tasks with no marker at all (never started, or never invoked)."""
    job_id = plan.job_id
    seen: set[int] = set()
    for obj in listed:
        k = protocol.parse_status_key(job_id, obj["Key"])
        if k is not None and k.step == 0 and k.phase == protocol.MAP and k.task is not None:
            seen.add(k.task)
    return [i for i in range(plan.steps[0].num_map_tasks) if i not in seen]
