"""Where a job's wall time goes: its tasks and the stack's requests on one time line, and CPU seconds
per process, for the batch AMPLab Q2, word count or sort job of ``bench/run.py`` on the bench's
warmed local stack, or the word count of its many-small-objects row.

    python bench/timeline.py [--workload amplab|wordcount|sort] [--size 200MiB] [--runs 3] [--out DIR]
    python bench/timeline.py --workload smallobjects [--objects 20000] [--with-one] [--runs 5]

Per run: the wall seconds (submit to the result dict, as the bench row), the critical path's pieces
(:func:`critical_path`: submit to the first task, each phase's span, the gap from a phase's last
task to the next phase's first, the last task to the job's ``SUCCEEDED`` marker, and that marker to
the result), the CPU seconds of the stack's server, its worker processes and this driver, and the
job's GB-seconds and S3 GETs. With ``--out`` each run's whole time line (requests and task
starts/ends, seconds from submit) goes to a file. On a busy machine wall seconds mean little; the
CPU seconds and the gaps (sequential requests) move less.

``--workload smallobjects`` word-counts ``--objects`` objects of about 2 KB (``bench/run.py``'s
``smallobjects`` row, issue 15); ``--with-one`` runs the same bytes as one object before each of
those runs (alternating), its rows marked ``"input": "one object"``. The many-objects rows add
``cpu_ms_per_object``: the stack's CPU (server and workers) per input object.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import jobs  # noqa: E402
from bench.gen_common import parse_size  # noqa: E402

_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def critical_path(markers: list[dict], requests: list[list], began: float, ended: float) -> dict:
    """The pieces of a job's wall time, in seconds (pure).

    :param markers: its done markers' bodies (``phase``, ``started``, ``finished``; epoch seconds).
    :param requests: the stack's ``[start, end, kind, path]`` requests during the job.
    :param began: when the driver submitted (epoch seconds); ``ended``: when it had the result.
    """
    out: dict = {"wall_s": round(ended - began, 3)}
    phases = [(p, [m for m in markers if m.get("phase") == p]) for p in ("map", "reduce")]
    phases = [(p, ms) for p, ms in phases if ms]
    if not phases:
        return out
    out["to_first_task_s"] = round(min(m["started"] for m in phases[0][1]) - began, 3)
    previous: tuple[str, float] | None = None  # the phase before, and its last task's finish
    for phase, ms in phases:
        first, last = min(m["started"] for m in ms), max(m["finished"] for m in ms)
        out[f"{phase}_span_s"] = round(last - first, 3)
        if previous is not None:
            out[f"{previous[0]}_to_{phase}_s"] = round(first - previous[1], 3)
        previous = (phase, last)
    last_task = max(m["finished"] for m in markers)
    succeeded = [r[1] for r in requests if r[2] == "PUT" and r[3].endswith("/status/job/SUCCEEDED")]
    if succeeded:
        out["last_task_to_succeeded_s"] = round(min(succeeded) - last_task, 3)
        out["succeeded_to_result_s"] = round(ended - min(succeeded), 3)
    else:
        out["last_task_to_result_s"] = round(ended - last_task, 3)
    return out


def _cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TCK
    return out


def _session(sid: int) -> list[int]:
    """The processes of session ``sid`` (the local stack's server and its workers)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                pids.append(int(name))
    return pids


def _small_objects(bench, args, data: Path) -> list[tuple[str, str, int]]:
    """Upload ``bench/run.py``'s small-objects input (and, with ``--with-one``, the same bytes as
    one object): ``(label, input uri, objects)`` of each job to time, in the order to alternate."""
    from concurrent.futures import ThreadPoolExecutor

    from bench import run as bench_run
    from bench.gen_words import words_bytes

    n = args.objects
    body = words_bytes(n * bench_run.SMALL_OBJECT_BYTES, 0)
    prefix = f"timeline/small-{n}/"
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(bench.put, [f"{prefix}{i:06d}.log" for i in range(n)], bench_run._cut_at_lines(body, n)))
    inputs = []
    if args.with_one:
        inputs.append(("one object", bench.put(f"timeline/small-{n}-one/all.log", body), 1))
    inputs.append((f"{n} objects", f"s3://{bench.data_bucket}/{prefix}", n))
    return inputs


def _measure(bench, sid: int, make, uri: str, kw: dict, out: str | None, name: str) -> dict:
    """One run of ``make()`` over ``uri``: its row (critical path, CPU seconds per process, the
    output's digest); with ``out``, its time line written to ``out/name.txt``."""
    before = _cpu(_session(sid))
    driver0, began = time.process_time(), time.time()
    run = bench.run(make(), input=uri, output=f"s3://{bench.data_bucket}/out/timeline/", **kw)
    ended, driver = time.time(), time.process_time() - driver0
    after = _cpu(_session(sid))
    workers = sum(c - before.get(pid, 0.0) for pid, c in after.items() if pid != sid)
    markers = bench.done_markers(run.result["job_id"])
    requests = [r for r in bench.local.request_timeline() if began <= r[0] <= ended]
    counters = run.result["counters"]
    row = {"M": counters["map_tasks"], "R": counters["reduce_tasks"],
           **critical_path(markers, requests, began, ended),
           "cpu_s": {"server": round(after.get(sid, 0.0) - before.get(sid, 0.0), 2),
                     "workers": round(workers, 2), "driver": round(driver, 2)},
           "gb_s": run.result.get("lambda_gb_seconds"),
           "gets": run.stack_requests.get("GET", 0)}
    row["cpu_s"]["total"] = round(sum(row["cpu_s"].values()), 2)
    digest = hashlib.sha256()  # the output's bytes, parts in order
    for part in bench.read_parts(run.result):
        digest.update(b"\n".join(part))
    row["parts_sha256"] = digest.hexdigest()[:16]
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        lines = [(r[0] - began, f"{r[2]:<24} {r[1] - r[0]:.3f}s {r[3]}") for r in requests]
        lines += [(m[k] - began, f"{m['phase']} {m['task']} {k}") for m in markers for k in ("started", "finished")]
        text = "".join(f"{t:8.3f} {what}\n" for t, what in sorted(lines))
        Path(out, f"{name}.txt").write_text(text + f"{ended - began:8.3f} result\n")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=("amplab", "wordcount", "sort", "smallobjects"), default="amplab")
    p.add_argument("--size", type=parse_size, default=parse_size("200MiB"))
    p.add_argument("--objects", type=int, default=20_000, help="smallobjects: how many objects of ~2 KB")
    p.add_argument("--with-one", action="store_true", help="smallobjects: alternate with the same bytes in one object")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--poll", type=float, default=0.5, help="watcher poll interval, as bench/run.py")
    p.add_argument("--split-size", type=parse_size)
    p.add_argument("--reducers", type=int)
    p.add_argument("--data-dir", default=None, help="keep generated data here (default: a temp dir)")
    p.add_argument("--out", help="write each run's whole time line here")
    args = p.parse_args(argv)
    import tempfile

    from bench import run as bench_run
    from bench.engine import Bench
    from bench.gen_sort import sort_file
    from bench.gen_uservisits import uservisits_file
    from bench.gen_words import words_file

    tmp = None if args.data_dir else tempfile.TemporaryDirectory()
    data = Path(args.data_dir or tmp.name)  # type: ignore[union-attr]
    kw = {"poll_interval": args.poll}
    gen = None
    if args.workload == "sort":  # as bench/run.py's sort row: R from the size, cuts from a sample
        gen = sort_file(data, args.size, 0)
        kw["num_reducers"] = max(2, min(32, gen.size // (32 << 20)))
        cuts = jobs.sample_boundaries(bench_run._sample_keys(gen.path), kw["num_reducers"])
        make = functools.partial(jobs.sort_builtin_job, cuts)
    elif args.workload == "smallobjects":
        make = jobs.word_count_batch_job
    else:
        gen, make = ((uservisits_file(data, args.size, 0), jobs.amplab_q2_batch_job) if args.workload == "amplab"
                     else (words_file(data, args.size, 0), jobs.word_count_batch_job))
    if args.split_size:
        kw["split_size"] = args.split_size
    if args.reducers:
        kw["num_reducers"] = args.reducers
    try:
        with Bench() as bench:
            bench_run.warm_stack(bench, argparse.Namespace(seed=0, latency_poll=0.05))
            if gen is None:
                inputs = _small_objects(bench, args, data)
            else:
                inputs = [("", bench.upload(gen.path, f"timeline/{gen.path.name}"), 1)]
            for i in range(args.runs):
                for label, uri, objects in inputs:
                    name = f"{args.workload}-{i}" + (f"-{objects}" if label else "")
                    row = _measure(bench, bench.local.pid, make, uri, kw, args.out, name)
                    if label:
                        row = {"input": label, **row}
                    if objects > 1:  # the stack's CPU (server and workers) per input object
                        cpu = row["cpu_s"]["server"] + row["cpu_s"]["workers"]
                        row["cpu_ms_per_object"] = round(1000 * cpu / objects, 3)
                    print(json.dumps(row), flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
