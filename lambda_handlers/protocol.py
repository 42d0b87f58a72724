"""The one shared contract: S3 key layout, marker names, environment names and event shapes.

Both planes import this module; nobody formats a job key by hand anywhere else. It uses the
standard library only, because it runs inside Lambda as well as in the Airflow worker.

Layout of one job under the stack's work bucket::

    jobs/<job_id>/job.pkl                          the pickled job (cloudpickle)
    jobs/<job_id>/plan.json                        splits, steps, settings (written once by the driver)
    jobs/<job_id>/splits/<digest>/<n>.json         the splits of a large plan, in chunks (plan.json says)
    jobs/<job_id>/done.json | failed.json          terminal result, written once
    jobs/<job_id>/cancel                           cancel request
    jobs/<job_id>/map/<step>/<task>.<attempt>.data        map output: all partitions + index
    jobs/<job_id>/reduce/<step>/<task>.<attempt>.data     reduce output of a non-final step
    jobs/<job_id>/parts/<task>.<attempt>.<ext>            final-step parts before commit
    jobs/<job_id>/status/<step>/<phase>/<task>.json              done marker (put-if-absent)
    jobs/<job_id>/status/<step>/<phase>/<task>.<attempt>.start   attempt started
    jobs/<job_id>/status/<step>/<phase>/<task>.<attempt>.error   attempt failed (details in errors/)
    jobs/<job_id>/status/claims/<name>                            exactly-once transition claims
    jobs/<job_id>/status/job/<state>                              terminal state mirror (one LIST sees it)
    jobs/<job_id>/errors/<step>/<phase>/<task>.<attempt>.json    remote traceback and context
    jobs/<job_id>/slots/<slot>/<generation>[.run|.free]   the job's running-task slots (admission)
    budget/slots/<slot>/<generation>[.run|.free]           the stack-wide running-task slots
    budget/jobs/<job_id>                                   a job waiting for stack-wide slots
    tables/<table>/_SUCCESS | keys/<job_id>.jsonl.gz | commit.lock   a DynamoDB output's commits
    <output>/part-00000.<ext> ... _SUCCESS
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lambda_handlers.s3uri import as_folder

PROTOCOL_VERSION = 1

JOBS_PREFIX = "jobs/"
#: one object per job naming the function versions it runs on, while it may still invoke them
PINS_PREFIX = "pins/"
MAP = "map"
REDUCE = "reduce"
PHASES = (MAP, REDUCE)

SUCCESS_MARKER = "_SUCCESS"
REPORT_NAME = "_report.html"  # the job's HTML report, beside _SUCCESS (or under the job's prefix)
PART_PREFIX = "part-"

# Terminal job states, as written under status/job/<state>.
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
RUNNING = "RUNNING"
PENDING = "PENDING"
TERMINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (PENDING, RUNNING)
SUCCESS_STATES = (SUCCEEDED,)
FAILURE_STATES = (FAILED, CANCELLED)

#: the most a task may have written for the one task its completion starts (the reducer of a
#: one-split, one-reducer job) to run in its own function (``lambda_handlers.runtime``)
NEXT_TASK_MAX_BYTES = 8 << 20

# Environment variables the stack sets on every function.
ENV_WORK_BUCKET = "SMR_WORK_BUCKET"
ENV_STACK_NAME = "SMR_STACK_NAME"
ENV_MAPPER_FUNCTION = "SMR_MAPPER_FUNCTION"
ENV_REDUCER_FUNCTION = "SMR_REDUCER_FUNCTION"
ENV_COORDINATOR_FUNCTION = "SMR_COORDINATOR_FUNCTION"
ENV_DRIVER_FUNCTION = "SMR_DRIVER_FUNCTION"
#: the functions' role, which each task assumes with its job's session policy (lambda_handlers.runtime)
ENV_ROLE_ARN = "SMR_ROLE_ARN"

# Event kinds: one per handler entry point.
EVENT_MAP = "map"
EVENT_REDUCE = "reduce"
EVENT_COORDINATE = "coordinate"
EVENT_DRIVE = "drive"
EVENT_INVOKE = "invoke"
EVENT_KINDS = (EVENT_MAP, EVENT_REDUCE, EVENT_COORDINATE, EVENT_DRIVE, EVENT_INVOKE)

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CLAIM = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
MAX_TASKS = 1_000_000
MAX_STEPS = 100
MAX_ATTEMPTS = 100


class ProtocolError(ValueError):
    """An event or key that does not follow the protocol (rejected before any S3 write)."""


class InvalidEventError(ProtocolError):
    """A function was invoked with an event it does not take. Raised by the handler, so Lambda
    answers with a ``FunctionError`` (``errorType`` ``InvalidEventError``) and counts it in the
    function's ``Errors`` metric; nothing was written."""


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a safe key component, else raise :class:`ProtocolError`."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id) or ".." in job_id:
        raise ProtocolError(
            f"invalid job id {job_id!r}: use 1-200 letters, digits, '_', '.', '=', '-' "
            "(starting with a letter or digit, no '..')"
        )
    return job_id


def validate_bucket(bucket: object) -> str:
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise ProtocolError(f"invalid bucket name {bucket!r}")
    return bucket


def _index(name: str, value: object, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < upper:
        raise ProtocolError(f"{name} must be an integer in [0, {upper}), got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Keys


def job_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{validate_job_id(job_id)}/"


def pin_key(job_id: str) -> str:
    """The job's pin: the function versions it runs on (kept from garbage collection until it ends)."""
    return f"{PINS_PREFIX}{validate_job_id(job_id)}.json"


def job_id_of_pin(key: str) -> str | None:
    """The job id a :func:`pin_key` names, or None for another key."""
    if not key.startswith(PINS_PREFIX) or not key.endswith(".json"):
        return None
    job_id = key[len(PINS_PREFIX):-len(".json")]
    return job_id if _JOB_ID.match(job_id) else None


def job_pickle_key(job_id: str) -> str:
    return job_prefix(job_id) + "job.pkl"


#: a job's side files (``MapReduceJob(files=...)``) together: a task copies those it reads to
#: ``/tmp``, which Lambda gives 512 MiB by default, and spilled shuffle data needs the rest
MAX_JOB_FILES_BYTES = 256 * 1024**2
_FILE_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,255}$")


def validate_file_name(name: object) -> str:
    """Return a side file's name (a file name, no folder) if it is a safe key component."""
    if not isinstance(name, str) or not _FILE_NAME.match(name) or name in (".", ".."):
        raise ProtocolError(f"invalid side file name {name!r}: a file name without '/' or '\\', "
                            "1-255 characters")
    return name


def job_file_key(job_id: str, name: str) -> str:
    """Where side file ``name`` of the job lies, beside ``job.pkl``."""
    return job_prefix(job_id) + "files/" + validate_file_name(name)


def plan_key(job_id: str) -> str:
    return job_prefix(job_id) + "plan.json"


def split_chunks_prefix(job_id: str, digest: str) -> str:
    """Where the chunks of a plan's splits stored apart lie (``digest``: of their content)."""
    return job_prefix(job_id) + f"splits/{digest}/"


def planning_request_key(job_id: str) -> str:
    """What the serverless driver plans from (inputs, output, settings), written by the control plane."""
    return job_prefix(job_id) + "request.json"


def done_key(job_id: str) -> str:
    return job_prefix(job_id) + "done.json"


def failed_key(job_id: str) -> str:
    return job_prefix(job_id) + "failed.json"


def cancel_key(job_id: str) -> str:
    return job_prefix(job_id) + "cancel"


def result_key(job_id: str) -> str:
    """The control plane's cached result dict of a finished job (written after ``done.json``)."""
    return job_prefix(job_id) + "result.json"


def table_manifest_key(job_id: str) -> str:
    """The ``_SUCCESS`` manifest of a job whose output is a DynamoDB table (under the job prefix)."""
    return job_prefix(job_id) + "output/" + SUCCESS_MARKER


def map_output_key(job_id: str, step: int, task: int, attempt: int) -> str:
    return job_prefix(job_id) + f"map/{step}/{task:05d}.{attempt}.data"


def map_manifest_key(job_id: str, step: int) -> str:
    """The winning map outputs of a step (keys + partition indexes), written by the coordinator
    that claims ``reduce-<step>`` so each reducer needs one GET instead of one per map task."""
    return job_prefix(job_id) + f"map/{step}/manifest.json"


def reduce_output_key(job_id: str, step: int, task: int, attempt: int) -> str:
    """Output of a reducer of a non-final step (read by the next step's mappers)."""
    return job_prefix(job_id) + f"reduce/{step}/{task:05d}.{attempt}.data"


def staged_part_key(job_id: str, task: int, attempt: int, ext: str) -> str:
    """A final-step part, written before commit moves it to the output location."""
    return job_prefix(job_id) + f"parts/{task:05d}.{attempt}.{ext}"


#: DynamoDB output tables' commit records (outside ``jobs/``: they outlive the jobs' expiry)
TABLES_PREFIX = "tables/"


def table_record_key(table: str) -> str:
    """The record of what committed jobs wrote to ``table``: the job and its key set's object."""
    return f"{TABLES_PREFIX}{table}/{SUCCESS_MARKER}"


def table_keys_key(table: str, job_id: str) -> str:
    """The keys that committed jobs wrote to ``table`` and that are still there, as of ``job_id``'s
    commit (gzipped JSON lines, one item key a line)."""
    return f"{TABLES_PREFIX}{table}/keys/{job_id}.jsonl.gz"


def table_lock_key(table: str) -> str:
    """Held (put-if-absent) by the job committing to ``table``: one commit to a table at a time."""
    return f"{TABLES_PREFIX}{table}/commit.lock"


def status_prefix(job_id: str) -> str:
    return job_prefix(job_id) + "status/"


def phase_status_prefix(job_id: str, step: int, phase: str) -> str:
    return status_prefix(job_id) + f"{step}/{phase}/"


def done_marker_key(job_id: str, step: int, phase: str, task: int) -> str:
    return phase_status_prefix(job_id, step, phase) + f"{task:05d}.json"


def start_marker_key(job_id: str, step: int, phase: str, task: int, attempt: int) -> str:
    return phase_status_prefix(job_id, step, phase) + f"{task:05d}.{attempt}.start"


def error_marker_key(job_id: str, step: int, phase: str, task: int, attempt: int) -> str:
    return phase_status_prefix(job_id, step, phase) + f"{task:05d}.{attempt}.error"


def error_detail_key(job_id: str, step: int, phase: str, task: int, attempt: int) -> str:
    return job_prefix(job_id) + f"errors/{step}/{phase}/{task:05d}.{attempt}.json"


def tally_prefix(job_id: str, step: int, phase: str, level: int) -> str:
    return job_prefix(job_id) + f"tally/{step}/{phase}/{level}/"


def tally_key(job_id: str, step: int, phase: str, level: int, group: int) -> str:
    """Marker: every task of ``group`` (tasks ``group*10**level`` .. ``+10**level-1``) is done.

    A tree of these lets a task's done notification check "was this the last task?" by listing at
    most ~10 keys per level instead of the whole ``status/`` prefix (kept outside ``status/`` so the
    watcher's LIST does not grow)."""
    return tally_prefix(job_id, step, phase, level) + f"{group:07d}"


def claim_key(job_id: str, name: str) -> str:
    """Put-if-absent claim that makes one transition (``reduce-0``, ``step-1``, ``commit``) happen once."""
    if not _CLAIM.match(name):
        raise ProtocolError(f"invalid claim name {name!r}")
    return status_prefix(job_id) + f"claims/{name}"


def claims_prefix(job_id: str) -> str:
    """Where every :func:`claim_key` of a job lies (one LIST lists the job's claims)."""
    return status_prefix(job_id) + "claims/"


def job_states_prefix(job_id: str) -> str:
    """Where the :func:`job_state_key` markers of a job lie."""
    return status_prefix(job_id) + "job/"


def job_state_key(job_id: str, state: str) -> str:
    if state not in TERMINAL_STATES:
        raise ProtocolError(f"not a terminal state: {state!r}")
    return status_prefix(job_id) + f"job/{state}"


# ---------------------------------------------------------------------------------------------
# Admission slots (see lambda_handlers.admission): slot <i>, generation <g> is claimed put-if-absent
# by the coordinator that starts an attempt in it; ``.free`` beside it says the attempt ended.

STACK_BUDGET_PREFIX = "budget/"
SLOT_FREE, SLOT_RUN = "free", "run"
_SLOT_REST = re.compile(r"^(\d{5})/(\d{9})(?:\.(free|run))?$")
_SLOT_KEY = re.compile(r"^(?:jobs/[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}/slots/|budget/slots/)\d{5}/\d{9}$")
MAX_SLOTS = 100_000


def job_slots_prefix(job_id: str) -> str:
    """The slots that cap one job's running tasks (``max_running_tasks``)."""
    return job_prefix(job_id) + "slots/"


def stack_slots_prefix() -> str:
    """The slots shared by every job of the stack (the stack's ``max_running_tasks``)."""
    return STACK_BUDGET_PREFIX + "slots/"


def stack_demand_prefix() -> str:
    return STACK_BUDGET_PREFIX + "jobs/"


def stack_demand_key(job_id: str) -> str:
    """Present while the job has tasks waiting for a stack-wide slot (its fair share counts it)."""
    return stack_demand_prefix() + validate_job_id(job_id)


def slot_key(prefix: str, slot: int, generation: int) -> str:
    return f"{prefix}{_index('slot', slot, MAX_SLOTS):05d}/{generation:09d}"


def slot_free_key(key: str) -> str:
    """Beside a slot generation: its attempt ended (or never started); the next may be claimed."""
    return f"{key}.{SLOT_FREE}"


def slot_run_key(key: str) -> str:
    """Beside a slot generation: claimed put-if-absent by the one delivery of the attempt that runs."""
    return f"{key}.{SLOT_RUN}"


def parse_slot_key(prefix: str, key: str) -> tuple[int, int, str] | None:
    """``(slot, generation, marker)`` of a key listed under a slots prefix (``marker``: ``""`` for
    the generation itself, :data:`SLOT_FREE` or :data:`SLOT_RUN`), else None."""
    if not key.startswith(prefix):
        return None
    m = _SLOT_REST.match(key[len(prefix):])
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3) or ""


def retry_claim(step: int, phase: str, task: int, attempt: int) -> str:
    """The claim that starts attempt ``attempt`` (> 0) of a task: a retry or a backup."""
    return f"retry-{step}-{phase}-{task}-{attempt}"


def admit_claim(step: int, phase: str, task: int, attempt: int) -> str:
    """The claim that admits one attempt (its body: the slot keys it holds)."""
    return f"admit-{step}-{phase}-{task}-{attempt}"


def part_name(index: int, ext: str) -> str:
    return f"{PART_PREFIX}{index:05d}.{ext}"


def report_key(output_prefix: str) -> str:
    """Key of the job's HTML report beside its committed output (``out/`` -> ``out/_report.html``)."""
    return as_folder(output_prefix) + REPORT_NAME


@dataclass(frozen=True)
class StatusKey:
    """One key under ``status/``, parsed."""

    kind: str  # "done" | "start" | "error" | "claim" | "job"
    step: int | None = None
    phase: str | None = None
    task: int | None = None
    attempt: int | None = None
    name: str | None = None  # claim name or job state


_STATUS_TASK = re.compile(r"^(\d+)/(map|reduce)/(\d+)(?:\.(\d+)\.(start|error)|\.json)$")


def parse_status_key(job_id: str, key: str) -> StatusKey | None:
    """Parse a key listed under :func:`status_prefix`; ``None`` for keys this version does not know."""
    prefix = status_prefix(job_id)
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if rest.startswith("claims/"):
        return StatusKey("claim", name=rest[len("claims/") :])
    if rest.startswith("job/"):
        return StatusKey("job", name=rest[len("job/") :])
    m = _STATUS_TASK.match(rest)
    if not m:
        return None
    step, phase, task, attempt, what = m.groups()
    if attempt is None:
        return StatusKey("done", int(step), phase, int(task))
    return StatusKey(what, int(step), phase, int(task), int(attempt))


# ---------------------------------------------------------------------------------------------
# Events: payloads carry pointers (bucket, job id, task, attempt), never data.


def task_event(kind: str, bucket: str, job_id: str, step: int, task: int, attempt: int,
               slots: list[str] | None = None) -> dict[str, Any]:
    """A map/reduce attempt; ``slots``: the admission slot keys it holds and frees when it ends."""
    event: dict[str, Any] = {"v": PROTOCOL_VERSION, "kind": kind, "bucket": bucket, "job_id": job_id,
                             "step": step, "task": task, "attempt": attempt}
    if slots:
        event["slots"] = list(slots)
    return validate_event(event)


def coordinate_event(bucket: str, job_id: str, reason: str = "") -> dict[str, Any]:
    return validate_event(
        {"v": PROTOCOL_VERSION, "kind": EVENT_COORDINATE, "bucket": bucket, "job_id": job_id,
         "reason": reason}
    )


def drive_event(bucket: str, job_id: str, attempt: int = 0) -> dict[str, Any]:
    """The serverless driver's event; ``attempt`` > 0 when the coordinator retries a driver that
    died after its claim."""
    event: dict[str, Any] = {"v": PROTOCOL_VERSION, "kind": EVENT_DRIVE, "bucket": bucket,
                             "job_id": job_id}
    if attempt:
        event["attempt"] = attempt
    return validate_event(event)


def drive_claim(attempt: int) -> str:
    """The claim a driver attempt takes before it plans (``drive``, then ``drive-1``, ...)."""
    return "drive" if attempt == 0 else f"drive-{attempt}"


def drive_attempt(claim: str) -> int | None:
    """The attempt of a :func:`drive_claim` name (None for any other claim)."""
    if claim == "drive":
        return 0
    m = re.match(r"^drive-(\d+)$", claim)
    return int(m.group(1)) if m else None


def invoke_event(bucket: str, job_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of task events for an invoker node of the fan-out tree."""
    return validate_event(
        {"v": PROTOCOL_VERSION, "kind": EVENT_INVOKE, "bucket": bucket, "job_id": job_id,
         "tasks": tasks}
    )


def validate_event(event: object, expected_kind: str | None = None,
                   work_bucket: str | None = None) -> dict[str, Any]:
    """Check an event's shape; raise :class:`ProtocolError` naming the first problem.

    :param expected_kind: the kind the receiving handler serves, if it serves one.
    :param work_bucket: the stack's own work bucket; an event naming another bucket is refused,
        because handlers load pickled code from that bucket and pickle runs code.
    """
    if not isinstance(event, dict):
        raise ProtocolError(f"event must be a JSON object, got {type(event).__name__}")
    kind = event.get("kind")
    if kind not in EVENT_KINDS:
        raise ProtocolError(f"unknown event kind {kind!r}")
    if expected_kind is not None and kind != expected_kind:
        raise ProtocolError(f"this handler takes {expected_kind!r} events, got {kind!r}")
    bucket = validate_bucket(event.get("bucket"))
    if work_bucket is not None and bucket != work_bucket:
        raise ProtocolError(f"bucket {bucket!r} is not this stack's work bucket")
    validate_job_id(event.get("job_id"))
    if kind in (EVENT_MAP, EVENT_REDUCE):
        _index("step", event.get("step"), MAX_STEPS)
        _index("task", event.get("task"), MAX_TASKS)
        _index("attempt", event.get("attempt"), MAX_ATTEMPTS)
        slots = event.get("slots", [])
        own = (job_slots_prefix(event["job_id"]), stack_slots_prefix())
        if (not isinstance(slots, list) or len(slots) > 2
                or not all(isinstance(k, str) and _SLOT_KEY.match(k) and k.startswith(own) for k in slots)):
            raise ProtocolError(f"slots must be a list of at most 2 slot keys, got {slots!r}")
    elif kind == EVENT_DRIVE:
        _index("attempt", event.get("attempt", 0), MAX_ATTEMPTS)
    elif kind == EVENT_COORDINATE:
        if not isinstance(event.get("reason", ""), str):
            raise ProtocolError("reason must be a string")
    elif kind == EVENT_INVOKE:
        tasks = event.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise ProtocolError("tasks must be a non-empty list")
        for t in tasks:
            validate_event(t, work_bucket=bucket)
            if t["job_id"] != event["job_id"]:
                raise ProtocolError("an invoke batch may only hold tasks of its own job")
    return event
