"""Soak test: many concurrent jobs on one stack, with faults, speculation, a killed driver, a cancel.

```bash
python bench/soak.py                       # 20 jobs on an embedded local stack
python bench/soak.py --jobs 40 --lines 2000 --json soak.json
```

The jobs (``bench/soak_jobs.py``) mix S3 and DynamoDB outputs, two-phase, map-only and two-step
jobs. Faults come from a job parameter: ``crash_rate`` of the task attempts raise, a few attempts
hang past the function timeout, one touches more memory than the function has; speculation is on.
One job is started by ``smr run`` (a worker-side driver) that is killed mid-job and resumed with
the same job id; one job is cancelled mid-way. Checked at the end (:func:`run_soak` raises
:class:`SoakError` otherwise): every surviving job's output is exactly its reference; the
cancelled one committed nothing; no object appeared outside the work bucket but the outputs of the
jobs that succeeded; the local stack's file descriptors and memory are back near their baseline.
``tests/reliability/test_soak.py`` runs a short version in the suite.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ and the packages import from the root
    sys.path.insert(0, str(ROOT))

from lambda_handlers import protocol  # noqa: E402

KINDS = ("wc-s3", "wc-ddb", "maponly-s3", "two-step-s3")
JOB_REFS = {"wc-s3": "word_count", "wc-ddb": "word_count", "maponly-s3": "first_words",
            "two-step-s3": "count_groups"}
WORDS = [f"w{i}" for i in range(60)]


class SoakError(AssertionError):
    """A soak check failed: the message says which job and how."""


@dataclasses.dataclass(frozen=True)
class SoakConfig:
    """One soak run.

    :param jobs: concurrent jobs (kinds cycle through :data:`KINDS`).
    :param lines: input lines per job (in ``objects`` objects, about 2 map tasks each).
    :param crash_rate: share of task attempts (below the last allowed one) that raise.
    :param hangs: jobs with one map attempt hanging past the function timeout.
    :param ooms: jobs with one reduce attempt running out of memory.
    :param cancel: cancel one job mid-way.
    :param kill_driver: start one job with ``smr run`` and kill it mid-job, then resume it.
    :param grace_s: ``deadline_grace_s`` of the jobs (how long past its timeout a silent attempt
        is retried).
    """

    jobs: int = 20
    lines: int = 300
    objects: int = 4
    crash_rate: float = 0.05
    hangs: int = 2
    ooms: int = 1
    cancel: bool = True
    kill_driver: bool = True
    grace_s: int = 2
    max_attempts: int = 4
    memory_mb: int = 256
    seed: int = 1
    poll_s: float = 0.3
    timeout_s: float = 900.0
    #: the local stack's cap on warm worker processes (its default)
    stack_max_processes: int = 12
    #: rounds of ``jobs`` concurrent jobs; the stack's usage after the first is the baseline
    waves: int = 2


@dataclasses.dataclass
class Case:
    """One job of the soak and what became of it."""

    index: int
    kind: str
    role: str  # "run", "cancel" or "kill-driver"
    input: str
    output: str
    lines: list[str]
    faults: dict
    job_id: str = ""
    state: str = ""
    result: dict | None = None
    error: str = ""


# -- inputs and references -----------------------------------------------------------------------


def make_lines(seed: int, n: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) for _ in range(n)]


def reference(kind: str, lines: list[str]) -> Any:
    """The exact output a job of ``kind`` must commit for ``lines``."""
    counts = collections.Counter(w for line in lines for w in line.split())
    if kind in ("wc-s3", "wc-ddb"):
        return dict(counts)
    if kind == "maponly-s3":
        return sorted([line.split()[0], len(line.split())] for line in lines if line.split())
    groups: dict[int, list[str]] = collections.defaultdict(list)
    for word, n in counts.items():
        groups[n].append(word)
    return {n: sorted(ws) for n, ws in groups.items()}


def committed(case: Case, clients: Any) -> Any:
    """What the job committed, in the shape of :func:`reference`."""
    if case.kind == "wc-ddb":
        from lambda_handlers.io import dynamodb

        table = case.output.removeprefix(dynamodb.SCHEME)
        split = {"table": table, "segment": 0, "total_segments": 1}
        return {it["key"]: it["value"] for it in dynamodb.scan_segment(clients.dynamodb, split)}
    assert case.result is not None
    pairs = []
    for uri in case.result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        pairs += [(r["key"], r["value"]) for r in map(json.loads, body.splitlines())]
    if case.kind == "maponly-s3":
        return sorted([k, v] for k, v in pairs)
    out = dict(pairs)
    if len(out) != len(pairs):
        raise SoakError(f"job {case.index} ({case.kind}): a key was committed twice")
    return {int(k): v for k, v in out.items()} if case.kind == "two-step-s3" else out


# -- the local stack's resources -----------------------------------------------------------------


def group_usage(pgid: int) -> dict[str, int]:
    """The local stack's server (the process group's leader) and its warm workers: resident MiB
    and open file descriptors (Linux ``/proc``). Workers stay warm by design, up to the stack's
    process cap; the server must come back to its baseline after the jobs."""
    out = {"server_rss_mib": 0, "server_fds": 0, "workers": 0, "worker_rss_mib": 0,
           "max_worker_fds": 0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # fields after the name: state, ppid, pgrp, ...
                continue
            with open(f"/proc/{entry}/status") as f:
                rss = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) // 1024
            fds = len(os.listdir(f"/proc/{entry}/fd"))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while we looked
        if int(entry) == pgid:
            out["server_rss_mib"], out["server_fds"] = rss, fds
        else:
            out["workers"] += 1
            out["worker_rss_mib"] += rss
            out["max_worker_fds"] = max(out["max_worker_fds"], fds)
    return out


def usage_problem(baseline: dict[str, int], after: dict[str, int], max_workers: int) -> str | None:
    """Why ``after`` is not back near ``baseline`` (None if it is). The slack covers the workers
    the pool may still add up to its cap (a pipe pair each in the server) and the memory moto
    keeps for the objects the jobs stored."""
    grown = max(0, after["workers"] - baseline["workers"])
    if after["server_fds"] > baseline["server_fds"] + 16 + 3 * grown:
        return f"the server holds {after['server_fds']} descriptors (baseline {baseline['server_fds']})"
    if after["server_rss_mib"] > baseline["server_rss_mib"] * 1.25 + 64:
        return f"the server uses {after['server_rss_mib']} MiB (baseline {baseline['server_rss_mib']})"
    if after["workers"] > max_workers + 2:  # the pool's cap, and its zygote
        return f"{after['workers']} worker processes (the pool's cap is {max_workers})"
    if after["max_worker_fds"] > max(64, baseline["max_worker_fds"] + 16):
        return f"a worker holds {after['max_worker_fds']} descriptors"
    return None


# -- running -------------------------------------------------------------------------------------


def plan_cases(cfg: SoakConfig, data_bucket: str, clients: Any) -> list[Case]:
    """The jobs: inputs uploaded, DynamoDB tables created, faults and roles assigned."""
    run = uuid.uuid4().hex[:8]
    cases = []
    plain = []
    for i in range(cfg.jobs):
        kind = KINDS[i % len(KINDS)]
        lines = make_lines(cfg.seed * 1000 + i, cfg.lines)
        prefix = f"soak-{run}/in/{i:03d}/"
        per = -(-len(lines) // cfg.objects)
        for j in range(cfg.objects):
            chunk = lines[j * per:(j + 1) * per]
            if chunk:
                clients.s3.put_object(Bucket=data_bucket, Key=f"{prefix}part-{j}.txt",
                                      Body=("\n".join(chunk) + "\n").encode())
        if kind == "wc-ddb":
            table = f"soak-{run}-{i:03d}"
            clients.dynamodb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}])
            output = f"dynamodb://{table}"
        else:
            output = f"s3://{data_bucket}/soak-{run}/out/{i:03d}/"
        faults = {"tag": f"{run}-{i}", "crash_rate": cfg.crash_rate,
                  "crash_attempts": cfg.max_attempts - 2, "hang": [], "oom": []}
        case = Case(i, kind, "run", f"s3://{data_bucket}/{prefix}", output, lines, faults)
        cases.append(case)
        if kind != "wc-ddb":
            plain.append(case)
    # Roles and the planned kills go to S3 jobs, in a fixed order.
    todo = list(plain)
    if cfg.cancel and todo:
        case = todo.pop()
        case.role, case.faults["delay_s"] = "cancel", 0.05
    if cfg.kill_driver and todo:
        todo.pop(0).role = "kill-driver"
    for case in todo[:cfg.hangs]:
        case.faults["hang"].append([0, protocol.MAP, 1])
    for case in [c for c in todo[cfg.hangs:] if c.kind != "maponly-s3"][:cfg.ooms]:
        case.faults["oom"].append([0, protocol.REDUCE, 0])
        case.faults["oom_mb"] = cfg.memory_mb + 256
    return cases


def options_for(case: Case, cfg: SoakConfig) -> Any:
    from lambda_handlers.options import JobOptions

    split = max(64, sum(len(line) + 1 for line in case.lines) // (2 * cfg.objects))
    return JobOptions(split_size=split, num_reducers=2, max_attempts=cfg.max_attempts,
                      deadline_grace_s=cfg.grace_s, speculation=True)


def job_of(case: Case) -> Any:
    from bench import soak_jobs

    return getattr(soak_jobs, JOB_REFS[case.kind])


def run_case(case: Case, cfg: SoakConfig, clients: Any, stack: Any, endpoint: str) -> Case:
    from airflow_provider_smr.engine.runner import JobCancelledError, JobRunner

    runner = JobRunner(clients, stack)
    opts, params = options_for(case, cfg), {"faults": case.faults}
    try:
        if case.role == "kill-driver":
            case.job_id = f"soak-killed-{case.faults['tag']}"
            _killed_cli_run(case, opts, params, endpoint, stack, clients)
            runner.submit(job_of(case), input=case.input, output=case.output, options=opts,
                          job_params=params, job_id=case.job_id)  # resumes the interrupted fan-out
        else:
            case.job_id = runner.submit(job_of(case), input=case.input, output=case.output,
                                        options=opts, job_params=params)
        if case.role == "cancel":
            _wait_for(lambda: runner.status(case.job_id).steps[0][protocol.MAP].done > 0, cfg.timeout_s)
            runner.cancel(case.job_id)
        case.result = runner.wait(case.job_id, poll_interval=cfg.poll_s, timeout=cfg.timeout_s)
        case.state = protocol.SUCCEEDED
    except JobCancelledError:
        case.state = protocol.CANCELLED
    except Exception as exc:  # noqa: BLE001 - reported by the checks, with the job it hit
        case.state, case.error = protocol.FAILED, f"{type(exc).__name__}: {str(exc)[:2000]}"
    return case


def _wait_for(condition: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SoakError(f"condition not met within {timeout_s:.0f}s")
        time.sleep(0.2)


def _killed_cli_run(case: Case, opts: Any, params: dict, endpoint: str, stack: Any, clients: Any) -> None:
    """``smr run`` the job (the worker-side driver), SIGKILLed once its first map task started."""
    command = [sys.executable, "-m", "airflow_provider_smr.cli", "run",
               f"bench/soak_jobs.py:{JOB_REFS[case.kind]}", "--input", case.input,
               "--output", case.output, "--endpoint-url", endpoint, "--stack-name", stack.stack_name,
               "--job-id", case.job_id, "--param", "faults=" + json.dumps(params["faults"]),
               "--split-size", str(opts.split_size), "--num-reducers", str(opts.num_reducers),
               "--max-attempts", str(opts.max_attempts), "--deadline-grace-s", str(opts.deadline_grace_s),
               "--speculation", "--json"]
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": stack.region,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    prefix = protocol.phase_status_prefix(case.job_id, 0, protocol.MAP)
    try:
        _wait_for(lambda: proc.poll() is not None or bool(clients.s3.list_objects_v2(
            Bucket=stack.work_bucket, Prefix=prefix, MaxKeys=1).get("KeyCount")), 300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _objects_outside(clients: Any, work_bucket: str, stack: Any = None) -> set[str]:
    """Every object outside ``work_bucket`` in the buckets the soak's functions could write: those
    ``stack``'s role grants (all buckets without a stack). Other stacks' buckets on a shared local
    stack (their own stragglers) are not the soak's."""
    from lambda_handlers.grants import Location

    granted = None
    if stack is not None and getattr(stack, "input_locations", None) is not None:
        granted = {Location.parse(loc).bucket for loc in [*stack.input_locations, *stack.output_locations]}
    found = set()
    for b in clients.s3.list_buckets()["Buckets"]:
        if b["Name"] == work_bucket or (granted is not None and b["Name"] not in granted):
            continue
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            found.update(f"s3://{b['Name']}/{o['Key']}" for o in page.get("Contents", []))
    return found


def run_soak(cfg: SoakConfig, clients: Any, stack: Any, endpoint: str, data_bucket: str,
             stack_pid: int | None = None) -> dict:
    """Run the soak on a deployed stack in ``cfg.waves`` waves of ``cfg.jobs`` concurrent jobs;
    return its figures; raise :class:`SoakError` when a check fails.

    The local stack's baseline (server and warm workers, :func:`group_usage`) is taken once the
    first wave is over (the worker pool is warm and the clients' connections are open); after the
    last wave the stack must be back near it (:func:`usage_problem`).
    """
    began = time.monotonic()
    done: list[Case] = []
    baseline = usage = None
    for wave in range(cfg.waves):
        cases = plan_cases(dataclasses.replace(cfg, seed=cfg.seed + wave), data_bucket, clients)
        before_objects = _objects_outside(clients, stack.work_bucket, stack)  # the inputs included
        with ThreadPoolExecutor(max_workers=len(cases), thread_name_prefix="soak") as pool:
            finished = list(pool.map(lambda c: run_case(c, cfg, clients, stack, endpoint), cases))
        _check_wave(finished, clients, stack, before_objects)
        done += finished
        if stack_pid is not None and wave == 0:
            baseline = _settled_usage(stack_pid, None, cfg.stack_max_processes)
    if stack_pid is not None and baseline is not None and cfg.waves > 1:
        usage = _settled_usage(stack_pid, baseline, cfg.stack_max_processes)
        why = usage_problem(baseline, usage, cfg.stack_max_processes)
        if why:
            raise SoakError(f"the local stack did not come back to its baseline: {why} "
                            f"(baseline {baseline}, after {usage})")
    counters = [c.result["counters"] for c in done if c.result]
    return {
        "jobs": len(done), "succeeded": sum(c.state == protocol.SUCCEEDED for c in done),
        "cancelled": sum(c.state == protocol.CANCELLED for c in done),
        "task_attempts": sum(c.get("attempts", 0) for c in counters),
        "retried_attempts": sum(c.get("retried_attempts", 0) for c in counters),
        "failed_attempts": sum(_error_markers(clients, stack.work_bucket, c.job_id) for c in done if c.job_id),
        "planned_hangs": sum(len(c.faults["hang"]) for c in done),
        "planned_ooms": sum(len(c.faults["oom"]) for c in done),
        "wall_s": round(time.monotonic() - began, 1), "stack_baseline": baseline, "stack_after": usage,
    }


def _check_wave(done: list[Case], clients: Any, stack: Any, before_objects: set[str]) -> None:
    problems = []
    for case in done:
        want_state = protocol.CANCELLED if case.role == "cancel" else protocol.SUCCEEDED
        if case.state != want_state:
            problems.append(f"job {case.index} ({case.kind}, {case.role}) {case.state}, expected "
                            f"{want_state}: {case.error}")
        elif case.state == protocol.SUCCEEDED and committed(case, clients) != reference(case.kind, case.lines):
            problems.append(f"job {case.index} ({case.kind}, {case.role}): output differs from its reference")
    allowed = tuple(c.output for c in done if c.state == protocol.SUCCEEDED and c.output.startswith("s3://"))
    stray = sorted(k for k in _objects_outside(clients, stack.work_bucket, stack) - before_objects
                   if not k.startswith(allowed))
    if stray:
        problems.append(f"{len(stray)} objects outside the work bucket and the outputs, e.g. {stray[:5]}")
    if problems:
        raise SoakError("; ".join(problems))


def _error_markers(clients: Any, work_bucket: str, job_id: str) -> int:
    n = 0
    for page in clients.s3.get_paginator("list_objects_v2").paginate(
            Bucket=work_bucket, Prefix=protocol.status_prefix(job_id)):
        for o in page.get("Contents", []):
            k = protocol.parse_status_key(job_id, o["Key"])
            n += k is not None and k.kind == "error"
    return n


def _settled_usage(pid: int, baseline: dict[str, int] | None, max_workers: int,
                   wait_s: float = 30.0) -> dict[str, int]:
    """The stack's usage once it is idle again (workers finish their last reports): without a
    baseline, once two readings a second apart agree."""
    deadline = time.monotonic() + wait_s
    usage = group_usage(pid)
    while time.monotonic() < deadline:
        if baseline is not None and not usage_problem(baseline, usage, max_workers):
            break
        time.sleep(1.0)
        again = group_usage(pid)
        if baseline is None and again["server_fds"] == usage["server_fds"] and again["workers"] == usage["workers"]:
            return again
        usage = again
    return usage


# -- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=SoakConfig.jobs)
    parser.add_argument("--lines", type=int, default=SoakConfig.lines)
    parser.add_argument("--crash-rate", type=float, default=SoakConfig.crash_rate)
    parser.add_argument("--timeout-s", type=int, default=10, help="the stack's function timeout")
    parser.add_argument("--json", metavar="FILE", help="write the figures here too")
    args = parser.parse_args(argv)
    cfg = SoakConfig(jobs=args.jobs, lines=args.lines, crash_rate=args.crash_rate)

    import boto3

    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.engine.aws import AwsClients
    from airflow_provider_smr.local import LocalStack
    from lambda_handlers.options import StackSettings

    data = "smr-soak-data"
    with LocalStack() as local:
        session = boto3.session.Session(region_name=local.region, aws_access_key_id="testing",
                                        aws_secret_access_key="testing")
        clients = AwsClients(session, endpoint_url=local.endpoint_url, region_name=local.region)
        clients.s3.create_bucket(Bucket=data)
        stack = deploy_stack(clients, "smr-soak", StackSettings(memory_mb=cfg.memory_mb,
                                                                timeout_s=args.timeout_s),
                             input_buckets=[data], output_buckets=[data])
        figures = run_soak(cfg, clients, stack, local.endpoint_url, data, stack_pid=local.pid)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
