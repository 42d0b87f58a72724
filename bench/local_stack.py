"""Benchmark the local stack: S3 request rate, warm Event invoke round trip, cold start.

    .venv/bin/python bench/local_stack.py [--requests 400] [--invokes 30] [--fanout 1000]
    .venv/bin/python bench/local_stack.py --only fanout --fanout 1000
    .venv/bin/python bench/local_stack.py --only servers --http-servers builtin,cheroot
    .venv/bin/python bench/local_stack.py --only servers --http-servers builtin,waitress --fanout 0

``--only servers`` measures the S3 request rate, large-body throughput and a fan-out behind each
HTTP server named in ``--http-servers`` (see ``airflow_provider_smr.local.http_servers``), in
turns, in the same run, so that the figures share the machine's load. Behind waitress the fan-out
never finishes (its handler's empty PUT is never answered): measure waitress with ``--fanout 0``.

``--only fanout`` measures just the fan-out: ``fan_out`` (the driver's own code path) issuing N
Event invokes of a function that, like a mapper, makes a few S3 requests per event, so the
workers compete for the CPU while the invokes are still being issued. "Issued" means the stack
has answered 202 to every invoke (it has ACCEPTED them), not that they were handed to a queue.

Targets (issue 2): >= 400 small S3 requests/s with 4 clients, warm no-op Event invoke round trip
<= 20 ms, cold start <= 0.6 s. Also prints the server's CPU time per request, which says where the
time goes even when the machine is busy with other work.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow_provider_smr.local import LocalStack  # noqa: E402

BUCKET = "bench-local-stack"
NOOP_MARKER = """
import boto3

s3 = boto3.client("s3")

def handler(event, context):
    s3.put_object(Bucket=event["bucket"], Key=event["key"], Body=b"")
"""
NOOP = """
def handler(event, context):
    return None
"""
COLD = """
import time

import boto3
from botocore.config import Config

s3 = boto3.client("s3")
# what lambda_handlers.runtime.client does: a new Session per service
own = [boto3.session.Session().client(service, config=Config(max_pool_connections=64))
       for service in ("s3", "lambda")]

def handler(event, context):
    return {"nonce": %r, "cpu_s": time.process_time()}
"""


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def _client_loop(env: dict, client_id: int, requests: int, start, results) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    body = b"x" * 1024
    s3.put_object(Bucket=BUCKET, Key=f"warm/{client_id}", Body=body)
    start.wait()
    began = time.perf_counter()
    for i in range(requests // 2):
        key = f"c{client_id}/{i}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    results.put((requests // 2 * 2, time.perf_counter() - began))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def s3_rate(stack: LocalStack, clients: int, requests_per_client: int) -> tuple[float, float]:
    """Requests per second over all clients, and server CPU ms per request."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_client_loop, args=(stack.env, i, requests_per_client, start, results))
             for i in range(clients)]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let every client import boto3 and connect before the clock starts
    cpu_before = _cpu_seconds(stack.pid)
    start.set()
    done = [results.get() for _ in procs]
    cpu_used = _cpu_seconds(stack.pid) - cpu_before
    for proc in procs:
        proc.join()
    total = sum(n for n, _ in done)
    return total / max(t for _, t in done), cpu_used / total * 1000


def _role(stack: LocalStack) -> str:
    iam = stack.client("iam")
    try:
        return iam.get_role(RoleName="bench")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def event_round_trip(stack: LocalStack, invokes: int) -> list[float]:
    lam, s3 = stack.client("lambda"), stack.client("s3")
    role = _role(stack)
    lam.create_function(FunctionName="bench-marker", Runtime="python3.11", Role=role,
                        Handler="app.handler", Code={"ZipFile": _zip(NOOP_MARKER)})
    times = []
    for i in range(invokes + 1):
        key = f"marker/{i}"
        began = time.perf_counter()
        lam.invoke(FunctionName="bench-marker", InvocationType="Event",
                   Payload=json.dumps({"bucket": BUCKET, "key": key}))
        while True:
            try:
                s3.head_object(Bucket=BUCKET, Key=key)
                break
            except s3.exceptions.ClientError:
                time.sleep(0.001)
        if i:  # the first one includes the cold start
            times.append((time.perf_counter() - began) * 1000)
    return times


def sync_noop(stack: LocalStack, invokes: int) -> list[float]:
    lam = stack.client("lambda")
    lam.create_function(FunctionName="bench-noop", Runtime="python3.11",
                        Role=_role(stack), Handler="app.handler",
                        Code={"ZipFile": _zip(NOOP)})
    lam.invoke(FunctionName="bench-noop", Payload=b"{}")
    times = []
    for _ in range(invokes):
        began = time.perf_counter()
        lam.invoke(FunctionName="bench-noop", Payload=b"{}")
        times.append((time.perf_counter() - began) * 1000)
    return times


def cold_starts(stack: LocalStack, count: int, prefix: str = "cold",
                cpu: list[float] | None = None) -> list[float]:
    """First invocation of new functions, each after a pause (sporadic cold starts); ``cpu``
    collects the worker process's own CPU seconds at the end of that first invocation."""
    cpu = [] if cpu is None else cpu
    lam = stack.client("lambda")
    times = []
    for i in range(count):
        time.sleep(3.0)  # sporadic: the stack is idle between them
        name = f"bench-{prefix}-{i}"
        lam.create_function(FunctionName=name, Runtime="python3.11",
                            Role=_role(stack), Handler="app.handler",
                            Code={"ZipFile": _zip(COLD % f"{prefix}-{i}")})
        began = time.perf_counter()
        reply = lam.invoke(FunctionName=name, Payload=b"{}")
        times.append(time.perf_counter() - began)
        cpu.append(json.loads(reply["Payload"].read())["cpu_s"])
    return times


FANOUT_HANDLER = """
import boto3

s3 = boto3.client("s3")

def handler(event, context):
    s3.head_object(Bucket=event["bucket"], Key="fanout/input")
    s3.put_object(Bucket=event["bucket"], Key=f"fanout/done/{event['i']}", Body=b"")
"""


def fanout(stack: LocalStack, count: int, max_concurrency: int | None = None) -> dict:
    """Issue ``count`` Event invokes through ``engine.submit.fan_out``; seconds to issue and to run."""
    from airflow_provider_smr.engine import submit

    lam, s3 = stack.client("lambda"), stack.client("s3")
    s3.put_object(Bucket=BUCKET, Key="fanout/input", Body=b"x")
    name = f"bench-fanout-{int(time.time() * 1000)}"
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=_role(stack),
                        Handler="app.handler", Code={"ZipFile": _zip(FANOUT_HANDLER)},
                        Timeout=60, MemorySize=256)
    events = [{"bucket": BUCKET, "i": i} for i in range(count)]
    cpu_before = _cpu_seconds(stack.pid)
    driver_before = time.process_time()
    began = time.perf_counter()
    stats = submit.fan_out(lam, name, events, max_concurrency=max_concurrency)
    issued = time.perf_counter() - began
    driver_cpu = time.process_time() - driver_before
    server_cpu = _cpu_seconds(stack.pid) - cpu_before
    done = 0
    while done < count and time.perf_counter() - began < 600:
        time.sleep(0.2)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="fanout/done/")
        done = sum(len(page.get("Contents", [])) for page in pages)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="fanout/done/"):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
    return {"invokes": count, "tries": stats["tries"], "issued_s": issued,
            "per_s": count / issued, "done_s": time.perf_counter() - began, "done": done,
            "driver_cpu_ms": driver_cpu / count * 1000,
            "server_cpu_ms_during_issue": server_cpu / count * 1000}


def print_fanout(result: dict) -> None:
    print(f"fan-out {result['invokes']} Event invokes: issued (all accepted, 202) in "
          f"{result['issued_s']:.2f} s = {result['per_s']:.0f}/s ({result['tries']} tries); all "
          f"{result['done']} ran in {result['done_s']:.1f} s   (driver CPU "
          f"{result['driver_cpu_ms']:.2f} ms/invoke, server CPU during issue "
          f"{result['server_cpu_ms_during_issue']:.2f} ms/invoke)", flush=True)


def large_bodies(stack: LocalStack, mib: int, rounds: int = 3) -> tuple[float, float]:
    """MiB/s of one client's PUT and of its GET of a ``mib`` MiB object (best of ``rounds``)."""
    s3 = stack.client("s3")
    body = bytes(range(256)) * (mib * 4096)
    put = get = float("inf")
    for i in range(rounds):
        began = time.perf_counter()
        s3.put_object(Bucket=BUCKET, Key=f"large/{i}", Body=body)
        put = min(put, time.perf_counter() - began)
        began = time.perf_counter()
        data = s3.get_object(Bucket=BUCKET, Key=f"large/{i}")["Body"].read()
        get = min(get, time.perf_counter() - began)
        assert len(data) == len(body)
        s3.delete_object(Bucket=BUCKET, Key=f"large/{i}")
    return mib / put, mib / get


def servers_only(servers: list[str], args: argparse.Namespace) -> int:
    """Each HTTP server in turn, ``args.rounds`` times, for the same measurements."""
    results: dict[str, list[dict]] = {name: [] for name in servers}
    for round_ in range(args.rounds):
        for name in servers if round_ % 2 == 0 else servers[::-1]:
            with LocalStack(port=0, http_server=name) as stack:
                stack.client("s3").create_bucket(Bucket=BUCKET)
                row = {"load": os.getloadavg()[0]}
                for clients in (1, 4):
                    row[f"rate{clients}"], row[f"cpu{clients}"] = s3_rate(stack, clients,
                                                                          args.requests)
                row["put"], row["get"] = large_bodies(stack, args.large_mib)
                row["fanout"] = (fanout(stack, args.fanout, args.fanout_concurrency)["per_s"]
                                 if args.fanout else 0.0)
                results[name].append(row)
                print(f"[{name}] round {round_ + 1} (load {row['load']:.1f}): S3 1 KB PUT+GET "
                      f"{row['rate1']:.0f} req/s with 1 client, {row['rate4']:.0f} with 4 "
                      f"(server CPU {row['cpu1']:.2f}/{row['cpu4']:.2f} ms/request); "
                      f"{args.large_mib} MiB PUT {row['put']:.0f} MiB/s, GET {row['get']:.0f} "
                      f"MiB/s; fan-out {args.fanout} Event invokes issued at "
                      f"{row['fanout']:.0f}/s", flush=True)
    print("median over rounds:")
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"  {name:9s} S3 req/s 1 client {med['rate1']:6.0f}  4 clients {med['rate4']:6.0f}  "
              f"CPU ms/req {med['cpu1']:.2f}/{med['cpu4']:.2f}  {args.large_mib} MiB PUT "
              f"{med['put']:4.0f} MiB/s GET {med['get']:4.0f} MiB/s  fan-out {med['fanout']:4.0f}/s")
    return 0


def cold_only() -> int:
    for label, zygote in (("forked from the zygote", True), ("fresh python -I -S", False)):
        with LocalStack(port=0, zygote=zygote) as stack:
            cpu: list[float] = []
            cold = cold_starts(stack, 5, f"cold-{zygote}", cpu)
            print(f"cold start, {label}: median {statistics.median(cold):.3f} s "
                  f"(all {', '.join(f'{c:.3f}' for c in cold)}); worker CPU to the end of the "
                  f"first invoke: median {statistics.median(cpu) * 1000:.0f} ms", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="S3 requests per client")
    parser.add_argument("--invokes", type=int, default=30)
    parser.add_argument("--compare-moto", action="store_true",
                        help="also measure S3 with every request going through moto")
    parser.add_argument("--fanout", type=int, default=1000, help="Event invokes to fan out")
    parser.add_argument("--fanout-concurrency", type=int, default=None,
                        help="fan-out threads (default: engine.submit's)")
    parser.add_argument("--only", choices=("fanout", "cold", "servers"),
                        help="run only the fan-out, the cold-start or the HTTP server comparison")
    parser.add_argument("--http-servers", default="builtin,cheroot",
                        help="comma-separated HTTP servers for --only servers")
    parser.add_argument("--rounds", type=int, default=2, help="turns per server (--only servers)")
    parser.add_argument("--large-mib", type=int, default=64,
                        help="object size for the large-body throughput (--only servers)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if args.only == "fanout":
        with LocalStack(port=0) as stack:
            stack.client("s3").create_bucket(Bucket=BUCKET)
            print(f"local stack {stack.endpoint_url}  (load average {load:.1f})", flush=True)
            for count in (100, args.fanout):
                print_fanout(fanout(stack, count, args.fanout_concurrency))
        return 0
    if args.only == "cold":
        return cold_only()
    if args.only == "servers":
        return servers_only(args.http_servers.split(","), args)
    if args.compare_moto:
        with LocalStack(port=0, fast_s3=False) as stack:
            stack.client("s3").create_bucket(Bucket=BUCKET)
            for clients in (1, 4):
                rate, cpu_ms = s3_rate(stack, clients, args.requests)
                print(f"[moto path only] S3 1 KB PUT+GET, {clients} client(s): {rate:7.0f} req/s   "
                      f"(server CPU {cpu_ms:.2f} ms/request)")
    with LocalStack(port=0) as stack:
        stack.client("s3").create_bucket(Bucket=BUCKET)
        print(f"local stack {stack.endpoint_url}  (load average {load:.1f} on {os.cpu_count()} cores)")
        for clients in (1, 4):
            rate, cpu_ms = s3_rate(stack, clients, args.requests)
            print(f"S3 1 KB PUT+GET, {clients} client(s): {rate:7.0f} req/s   "
                  f"(server CPU {cpu_ms:.2f} ms/request)")
        cpu_before = _cpu_seconds(stack.pid)
        trip = event_round_trip(stack, args.invokes)
        cpu_ms = (_cpu_seconds(stack.pid) - cpu_before) / (args.invokes + 1) * 1000
        print(f"warm no-op Event invoke -> marker visible: median {statistics.median(trip):.1f} ms, "
              f"p90 {sorted(trip)[int(len(trip) * 0.9)]:.1f} ms   (server CPU {cpu_ms:.1f} ms per "
              f"invoke incl. the handler's PUT and the client's HEAD polls)")
        sync = sync_noop(stack, args.invokes)
        print(f"warm no-op RequestResponse invoke: median {statistics.median(sync):.1f} ms")
        cold = cold_starts(stack, 3)
        print(f"cold start (new function, handler imports boto3 and makes clients): median "
              f"{statistics.median(cold):.2f} s, all {', '.join(f'{c:.2f}' for c in cold)} s")
    with LocalStack(port=0, zygote=False) as stack:
        cold = cold_starts(stack, 3, "fresh")
        print(f"cold start without the zygote (fresh python -I -S): median "
              f"{statistics.median(cold):.2f} s, all {', '.join(f'{c:.2f}' for c in cold)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
