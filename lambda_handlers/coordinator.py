"""Coordinator handler: stateless; the markers under ``status/`` are the only state.

Each call LISTs ``status/`` once, decides what is due with the pure :func:`decide`, and performs
each transition only after winning its put-if-absent claim (``reduce-<s>``, ``map-<s+1>``,
``retry-<s>-<phase>-<task>-<attempt>``, ``commit``), so any number of concurrent or duplicated
calls start each transition exactly once. A cancelled job starts nothing new.

Request cost: a task's done notification climbs the tally tree (:func:`phase_complete`: a HEAD, and
for the group's last finisher a LIST of ~10 keys and a PUT); the tallies carry the done markers'
summaries, so the root tally is the phase's manifest (the map manifest and the commit read it
instead of GETting every done marker at the end of the phase), and the call that completes a phase
LISTs only the claims and job states, not the whole ``status/`` prefix.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lambda_handlers import admission, aws_errors, driver, prices, protocol, runtime, table_commit
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.io import writers
from lambda_handlers.parallel import ordered_parallel
from lambda_handlers.plan import Plan

log = logging.getLogger("smr.coordinator")
CHECK_DEADLINES = "check-deadlines"
# Speculation: a running attempt slower than ``speculation_threshold`` x the median duration of the
# phase's finished tasks (and at least this many seconds) gets one backup attempt.
SPECULATION_MIN_S = 1.0


class CommitRefusedError(RuntimeError):
    """The output location already holds a committed result and overwrite is off."""


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    ev = runtime.accept(event, protocol.EVENT_COORDINATE)
    return coordinate(ev["bucket"], ev["job_id"], ev.get("reason", ""))


# ---------------------------------------------------------------------------------------------
# State from one LIST


TaskId = tuple[int, str, int]  # (step, phase, task)


@dataclass
class JobState:
    """What one LIST of ``status/`` says; times are epoch seconds (None: the listing had none)."""

    done: defaultdict[tuple[int, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    starts: defaultdict[TaskId, dict[int, float | None]] = field(
        default_factory=lambda: defaultdict(dict))  # -> {attempt: t}
    errors: defaultdict[TaskId, set[int]] = field(default_factory=lambda: defaultdict(set))  # -> {attempt}
    claims: dict[str, float | None] = field(default_factory=dict)  # name -> epoch seconds
    terminal: set[str] = field(default_factory=set)
    done_at: dict[TaskId, float | None] = field(default_factory=dict)  # epoch of its done marker


def scan(job_id: str, objects: list[dict[str, Any]]) -> JobState:
    st = JobState()
    for obj in objects:
        k = protocol.parse_status_key(job_id, obj["Key"])
        if k is None:
            continue
        t = epoch_seconds(obj.get("LastModified"))
        # The patterns only narrow the Optional fields: parse_status_key sets step, phase and task
        # on every task marker, attempt on start and error markers, name on claims and job states.
        match k:
            case protocol.StatusKey(kind="done", step=int(s), phase=str(ph), task=int(task)):
                st.done[(s, ph)].add(task)
                st.done_at[(s, ph, task)] = t
            case protocol.StatusKey(kind="start", step=int(s), phase=str(ph), task=int(task), attempt=int(a)):
                st.starts[(s, ph, task)][a] = t
            case protocol.StatusKey(kind="error", step=int(s), phase=str(ph), task=int(task), attempt=int(a)):
                st.errors[(s, ph, task)].add(a)
            case protocol.StatusKey(kind="claim", name=str(name)):
                st.claims[name] = t
            case protocol.StatusKey(kind="job", name=str(name)):
                st.terminal.add(name)
    return st


# ---------------------------------------------------------------------------------------------
# Decisions (pure)


START_REDUCE, START_MAP, COMMIT = "reduce", "map", "commit"
RETRY, SPECULATE, TIMEOUT, FAIL = "retry", "speculate", "timeout", "fail"


@dataclass(frozen=True)
class Action:
    """One transition the coordinator makes happen (each guarded by a put-if-absent claim).

    ``reduce``/``map``: start a step's reduce (or a later step's map) phase; ``commit``;
    ``retry``/``speculate``: start attempt ``attempt`` of a task; ``timeout``: record that
    attempt ``attempt``, started at ``started``, went silent; ``fail``: fail the job on that task.
    """

    kind: str
    step: int | None = None
    phase: str | None = None
    task: int | None = None
    attempt: int | None = None
    started: float | None = None

    def report(self) -> list[Any]:
        """What the coordinator's response lists: ``[kind, step, phase, task, attempt]`` as set."""
        return [self.kind, *(v for v in (self.step, self.phase, self.task, self.attempt) if v is not None)]


retry_claim = protocol.retry_claim


def decide(plan: Plan, st: JobState, now: float, check_deadlines: bool) -> list[Action]:
    """What is due now, as :class:`Action` s (pure: the effects are :func:`_perform`'s)."""
    steps = plan.steps
    actions: list[Action] = []
    for s, sp in enumerate(steps):
        last = s == len(steps) - 1
        m, r = sp.num_map_tasks, sp.num_reducers
        if s > 0 and f"map-{s}" not in st.claims:
            break
        actions += _failures(st, plan, s, protocol.MAP, m, now, check_deadlines, f"map-{s}")
        if len(st.done[(s, protocol.MAP)]) < m:
            break
        if r == 0:
            if "commit" not in st.claims:
                actions.append(Action(COMMIT))
            break
        if f"reduce-{s}" not in st.claims:
            actions.append(Action(START_REDUCE, s))
            break
        actions += _failures(st, plan, s, protocol.REDUCE, r, now, check_deadlines, f"reduce-{s}")
        if len(st.done[(s, protocol.REDUCE)]) < r:
            break
        if last:
            if "commit" not in st.claims:
                actions.append(Action(COMMIT))
        elif f"map-{s + 1}" not in st.claims:
            actions.append(Action(START_MAP, s + 1))
            break
    return actions


def _failures(st: JobState, plan: Plan, s: int, phase: str,
              tasks: Iterable[int] | int, now: float, check_deadlines: bool,
              phase_claim: str) -> list[Action]:
    out: list[Action] = []
    done = st.done[(s, phase)]
    opts, limit = plan.options, plan.silent_after_s
    slow = (speculation_after(st, opts.speculation_threshold, s, phase, tasks)
            if check_deadlines and opts.speculation and isinstance(tasks, int) else None)
    for t in range(tasks) if isinstance(tasks, int) else tasks:
        if t in done:
            continue
        starts, errs = st.starts.get((s, phase, t), {}), st.errors.get((s, phase, t), set())
        retried = {a for a in range(1, opts.max_attempts + 1) if retry_claim(s, phase, t, a) in st.claims}
        latest = max(set(starts) | errs | retried | {0})
        failed = latest in errs
        if not failed and check_deadlines:
            if admission.enabled(plan):  # an attempt waiting for a slot is not running yet
                began = starts.get(latest) or st.claims.get(protocol.admit_claim(s, phase, t, latest))
            else:
                began = starts.get(latest) or st.claims.get(
                    retry_claim(s, phase, t, latest) if latest else phase_claim)
            if began is not None and now - began > limit:
                out.append(Action(TIMEOUT, s, phase, t, latest, began))
                failed = True
            elif (slow is not None and (started := starts.get(latest)) is not None and now - started > slow
                  and latest + 1 < opts.max_attempts and all(a in errs for a in range(latest))):
                out.append(Action(SPECULATE, s, phase, t, latest + 1))  # one backup per straggler
        if failed:
            if latest + 1 < opts.max_attempts:
                out.append(Action(RETRY, s, phase, t, latest + 1))
            else:
                out.append(Action(FAIL, s, phase, t, latest))
    return out


def speculation_after(st: JobState, threshold: float, s: int, phase: str, n: int) -> float | None:
    """Seconds after which a running attempt is a straggler: ``speculation_threshold`` x the median
    duration of the phase's finished tasks (None until at least half of them finished)."""
    durations: list[float] = []
    for t in st.done[(s, phase)]:
        finished = st.done_at.get((s, phase, t))
        if not finished:
            continue
        began = [v for v in st.starts.get((s, phase, t), {}).values() if v is not None and v <= finished]
        if began:
            durations.append(finished - max(began))
    if not durations or len(durations) * 2 < n:
        return None
    durations.sort()
    median = durations[len(durations) // 2]
    return max(threshold * median, SPECULATION_MIN_S)


# ---------------------------------------------------------------------------------------------
# Effects


_DONE_REASON = re.compile(r"^(map|reduce)-(\d+)-(\d+)-done$")
_ERROR_REASON = re.compile(r"^(map|reduce)-(\d+)-(\d+)-error$")


def coordinate(bucket: str, job_id: str, reason: str = "", now: float | None = None) -> dict[str, Any]:
    check = reason == CHECK_DEADLINES  # also: a serverless driver that died after its claim is retried
    try:
        plan = runtime.load_plan(bucket, job_id)
    except Exception as exc:
        if not (check and aws_errors.is_not_found(exc)):
            raise
        pending = driver.check_driver(bucket, job_id, time.time() if now is None else now)
        if pending is None:
            raise
        return pending  # not planned yet: nothing else to check
    if check and plan.options.driver == "lambda":  # planned, maybe not fanned out yet
        driver.check_driver(bucket, job_id, time.time() if now is None else now)
    out = _coordinate(bucket, job_id, plan, reason, now)
    if admission.enabled(plan):  # also when the job ended: it withdraws from the stack's budget
        st = scan(job_id, runtime.list_keys(bucket, protocol.status_prefix(job_id)))
        out["admitted"] = admission.admit(bucket, job_id, plan, st, time.time() if now is None else now,
                                          ask_others=reason != admission.ADMIT)
    return out


def _coordinate(bucket: str, job_id: str, plan: Plan, reason: str, now: float | None) -> dict[str, Any]:
    done = _DONE_REASON.match(reason)
    st: JobState | None = None
    cancelled: bool | None = None  # read with the state after a phase, else when an action is due
    if done:
        phase, step, task = done.group(1), int(done.group(2)), int(done.group(3))
        if step < len(plan.steps):
            if not phase_complete(bucket, job_id, plan, step, phase, task):
                return {"state": protocol.RUNNING, "actions": []}
            st, cancelled = _state_after_phase(bucket, job_id, plan, step, phase)
    failed = _ERROR_REASON.match(reason)
    if failed and int(failed.group(2)) < len(plan.steps):
        return _task_failed(bucket, job_id, plan, failed.group(1), int(failed.group(2)),
                            int(failed.group(3)))
    if st is None:
        st = scan(job_id, runtime.list_keys(bucket, protocol.status_prefix(job_id)))
    if st.terminal:
        return {"state": sorted(st.terminal)[0], "actions": []}
    now = time.time() if now is None else now
    actions = decide(plan, st, now, reason == CHECK_DEADLINES)
    if not actions:
        return {"state": protocol.RUNNING, "actions": []}
    if runtime.exists(bucket, protocol.cancel_key(job_id)) if cancelled is None else cancelled:
        return {"state": "cancelling", "actions": []}
    stopped = _spend_guard(bucket, job_id, plan, actions)
    if stopped is not None:
        return stopped
    fails = [a for a in actions if a.kind == FAIL]
    if fails:  # the job fails: record timeouts for the record, start nothing else
        actions = [a for a in actions if a.kind == TIMEOUT] + fails[:1]
    taken: list[list[Any]] = []
    for action in actions:
        if _perform(bucket, job_id, plan, action):
            taken.append(action.report())
    return {"state": protocol.RUNNING, "actions": taken}


# ---------------------------------------------------------------------------------------------
# The spend guard (``max_cost_usd``): checked when a phase completes, before the next one starts


TRANSITIONS = (START_REDUCE, START_MAP, COMMIT)


def completed_phases(plan: Plan, action: Action) -> list[tuple[int, str]]:
    """The ``(step, phase)`` s complete when ``action`` (a phase transition) is due (pure)."""
    done: list[tuple[int, str]] = []
    for sp in plan.steps:
        if action.kind == START_MAP and action.step is not None and sp.index >= action.step:
            break
        done.append((sp.index, protocol.MAP))
        if action.kind == START_REDUCE and sp.index == action.step:
            break
        if sp.num_reducers:
            done.append((sp.index, protocol.REDUCE))
    return done


def over_budget(plan: Plan, spent_usd: float, action: Action) -> str | None:
    """Why the job stops before ``action``, or None while its tasks' spend is within
    ``max_cost_usd`` (pure)."""
    limit = plan.options.max_cost_usd
    if limit is None or spent_usd <= limit:
        return None
    what = {START_REDUCE: f"the reduce phase of step {action.step}",
            START_MAP: f"the map phase of step {action.step}", COMMIT: "the commit"}[action.kind]
    estimated = plan.estimate.get("usd")
    return (f"max_cost_usd={limit:g}: the job's tasks have spent ${spent_usd:.6f} (their billed GB-s and "
            f"requests), more than the limit; stopped before {what}"
            + (f" (the planner estimated ${estimated:.6f})" if estimated is not None else ""))


def _spend_guard(bucket: str, job_id: str, plan: Plan, actions: list[Action]) -> dict[str, Any] | None:
    """Stop the job (cancel marker, commit claim, FAILED with the reason) when a phase transition is
    due and its finished tasks have spent more than ``max_cost_usd``; None when it may go on."""
    transition = next((a for a in actions if a.kind in TRANSITIONS), None)
    if transition is None or not priced(plan):
        return None
    spent = sum(float(entry.get(SPEND_FIELD) or 0.0)
                for step, phase in completed_phases(plan, transition)
                for entry in phase_summaries(bucket, job_id, plan, step, phase))
    reason = over_budget(plan, spent, transition)
    if reason is None:
        return None
    runtime.put_bytes(bucket, protocol.cancel_key(job_id), b"max_cost_usd")
    if _claim(bucket, job_id, "commit", "max_cost_usd"):
        fail_job(bucket, job_id, reason, phase=transition.kind,
                 error={"error_type": "CostLimitError", "message": reason})
    return {"state": protocol.FAILED, "actions": [["stop", "max_cost_usd"]]}


def _task_failed(bucket: str, job_id: str, plan: Plan, phase: str, step: int, task: int) -> dict[str, Any]:
    """Retry or fail one task after its error notification, listing only that task's keys."""
    prefix = protocol.status_prefix(job_id)
    objects = (runtime.list_keys(bucket, protocol.phase_status_prefix(job_id, step, phase) + f"{task:05d}.")
               + runtime.list_keys(bucket, prefix + "job/")
               + runtime.list_keys(bucket, protocol.claim_key(job_id, f"retry-{step}-{phase}-{task}-")))
    st = scan(job_id, objects)
    if st.terminal:
        return {"state": sorted(st.terminal)[0], "actions": []}
    actions = _failures(st, plan, step, phase, [task], time.time(), False, "")
    if not actions or runtime.exists(bucket, protocol.cancel_key(job_id)):
        return {"state": protocol.RUNNING, "actions": []}
    return {"state": protocol.RUNNING,
            "actions": [a.report() for a in actions if _perform(bucket, job_id, plan, a)]}


def phase_complete(bucket: str, job_id: str, plan: Plan, step: int, phase: str, task: int) -> bool:
    """Whether ``task``'s completion may have completed its phase, with a few small requests.

    Walks a tree of tally markers (fan-in 10): HEAD the tally one level up (there already: a
    later finisher climbed, stop); list the done markers (tallies) of the task's group of ten; if
    all are there, put-if-absent the group's tally one level up and repeat. Only the put-if-absent
    winner climbs; since every completer lists after writing its own marker, the last one to
    finish a group always sees it complete. True for exactly one climber at the root; the caller
    then decides (a lost climb is caught by the watcher's periodic full call).

    A tally's body is the summaries (:data:`SUMMARY_FIELDS`) of its group's done markers in task
    order, so the root tally lists the whole phase (:func:`phase_summaries`).
    """
    n = plan.tasks(step, phase)
    level, index = 0, task
    while True:
        last = (n - 1) // 10**level
        if last <= 0:
            return True
        group = index // 10
        lo, hi = group * 10, min(group * 10 + 9, last)
        up = protocol.tally_key(job_id, step, phase, level + 1, group)
        if runtime.exists(bucket, up):
            return False
        if level == 0:
            prefix = protocol.phase_status_prefix(job_id, step, phase) + f"{group * 10:05d}"[:-1]
            have = 0
            for obj in runtime.list_keys(bucket, prefix):
                k = protocol.parse_status_key(job_id, obj["Key"])
                if k is not None and k.kind == "done" and k.task is not None and k.task // 10 == group:
                    have += 1
        else:
            prefix = protocol.tally_prefix(job_id, step, phase, level) + f"{group * 10:07d}"[:-1]
            have = len(runtime.list_keys(bucket, prefix))
        if have < hi - lo + 1:
            return False
        body = json.dumps(_group_summaries(bucket, job_id, step, phase, level, lo, hi, priced(plan)),
                          separators=(",", ":"))
        if not runtime.put_if_absent(bucket, up, body):
            return False
        level, index = level + 1, group


SUMMARY_FIELDS = ("task", "output_key", "index", "bytes_out", "records_out")
#: a summary's cost of the task (its done marker priced, :func:`lambda_handlers.prices.attempt_usd`),
#: in the summaries of a job with ``max_cost_usd`` (the spend guard adds them up)
SPEND_FIELD = "usd"


def priced(plan: Plan) -> bool:
    """Whether the job's summaries carry each task's cost (it has a ``max_cost_usd`` to guard)."""
    return plan.options.max_cost_usd is not None


def summary(marker: dict[str, Any], priced: bool = False) -> dict[str, Any]:
    """What the map manifest and the commit need of a done marker (and, ``priced``, its cost)."""
    out = {k: marker[k] for k in SUMMARY_FIELDS if k in marker}
    if priced:
        out[SPEND_FIELD] = prices.attempt_usd(marker)
    return out


def _group_summaries(bucket: str, job_id: str, step: int, phase: str, level: int, lo: int,
                     hi: int, priced: bool = False) -> list[dict[str, Any]] | None:
    """The summaries of a complete group: its done markers' (level 0) or its tallies' (None if a
    tally has none, e.g. written by an older coordinator)."""
    if level == 0:
        keys = [protocol.done_marker_key(job_id, step, phase, t) for t in range(lo, hi + 1)]
        return [summary(m, priced) for m in ordered_parallel(lambda k: runtime.get_json(bucket, k), keys)]
    keys = [protocol.tally_key(job_id, step, phase, level, g) for g in range(lo, hi + 1)]
    out: list[dict[str, Any]] = []
    for body in ordered_parallel(lambda k: _get_tally(bucket, k), keys):
        if not isinstance(body, list):
            return None
        out += body
    return out


def _get_tally(bucket: str, key: str) -> Any:
    try:
        return runtime.get_json(bucket, key)
    except ValueError:  # an empty body: a tally without summaries
        return None


def phase_summaries(bucket: str, job_id: str, plan: Plan, step: int, phase: str) -> list[dict[str, Any]]:
    """Every done marker's :func:`summary` of a complete phase, in task order: the root tally's
    body in one GET, or (no root tally with summaries: one task, or a climb lost) every marker."""
    n = plan.tasks(step, phase)
    levels = 0
    while (n - 1) // 10**levels > 0:
        levels += 1
    if levels:
        try:
            body = _get_tally(bucket, protocol.tally_key(job_id, step, phase, levels, 0))
        except Exception as exc:
            if not aws_errors.is_not_found(exc):
                raise
            body = None
        if isinstance(body, list) and [e.get("task") for e in body] == list(range(n)):
            return body
    keys = [protocol.done_marker_key(job_id, step, phase, t) for t in range(n)]
    return [summary(m, priced(plan)) for m in ordered_parallel(lambda k: runtime.get_json(bucket, k), keys)]


def _state_after_phase(bucket: str, job_id: str, plan: Plan, step: int, phase: str) -> tuple[JobState, bool]:
    """The job's state when ``phase`` of ``step`` has just completed (the tally root said so):
    that phase and every earlier one done, plus the claims and job states (two small LISTs instead
    of the whole ``status/`` prefix, which holds 2 keys a task); and whether the job is cancelled
    (its cancel marker, read with them: the next transition is due, and its claim decides)."""
    def read(what: str) -> Any:
        if what == "cancel":
            return runtime.exists(bucket, protocol.cancel_key(job_id))
        return runtime.list_keys(bucket, what)

    claims, states, cancelled = ordered_parallel(  # three small reads at once: a job's critical path
        read, [protocol.claims_prefix(job_id), protocol.job_states_prefix(job_id), "cancel"])
    st = scan(job_id, claims + states)
    for s in range(step + 1):
        for ph in protocol.PHASES:
            if s < step or ph == protocol.MAP or phase == protocol.REDUCE:
                st.done[(s, ph)] = set(range(plan.tasks(s, ph)))
    return st, bool(cancelled)


def _claim(bucket: str, job_id: str, name: str, body: str = "") -> bool:
    return runtime.put_if_absent(bucket, protocol.claim_key(job_id, name), body)


def _perform(bucket: str, job_id: str, plan: Plan, action: Action) -> bool:
    kind, s = action.kind, action.step
    if kind in (START_REDUCE, START_MAP):
        assert s is not None
        if not _claim(bucket, job_id, f"{kind}-{s}"):
            return False
        if kind == START_REDUCE:
            _write_map_manifest(bucket, job_id, plan, s)
        if admission.enabled(plan):  # the admission pass starts them as slots allow
            return True
        if kind == START_REDUCE:
            _invoke_all(bucket, job_id, protocol.EVENT_REDUCE, s, plan.steps[s].num_reducers)
        else:
            _invoke_all(bucket, job_id, protocol.EVENT_MAP, s, plan.steps[s].num_map_tasks)
        return True
    if kind in (TIMEOUT, RETRY, SPECULATE, FAIL):
        phase, t, a = action.phase, action.task, action.attempt
        assert s is not None and phase is not None and t is not None and a is not None
        if kind == TIMEOUT:
            _write_timeout(bucket, job_id, plan, s, phase, t, a, action.started or time.time())
            if admission.enabled(plan):
                admission.release_attempt(bucket, job_id, admission.Attempt(s, phase, t, a))
            return True
        if kind == FAIL:
            detail = _error_detail(bucket, job_id, s, phase, t, a)
            reason = (f"{phase} task {t} of step {s} failed {a + 1} time(s); last error: "
                      f"{detail.get('error_type', 'Error')}: {detail.get('message', '')}")
            return fail_job(bucket, job_id, reason, step=s, phase=phase, task=t, attempt=a, error=detail)
        if not _claim(bucket, job_id, retry_claim(s, phase, t, a)):
            return False
        if not admission.enabled(plan):  # else the admission pass starts it when a slot frees
            runtime.invoke(protocol.task_event(phase, bucket, job_id, s, t, a))
        return True
    if kind == COMMIT:
        if not _claim(bucket, job_id, "commit", "commit"):
            return False
        try:
            commit(bucket, job_id, plan)
        except Exception as exc:
            log.exception("commit of job %s failed", job_id)
            fail_job(bucket, job_id, f"commit failed: {type(exc).__name__}: {exc}", phase="commit",
                     error={"error_type": type(exc).__name__, "message": str(exc)})
        return True
    raise ValueError(f"unknown action {action!r}")


def _invoke_all(bucket: str, job_id: str, kind: str, step: int, n: int) -> None:
    events = [protocol.task_event(kind, bucket, job_id, step, t, 0) for t in range(n)]
    for _ in ordered_parallel(runtime.invoke, events):
        pass


def _write_map_manifest(bucket: str, job_id: str, plan: Plan, step: int) -> None:
    markers = phase_summaries(bucket, job_id, plan, step, protocol.MAP)
    runtime.put_final_json(bucket, protocol.map_manifest_key(job_id, step),
                           {"step": step, "outputs": [[m["output_key"], m["index"]] for m in markers]})


def _error_detail(bucket: str, job_id: str, s: int, phase: str, t: int, a: int) -> dict[str, Any]:
    try:
        detail: dict[str, Any] = runtime.get_json(bucket, protocol.error_detail_key(job_id, s, phase, t, a))
        return detail
    except Exception as exc:
        if aws_errors.is_not_found(exc):
            return {"error_type": "Unknown", "message": "the attempt left no error detail"}
        raise


def _write_timeout(bucket: str, job_id: str, plan: Plan, s: int, phase: str, t: int, a: int,
                   began: float) -> None:
    timeout = plan.limits.task_timeout_s
    exc = runtime.TaskFailedError(
        f"no result {time.time() - began:.0f}s after the attempt started (function timeout "
        f"{timeout}s): it timed out or ran out of memory; see the function's logs")
    runtime.write_error(bucket, {"job_id": job_id, "step": s, "task": t, "attempt": a}, phase, exc)


fail_job = runtime.fail_job


# ---------------------------------------------------------------------------------------------
# Commit


def commit(bucket: str, job_id: str, plan: Plan) -> dict[str, Any]:
    """Move the winning staged parts to the output; ``_SUCCESS`` last; then done.json."""
    out = plan.output
    ob, prefix, fmt = out.bucket, out.prefix, out.format
    last = plan.last_step
    phase = protocol.REDUCE if plan.steps[last].num_reducers else protocol.MAP
    if out.table is not None:
        return commit_table(bucket, job_id, plan, phase_summaries(bucket, job_id, plan, last, phase))
    ext = writers.extension(fmt)

    success_key = prefix + protocol.SUCCESS_MARKER
    s3 = runtime.s3()

    def read(what: str) -> Any:
        return phase_summaries(bucket, job_id, plan, last, phase) if what == "markers" else runtime.exists(
            ob, success_key)

    # two reads at once (a job's critical path): the parts' summaries, and whether the output
    # holds a committed result
    markers, committed_before = ordered_parallel(read, ["markers", "success"])
    if committed_before:
        if not out.overwrite:
            raise CommitRefusedError(
                f"output s3://{ob}/{prefix} already committed (it has _SUCCESS); write to a new "
                "output location or pass overwrite=True")
        s3.delete_object(Bucket=ob, Key=success_key)

    parts: list[dict[str, Any]] = [
        {"key": prefix + protocol.part_name(i, ext), "size": int(m.get("bytes_out", 0)),
         "records": int(m.get("records_out", 0))} for i, m in enumerate(markers)]
    if not writers.keeps_empty_parts(fmt):
        kept = [(m, p) for m, p in zip(markers, parts, strict=True) if p["records"]]
        markers, parts = [m for m, _ in kept], [p for _, p in kept]

    def copy(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
        marker, part = pair
        s3.copy_object(Bucket=ob, Key=part["key"], CopySource={"Bucket": bucket, "Key": marker["output_key"]})

    ours = {p["key"] for p in parts}

    def copy_or_list(pair: Any) -> Any:  # the copies, and last the listing of the output's parts
        if pair is None:
            return runtime.list_keys(ob, prefix)
        copy(pair)
        return None

    # at once (ours are never stale): a one-part job's copy and listing cost one round trip
    *_, listed = ordered_parallel(copy_or_list, [*zip(markers, parts, strict=True), None])
    stale = [o["Key"] for o in listed if o["Key"] not in ours and _is_part(o["Key"][len(prefix):])]
    for i in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=ob, Delete={"Objects": [{"Key": k} for k in stale[i:i + 1000]],
                                             "Quiet": True})
    committed = runtime.now_iso()
    manifest = {"job_id": job_id, "parts": parts, "records": sum(p["records"] for p in parts),
                "inputs": list(out.inputs), "format": fmt, "committed": committed}
    runtime.put_json(ob, success_key, manifest)
    done = {"job_id": job_id, "state": protocol.SUCCEEDED, "manifest": f"s3://{ob}/{success_key}",
            "parts": [f"s3://{ob}/{p['key']}" for p in parts], "records": manifest["records"],
            "committed": committed}
    runtime.put_json(bucket, protocol.done_key(job_id), done)
    runtime.put_bytes(bucket, protocol.job_state_key(job_id, protocol.SUCCEEDED), b"")
    return done


def commit_table(bucket: str, job_id: str, plan: Plan, markers: list[dict[str, Any]]) -> dict[str, Any]:
    """A DynamoDB output: apply the winning tasks' staged items (see :mod:`.table_commit`), then
    write the job's manifest."""
    out = plan.output
    assert out.table is not None
    applied = table_commit.commit_items(bucket, job_id, out.table.table,
                                        [m["output_key"] for m in markers], out.overwrite)
    committed = runtime.now_iso()
    per_task = [int(m.get("records_out", 0)) for m in markers]
    manifest = {"job_id": job_id, "table": out.table.table, "items": sum(per_task),
                "items_per_task": per_task, "records": sum(per_task), "removed": applied["removed"],
                "inputs": list(out.inputs), "format": out.format, "committed": committed}
    key = protocol.table_manifest_key(job_id)
    runtime.put_json(bucket, key, manifest)
    done = {"job_id": job_id, "state": protocol.SUCCEEDED, "manifest": f"s3://{bucket}/{key}",
            "table": out.table.table, "parts": [], "records": manifest["records"], "committed": committed}
    runtime.put_json(bucket, protocol.done_key(job_id), done)
    runtime.put_bytes(bucket, protocol.job_state_key(job_id, protocol.SUCCEEDED), b"")
    return done


def _is_part(rest: str) -> bool:
    return rest.startswith(protocol.PART_PREFIX) and "/" not in rest
