"""Benchmarks of the engine on the local stack, each next to a floor measured in the same run.

``make bench`` runs every workload at the default size; ``make bench-quick`` (``--quick``) runs
small sizes in under two minutes. Generated data goes to a temp dir (``--data-dir`` to keep and
reuse it). Each row: workload, size, M, R, wall seconds, floor seconds, ratio, S3 requests by type,
Lambda invocations, GB-seconds, estimated cost, driver peak RSS. Word count and the trivial job
also get the peer of the same run, Lithops ``localhost`` (bench/peers.py; skipped when Lithops is not
installed, ``--no-peer`` leaves it out), and every such row its ratio to it. Then the modelled AWS
run of AMPLab Q2 at 126.8 GB from the rates this run measured (bench/model.py) and the planner's
plans for it (optimize="time", optimize="cost", max_cost_usd).

    python bench/run.py [--quick] [--size 256MiB] [--only wordcount,amplab,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import floors, jobs, model, peers, verify  # noqa: E402
from bench.gen_common import parse_size  # noqa: E402
from bench.gen_sort import KEY, sort_file  # noqa: E402
from bench.gen_uservisits import uservisits_file  # noqa: E402
from bench.gen_words import words_bytes, words_file  # noqa: E402

# wordcount, amplab and sort run the jobs written with the engine's batch forms (batch_mapper with the
# floor's own loop, range_partitioner, identity); the -records rows run the same jobs written one call
# per record (a generator mapper, a Python partitioner, a per-key reducer).
WORKLOADS = ("wordcount", "amplab", "sort", "wordcount-records", "amplab-records", "sort-records",
             "trivial", "fanout", "memory", "smallobjects")
PER_RECORD = ", per record"
FULL_SIZE = "256MiB"
QUICK_SIZE = "8MiB"
QUICK_SPLIT = "2MiB"
FANOUT_TASKS = 1000
QUICK_FANOUT_TASKS = 100
FANOUT_TIMEOUT_S = 900.0  # past this the job is cancelled and the row says so
QUICK_FANOUT_TIMEOUT_S = 60.0
MEMORY_STACK_MB = 128  # the smallest Lambda: budget 32 MiB, so the spill test stays small
# The warm-up before the throughput rows: a small word count cut into more map tasks than the local
# stack keeps workers per function (4), with as many reducers, so every mapper, reducer and
# coordinator worker a row uses has started, as on a deployed stack in use (see warm_stack).
WARM_UP_TASKS = 8
WARM_UP_REDUCERS = 4
WARM_UP_SPLIT = 4096
# the rows timed against a floor on the bench's stack (the memory row deploys a stack of its own)
THROUGHPUT = ("wordcount", "amplab", "sort", "wordcount-records", "amplab-records", "sort-records")
SMALL_OBJECT_BYTES = 2048  # the many-small-objects row: objects of about 2 KB ...
SMALL_OBJECT_COUNTS = (2_000, 20_000)  # ... this many of them (--quick: the first only)
SMALL_OBJECT_RUNS = 3  # each row alternating with the other, its median (0.4-0.7 s from run to run)


def _row(name: str, size: int, run, floor_s: float | None, **extra) -> dict:
    r = run.result
    counters = r.get("counters", {})
    from bench.requests_count import split_counts

    s3, by_function = split_counts(run.stack_requests)
    s3 = s3 or r.get("requests", {}).get("s3", {})
    invokes = sum(by_function.values()) if by_function else r.get("requests", {}).get("lambda_invokes")
    return {
        "workload": name, "bytes": size, "M": counters.get("map_tasks"), "R": counters.get("reduce_tasks"),
        "wall_s": round(run.wall_s, 3), "floor_s": None if floor_s is None else round(floor_s, 3),
        "ratio": None if not floor_s else round(run.wall_s / floor_s, 2),
        "s3_requests": s3, "s3_requests_source": "local stack" if run.stack_requests else "result estimate",
        "invokes_by_function": by_function,
        "lambda_invocations": invokes, "gb_seconds": r.get("lambda_gb_seconds"),
        "cost_usd": r.get("estimated_cost_usd"), "driver_peak_rss_mb": round(run.peak_rss_mb, 1),
        "invoke_s": run.invoke_s, "timings": r.get("timings"), "job_id": r.get("job_id"),
        "shuffle_bytes": counters.get("shuffle_bytes"),
        "result_s3_requests": r.get("requests", {}).get("s3"),
        "handler_seconds": run.handler_seconds, **extra,
    }


def _floor(args, path: Path, measure) -> floors.Floor:
    """The floor of ``path``, measured once a run: every row over the same bytes (batch, per record,
    Lithops) is divided by the same figure."""
    cache = args.__dict__.setdefault("floor_runs", {})
    if str(path) not in cache:
        cache[str(path)] = measure(path)
    return cache[str(path)]


def _peer(args, key: str, measure) -> dict | None:
    """The Lithops figure for ``key`` (measured once a run, on first use), or None without Lithops."""
    cache = args.__dict__.setdefault("peer_runs", {})
    if key not in cache:
        cache[key] = measure() if args.peer and peers.available() else None
    return cache[key]


def _peer_row(name: str, size: int, seconds: float, floor_s: float | None) -> dict:
    return {"workload": name, "bytes": size, "wall_s": round(seconds, 3),
            "floor_s": None if floor_s is None else round(floor_s, 3),
            "ratio": round(seconds / floor_s, 2) if floor_s else None, "peer": "lithops localhost"}


def lithops_word_count(args, path: Path, floor: floors.Floor) -> dict | None:
    """The Lithops localhost row for word count of ``path`` (its answer checked against the floor)."""
    def measure() -> dict:
        run = peers.lithops_word_count(path)
        verify.check_counts(run.answer, floor.answer)
        return _peer_row(f"Lithops localhost ({peers.CHUNKS} chunks)", path.stat().st_size, run.seconds,
                         floor.seconds)

    return _peer(args, f"wordcount:{path}", measure)


def phase_gaps(markers: list[dict]) -> dict:
    """Where a job's time went between tasks, from its done markers' start/finish times.

    ``map_span``/``reduce_span``: first start to last finish of a phase; ``map_to_reduce``: last map
    finish to first reduce start (coordinator + invoke latency); ``busy``: summed task durations
    over span (how many tasks ran at once, on average).
    """
    out = {}
    by_phase = {p: [m for m in markers if m.get("phase") == p] for p in ("map", "reduce")}
    for phase, ms in by_phase.items():
        if ms:
            span = max(m["finished"] for m in ms) - min(m["started"] for m in ms)
            out[f"{phase}_span_s"] = round(span, 3)
            out[f"{phase}_parallelism"] = round(sum(m["duration_s"] for m in ms) / span, 2) if span else None
    if by_phase["map"] and by_phase["reduce"]:
        out["map_to_reduce_s"] = round(min(m["started"] for m in by_phase["reduce"])
                                       - max(m["finished"] for m in by_phase["map"]), 3)
    return out


def _repeated(args, first_floor_s: float, floor_s: Callable[[], float], run_once: Callable[[], Any]
              ) -> tuple[Any, float, dict]:
    """A throughput row over ``--repeat`` runs: the floor and the engine alternately, so both see
    the same minutes of a shared box (one run of each is the floor's and the engine's spread
    apart by whatever else the box does then). The row is the engine run of median wall against
    the median floor; ``all_wall_s``, ``all_floor_s`` and each pair's ratio are kept beside it.
    ``first_floor_s`` is the floor already measured for this file (the first pair's)."""
    floors_s, runs = [first_floor_s], [run_once()]
    for _ in range(args.repeat - 1):
        floors_s.append(floor_s())
        runs.append(run_once())
    if len(runs) == 1:
        return runs[0], first_floor_s, {}
    median = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    samples = {"all_wall_s": [round(r.wall_s, 3) for r in runs], "all_floor_s": [round(f, 3) for f in floors_s],
               "pair_ratios": [round(r.wall_s / f, 2) for r, f in zip(runs, floors_s, strict=True)]}
    return median, statistics.median(floors_s), samples


def _repeated_with_peer(args, path: Path, floor: floors.Floor, peer: dict, run_once: Callable[[], Any]
                        ) -> tuple[Any, floors.Floor, dict]:
    """:func:`_repeated` for word count, with Lithops in each round: floor, Lithops and the job
    alternately ``--repeat`` times (the first floor and Lithops figures are the ones already
    measured). The job's row is its median run; the floor and the Lithops row (updated in place,
    and in the floor cache, so the per-record row compares with the same figures) become medians,
    every sample kept."""
    floors_s, peers_s, runs = [floor.seconds], [peer["wall_s"]], [run_once()]
    for _ in range(args.repeat - 1):
        floors_s.append(floors.word_count_floor(path).seconds)
        lithops = peers.lithops_word_count(path)
        verify.check_counts(lithops.answer, floor.answer)
        peers_s.append(lithops.seconds)
        runs.append(run_once())
    median = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    floor = floors.Floor(statistics.median(floors_s), floor.answer)
    args.floor_runs[str(path)] = floor
    peer.update(_peer_row(peer["workload"], peer["bytes"], statistics.median(peers_s), floor.seconds),
                all_wall_s=[round(p, 3) for p in peers_s])
    samples = {"all_wall_s": [round(r.wall_s, 3) for r in runs], "all_floor_s": [round(f, 3) for f in floors_s],
               "all_lithops_s": [round(p, 3) for p in peers_s],
               "pair_ratios": [round(r.wall_s / p, 2) for r, p in zip(runs, peers_s, strict=True)]}
    return median, floor, samples


def _records(bench, result) -> dict:
    return dict(verify.jsonl_records(line for part in bench.read_parts(result) for line in part))


def _split_kw(args, size: int) -> dict:
    kw = {"poll_interval": args.poll}
    if args.split_size:
        kw["split_size"] = args.split_size
    if args.reducers:
        kw["num_reducers"] = args.reducers
    return kw


def _shuffle_puts(bench, result, work_bucket: str | None = None) -> dict:
    """The step's writes against ``M + 2R + 10`` as :func:`~airflow_provider_smr.cost.
    shuffle_put_budget` defines it: shuffle data objects (map outputs, parts, the manifest), the
    reducers' done markers, claims and job-level objects. Task start markers, the map tasks' done
    markers and the tally tree (~1 per 9 tasks) are reported beside it, outside the budget."""
    from airflow_provider_smr.cost import shuffle_put_budget
    from lambda_handlers import protocol

    job_id = result["job_id"]
    prefix = protocol.job_prefix(job_id)
    keys = bench.job_objects(job_id, work_bucket)
    per_step = verify.step_writes(prefix, keys, final_step=0)
    m, r = result["counters"]["map_tasks"], result["counters"]["reduce_tasks"]
    step0 = per_step.get(0, {"data": 0, "markers": 0})
    parsed = [protocol.parse_status_key(job_id, k) for k in keys]
    reduce_done = sum(1 for k in parsed if k and k.kind == "done" and k.phase == "reduce" and k.step == 0)
    tallies = sum(1 for k in keys if k.startswith(prefix + "tally/"))
    job_level = per_step.get(-1, {}).get("markers", 0) - tallies
    counted = step0["data"] + reduce_done + job_level
    budget = shuffle_put_budget(m, r)
    gaps = phase_gaps(bench.done_markers(job_id, work_bucket))
    return {"shuffle_puts_step0": step0["data"], "marker_puts_step0": step0["markers"],
            "tally_puts": tallies, "job_level_puts": job_level, "put_budget": budget,
            "budget_puts": counted, "data_puts_within_budget": step0["data"] <= budget,
            "within_put_budget": counted <= budget, "phases": gaps}


def warm_stack(bench, args) -> dict:
    """Start the stack's workers before the throughput rows are timed, as a deployed stack in use
    has them (the trivial row warms up the same way): a word count of ``WARM_UP_TASKS`` splits and
    ``WARM_UP_REDUCERS`` reducers, so each function starts as many workers as a row's first
    phase asks for at once. A cold worker pays its process start, the handler's imports and its
    first S3 client before its task starts (0.2-0.6 s on this 2-core box, 4 at a time; again
    for the first reducers): Lambda's cold start, which the rows' floors never pay.
    ``--cold`` leaves it out."""
    body = words_bytes(WARM_UP_TASKS * WARM_UP_SPLIT, args.seed)
    uri = bench.put("warm-up/input.txt", body)
    run = bench.run(jobs.word_count_batch_job(), input=uri, output=f"s3://{bench.data_bucket}/out/warm-up/",
                    split_size=WARM_UP_SPLIT, num_reducers=WARM_UP_REDUCERS, poll_interval=args.latency_poll)
    verify.check_counts(_records(bench, run.result), floors.count_words(body))
    counters = run.result["counters"]
    return {"wall_s": round(run.wall_s, 3), "M": counters.get("map_tasks"), "R": counters.get("reduce_tasks")}


# -- workloads -------------------------------------------------------------------------------------

def bench_wordcount(bench, args, data_dir: Path, per_record: bool = False) -> dict:
    size = args.size
    gen = words_file(data_dir, size, args.seed)
    floor = _floor(args, gen.path, floors.word_count_floor)
    fresh = f"wordcount:{gen.path}" not in args.__dict__.get("peer_runs", {})
    peer = lithops_word_count(args, gen.path, floor)
    uri = bench.upload(gen.path, f"words/{gen.path.name}")
    job = jobs.word_count_job() if per_record else jobs.word_count_batch_job()

    def run_once() -> Any:
        run = bench.run(job, input=uri, output=f"s3://{bench.data_bucket}/out/wordcount/", **_split_kw(args, size))
        verify.check_counts(_records(bench, run.result), floor.answer)
        return run

    samples: dict = {}
    if fresh and peer and not per_record and args.repeat > 1:  # floor, Lithops and job alternately
        run, floor, samples = _repeated_with_peer(args, gen.path, floor, peer, run_once)
    else:
        run = run_once()
    row = _row("word count" + PER_RECORD * per_record, gen.size, run, floor.seconds, verified=True,
               **samples, **_shuffle_puts(bench, run.result))
    row["vs_lithops"] = peers.ratios(run.wall_s, floor.seconds, peer and peer["wall_s"])["vs_lithops"]
    return [peer, row] if peer and fresh else [row]


def bench_amplab(bench, args, data_dir: Path, per_record: bool = False) -> dict:
    gen = uservisits_file(data_dir, args.size, args.seed)
    floor = _floor(args, gen.path, floors.amplab_q2_floor)
    uri = bench.upload(gen.path, f"uservisits/{gen.path.name}")
    job = jobs.amplab_q2_job() if per_record else jobs.amplab_q2_batch_job()

    def run_once() -> Any:
        run = bench.run(job, input=uri, output=f"s3://{bench.data_bucket}/out/amplab/", **_split_kw(args, args.size))
        verify.check_sums(_records(bench, run.result), floor.answer)
        return run

    run, floor_s, samples = _repeated(args, floor.seconds, lambda: floors.amplab_q2_floor(gen.path).seconds,
                                      run_once)
    return _row("AMPLab Q2" + PER_RECORD * per_record, gen.size, run, floor_s, verified=True,
                groups=len(floor.answer), **samples, **_shuffle_puts(bench, run.result))


def _sample_keys(path: Path, samples: int = 2000) -> list[str]:
    size = path.stat().st_size
    keys = []
    with open(path, "rb") as f:
        for i in range(samples):
            f.seek(size * i // samples // 100 * 100)  # records are 100 bytes: land on one
            keys.append(f.read(KEY).decode("ascii"))
    return keys


def bench_sort(bench, args, data_dir: Path, per_record: bool = False) -> dict:
    gen = sort_file(data_dir, args.size, args.seed)
    floor_out = data_dir / "sort.floor.out"

    def sort_floor_s() -> float:
        seconds = floors.sort_floor(gen.path, floor_out).seconds
        floor_out.unlink(missing_ok=True)
        return seconds

    first_floor_s = sort_floor_s()
    with open(gen.path) as f:
        expected = verify.record_digest(line.rstrip("\n") for line in f)
    reducers = args.reducers or max(2, min(32, gen.size // (32 << 20)))
    boundaries = jobs.sample_boundaries(_sample_keys(gen.path), reducers)
    kw = _split_kw(args, args.size)
    kw["num_reducers"] = reducers
    uri = bench.upload(gen.path, f"sort/{gen.path.name}")
    job = jobs.sort_job(boundaries) if per_record else jobs.sort_builtin_job(boundaries)

    def run_once() -> Any:
        run = bench.run(job, input=uri, output=f"s3://{bench.data_bucket}/out/sort/", **kw)
        parts = ([rec for rec in verify.jsonl_records(part)] for part in bench.read_parts(run.result))
        verify.check_globally_sorted(parts, expected)
        return run

    run, floor_s, samples = _repeated(args, first_floor_s, sort_floor_s, run_once)
    return _row("sort" + PER_RECORD * per_record, gen.size, run, floor_s, verified=True,
                **samples, **_shuffle_puts(bench, run.result))


def bench_trivial(bench, args, data_dir: Path) -> dict:
    body = words_bytes(4096, args.seed)
    uri = bench.put("trivial/input.txt", body)
    job = jobs.word_count_job()
    bench.run(job, input=uri, output=f"s3://{bench.data_bucket}/out/trivial-warmup/", num_reducers=1,
              poll_interval=args.latency_poll)  # warm the workers, as a deployed stack in use would be
    runs = [bench.run(job, input=uri, output=f"s3://{bench.data_bucket}/out/trivial/", num_reducers=1,
                      poll_interval=args.latency_poll) for _ in range(3)]
    run = sorted(runs, key=lambda r: r.wall_s)[1]
    expected = floors.count_words(body)
    verify.check_counts(_records(bench, run.result), expected)
    row = _row("trivial (median of 3)", len(body), run, None, verified=True,
               all_wall_s=[round(r.wall_s, 3) for r in runs], poll_s=args.latency_poll)
    process = smr_process_trivial(bench, uri, expected, len(body))
    peer = _peer(args, "trivial", lambda: lithops_trivial(data_dir / "trivial.txt", body))
    if peer is None:
        return [row, process]
    # ``row`` is submit-to-result in the bench's process; ``process`` and Lithops' are whole processes
    for r in (row, process):
        r["vs_lithops"] = peers.ratios(r["wall_s"], None, peer["wall_s"])["vs_lithops"]
    return [peer, row, process]


#: the README's word count, as a user types it (``smr run`` loads it by path, like any job file)
SMR_PROCESS_JOB = "dags_examples/jobs/word_count.py:word_count"
SMR_PROCESS_RUNS = 5


def smr_executable() -> list[str]:
    """The ``smr`` console script of this interpreter's environment (what a user runs), or
    ``python -m airflow_provider_smr.cli`` when the package is not installed there."""
    script = Path(sys.executable).with_name("smr")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "airflow_provider_smr.cli"]


def smr_process_command(bench, uri: str, output: str) -> list[str]:
    """``smr run`` of the README's word count on the bench's warm stack, as a user types it
    (default poll interval and options; the result as one JSON line)."""
    return [*smr_executable(), "run", SMR_PROCESS_JOB, "--input", uri, "--output", output,
            "--endpoint-url", bench.local.endpoint_url, "--stack-name", bench.stack_name,
            "--num-reducers", "1", "--overwrite", "--json"]


def smr_process_env() -> dict[str, str]:
    """The environment of the ``smr`` processes: this one's (the stack's endpoint and fake keys),
    with this checkout first on the path (the console script runs this tree's code, as
    ``python -m`` from it does) and bytecode written as a normal install has it."""
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return env


def smr_process_trivial(bench, uri: str, expected: dict, size: int, runs: int = SMR_PROCESS_RUNS) -> dict:
    """The trivial job as a whole ``smr run`` process on the warm stack (the stack's workers warm
    from the in-process runs, the install's bytecode and botocore's parsed models written by one
    unmeasured process first), median of ``runs``; wall and the process's own CPU (user + sys)."""
    import resource
    import subprocess

    root = Path(__file__).resolve().parents[1]
    output = f"s3://{bench.data_bucket}/out/trivial-process/"
    env = smr_process_env()
    timed, cpu, result = [], [], {}
    for attempt in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(smr_process_command(bench, uri, output), cwd=root, check=True,
                              capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if attempt:  # the first process writes what a used install has (bytecode, parsed models)
            timed.append(seconds)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    verify.check_counts(_records(bench, result), expected)
    return {"workload": f"trivial, whole smr run process (median of {runs})", "bytes": size,
            "wall_s": round(sorted(timed)[runs // 2], 3), "floor_s": None, "ratio": None, "whole_process": True,
            "all_wall_s": [round(t, 3) for t in timed], "cpu_s": round(sorted(cpu)[runs // 2], 3),
            "command": " ".join(["smr", *smr_process_command(bench, uri, output)[len(smr_executable()):]])}


def lithops_trivial(path: Path, body: bytes, runs: int = 3) -> dict:
    """Lithops' whole process (``python bench/peers.py wordcount``) on the trivial job's input, median
    of ``runs`` (the first one also deploys its runtime's metadata, as a first ``smr run`` would)."""
    path.write_bytes(body)
    timed = []
    for _ in range(runs):
        seconds, answer = peers.lithops_process(path, chunks=1)
        verify.check_counts(answer, floors.count_words(body))
        timed.append(seconds)
    row = _peer_row("Lithops trivial, whole process (median of 3)", len(body), sorted(timed)[len(timed) // 2],
                    None)
    row["all_wall_s"] = [round(t, 3) for t in timed]
    return row


def bench_fanout(bench, args, data_dir: Path) -> dict:
    tasks = QUICK_FANOUT_TASKS if args.quick else FANOUT_TASKS
    line = b"alpha beta gamma delta epsilon\n"  # 31 bytes: one line per split
    body = line * tasks
    uri = bench.put("fanout/input.txt", body)
    run = bench.run(jobs.word_count_job(), input=uri, output=f"s3://{bench.data_bucket}/out/fanout/",
                    split_size=len(line), num_reducers=2, poll_interval=args.latency_poll,
                    timeout=args.job_timeout)
    if not run.timed_out:
        verify.check_counts(_records(bench, run.result), {w.decode(): tasks for w in line.split()})
    return _row(f"fan-out ({tasks} splits)", len(body), run, None, verified=not run.timed_out,
                timed_out=run.timed_out, invoke_all_s=run.invoke_s, submit_s=round(run.submit_s, 3),
                status_at_timeout=run.result.get("status") if run.timed_out else None)


def bench_memory(bench, args, data_dir: Path) -> dict:
    """One reducer whose partition is 4x its memory budget (no combiner, every word shuffled)."""
    budget = MEMORY_STACK_MB * 2**20 // 4
    size = 4 * budget
    # Shuffle records are ~1.9x the text (JSON pairs; 3.79x the budget from size // 2): a bit more text.
    gen = words_file(data_dir, size * 11 // 20, args.seed)
    floor = floors.word_count_floor(gen.path)
    uri = bench.upload(gen.path, f"memory/{gen.path.name}")
    run = bench.run(jobs.word_count_without_combiner_job(), input=uri, memory_mb=MEMORY_STACK_MB,
                    output=f"s3://{bench.data_bucket}/out/memory/", num_reducers=1, poll_interval=args.poll,
                    split_size=args.split_size or "8MiB")
    verify.check_counts(_records(bench, run.result), floor.answer)
    shuffle = run.result["counters"]["shuffle_bytes"]
    return _row("reducer memory (spill)", gen.size, run, floor.seconds, verified=True,
                memory_budget_bytes=budget, partition_over_budget=round(shuffle / budget, 2))


def _cut_at_lines(body: bytes, pieces: int) -> list[bytes]:
    """``body`` cut into ``pieces`` parts of about equal size, each ending after a newline."""
    out, start, step = [], 0, len(body) // pieces
    for i in range(1, pieces):
        cut = body.index(b"\n", max(start, i * step)) + 1
        out.append(body[start:cut])
        start = cut
    out.append(body[start:])
    return out


def _reading_usd(objects: int) -> float:
    """What S3 charges any reader of ``objects`` objects: a GET each and a LIST per 1,000 keys."""
    from lambda_handlers.prices import Prices

    prices = Prices()
    return objects * prices.s3_get + -(-objects // 1000) * prices.s3_put


def _beyond_reading(row: dict, objects: int) -> float:
    """A row's estimated cost less :func:`_reading_usd` of its input objects: the engine's own cost."""
    return max((row["cost_usd"] or 0.0) - _reading_usd(objects), 1e-9)


def bench_small_objects(bench, args, data_dir: Path) -> list[dict]:
    """Many small objects (issue 15) against the same bytes in one object: tasks, invokes,
    requests, wall and cost of each, and the ratios (target: wall <= 2x, cost <= 1.2x).

    The cost ratio counts S3's own charge for reading the objects (a GET each, a LIST per 1,000
    keys: $0.0008 for 2,000 objects, more than the whole one-object run), which no reader avoids;
    ``cost_beyond_reading`` compares what is left, the engine's own cost (Lambda GB-s, invokes,
    its markers and shuffle), with the one-object run's."""
    from concurrent.futures import ThreadPoolExecutor

    rows = []
    counts = SMALL_OBJECT_COUNTS[:1] if args.quick else SMALL_OBJECT_COUNTS
    for n in counts:
        body = words_bytes(n * SMALL_OBJECT_BYTES, args.seed)
        parts = _cut_at_lines(body, n)
        expected = floors.count_words(body)
        prefix = f"small-{n}/"
        keys = [f"{prefix}{i:06d}.log" for i in range(n)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(bench.put, keys, parts))
        one = bench.put(f"small-{n}-one/all.log", body)
        job = jobs.word_count_batch_job()
        kw = {"poll_interval": args.latency_poll, "timeout": args.job_timeout}
        singles, manys = [], []
        for _ in range(SMALL_OBJECT_RUNS):  # alternating, so both see the same minutes of the box
            singles.append(bench.run(job, input=one, output=f"s3://{bench.data_bucket}/out/small-{n}-one/", **kw))
            verify.check_counts(_records(bench, singles[-1].result), expected)
            manys.append(bench.run(job, input=f"s3://{bench.data_bucket}/{prefix}",
                                   output=f"s3://{bench.data_bucket}/out/small-{n}/", **kw))
            verify.check_counts(_records(bench, manys[-1].result), expected)
        single, many = (sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2] for runs in (singles, manys))
        one_row = _row(f"same bytes, 1 object ({n}), median of {len(singles)}", len(body), single, None,
                       verified=True, all_wall_s=[round(r.wall_s, 3) for r in singles])
        many_row = _row(f"{n:,} small objects, median of {len(manys)}", len(body), many, None,
                        verified=True, all_wall_s=[round(r.wall_s, 3) for r in manys])
        many_row["vs_one_object"] = {
            "wall": round(many_row["wall_s"] / one_row["wall_s"], 2),
            "cost": round((many_row["cost_usd"] or 0) / (one_row["cost_usd"] or 1), 2),
            "cost_beyond_reading": round(_beyond_reading(many_row, n) / _beyond_reading(one_row, 1), 2),
            "requests": round(sum(many_row["s3_requests"].values()) / max(1, sum(one_row["s3_requests"].values())), 2)}
        rows += [one_row, many_row]
    return rows


BENCHES = {"wordcount": bench_wordcount, "amplab": bench_amplab, "sort": bench_sort,
           "wordcount-records": functools.partial(bench_wordcount, per_record=True),
           "amplab-records": functools.partial(bench_amplab, per_record=True),
           "sort-records": functools.partial(bench_sort, per_record=True),
           "trivial": bench_trivial, "fanout": bench_fanout, "memory": bench_memory,
           "smallobjects": bench_small_objects}


# -- output ----------------------------------------------------------------------------------------

def _fmt_requests(s3: dict) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(s3.items()) if v)


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def print_row(row: dict) -> None:
    num = _num
    if "peer" in row or row.get("whole_process"):
        extra = {k: row[k] for k in ("all_wall_s", "cpu_s", "vs_lithops") if k in row}
        print(f"{row['workload']:<24} {row['bytes'] / 2**20:>8.1f}MiB {'':<13} wall={row['wall_s']:>7.2f}s "
              f"floor={num(row['floor_s'], '.2f'):>6}s ratio={num(row['ratio'], '.2f'):>5} "
              f"({row.get('peer', 'whole process')}) {json.dumps(extra)}", flush=True)
        return
    print(f"{row['workload']:<24} {row['bytes'] / 2**20:>8.1f}MiB M={num(row['M'], 'd'):>4} "
          f"R={num(row['R'], 'd'):>3} wall={row['wall_s']:>7.2f}s floor={num(row['floor_s'], '.2f'):>6}s "
          f"ratio={num(row['ratio'], '.2f'):>5} inv={num(row['lambda_invocations'], 'd'):>5} "
          f"GB-s={num(row['gb_seconds'], '.2f'):>7} ${num(row['cost_usd'], '.6f')} "
          f"rss={row['driver_peak_rss_mb']:.0f}MB", flush=True)
    print(f"{'':<24} S3 ({row['s3_requests_source']}): {_fmt_requests(row['s3_requests'])}")
    extra = {k: row[k] for k in ("invoke_all_s", "shuffle_puts_step0", "marker_puts_step0", "tally_puts",
                                 "job_level_puts", "budget_puts", "put_budget",
                                 "data_puts_within_budget", "within_put_budget",
                                 "handler_seconds", "partition_over_budget", "all_wall_s", "all_floor_s",
                                 "all_lithops_s", "pair_ratios", "groups",
                                 "timed_out", "status_at_timeout", "phases", "vs_one_object",
                                 "vs_lithops", "timings") if k in row}
    if extra:
        print(f"{'':<24} {json.dumps(extra)}", flush=True)


def ratio_table(rows: list[dict]) -> list[str]:
    """The rows with a floor or a peer: wall seconds, ratio to the floor and to Lithops, as a
    Markdown table (what bench/README.md quotes)."""
    lines = ["| run | MiB | wall s | vs floor | vs Lithops |", "|---|---|---|---|---|"]
    for row in rows:
        if "error" in row or (row.get("floor_s") is None and "vs_lithops" not in row and "peer" not in row):
            continue
        vs_lithops = 1.0 if "peer" in row else row.get("vs_lithops")
        lines.append(f"| {row['workload']} | {row['bytes'] / 2**20:.1f} | {row['wall_s']:.2f} | "
                     f"{_num(row.get('ratio'), '.2f')} | {_num(vs_lithops, '.2f')} |")
    floors_seen = {(r["workload"].split(",")[0], r["floor_s"]) for r in rows
                   if r.get("floor_s") is not None and "peer" not in r}
    for name, floor_s in sorted(floors_seen, key=str):
        lines.append(f"| floor of {name} | | {floor_s:.2f} | 1.00 | |")
    return lines


def cpu_seconds(markers: list[dict], cores: int | None = None) -> float:
    """CPU-seconds a phase's tasks used: their summed durations, but at most span x cores (with
    more tasks than cores, a task's duration includes waiting for a core)."""
    if not markers:
        return 0.0
    total = sum(m["duration_s"] for m in markers)
    span = max(m["finished"] for m in markers) - min(m["started"] for m in markers)
    cores = cores or os.cpu_count() or 1
    return min(total, span * cores) if span > 0 else total


def measured_rates(rows: list[dict], bench, cores: int | None = None, workload: str = "AMPLab Q2") -> dict:
    """Per-byte map and reduce rates of the AMPLab run, from its done markers (CPU-seconds as
    :func:`cpu_seconds`)."""
    row = next((r for r in rows if r["workload"] == workload and "error" not in r), None)
    if row is None:
        return {}
    markers = bench.done_markers(row["job_id"])
    maps = [m for m in markers if m["phase"] == "map"]
    reduces = [m for m in markers if m["phase"] == "reduce"]
    rates = {}
    map_s = cpu_seconds(maps, cores)
    if map_s:
        rates["map_cpu_mb_s"] = sum(m["bytes_in"] for m in maps) / 1e6 / map_s
    red_s = cpu_seconds(reduces, cores)
    if red_s:
        rates["reduce_cpu_mb_s"] = sum(m["bytes_in"] for m in reduces) / 1e6 / red_s
    keys = sum(m["records_out"] for m in maps)
    if keys:
        rates["shuffle_bytes_per_key"] = sum(m["bytes_out"] for m in maps) / keys
    if row.get("floor_s"):
        rates["floor_mb_s_per_core"] = row["bytes"] / 1e6 / row["floor_s"] / floors.PROCESSES
    return rates


def print_per_record_model(rates: dict) -> dict | None:
    """One line: the modelled run of the AMPLab job written one call per record, for comparison."""
    floor = rates.pop("floor_mb_s_per_core", None)
    if not rates or not floor:
        return None
    r = model.rates_from(model.normalized(rates, floor))
    best = model.best_plan(rates=r)
    p = best.sizing
    print(f"the same query written one call per record (AMPLab Q2, per record; normalized rates "
          f"{json.dumps({k: round(v, 2) for k, v in model.normalized(rates, floor).items()})}): "
          f"M={p.map_tasks} R={p.reducers} memory={p.memory_mb} MB, {best.wall_s:.1f} s, ${best.usd:.4f}")
    return {"plan": p.__dict__, "wall_s": round(best.wall_s, 1), "usd": best.usd}


def print_model(rates: dict) -> dict:
    """The modelled AWS run from raw and from load-normalized measured rates."""
    print()
    if not rates:
        print("no AMPLab run: the model uses its default rates")
    floor = rates.pop("floor_mb_s_per_core", None)
    out = {}
    variants = [("as measured", rates)]
    if floor:
        variants.append((f"normalized to an idle core (floor here {floor:.1f} MB/s/core vs "
                         f"{model.REFERENCE_FLOOR_MB_S:.0f})", model.normalized(rates, floor)))
    for label, measured in variants:
        r = model.rates_from(measured)
        best = model.best_plan(rates=r)
        speedup = model.required_speedup(r)
        print(f"rates {label}: " + json.dumps({k: round(v, 2) for k, v in measured.items()}))
        print(model.report(best, r))
        print(f"  CPU speed-up on map and reduce needed to meet the target: "
              f"{'none' if speedup == 1.0 else f'{speedup}x'}")
        planned = model.model(rates=r, plan=model.planner_plan())
        p = planned.sizing
        print(f"  the sizing rules' plan (M={p.map_tasks} R={p.reducers} at {p.memory_mb} MB): "
              f"{planned.wall_s:.1f} s, ${planned.usd:.4f}")
        targets = model.planner_targets(r)
        print(model.planner_report(targets))
        out[label] = {"rates": measured, "plan": best.sizing.__dict__, "wall_s": round(best.wall_s, 1),
                      "usd": best.usd, "cost": best.cost, "meets_target": model.meets_target(best),
                      "required_speedup": speedup,
                      "planner_plan": {**p.__dict__, "wall_s": round(planned.wall_s, 1),
                                       "usd": planned.usd}, "planner": targets}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"small sizes ({QUICK_SIZE}), under 2 minutes")
    p.add_argument("--size", type=parse_size, help=f"bytes per workload (default {FULL_SIZE}; up to 1GiB)")
    p.add_argument("--split-size", type=parse_size, help="bytes per split (default: the planner's choice)")
    p.add_argument("--reducers", type=int, help="reducers (default: the planner's choice)")
    p.add_argument("--only", help="comma-separated: " + ",".join(WORKLOADS) + " (default: all; "
                   "--quick leaves out memory, whose partition must be 128 MiB)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--job-timeout", type=float, default=FANOUT_TIMEOUT_S,
                   help="fan-out: cancel the job after this many seconds and report how far it got")
    p.add_argument("--poll", type=float, default=0.5,
                   help="watcher poll interval (s) for the throughput workloads (each poll is a LIST)")
    p.add_argument("--latency-poll", type=float, default=0.05,
                   help="watcher poll interval (s) for the trivial job and the fan-out")
    p.add_argument("--repeat", type=int, default=1,
                   help="AMPLab, sort and the batch word count: run the floor (and Lithops, for word count) "
                        "and the job alternately this many times and report the median of each "
                        "(every sample is kept in the JSON)")
    p.add_argument("--memory-mb", type=int, default=1024)
    p.add_argument("--stack", choices=("local", "inprocess"), default="local",
                   help="local: the local stack (worker processes, Lambda emulation); inprocess: "
                        "moto S3 and the handlers on threads of this process (data plane only)")
    p.add_argument("--data-dir", help="keep generated data here (default: a temp dir, deleted)")
    p.add_argument("--json", help="also write the rows and the model as JSON here")
    p.add_argument("--no-model", action="store_true")
    p.add_argument("--cold", action="store_true",
                   help="time the throughput rows on a cold stack (no warm-up job first: see warm_stack)")
    p.add_argument("--no-peer", dest="peer", action="store_false",
                   help="leave out the Lithops localhost rows (they are skipped when Lithops is absent)")
    args = p.parse_args(argv)
    if args.size is None:
        args.size = parse_size(QUICK_SIZE if args.quick else FULL_SIZE)
    if args.quick and args.split_size is None:
        args.split_size = parse_size(QUICK_SPLIT)
    if args.quick and args.job_timeout == FANOUT_TIMEOUT_S:
        args.job_timeout = QUICK_FANOUT_TIMEOUT_S
    default = [w for w in WORKLOADS if not (args.quick and w == "memory")]
    args.only = [w.strip() for w in args.only.split(",") if w.strip()] if args.only else default
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads {sorted(unknown)}; choose from {','.join(WORKLOADS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from bench.engine import Bench, InProcessBench

    if args.stack == "local":
        try:
            from airflow_provider_smr.local import LocalStack  # noqa: F401
        except ImportError:
            print("no local stack in this tree yet (airflow_provider_smr.local.LocalStack): "
                  "running --stack inprocess", flush=True)
            args.stack = "inprocess"
    make_bench = Bench if args.stack == "local" else InProcessBench

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="smr-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    began = time.perf_counter()
    failures = 0
    try:
        with make_bench(memory_mb=args.memory_mb) as bench:
            print(f"{args.stack} stack up, stack deployed in {time.perf_counter() - began:.1f}s; "
                  f"size {args.size / 2**20:.0f} MiB per workload, data in {data_dir}", flush=True)
            warm = None
            if not args.cold and set(args.only) & set(THROUGHPUT):
                warm = warm_stack(bench, args)
                print(f"workers warmed by a word count of M={warm['M']} R={warm['R']} in "
                      f"{warm['wall_s']:.2f}s (--cold: without)", flush=True)
            for name in args.only:
                try:
                    got = BENCHES[name](bench, args, data_dir)
                    for row in got if isinstance(got, list) else [got]:
                        row["stack"] = args.stack  # inprocess: RSS also holds moto's objects and the handlers
                        row["warm_up"] = warm  # None: the rows ran on a cold stack (--cold)
                        print_row(row)
                        rows.append(row)
                except Exception as exc:  # noqa: BLE001 - one broken workload must not hide the others'
                    failures += 1
                    row = {"workload": name, "error": f"{type(exc).__name__}: {exc}"}
                    print(f"{name:<24} FAILED {row['error']}", flush=True)
                    rows.append(row)
            rates = {} if args.no_model else measured_rates(rows, bench)
            per_record = {} if args.no_model else measured_rates(rows, bench, workload="AMPLab Q2" + PER_RECORD)
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    print("\n" + "\n".join(ratio_table(rows)))
    if args.peer and not peers.available():
        print("Lithops is not installed (pip install -e '.[bench]'): no peer rows", flush=True)
    modelled = None if args.no_model else print_model(rates)
    if modelled is not None:
        modelled["per_record"] = print_per_record_model(per_record)
    print(f"\nbench finished in {time.perf_counter() - began:.1f}s, {failures} workload(s) failed")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "model": modelled}, indent=1, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
