"""The cost model the planner prices a job with: wall seconds and dollars of one sizing on AWS.

Pure and fast (a few microseconds a sizing, so the planner searches a few hundred of them):
:func:`estimate` models one sizing (map tasks, reducers, memory, concurrency) of a
:class:`Workload` at the :class:`Rates` measured by ``bench/run.py``; :func:`search` models a grid
of sizings, :func:`pareto_front` keeps the ones no other beats on both time and cost, and
:func:`choose` picks one for an :class:`Objective` (``optimize="time"|"cost"``, ``max_cost_usd``,
``deadline_s``). ``bench/model.py`` validates the model against a local run and prints it next to
the published peers; the assumptions are listed there. Standard library only.

A job the planner knows only by its input size (:meth:`Workload.of_input`) is modelled at its
upper bound: every input byte is shuffled and written out (no combiner shrinks it), so an estimate
refused against ``max_cost_usd`` is one the job cannot be sure to stay under.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lambda_handlers import protocol
from lambda_handlers.options import PlanError
from lambda_handlers.prices import DEFAULT_PRICES, Prices, cost_breakdown

FULL_VCPU_MB = 1769  # Lambda: one full vCPU at 1,769 MB, CPU proportional to memory below


@dataclass(frozen=True)
class Workload:
    """What the job reads and shuffles. The defaults are AMPLab Q2 over the 126.8 GB uservisits
    table; with ``groups`` 0 the shuffle and the output are ``input_bytes`` x their ratios."""

    input_bytes: float = 126.8e9
    rows: float = 775e6
    groups: float = 2_255_536
    output_bytes_per_group: float = 32.0  # one jsonl line: {"key": "123.45.6", "value": 1234.56}
    shuffle_ratio: float = 1.0  # groups 0: shuffled bytes per input byte
    output_ratio: float = 1.0  # groups 0: output bytes per shuffled byte

    @classmethod
    def of_input(cls, input_bytes: float) -> Workload:
        """A job known only by its input size: the upper bound (see the module docstring)."""
        return cls(input_bytes=float(input_bytes), rows=0.0, groups=0.0)

    def map_output_bytes(self, map_tasks: int, shuffle_bytes_per_key: float) -> float:
        """Bytes one map task writes (after its combiner)."""
        if self.groups:
            return combined_keys(self.rows / map_tasks, self.groups) * shuffle_bytes_per_key
        return self.input_bytes / map_tasks * self.shuffle_ratio

    def output_bytes(self, shuffle_bytes: float) -> float:
        return self.groups * self.output_bytes_per_group if self.groups else shuffle_bytes * self.output_ratio


@dataclass(frozen=True)
class Rates:
    """Measured on this machine (per core) or assumed for AWS; see ``bench/model.py``."""

    map_cpu_mb_s: float = 40.0  # input MB per CPU-second of a map task (parse, combine, encode)
    reduce_cpu_mb_s: float = 30.0  # shuffle MB per CPU-second of a reduce task
    shuffle_bytes_per_key: float = 24.0
    read_mb_s: float = 80.0
    write_mb_s: float = 60.0
    full_network_mb: int = 1024  # below this memory, S3 throughput shrinks proportionally
    request_latency_s: float = 0.03
    parallel_gets: int = 16  # a reducer's concurrent ranged GETs
    cold_start_s: float = 0.6
    invoke_rate: float = 400.0  # async invokes issued per second by one driver
    coordinator_s: float = 0.06  # one coordinator call, warm: a HEAD and a small LIST
    finish_spread: float = 0.2  # tasks of a phase finish within this fraction of a task's time
    poll_s: float = 1.0  # watcher LIST interval
    overlap: bool = True  # the split is read ahead on a thread while the mapper runs


DEFAULT_RATES = Rates()


@dataclass(frozen=True)
class Sizing:
    """How a job is cut: map tasks, reducers, the functions' memory and how many run at once."""

    map_tasks: int = 1000
    reducers: int = 32
    memory_mb: int = FULL_VCPU_MB
    concurrency: int = 1000


@dataclass(frozen=True)
class Modelled:
    """One sizing's modelled run."""

    sizing: Sizing
    map_task_s: float
    reduce_task_s: float
    wall_s: float
    shuffle_bytes: float
    lambda_gb_seconds: float
    lambda_requests: int
    s3_requests: dict[str, int]
    cost: dict[str, float]

    @property
    def usd(self) -> float:
        return float(self.cost["total"])

    def summary(self) -> dict[str, Any]:
        """What a plan and a result show of it: the sizing, seconds and dollars."""
        s = self.sizing
        return {"map_tasks": s.map_tasks, "reducers": s.reducers, "memory_mb": s.memory_mb,
                "wall_s": round(self.wall_s, 3), "usd": round(self.usd, 6),
                "lambda_gb_seconds": round(self.lambda_gb_seconds, 3),
                "lambda_invocations": self.lambda_requests}


def combined_keys(rows_per_task: float, groups: float) -> float:
    """Distinct keys a combiner leaves out of ``rows_per_task`` rows (uniform occupancy)."""
    return groups * -math.expm1(-rows_per_task / groups)


def requests_per_job(map_tasks: int, reducers: int, *, polls: int = 0,
                     input_objects: int = 1) -> dict[str, int]:
    """S3 requests of one single-step job with ``map_tasks`` splits and ``reducers`` reducers.

    Per task, as the engine makes them (counted by function in process): a map task HEADs the
    cancel marker, PUTs a start marker, GETs plan.json and job.pkl, ranged-GETs its split twice
    (the split and the straddling line), PUTs its data object and its done marker. Each task's
    done notification (one coordinator call) HEADs the group's tally and LISTs its group of ten;
    the last finisher of a group GETs its ten markers (tallies) and PUTs the tally one level up
    (~1 per 9 tasks over all levels). The call that completes a phase LISTs the claims and job
    states, claims the next phase and (maps) GETs the root tally and PUTs the manifest; a reducer
    GETs plan, job.pkl and the manifest, then one slice per map task; commit GETs the root tally,
    HEADs _SUCCESS, copies R parts and LISTs the output. The watcher LISTs the status prefix
    (``2 (M + R)`` keys, 1,000 a page) once a poll.
    """
    m, r = map_tasks, reducers
    tallies = sum(math.ceil(n / 10**level) for n in (m, r) if n > 1
                  for level in range(1, max(1, math.ceil(math.log10(n))) + 1))
    status_pages = max(1, math.ceil((2 * (m + r) + 8) / 1000))
    return {
        # job.pkl, plan; start/data/done per task; tallies; manifest; 2 claims; _SUCCESS, done, state
        "PUT": 2 + 3 * m + 3 * r + tallies + 1 + 2 + 3,
        # map: plan, pkl, split, straddle; climbers: every marker and tally once; manifest and
        # commit: the root tallies; reduce: plan, pkl, manifest, M slices
        "GET": 4 * m + (m + r + tallies) + 2 + r * (3 + m),
        # cancel marker per task; tally check per notification; cancel + _SUCCESS at the transitions
        "HEAD": (m + r) + (m + r) + 3,
        "LIST": (math.ceil(input_objects / 1000) + (m + r) + tallies + 2 * 2 + 1
                 + polls * status_pages),
        "COPY": r,
    }


def coordinator_calls(map_tasks: int, reducers: int) -> int:
    """Coordinator invokes: one per task of a phase of several tasks (a one-task phase's task
    makes the coordinator's call in its own function)."""
    return sum(tasks for tasks in (map_tasks, reducers) if tasks > 1)


def lambda_invocations(map_tasks: int, reducers: int, map_output_bytes: float = float("inf")) -> int:
    """Lambda invokes of a one-step job: its tasks and their coordinator calls. A one-split,
    one-reducer job whose map wrote at most
    :data:`~lambda_handlers.protocol.NEXT_TASK_MAX_BYTES` runs its reducer in the
    mapper's function: one invoke in all."""
    inline_reducer = map_tasks == reducers == 1 and map_output_bytes <= protocol.NEXT_TASK_MAX_BYTES
    return map_tasks + reducers - inline_reducer + coordinator_calls(map_tasks, reducers)


def coordinator_environments(calls: int, task_s: float, rates: Rates) -> int:
    """Coordinator environments Lambda starts for ``calls`` notifications arriving within
    ``finish_spread`` x ``task_s`` (at least a second): arrival rate x time each call holds one."""
    spread = max(1.0, rates.finish_spread * task_s)
    return max(1, min(calls, math.ceil(calls * (rates.cold_start_s + rates.coordinator_s) / spread)))


def estimate(workload: Workload = Workload(), rates: Rates = Rates(), sizing: Sizing = Sizing(),
             prices: Prices = DEFAULT_PRICES) -> Modelled:
    """Wall time, GB-seconds, requests and cost of the job under ``sizing``."""
    w, q, p = workload, rates, sizing
    cpu_stretch = max(1.0, FULL_VCPU_MB / p.memory_mb)
    net = min(1.0, p.memory_mb / q.full_network_mb)
    q = replace(q, read_mb_s=q.read_mb_s * net, write_mb_s=q.write_mb_s * net)
    mb = 1e6
    split = w.input_bytes / p.map_tasks
    map_out = w.map_output_bytes(p.map_tasks, q.shuffle_bytes_per_key)
    shuffle = map_out * p.map_tasks
    read = split / mb / q.read_mb_s + 2 * q.request_latency_s
    compute = split / mb / q.map_cpu_mb_s * cpu_stretch
    write = map_out / mb / q.write_mb_s + 4 * q.request_latency_s
    map_task = (max(read, compute) if q.overlap else read + compute) + write + 3 * q.request_latency_s

    reduce_task = reduce_phase = 0.0  # a map-only job (reducers 0) writes its output from the maps
    if p.reducers:
        slice_in = shuffle / p.reducers
        gets = p.map_tasks  # one ranged GET per map output (a slice is far below a fetch piece)
        r_read = slice_in / mb / q.read_mb_s + math.ceil(gets / q.parallel_gets) * q.request_latency_s
        r_compute = slice_in / mb / q.reduce_cpu_mb_s * cpu_stretch
        out = w.output_bytes(shuffle) / p.reducers
        reduce_task = r_read + r_compute + out / mb / q.write_mb_s + 6 * q.request_latency_s
        waves_r = math.ceil(p.reducers / p.concurrency)
        reduce_phase = q.coordinator_s + p.reducers / q.invoke_rate + q.cold_start_s + waves_r * reduce_task

    waves_m = math.ceil(p.map_tasks / p.concurrency)
    plan_s = 1.0
    map_phase = p.map_tasks / q.invoke_rate + q.cold_start_s + waves_m * map_task
    commit = q.coordinator_s + math.ceil(p.reducers / q.parallel_gets) * 2 * q.request_latency_s
    wall = plan_s + map_phase + reduce_phase + commit + q.poll_s

    gb = p.memory_mb / 1024
    calls = coordinator_calls(p.map_tasks, p.reducers)
    coordinator_colds = ((coordinator_environments(p.map_tasks, map_task, q) if p.map_tasks > 1 else 0)
                         + (coordinator_environments(p.reducers, reduce_task, q) if p.reducers > 1 else 0))
    gb_s = gb * (p.map_tasks * (map_task + q.cold_start_s)
                 + p.reducers * (reduce_task + q.cold_start_s)
                 + calls * q.coordinator_s + coordinator_colds * q.cold_start_s + commit)
    requests = requests_per_job(p.map_tasks, p.reducers, polls=math.ceil(wall / q.poll_s),
                                input_objects=p.map_tasks)
    invocations = lambda_invocations(p.map_tasks, p.reducers, map_out)
    cost = cost_breakdown(gb_s, invocations, requests, prices).to_dict()
    return Modelled(p, map_task, reduce_task, wall, shuffle, gb_s, invocations, requests, cost)


def search(workload: Workload, rates: Rates, *, map_tasks: Iterable[int], reducers: Iterable[int],
           memory_mb: Iterable[int], concurrency: int, prices: Prices = DEFAULT_PRICES) -> list[Modelled]:
    """Every combination of the given map task counts, reducer counts and memory sizes, modelled."""
    reducer_options = tuple(reducers)
    memory_options = tuple(memory_mb)
    return [estimate(workload, rates, Sizing(m, r, mem, concurrency), prices)
            for m in map_tasks for r in reducer_options for mem in memory_options]


def dominates(a: Modelled, b: Modelled) -> bool:
    """``a`` is at least as fast and as cheap as ``b``, and strictly better on one of them."""
    return (a.wall_s <= b.wall_s and a.usd <= b.usd) and (a.wall_s < b.wall_s or a.usd < b.usd)


def pareto_front(options: Sequence[Modelled]) -> list[Modelled]:
    """The options no other option dominates, fastest first (each one cheaper than the one before)."""
    front: list[Modelled] = []
    for o in sorted(options, key=lambda o: (o.wall_s, o.usd)):
        if not front or o.usd < front[-1].usd:
            front.append(o)
    return front


class CostLimitError(PlanError):
    """No sizing of the job is estimated within ``max_cost_usd``; the message holds the estimate
    (``estimate``: the cheapest sizing, modelled)."""

    def __init__(self, message: str, estimate: Modelled | None = None) -> None:
        super().__init__(message)
        self.estimate = estimate


@dataclass(frozen=True)
class Objective:
    """What the planner optimizes: ``optimize`` ("time" or "cost") within ``max_cost_usd`` (dollars)
    and ``deadline_s`` (wall seconds), each None for no limit."""

    optimize: str = "time"
    max_cost_usd: float | None = None
    deadline_s: float | None = None

    @property
    def constrained(self) -> bool:
        return self.max_cost_usd is not None or self.deadline_s is not None

    def within_cost(self, m: Modelled) -> bool:
        return self.max_cost_usd is None or m.usd <= self.max_cost_usd

    def within_deadline(self, m: Modelled) -> bool:
        return self.deadline_s is None or m.wall_s <= self.deadline_s


DEFAULT_OBJECTIVE = Objective()


def choose(options: Sequence[Modelled], objective: Objective, default: Modelled | None = None) -> Modelled:
    """The option the objective picks.

    ``optimize="time"`` keeps ``default`` (the planner's own sizing, which also balances stragglers
    the model does not see) when it is within both limits, else takes the fastest option within
    them; ``"cost"`` takes the cheapest within them (ties: the faster). When no option meets the
    deadline within the budget, the fastest one within the budget is taken (a deadline is a wish, the
    budget a limit). When none is within the budget, :class:`CostLimitError` says what the cheapest
    one is estimated at.
    """
    pool = list(options) + ([default] if default is not None else [])
    if not pool:
        raise ValueError("no sizing to choose from")
    affordable = [o for o in pool if objective.within_cost(o)]
    if not affordable:
        cheapest = min(pool, key=lambda o: (o.usd, o.wall_s))
        raise CostLimitError(
            f"max_cost_usd={objective.max_cost_usd:g}: the job is estimated at ${cheapest.usd:.4f} or more "
            f"(cheapest plan: {describe(cheapest)}); raise max_cost_usd or shrink the input", cheapest)
    if objective.optimize == "time" and default is not None and objective.within_cost(default) \
            and objective.within_deadline(default):
        return default
    in_time = [o for o in affordable if objective.within_deadline(o)]
    if not in_time:
        return min(affordable, key=lambda o: (o.wall_s, o.usd))
    if objective.optimize == "cost":
        return min(in_time, key=lambda o: (o.usd, o.wall_s))
    return min(in_time, key=lambda o: (o.wall_s, o.usd))


def describe(m: Modelled) -> str:
    """``M=1000 R=120 at 1769 MB, ~96 s, $0.0921``: a sizing and its estimate, for messages."""
    s = m.sizing
    return f"M={s.map_tasks} R={s.reducers} at {s.memory_mb} MB, ~{m.wall_s:.0f} s, ${m.usd:.4f}"
