"""Admission: a job's tasks start only into free slots, so no more than a budget run at once.

A job with ``max_running_tasks`` (and every job of a stack deployed with a stack-wide
``max_running_tasks``) is never fanned out directly: the submitter asks the coordinator to admit,
and every coordinator call ends with an admission pass (:func:`admit`). Running attempts are
bounded by *slots*, not by counting: slot ``i`` of a pool is a sequence of put-if-absent
generations ``<prefix><i>/<g>``. An attempt is started only by the coordinator call that created
generation ``g + 1`` of a slot whose generation ``g`` is free (``<g>.free`` exists), or of a slot
never used (``g = 0``). Exactly one call creates each generation, so at most one attempt runs per
slot, whatever number of coordinators run concurrently and however stale their listing is: a
listing that missed a newer generation makes the claim fail, never succeed twice.

The delivery of an attempt that runs first claims ``.run`` beside its slots (put-if-absent: Lambda
may deliver an async event twice; the second does nothing). An attempt writes ``.free`` beside
each of its slots when it ends (done, failed, lost to another
attempt, or cancelled), before it notifies the coordinator, which then admits the next waiting
attempt. An attempt presumed dead (silent past the function timeout plus the grace) is freed by the
coordinator that records its timeout. An attempt also needs the put-if-absent claim
``admit-<step>-<phase>-<task>-<attempt>`` (body: its slot keys), so two coordinators never start
the same attempt twice; the loser frees the slots it took.

Two pools: the job's own (``max_running_tasks`` slots under the job's prefix) and the stack's
(``budget/slots/``, the stack setting). An attempt under both holds one slot of each. The stack's
pool is shared fairly: a job waiting for it writes ``budget/jobs/<job_id>``; a job takes stack
slots only while it runs fewer than ``ceil(budget / jobs waiting)``; a job that frees a slot it may
not reuse asks the waiting jobs' coordinators to admit (``admit`` calls do not ask further).

Old generations are deleted once superseded and older than the silence limit (a coordinator that
listed before a generation existed has finished by then), so a pool's LIST stays about one key
per slot. Standard library and boto3 only.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambda_handlers import protocol, runtime
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.plan import Plan

if TYPE_CHECKING:
    from lambda_handlers.coordinator import JobState

log = logging.getLogger("smr.admission")
ADMIT = "admit"  # the coordinate reason that asks only for an admission pass
MAX_POKES = 20  # waiting jobs one pass asks to admit


def enabled(plan: Plan) -> bool:
    """Whether the job's tasks start through admission (a job or a stack-wide cap is set)."""
    return bool(plan.options.max_running_tasks or plan.limits.stack_max_running_tasks)


@dataclass(frozen=True)
class Attempt:
    step: int
    phase: str
    task: int
    attempt: int

    @property
    def claim(self) -> str:
        return protocol.admit_claim(self.step, self.phase, self.task, self.attempt)

    def event(self, bucket: str, job_id: str, slots: list[str]) -> dict[str, Any]:
        kind = protocol.EVENT_MAP if self.phase == protocol.MAP else protocol.EVENT_REDUCE
        return protocol.task_event(kind, bucket, job_id, self.step, self.task, self.attempt, slots)


_ADMIT_CLAIM = "admit-"


def parse_admit_claim(name: str) -> Attempt | None:
    if not name.startswith(_ADMIT_CLAIM):
        return None
    try:
        step, phase, task, attempt = name[len(_ADMIT_CLAIM):].split("-")
        return Attempt(int(step), phase, int(task), int(attempt))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# What the job wants and holds (pure, from the coordinator's JobState)


def waiting(plan: Plan, st: JobState) -> list[Attempt]:
    """Attempts due but not admitted: retries and backups first, then first attempts in order.

    A phase's first attempts are due once it is open (step 0's map phase always; the others once
    the coordinator claimed ``map-<s>`` / ``reduce-<s>``); a later attempt once its retry claim
    exists. Done tasks want nothing.
    """
    first: list[Attempt] = []
    later: list[Attempt] = []
    for s in range(len(plan.steps)):
        for phase in protocol.PHASES:
            n = plan.tasks(s, phase)
            if not n or not ((s == 0 and phase == protocol.MAP) or f"{phase}-{s}" in st.claims):
                continue
            done = st.done[(s, phase)]
            for t in range(n):
                if t in done:
                    continue
                if protocol.admit_claim(s, phase, t, 0) not in st.claims:
                    first.append(Attempt(s, phase, t, 0))
                for a in range(1, plan.options.max_attempts):
                    if (protocol.retry_claim(s, phase, t, a) in st.claims
                            and protocol.admit_claim(s, phase, t, a) not in st.claims):
                        later.append(Attempt(s, phase, t, a))
    return later + first


def running(plan: Plan, st: JobState) -> int:
    """Admitted attempts that have not ended (their task not done, no error marker)."""
    count = 0
    for name in st.claims:
        a = parse_admit_claim(name)
        if (a is not None and a.step < len(plan.steps) and a.task not in st.done[(a.step, a.phase)]
                and a.attempt not in st.errors.get((a.step, a.phase, a.task), set())):
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Slot pools


@dataclass
class Pool:
    """One pool's slots as one LIST saw them: the next free generation of each free slot."""

    prefix: str
    size: int
    free: list[str] = field(default_factory=list)  # slot keys to try to create, in order
    stale: list[str] = field(default_factory=list)  # superseded generations safe to delete

    @classmethod
    def listed(cls, prefix: str, size: int, objects: Iterable[dict[str, Any]], now: float,
               keep_s: float) -> Pool:
        gens: dict[int, dict[int, float | None]] = {}
        freed: set[tuple[int, int]] = set()
        keys: dict[tuple[int, int], list[str]] = {}
        for obj in objects:
            parsed = protocol.parse_slot_key(prefix, obj["Key"])
            if parsed is None:
                continue
            i, g, marker = parsed
            keys.setdefault((i, g), []).append(obj["Key"])
            if marker == protocol.SLOT_FREE:
                freed.add((i, g))
            elif not marker:
                gens.setdefault(i, {})[g] = epoch_seconds(obj.get("LastModified"))
        pool = cls(prefix, size)
        for i in range(size):
            claimed = gens.get(i, {})
            latest = max(claimed, default=-1)
            if latest < 0 or (i, latest) in freed:
                pool.free.append(protocol.slot_key(prefix, i, latest + 1))
        for (i, g), ks in keys.items():
            latest = max(gens.get(i, {}), default=-1)
            made = gens.get(i, {}).get(g)
            if g < latest and (made is None or now - made > keep_s):
                pool.stale += ks
        random.shuffle(pool.free)  # concurrent coordinators contend less for the same slot
        return pool

    def take(self, bucket: str, holder: str) -> str | None:
        """Create the next generation of a free slot (put-if-absent); its key, or None if none."""
        while self.free:
            key = self.free.pop()
            if runtime.put_if_absent(bucket, key, holder):
                return key
        return None

    def give_back(self, key: str) -> None:
        """A slot taken but not used: its successor generation is free to take."""
        parsed = protocol.parse_slot_key(self.prefix, key)
        if parsed is not None:
            self.free.append(protocol.slot_key(self.prefix, parsed[0], parsed[1] + 1))


def release(bucket: str, slots: Iterable[str]) -> None:
    """Free slots (the attempt holding them ended, or never started)."""
    for key in slots:
        runtime.put_bytes(bucket, protocol.slot_free_key(key), b"")


def release_attempt(bucket: str, job_id: str, attempt: Attempt) -> None:
    """Free the slots of an admitted attempt presumed dead (they are named in its admit claim)."""
    try:
        slots = json.loads(runtime.get_bytes(bucket, protocol.claim_key(job_id, attempt.claim)) or b"[]")
    except Exception as exc:
        from lambda_handlers.aws_errors import is_not_found

        if is_not_found(exc):
            return  # never admitted
        raise
    release(bucket, [k for k in slots if isinstance(k, str)])


def _delete(bucket: str, keys: list[str]) -> None:
    for i in range(0, len(keys), 1000):
        try:
            runtime.s3().delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
        except Exception:  # tidying only: the next pass retries
            log.exception("could not delete %d old slot generations", len(keys))


# ---------------------------------------------------------------------------------------------
# The admission pass


@dataclass
class StackShare:
    """The stack-wide pool as this job may use it now."""

    room: int  # stack slots this job may still take (its fair share minus what it runs)
    waiting_jobs: list[str]  # other jobs waiting for stack slots (asked to admit when we leave some)


def _stack_share(bucket: str, job_id: str, plan: Plan, st: JobState, wants: bool, now: float) -> StackShare:
    budget = plan.limits.stack_max_running_tasks
    limit = plan.silent_after_s
    others: list[str] = []
    mine = protocol.stack_demand_key(job_id)
    have_mine = False
    stale: list[str] = []
    for obj in runtime.list_keys(bucket, protocol.stack_demand_prefix()):
        if obj["Key"] == mine:
            have_mine = True
            continue
        made = epoch_seconds(obj.get("LastModified"))
        if made is not None and now - made > limit:
            stale.append(obj["Key"])  # its job has not asked for a slot for a while: gone
        else:
            others.append(obj["Key"][len(protocol.stack_demand_prefix()):])
    if wants:
        runtime.put_bytes(bucket, mine, b"")  # (re)announce: its age says we are still here
    elif have_mine:
        stale.append(mine)
    if stale:
        _delete(bucket, stale)
    share = math.ceil(budget / (len(others) + (1 if wants else 0) or 1))
    return StackShare(room=share - running(plan, st), waiting_jobs=others)


def admit(bucket: str, job_id: str, plan: Plan, st: JobState, now: float,
          ask_others: bool = True) -> list[list[Any]]:
    """Start waiting attempts into free slots; what was started, as ``[step, phase, task, attempt]``.

    :param st: the job's state from a LIST taken now (claims included).
    :param ask_others: whether to ask waiting jobs to admit when this pass leaves stack slots
        free (False for a pass that was itself asked: asks never beget asks).
    """
    if st.terminal or runtime.exists(bucket, protocol.cancel_key(job_id)):
        if plan.limits.stack_max_running_tasks:
            _delete(bucket, [protocol.stack_demand_key(job_id)])
        return []
    wanted = waiting(plan, st)
    keep_s = float(plan.silent_after_s)
    pools: list[Pool] = []
    if plan.options.max_running_tasks:
        prefix = protocol.job_slots_prefix(job_id)
        pools.append(Pool.listed(prefix, plan.options.max_running_tasks,
                                 runtime.list_keys(bucket, prefix), now, keep_s))
    share: StackShare | None = None
    if plan.limits.stack_max_running_tasks:
        share = _stack_share(bucket, job_id, plan, st, bool(wanted), now)
        prefix = protocol.stack_slots_prefix()
        pools.append(Pool.listed(prefix, plan.limits.stack_max_running_tasks,
                                 runtime.list_keys(bucket, prefix), now, keep_s))
    started: list[list[Any]] = []
    for attempt in wanted:
        if share is not None and share.room <= 0:
            break
        holder = json.dumps({"job_id": job_id, "attempt": [attempt.step, attempt.phase, attempt.task,
                                                           attempt.attempt]})
        held: list[tuple[Pool, str]] = []
        for pool in pools:
            key = pool.take(bucket, holder)
            if key is None:
                break
            held.append((pool, key))
        slots = [key for _, key in held]
        if len(held) < len(pools) or not runtime.put_if_absent(
                bucket, protocol.claim_key(job_id, attempt.claim), json.dumps(slots)):
            release(bucket, slots)
            for pool, key in held:
                pool.give_back(key)
            if len(held) < len(pools):
                break  # a pool has no free slot left
            continue  # another coordinator admitted this attempt
        try:
            runtime.invoke(attempt.event(bucket, job_id, slots))
        except Exception:  # the attempt is presumed dead after the silence limit, then retried
            log.exception("could not start %s of job %s", attempt, job_id)
            release(bucket, slots)
            continue
        started.append([attempt.step, attempt.phase, attempt.task, attempt.attempt])
        if share is not None:
            share.room -= 1
    for pool in pools:
        if pool.stale:
            _delete(bucket, pool.stale)
    if share is not None and ask_others and share.waiting_jobs and pools[-1].free:
        for other in share.waiting_jobs[:MAX_POKES]:
            runtime.notify_coordinator(bucket, other, ADMIT)
    return started
