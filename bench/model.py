"""A modelled AWS run of AMPLab Q2 at 126.8 GB, from rates measured here and the engine's request counts.

``SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uservisits GROUP BY 1`` over the 5-node
uservisits table (126.8 GB, 775 M rows), printed next to the published peer figures: AWS's
BigLambda reference (200 s, $0.113) and Corral (168.8 s). Target: under 150 s and under $0.10 with
at most 1,000 concurrent functions.

What the model assumes (printed with every result, see :func:`assumptions`):

1. CPU: a function with >= 1,769 MB has one full vCPU, as fast as one core of the machine the rates
   were measured on; below that, CPU time stretches by ``1769 / memory_mb``. Map cost per input
   byte and reduce cost per shuffled byte are the measured rates (bytes per CPU-second), which
   include the local S3 client work, so they are conservative.
2. S3 from one function: ``read_mb_s`` / ``write_mb_s`` sustained per function (defaults 80 / 60
   MB/s, the order published for single Lambdas with a few parallel ranged GETs) from
   ``full_network_mb`` (1,024 MB) up, proportionally less below (network bandwidth grows with
   memory on small functions), plus a first-byte latency per request (``request_latency_s``,
   30 ms). A map task reads its split ahead of the mapper on a thread (two body chunks in flight,
   ``lambda_handlers/io/splits.py``), so reading and computing overlap (``overlap=True``): a map
   task's read costs max(read, compute), not the sum.
3. Data: prefixes of uniform random IPv4 addresses, ``groups`` distinct keys (2,255,536: every
   8-character prefix of ``a.b.c.d``, computed; the published Q2a answer is of the same order).
   A map task over ``n`` rows emits ``groups * (1 - exp(-n / groups))`` combined keys (uniform
   occupancy: an over-estimate, prefixes are not equally likely), at ``shuffle_bytes_per_key``.
   It assumes one combine per map task: a combiner that flushes every ``k`` values emits a key
   once per flush, so the shuffle can be up to ``n / k`` times larger than modelled.
4. Requests per task are the engine's (see :func:`requests_per_job`, counted by function in
   process, tests/lambda_handlers/test_coordinator_requests.py): M + 3 GETs per reducer (plan,
   job.pkl, the step's manifest, one ranged GET per map output), 4 GETs, a HEAD and 3 PUTs per map
   task; one coordinator call per finished task: a HEAD and a LIST of ~10 keys (the tally tree),
   plus for each group's last finisher 10 GETs and a tally PUT; the map manifest and the commit
   read the root tally; commit copies R parts; the watcher LISTs the status prefix once a second.
5. Invocation: the driver issues ``invoke_rate`` async invokes a second; Lambda admits 1,000
   environments at once (+1,000 per 10 s beyond); each task environment pays one cold start
   (``cold_start_s``: the INIT phase is billed since 2025-08). Tasks fit one wave when
   M <= concurrency. Coordinator calls arrive as tasks finish, within ``finish_spread`` of a task's
   time of each other: Lambda starts about calls x (cold start + call) / spread coordinator
   environments, each billed one cold start.
6. Billing: GB-seconds of billed duration (1 ms granularity, negligible at these task lengths) at
   the stack's one memory size for every function; us-east-1 x86 list prices
   (airflow_provider_smr.cost.Prices); no storage, transfer or CloudWatch Logs.
7. A loaded machine: :func:`normalized` scales the measured CPU rates by how much slower the
   floor ran in the same run than on an idle core (``REFERENCE_FLOOR_MB_S``), i.e. it assumes the
   engine's ratio to the floor, not its absolute speed, carries over.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from airflow_provider_smr.cost import DEFAULT_PRICES, Prices, cost_breakdown

PEERS = {
    "BigLambda (AWS reference, 2016)": {"seconds": 200.0, "usd": 0.113},
    "Corral (Go, 2018)": {"seconds": 168.8, "usd": None},
}
# Pure-Python AMPLab Q2 single pass, one idle core of this machine (research notes, section 5.3):
# measured rates are scaled by this over the floor measured in the same run, so a loaded machine
# does not make the model pessimistic (assumption: the engine's ratio to the floor transfers).
REFERENCE_FLOOR_MB_S = 105.0
TARGET_SECONDS = 150.0
TARGET_USD = 0.10
FULL_VCPU_MB = 1769


@dataclass(frozen=True)
class Workload:
    input_bytes: float = 126.8e9
    rows: float = 775e6
    groups: float = 2_255_536
    output_bytes_per_group: float = 32.0  # one jsonl line: {"key": "123.45.6", "value": 1234.56}


@dataclass(frozen=True)
class Rates:
    """Measured on this machine (per core) or assumed for AWS; see the module docstring."""

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


@dataclass(frozen=True)
class Plan:
    map_tasks: int = 1000
    reducers: int = 32
    memory_mb: int = 1769
    concurrency: int = 1000


@dataclass(frozen=True)
class Modelled:
    plan: Plan
    map_task_s: float
    reduce_task_s: float
    wall_s: float
    shuffle_bytes: float
    lambda_gb_seconds: float
    lambda_requests: int
    s3_requests: dict
    cost: dict

    @property
    def usd(self) -> float:
        return self.cost["total"]

    def meets_target(self) -> bool:
        return self.wall_s < TARGET_SECONDS and self.usd < TARGET_USD


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


def lambda_invocations(map_tasks: int, reducers: int) -> int:
    return map_tasks + reducers + (map_tasks + reducers)  # tasks + one coordinator call each


def coordinator_environments(calls: int, task_s: float, rates: Rates) -> int:
    """Coordinator environments Lambda starts for ``calls`` notifications arriving within
    ``finish_spread`` x ``task_s`` (at least a second): arrival rate x time each call holds one."""
    spread = max(1.0, rates.finish_spread * task_s)
    return max(1, min(calls, math.ceil(calls * (rates.cold_start_s + rates.coordinator_s) / spread)))


def model(workload: Workload = Workload(), rates: Rates = Rates(), plan: Plan = Plan(),
          prices: Prices = DEFAULT_PRICES) -> Modelled:
    """Wall time, GB-seconds, requests and cost of the job under ``plan``."""
    w, q, p = workload, rates, plan
    cpu_stretch = max(1.0, FULL_VCPU_MB / p.memory_mb)
    net = min(1.0, p.memory_mb / q.full_network_mb)
    q = replace(q, read_mb_s=q.read_mb_s * net, write_mb_s=q.write_mb_s * net)
    mb = 1e6
    split = w.input_bytes / p.map_tasks
    keys_per_task = combined_keys(w.rows / p.map_tasks, w.groups)
    map_out = keys_per_task * q.shuffle_bytes_per_key
    shuffle = map_out * p.map_tasks
    read = split / mb / q.read_mb_s + 2 * q.request_latency_s
    compute = split / mb / q.map_cpu_mb_s * cpu_stretch
    write = map_out / mb / q.write_mb_s + 4 * q.request_latency_s
    map_task = (max(read, compute) if q.overlap else read + compute) + write + 3 * q.request_latency_s

    slice_in = shuffle / p.reducers
    gets = p.map_tasks  # one ranged GET per map output (a slice is far below a fetch piece)
    r_read = slice_in / mb / q.read_mb_s + math.ceil(gets / q.parallel_gets) * q.request_latency_s
    r_compute = slice_in / mb / q.reduce_cpu_mb_s * cpu_stretch
    out = w.groups * w.output_bytes_per_group / p.reducers
    reduce_task = r_read + r_compute + out / mb / q.write_mb_s + 6 * q.request_latency_s

    waves_m = math.ceil(p.map_tasks / p.concurrency)
    waves_r = math.ceil(p.reducers / p.concurrency)
    plan_s = 1.0
    map_phase = p.map_tasks / q.invoke_rate + q.cold_start_s + waves_m * map_task
    reduce_phase = q.coordinator_s + p.reducers / q.invoke_rate + q.cold_start_s + waves_r * reduce_task
    commit = q.coordinator_s + math.ceil(p.reducers / q.parallel_gets) * 2 * q.request_latency_s
    wall = plan_s + map_phase + reduce_phase + commit + q.poll_s

    gb = p.memory_mb / 1024
    coordinator_calls = p.map_tasks + p.reducers
    coordinator_colds = (coordinator_environments(p.map_tasks, map_task, q)
                         + coordinator_environments(p.reducers, reduce_task, q))
    gb_s = gb * (p.map_tasks * (map_task + q.cold_start_s)
                 + p.reducers * (reduce_task + q.cold_start_s)
                 + coordinator_calls * q.coordinator_s + coordinator_colds * q.cold_start_s + commit)
    requests = requests_per_job(p.map_tasks, p.reducers, polls=math.ceil(wall / q.poll_s),
                                input_objects=p.map_tasks)
    invocations = lambda_invocations(p.map_tasks, p.reducers)
    cost = cost_breakdown(gb_s, invocations, requests, prices).to_dict()
    return Modelled(p, map_task, reduce_task, wall, shuffle, gb_s, invocations, requests, cost)


MAP_TASK_OPTIONS = (100, 250, 500, 750, 1000, 1500, 2000, 3000)
REDUCER_OPTIONS = (8, 16, 32, 64, 96, 128, 192, 256, 384, 512)
MEMORY_OPTIONS = (512, 1024, 1536, 1769, 2048, 3008)


def best_plan(workload: Workload = Workload(), rates: Rates = Rates(), concurrency: int = 1000,
              prices: Prices = DEFAULT_PRICES) -> Modelled:
    """The cheapest plan under the time target (the fastest one if none meets it), searching M
    (up to 3 waves of ``concurrency``), R and the functions' memory over :data:`MAP_TASK_OPTIONS`,
    :data:`REDUCER_OPTIONS` and :data:`MEMORY_OPTIONS`."""
    options = [model(workload, rates, Plan(m, r, mem, concurrency), prices)
               for m in MAP_TASK_OPTIONS if m <= 3 * concurrency
               for r in REDUCER_OPTIONS if r <= concurrency
               for mem in MEMORY_OPTIONS]
    fast = [o for o in options if o.wall_s < TARGET_SECONDS]
    return min(fast, key=lambda o: o.usd) if fast else min(options, key=lambda o: o.wall_s)


def planner_plan(workload: Workload = Workload(), concurrency: int = 1000,
                 memory_mb: int = FULL_VCPU_MB) -> Plan:
    """What the engine's planner picks for this input when the job gives no sizes
    (lambda_handlers.planning, one object of ``workload.input_bytes``)."""
    from lambda_handlers import planning

    total = int(workload.input_bytes)
    size = planning.choose_split_size(total, concurrency, memory_mb=memory_mb)
    obj = planning.S3Object("default", "b", "k", total, "e")
    m = len(planning.split_object(obj, size, "text", merge_tail=True))
    r = planning.choose_num_reducers(total, m, memory_mb=memory_mb, concurrency=concurrency)
    return Plan(m, r, memory_mb, concurrency)


def assumptions(rates: Rates) -> list[str]:
    return [
        f"1 vCPU per {FULL_VCPU_MB} MB = one local core; map {rates.map_cpu_mb_s:.1f} MB/CPU-s, "
        f"reduce {rates.reduce_cpu_mb_s:.1f} MB/CPU-s (measured here)",
        f"S3 per function: read {rates.read_mb_s:.0f} MB/s, write {rates.write_mb_s:.0f} MB/s "
        f"(from {rates.full_network_mb} MB, proportionally less below), "
        f"{rates.request_latency_s * 1000:.0f} ms a request, {rates.parallel_gets} parallel GETs; "
        f"read/compute overlap: {rates.overlap}",
        f"keys: uniform occupancy of {Workload().groups:,.0f} prefixes, "
        f"{rates.shuffle_bytes_per_key:.1f} shuffle bytes a key (measured here)",
        f"invokes {rates.invoke_rate:.0f}/s from the driver, cold start {rates.cold_start_s} s billed "
        f"(INIT billing) once per task environment and per coordinator environment (tasks finish "
        f"within {rates.finish_spread:.0%} of a task's time), coordinator call {rates.coordinator_s} s "
        f"warm, watcher poll {rates.poll_s} s",
        "one memory size for every function; GB-s billed per 1 ms; requests per task as the engine "
        "makes them (R x M ranged GETs); us-east-1 list prices; no storage/transfer/logs",
    ]


def report(result: Modelled, rates: Rates) -> str:
    p = result.plan
    lines = [
        f"Modelled AWS run, AMPLab Q2 at 126.8 GB: M={p.map_tasks} R={p.reducers} "
        f"memory={p.memory_mb} MB concurrency={p.concurrency}",
        f"  wall {result.wall_s:.1f} s (map task {result.map_task_s:.1f} s, reduce task "
        f"{result.reduce_task_s:.1f} s), shuffle {result.shuffle_bytes / 1e9:.2f} GB",
        f"  {result.lambda_gb_seconds:,.0f} GB-s, {result.lambda_requests:,} invocations, S3 "
        + ", ".join(f"{k} {v:,}" for k, v in result.s3_requests.items()),
        "  cost $" + f"{result.usd:.4f} (" + ", ".join(
            f"{k} ${v:.4f}" for k, v in result.cost.items() if k != "total") + ")",
        f"  target < {TARGET_SECONDS:.0f} s and < ${TARGET_USD:.2f}: "
        + ("MET" if result.meets_target() else "NOT MET"),
    ]
    for name, peer in PEERS.items():
        usd = f"${peer['usd']:.3f}" if peer["usd"] is not None else "cost not published"
        lines.append(f"  peer {name}: {peer['seconds']:.1f} s, {usd}")
    lines.append("  assumptions:")
    lines += [f"   - {a}" for a in assumptions(rates)]
    return "\n".join(lines)


def normalized(measured: dict, floor_mb_s_per_core: float | None,
               reference: float = REFERENCE_FLOOR_MB_S) -> dict:
    """CPU rates scaled by ``reference / floor_mb_s_per_core`` (a loaded machine's slowdown)."""
    if not floor_mb_s_per_core:
        return dict(measured)
    factor = reference / floor_mb_s_per_core
    return {k: (v * factor if k in ("map_cpu_mb_s", "reduce_cpu_mb_s") else v) for k, v in measured.items()}


def required_speedup(rates: Rates, workload: Workload = Workload(), concurrency: int = 1000,
                     prices: Prices = DEFAULT_PRICES) -> float | None:
    """Smallest factor on both CPU rates for which some plan meets the target (None past 1000x)."""
    factor = 1.0
    while factor <= 1000:
        faster = replace(rates, map_cpu_mb_s=rates.map_cpu_mb_s * factor,
                         reduce_cpu_mb_s=rates.reduce_cpu_mb_s * factor)
        if best_plan(workload, faster, concurrency, prices).meets_target():
            return round(factor, 2)
        factor *= 1.1
    return None


def rates_from(measured: dict, base: Rates = Rates()) -> Rates:
    """``base`` with the fields present in ``measured`` (e.g. from a local AMPLab run) replaced."""
    known = {k: v for k, v in measured.items() if k in asdict(base) and v}
    return replace(base, **known)


if __name__ == "__main__":
    rates = Rates()
    print(report(best_plan(rates=rates), rates))
    print(report(model(rates=rates, plan=planner_plan()), rates).replace(
        "Modelled AWS run", "Planner's default plan", 1))
