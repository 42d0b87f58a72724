"""Job progress from ONE paginated LIST of the job's ``status/`` prefix, and the policy of watching it.

:func:`status_from_listing` is pure: the synchronous watcher (:mod:`~airflow_provider_smr.engine.runner`)
and the async trigger both list the prefix their own way and hand the objects (boto3's
``Contents`` dicts) to it; state and task counts come from marker names and ages alone.
:class:`ProgressTracker` adds records, bytes, throughput and elapsed time from the done markers'
bodies, GETting each done marker once per job and process (the result and the report reuse them).
:func:`watch_step` is the wait policy both watchers apply to each poll: which progress line to log,
when to ask the coordinator to check deadlines, when the watch ends, and when to poll next
(:func:`poll_delay`: soon at first and when tasks are due, backing off to ``waiter_delay``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lambda_handlers import protocol
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.plan import Plan


@dataclass
class PhaseProgress:
    total: int
    done: int = 0
    running: int = 0
    failed: int = 0  # latest attempt failed and no attempt succeeded (retry pending or job failing)

    def to_dict(self) -> dict:
        return {"done": self.done, "running": self.running, "failed": self.failed, "total": self.total}


@dataclass
class JobStatus:
    """What one LIST says about a job."""

    job_id: str
    state: str  # PENDING | RUNNING | SUCCEEDED | FAILED | CANCELLED
    step: int | None  # the step in progress (None once every task is done)
    phase: str | None  # "map" | "reduce" | "commit" | None when terminal
    steps: list[dict[str, PhaseProgress]]
    attempts: int = 0  # task attempts started, all steps and phases
    overdue: list[tuple[int, str, int, int]] = field(default_factory=list)  # (step, phase, task, attempt)
    claims: set[str] = field(default_factory=set)
    error: str | None = None
    # when the running attempt of each (step, phase, task) started (its start marker's LastModified)
    running_since: dict[tuple[int, str, int], float] = field(default_factory=dict)

    TERMINAL_STATES = protocol.TERMINAL_STATES
    SUCCESS_STATES = protocol.SUCCESS_STATES
    FAILURE_STATES = protocol.FAILURE_STATES

    @property
    def terminal(self) -> bool:
        return self.state in protocol.TERMINAL_STATES

    @property
    def needs_attention(self) -> bool:
        """A task is silent past its deadline: the coordinator must be asked to check deadlines."""
        return bool(self.overdue) and not self.terminal

    def progress(self) -> dict:
        current = self.step if self.step is not None else len(self.steps) - 1
        here = self.steps[current] if self.steps else {}
        return {"step": current, "num_steps": len(self.steps),
                **{phase: p.to_dict() for phase, p in here.items()},
                "attempts": self.attempts,
                "steps": [{phase: p.to_dict() for phase, p in s.items()} for s in self.steps]}

    def to_dict(self) -> dict:
        return {"job_id": self.job_id, "state": self.state, "phase": self.phase, "step": self.step,
                "progress": self.progress(), "error": self.error,
                "overdue_tasks": [list(o) for o in self.overdue]}

    def describe(self) -> str:
        """One progress line for logs: ``RUNNING step 1/2 map 12/40 (running 8, failed 0)``."""
        if self.phase in (protocol.MAP, protocol.REDUCE) and self.step is not None:
            p = self.steps[self.step][self.phase]
            return (f"{self.state} step {self.step + 1}/{len(self.steps)} {self.phase} {p.done}/{p.total} "
                    f"(running {p.running}, failed {p.failed})")
        return f"{self.state} {self.phase or ''}".strip()


def status_from_listing(plan: Plan, listed: Iterable[dict], now: float | None = None) -> JobStatus:
    """The job's state and per-phase progress from the objects listed under its ``status/`` prefix.

    :param plan: the job's ``plan.json`` (for task totals and the task timeout).
    :param listed: boto3 ``Contents`` entries (``Key``, ``LastModified``); other keys are ignored.
    :param now: epoch seconds used for deadlines (default: the current time).
    """
    job_id = plan.job_id
    now = time.time() if now is None else now
    deadline = plan.silent_after_s
    steps = [{protocol.MAP: PhaseProgress(s.num_map_tasks)} for s in plan.steps]
    for progress, s in zip(steps, plan.steps, strict=True):
        if s.num_reducers:
            progress[protocol.REDUCE] = PhaseProgress(s.num_reducers)

    done: set[tuple[int, str, int]] = set()
    latest: dict[tuple[int, str, int], int] = {}  # highest attempt started or failed
    started: dict[tuple[int, str, int, int], float] = {}
    errored: set[tuple[int, str, int, int]] = set()
    states: set[str] = set()
    claims: set[str] = set()
    for obj in listed:
        k = protocol.parse_status_key(job_id, obj["Key"])
        if k is None:
            continue
        if k.kind == "job" and k.name is not None:
            states.add(k.name)
        elif k.kind == "claim" and k.name is not None:
            claims.add(k.name)
        elif (k.step is None or k.phase is None or k.task is None or k.step >= len(steps)
              or k.phase not in steps[k.step]):
            continue
        elif k.kind == "done":
            done.add((k.step, k.phase, k.task))
        elif k.attempt is not None:  # a start or error marker
            task = (k.step, k.phase, k.task)
            latest[task] = max(latest.get(task, -1), k.attempt)
            marker = (*task, k.attempt)
            if k.kind == "start":
                started[marker] = epoch_seconds(obj.get("LastModified")) or 0.0
            else:
                errored.add(marker)

    overdue = []
    running_since: dict[tuple[int, str, int], float] = {}
    for task, attempt in latest.items():
        step, phase, _ = task
        p = steps[step][phase]
        if task in done:
            continue
        if (*task, attempt) in errored:
            p.failed += 1
            continue
        p.running += 1
        began = started.get((*task, attempt))
        if began is not None:
            running_since[task] = began
            if now - began > deadline:
                overdue.append((*task, attempt))
    for step, phase, _ in done:
        steps[step][phase].done += 1

    state = next((s for s in protocol.TERMINAL_STATES if s in states), None)
    if state is None:
        state = protocol.RUNNING if (started or done or claims) else protocol.PENDING
    phase_now: str | None
    step_now, phase_now = _current_phase(steps)
    if state in protocol.TERMINAL_STATES:
        step_now, phase_now = None, None
    return JobStatus(job_id=job_id, state=state, step=step_now, phase=phase_now, steps=steps,
                     attempts=len(started), overdue=sorted(overdue), claims=claims,
                     running_since=running_since)


def _current_phase(steps: list[dict[str, PhaseProgress]]) -> tuple[int | None, str]:
    for index, phases in enumerate(steps):
        for phase in (protocol.MAP, protocol.REDUCE):
            p = phases.get(phase)
            if p is not None and p.done < p.total:
                return index, phase
    return None, "commit"


def list_status(s3: Any, work_bucket: str, job_id: str) -> list[dict]:
    """The one paginated LIST of a job's ``status/`` prefix (one request per 1,000 markers)."""
    listed: list[dict] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=work_bucket, Prefix=protocol.status_prefix(job_id)):
        listed.extend(page.get("Contents", ()))
    return listed


def failure_message(failed: dict) -> str:
    """A readable error from ``failed.json``: reason, where, and the remote traceback."""
    error = failed.get("error") or {}
    where = []
    if failed.get("step") is not None:
        where.append(f"step {failed['step']}")
    if failed.get("phase"):
        where.append(f"{failed['phase']} task {failed.get('task')} attempt {failed.get('attempt')}")
    lines = [f"job {failed.get('job_id')} failed: {failed.get('reason') or 'unknown reason'}"
             + (f" ({', '.join(where)})" if where else "")]
    if error.get("error_type") or error.get("message"):
        lines.append(f"{error.get('error_type', 'Error')}: {error.get('message', '')}")
    source = error.get("input")
    if source:
        lines.append(f"input s3://{source.get('bucket')}/{source.get('key')} bytes "
                     f"{source.get('start')}-{source.get('end')}")
    if error.get("record_preview"):
        lines.append(f"record: {error['record_preview']}")
    if error.get("traceback"):
        lines.append("remote traceback:\n" + error["traceback"].rstrip())
    return "\n".join(lines)


# -- progress: records, bytes, throughput and elapsed time from the done markers ------------------

_MIB = 1024**2


class ProgressTracker:
    """Counters of a running job from its done markers, each read ONCE per job and process.

    Pure: the caller lists (:func:`list_status`), asks :meth:`new_done_keys` which done markers to
    GET, hands their bodies to :meth:`ingest`, and renders :meth:`line` (:func:`watch_step` says
    when). The synchronous runner and the async trigger share it; the runner's result and the HTML
    report reuse its bodies.

    Elapsed time counts from the plan's ``created`` time (when the driver planned the job; the
    first time this tracker saw the job when the plan has none). Throughput is the input read so
    far (the first step's map tasks: ``records_in`` / ``bytes_in``) per second since the first
    finished task started (:meth:`busy`): the rate of the tasks, not of the submit and the
    watcher's first poll.

    :param plan: the job's ``plan.json``.
    :param now: epoch seconds used when the plan carries no ``created`` time.
    """

    def __init__(self, plan: Plan, now: float | None = None) -> None:
        self.plan = plan
        self.job_id = plan.job_id
        self.started = _created(plan) or (time.time() if now is None else now)
        self.bodies: dict[str, dict] = {}  # done-marker key -> body
        self._asked: set[str] = set()
        # (step, phase, task) -> (its running attempt's start marker LastModified, when that
        # attempt started at the earliest): see observe()
        self._began: dict[tuple[int, str, int], tuple[float, float]] = {}
        self._observed: float | None = None  # the wall time of the last poll observe() saw

    def new_done_keys(self, listed: Iterable[dict]) -> list[str]:
        """Done-marker keys in ``listed`` not handed out before (each is returned once)."""
        fresh = []
        for obj in listed:
            key = obj["Key"]
            if key in self._asked:
                continue
            k = protocol.parse_status_key(self.job_id, key)
            if k is not None and k.kind == "done":
                self._asked.add(key)
                fresh.append(key)
        return fresh

    def ingest(self, bodies: dict[str, dict | None]) -> None:
        """Add done-marker bodies by key (a None body, a marker gone missing, is skipped)."""
        for key, body in bodies.items():
            self._asked.add(key)
            if body is not None:
                self.bodies[key] = body

    def markers(self) -> dict[tuple[int, str], list[dict]]:
        """Done-marker bodies by ``(step, phase)`` (what :func:`build_result` takes)."""
        out: dict[tuple[int, str], list[dict]] = {}
        for key, body in sorted(self.bodies.items()):
            k = protocol.parse_status_key(self.job_id, key)
            if k is not None and k.step is not None and k.phase is not None:  # a done marker's key
                out.setdefault((k.step, k.phase), []).append(body)
        return out

    def totals(self) -> dict[str, int]:
        """Input records and bytes read so far (the first step's finished map tasks)."""
        first = self.markers().get((0, protocol.MAP), [])
        return {"records": sum(int(b.get("records_in") or 0) for b in first),
                "bytes": sum(int(b.get("bytes_in") or 0) for b in first)}

    def user_counters(self) -> dict[str, dict[str, int | float]]:
        """The job's user counters so far (finished tasks' winning attempts)."""
        return user_counters(self.bodies.values())

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def busy(self, now: float) -> float:
        """Seconds since the earliest start among the finished tasks (the throughput's time base;
        :meth:`elapsed` until a task has finished)."""
        starts = [float(b["started"]) for b in self.bodies.values() if b.get("started") is not None]
        return max(0.0, now - min(starts)) if starts else self.elapsed(now)

    def rates(self, now: float) -> tuple[float, float]:
        """Input ``(records, bytes)`` per second of :meth:`busy` time (0 before any is read)."""
        totals, busy = self.totals(), self.busy(now)
        if busy <= 0:
            return 0.0, 0.0
        return totals["records"] / busy, totals["bytes"] / busy

    def observe(self, status: JobStatus, now: float) -> None:
        """Note when this poll (at epoch seconds ``now``) first saw each running attempt.

        S3 gives a listing's ``LastModified`` in whole seconds, so a start marker says when its
        attempt began only to within a second; a marker the previous poll did not list was written
        after that poll. An attempt's start is taken as the later of the two (:meth:`began`)."""
        for task, listed in status.running_since.items():
            known = self._began.get(task)
            if known is None or known[0] != listed:  # a new attempt of the task
                after = listed if self._observed is None else self._observed
                self._began[task] = (listed, min(max(listed, after), now))
        self._observed = now

    def began(self, task: tuple[int, str, int], listed: float) -> float:
        """When the running attempt of ``task`` (``listed``: its start marker's ``LastModified``)
        started at the earliest (see :meth:`observe`)."""
        known = self._began.get(task)
        return known[1] if known is not None and known[0] == listed else listed

    def _durations(self, step: int, phase: str) -> list[float]:
        return sorted(float(b["duration_s"]) for b in self.bodies.values()
                      if b.get("step") == step and b.get("phase") == phase and b.get("duration_s") is not None)

    def phase_due(self, status: JobStatus) -> float | None:
        """Epoch seconds when the running tasks of the current phase should all be done: the
        latest running attempt's start (:meth:`began`) plus the median duration of the phase's
        finished tasks, or while none has finished, of the phase before it (a step's map phase
        before its reduce phase, the previous step's last phase before a step's map phase: the
        planner sizes a job's tasks alike). None when nothing runs or no task of either has
        finished."""
        if status.step is None or status.phase not in (protocol.MAP, protocol.REDUCE):
            return None
        durations = self._durations(status.step, status.phase)
        if not durations:
            before = _phase_before(status)
            durations = self._durations(*before) if before is not None else []
        starts = [self.began(task, t) for task, t in status.running_since.items()
                  if task[0] == status.step and task[1] == status.phase]
        if not durations or not starts:
            return None
        return max(starts) + durations[len(durations) // 2]

    def line(self, status: JobStatus, now: float) -> str:
        """``RUNNING step 1/1 map 12/40 (running 8, failed 0) | 1,234,567 records, 340.2 MiB
        read, 28.3 MiB/s, 105k records/s | elapsed 0:00:12``."""
        totals, elapsed = self.totals(), self.elapsed(now)
        records_per_s, bytes_per_s = self.rates(now)
        counters = format_user_counters(self.user_counters())
        return (f"{_describe_phases(status)} | {totals['records']:,} records, "
                f"{format_bytes(totals['bytes'])} read, {format_bytes(bytes_per_s)}/s, "
                f"{short_count(records_per_s)} records/s | elapsed {format_elapsed(elapsed)}"
                + (f" | {counters}" if counters else ""))


def user_counters(bodies: Iterable[dict]) -> dict[str, dict[str, int | float]]:
    """``{group: {name: total}}`` of the user counters in done-marker bodies (``"counters"``). A
    task has one done marker, its winning attempt's, so no attempt is counted twice."""
    out: dict[str, dict[str, int | float]] = {}
    for body in bodies:
        for group, names in (body.get("counters") or {}).items():
            totals = out.setdefault(group, {})
            for name, count in names.items():
                totals[name] = totals.get(name, 0) + count
    return {g: dict(sorted(names.items())) for g, names in sorted(out.items())}


def format_user_counters(counters: dict[str, dict[str, int | float]], most: int = 4) -> str:
    """``words.total=1,234, words.empty=3 (+2 more)``: the first ``most`` counters, for one line."""
    flat = [f"{group}.{name}={count:,}" for group, names in counters.items() for name, count in names.items()]
    more = f" (+{len(flat) - most} more)" if len(flat) > most else ""
    return ", ".join(flat[:most]) + more


JOB_LABEL_CHARS = 12


def job_label(job_id: str) -> str:
    """A short name for a job in its progress lines, once its full id has been logged: the id's
    unique tail (the hash and generation of an Airflow task's id, the random suffix of a generated
    one), cut at a separator: ``...1a2b3c4d5e`` for ``dag.task.manual__2026-...-00.1a2b3c4d5e``."""
    if len(job_id) <= JOB_LABEL_CHARS + 3:
        return job_id
    tail = re.sub(r"^[^._-]{0,4}[._-]", "", job_id[-JOB_LABEL_CHARS:])
    return f"...{tail}"


def _phase_before(status: JobStatus) -> tuple[int, str] | None:
    """``(step, phase)`` of the phase before the current one (None for the first step's map)."""
    step = status.step
    if step is None:
        return None
    if status.phase == protocol.REDUCE:
        return step, protocol.MAP
    if step == 0:
        return None
    return step - 1, protocol.REDUCE if protocol.REDUCE in status.steps[step - 1] else protocol.MAP


def _tasks_left(status: JobStatus) -> int | None:
    """The current phase's tasks not done yet (None outside a map or reduce phase)."""
    if status.step is None or status.phase not in (protocol.MAP, protocol.REDUCE):
        return None
    progress = status.steps[status.step][status.phase]
    return progress.total - progress.done


def _last_phase(status: JobStatus) -> bool:
    """Whether the current phase is the job's last (the commit follows it): the one whose end the
    user waits for; the coordinator, not the watcher, starts the phases before it."""
    step = status.step
    if step is None or step != len(status.steps) - 1:
        return False
    return status.phase == protocol.REDUCE or protocol.REDUCE not in status.steps[step]


def _created(plan: Plan) -> float | None:
    try:
        return epoch_seconds(plan.created or None)
    except ValueError:
        return None


def _describe_phases(status: JobStatus) -> str:
    """``describe()`` with the current step's finished phases too: ``step 1/1 map 40/40, reduce
    3/8 (running 5, failed 0)``."""
    if status.phase == protocol.REDUCE and status.step is not None:
        m = status.steps[status.step][protocol.MAP]
        head, _, tail = status.describe().partition(" reduce ")
        return f"{head} map {m.done}/{m.total}, reduce {tail}"
    return status.describe()


def format_bytes(n: float) -> str:
    """``340.2 MiB``: binary units, one decimal above bytes."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


def short_count(n: float) -> str:
    """``105k``, ``1.2M``, ``950``."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            value = n / div
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return f"{n:.0f}"


def format_elapsed(seconds: float) -> str:
    """``0:00:12``."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# -- the wait policy: one step per poll, shared by JobRunner.wait and SMRJobTrigger ---------------

# At most one progress line this often, unless the state or the phase changed.
PROGRESS_LOG_INTERVAL_S = 10.0
# Ask the coordinator to check deadlines at most this often when tasks are overdue or nothing moved.
DEADLINE_CHECK_MIN_INTERVAL_S = 10.0
# Nothing moved this long: ask the coordinator to check deadlines anyway (a lost invocation).
STALL_NUDGE_S = 60.0
# With speculation on, ask the coordinator this often to look for stragglers (it is only called
# otherwise when a task finishes, fails or goes silent).
SPECULATION_CHECK_INTERVAL_S = 3.0

# How long a task waits for its job, as the Amazon provider's operators say it: ``waiter_delay``
# is the LONGEST gap between polls, and the watch gives up after ``waiter_delay`` x
# ``waiter_max_attempts`` seconds. Polls come sooner than waiter_delay (see poll_delay), so more
# than waiter_max_attempts of them may happen: the limit is the time the user configured, not a
# count. 5 s: one S3 LIST per poll costs next to nothing, and the progress line needs a poll at
# least every PROGRESS_LOG_INTERVAL_S. 8,640 x 5 s (12 h): a backstop, not a runtime budget; the
# coordinator's deadlines already end a job whose tasks die, so this fires only when something
# outside the job is broken, and a daily DAG's run still ends before the next one starts.
DEFAULT_WAITER_DELAY_S = 5.0
DEFAULT_WAITER_MAX_ATTEMPTS = 8640
# Adaptive polling: the first poll after the watch starts (or a phase begins) comes this soon, each
# next one POLL_BACKOFF times later, up to waiter_delay. A job is seen done within half of the
# time it has run (a trivial job's 0.1 s: within 0.05 s), and a long phase costs
# log1.5(5 / 0.025) ~ 14 LISTs before the polls are waiter_delay apart. (0.05 s saw a warm
# trivial job, done ~50 ms after its invoke, ~110 ms after it.)
FIRST_POLL_DELAY_S = 0.025
POLL_BACKOFF = 1.5
# The commit phase begins when the last task is done and takes a few requests: its first poll
# comes sooner.
COMMIT_POLL_DELAY_S = 0.015
# Added to waiter_delay x waiter_max_attempts for the deferral's timeout, so the trigger's own
# timed_out event (which says how far the job got) normally comes first (the Amazon operators add 60 s).
DEFERRAL_TIMEOUT_MARGIN_S = 60.0


def waiter_timeout_s(waiter_delay: float, waiter_max_attempts: int | None) -> float | None:
    """Seconds a watch lasts: ``waiter_delay`` x ``waiter_max_attempts`` (None: no limit)."""
    if waiter_max_attempts is None:
        return None
    return float(waiter_delay) * int(waiter_max_attempts)


# How a watch ends besides the job's terminal states (protocol.SUCCEEDED, FAILED, CANCELLED).
NEEDS_ATTENTION = "NEEDS_ATTENTION"  # tasks are overdue and the watcher hands them to its caller
TIMED_OUT = "TIMED_OUT"  # the caller's timeout passed (the job keeps running)


@dataclass(frozen=True)
class WatchPolicy:
    """What a watcher is asked to do, fixed for the whole watch.

    :param speculation: the job runs backup attempts of stragglers: ask the coordinator to look
        for them every :data:`SPECULATION_CHECK_INTERVAL_S`.
    :param defer_attention: tasks silent past their deadline end the watch with
        :data:`NEEDS_ATTENTION` (the trigger hands them to the resuming task) instead of a
        deadline check asked by the watcher itself.
    :param timeout: seconds after which the watch ends with :data:`TIMED_OUT` (None: never).
    :param waiter_delay: the longest gap between two polls (see :func:`poll_delay`).
    """

    speculation: bool = False
    defer_attention: bool = False
    timeout: float | None = None
    waiter_delay: float = DEFAULT_WAITER_DELAY_S

    @classmethod
    def for_plan(cls, plan: Plan, *, defer_attention: bool = False, timeout: float | None = None,
                 waiter_delay: float = DEFAULT_WAITER_DELAY_S) -> WatchPolicy:
        """The policy for a job from its plan."""
        return cls(speculation=plan.options.speculation, defer_attention=defer_attention,
                   timeout=timeout, waiter_delay=waiter_delay)


@dataclass(frozen=True)
class WatchState:
    """What a watcher remembers between polls. Times in ``now`` seconds (monotonic) unless named
    wall (epoch seconds, as the progress line's elapsed time)."""

    began: float
    last_change: float  # when the job's status line last changed (a stall counts from here)
    last_check: float = -math.inf  # when the coordinator was last asked to check deadlines
    seen: str | None = None  # the status line at the last poll
    logged_wall: float | None = None  # when the last progress line was logged
    logged_phase: tuple[str, int | None, str | None] | None = None  # (state, step, phase) it showed
    polled_phase: tuple[str, int | None, str | None] | None = None  # (state, step, phase) at the last poll
    due: float | None = None  # the running tasks' due time at which the polls last started over
    delay: float | None = None  # the gap before this poll's successor (None before the first poll)
    left: int | None = None  # the polled phase's unfinished tasks when the polls last started over

    @classmethod
    def begin(cls, now: float, *, just_checked: bool = False) -> WatchState:
        """The state before the first poll.

        :param just_checked: the coordinator has just been asked (or the job just submitted): wait
            a full interval before the first check.
        """
        return cls(began=now, last_change=now, last_check=now if just_checked else -math.inf)


@dataclass(frozen=True)
class WatchStep:
    """What to do after one poll.

    :param state: the state to hand to the next step.
    :param line: a progress line to log now, or None.
    :param check_deadlines: ask the coordinator to check deadlines now.
    :param check_reason: why, worth a log line (None for the routine straggler check).
    :param outcome: how the watch ends (a terminal job state, :data:`NEEDS_ATTENTION`,
        :data:`TIMED_OUT`), or None to poll again.
    :param delay: seconds to wait before the next poll.
    """

    state: WatchState
    line: str | None = None
    check_deadlines: bool = False
    check_reason: str | None = None
    outcome: str | None = None
    delay: float = DEFAULT_WAITER_DELAY_S


def poll_delay(waiter_delay: float, previous: float | None, due_in: float | None = None,
               first: float | None = None) -> float:
    """Seconds until the next poll; pure.

    ``first`` when the watch or a phase has just begun (``previous`` None), else
    :data:`POLL_BACKOFF` times the previous gap, never more than ``waiter_delay``; and no later
    than ``due_in``, when the tasks the watcher waits for are expected to be done (so a job is
    seen done soon after it is, however long it ran).

    :param waiter_delay: the longest gap.
    :param previous: the gap before this poll, or None to start over.
    :param due_in: seconds until the current phase's running tasks are due (None: unknown, or
        past).
    :param first: the first gap of a phase (default :data:`FIRST_POLL_DELAY_S`; the commit's is
        :data:`COMMIT_POLL_DELAY_S`).
    """
    first = FIRST_POLL_DELAY_S if first is None else first
    delay = first if previous is None else previous * POLL_BACKOFF
    if due_in is not None and due_in > 0:
        delay = min(delay, max(due_in, first))
    return min(delay, waiter_delay)


def watch_step(policy: WatchPolicy, state: WatchState, status: JobStatus, tracker: ProgressTracker,
               *, now: float, wall: float) -> WatchStep:
    """Decide what to do after one poll of a job; pure (the caller does the I/O).

    In order: a progress line when the state or phase changed or
    :data:`PROGRESS_LOG_INTERVAL_S` passed; a terminal state ends the watch; overdue tasks end it
    with :data:`NEEDS_ATTENTION` under ``defer_attention``; otherwise overdue tasks, or no change
    for :data:`STALL_NUDGE_S`, ask for a deadline check at most every
    :data:`DEADLINE_CHECK_MIN_INTERVAL_S`, and speculation asks for a straggler check every
    :data:`SPECULATION_CHECK_INTERVAL_S`; last, the policy's timeout, and the gap before the next
    poll (:func:`poll_delay`: short when the watch or a phase begins and when the phase's tasks are
    due (:meth:`ProgressTracker.phase_due`), backing off to the policy's ``waiter_delay``; once
    the job's last phase is due and some of its tasks still run, short again and backing off,
    once per due time, and likewise each time half of that phase's unfinished tasks have finished
    since the polls last started over: at most log2(tasks) + 1 times a phase).

    :param policy: what this watcher is asked to do.
    :param state: the previous step's state (:meth:`WatchState.begin` before the first poll).
    :param status: the job's status from this poll's LIST.
    :param tracker: the done markers read so far (for the progress line).
    :param now: monotonic seconds, for the intervals and the timeout.
    :param wall: epoch seconds, for the progress line's elapsed time and rate limit.
    """
    seen = status.describe()
    if seen != state.seen:
        state = dataclasses.replace(state, seen=seen, last_change=now)
    line = None
    phase = (status.state, status.step, status.phase)
    if (phase != state.logged_phase or state.logged_wall is None
            or wall - state.logged_wall >= PROGRESS_LOG_INTERVAL_S):
        line = tracker.line(status, wall)
        state = dataclasses.replace(state, logged_wall=wall, logged_phase=phase)
    if status.terminal:
        return WatchStep(state, line, outcome=status.state)
    if policy.defer_attention and status.needs_attention:
        return WatchStep(state, line, outcome=NEEDS_ATTENTION)

    check, reason = False, None
    stalled = now - state.last_change > STALL_NUDGE_S
    if status.needs_attention or stalled:
        if now - state.last_check > DEADLINE_CHECK_MIN_INTERVAL_S:
            check = True
            reason = f"{len(status.overdue)} overdue attempts" if status.overdue else "no progress"
            state = dataclasses.replace(state, last_check=now,
                                        last_change=now if stalled else state.last_change)
    elif (policy.speculation and status.step is not None
          and now - state.last_check > SPECULATION_CHECK_INTERVAL_S):
        check = True
        state = dataclasses.replace(state, last_check=now)
    timed_out = policy.timeout is not None and now - state.began > policy.timeout
    tracker.observe(status, wall)
    due = tracker.phase_due(status)
    due_in = None if due is None else due - wall
    previous = None if phase != state.polled_phase else state.delay
    left = _tasks_left(status)
    if previous is None:
        state = dataclasses.replace(state, left=left)
    elif (left is not None and state.left is not None and 2 * left <= state.left
          and _last_phase(status)):
        # half of the job's last tasks finished since the polls last started over: the rest may be
        # as near (a last wave of tasks that share fewer cores runs faster than the durations say)
        previous = None
        state = dataclasses.replace(state, left=left)
    elif (due_in is not None and due_in <= 0 and due != state.due
            and _last_phase(status)):
        previous = None  # the job's last tasks are due and some still run: poll soon again, once per due time
        state = dataclasses.replace(state, due=due)
    delay = poll_delay(policy.waiter_delay, previous, due_in,
                       first=COMMIT_POLL_DELAY_S if status.phase == "commit" else None)
    state = dataclasses.replace(state, polled_phase=phase, delay=delay)
    return WatchStep(state, line, check_deadlines=check, check_reason=reason,
                     outcome=TIMED_OUT if timed_out else None, delay=delay)


def driver_wait_limit_s(timeout_s: float, grace_s: float, max_attempts: int) -> float:
    """How long to wait for the serverless driver to plan a job: every attempt the coordinator may
    start (``max_attempts``) running to its function timeout, each found dead ``grace_s`` later by a
    deadline check asked for at most :data:`DEADLINE_CHECK_MIN_INTERVAL_S` apart. Past this the
    coordinator has failed the job, unless nothing answers at all."""
    return max(1, max_attempts) * (timeout_s + grace_s + DEADLINE_CHECK_MIN_INTERVAL_S) + grace_s
