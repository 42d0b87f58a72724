"""Benchmark the local stack: S3 request rate, warm Event invoke round trip, cold start.

    .venv/bin/python bench/local_stack.py [--requests 400] [--invokes 30]

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
import boto3

s3 = boto3.client("s3")

def handler(event, context):
    return {"nonce": %r}
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


def cold_starts(stack: LocalStack, count: int, prefix: str = "cold") -> list[float]:
    """First invocation of new functions, each after a pause (sporadic cold starts)."""
    lam = stack.client("lambda")
    times = []
    for i in range(count):
        time.sleep(3.0)  # a spare in use is replaced in the background meanwhile
        name = f"bench-{prefix}-{i}"
        lam.create_function(FunctionName=name, Runtime="python3.11",
                            Role=_role(stack), Handler="app.handler",
                            Code={"ZipFile": _zip(COLD % f"{prefix}-{i}")})
        began = time.perf_counter()
        lam.invoke(FunctionName=name, Payload=b"{}")
        times.append(time.perf_counter() - began)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="S3 requests per client")
    parser.add_argument("--invokes", type=int, default=30)
    parser.add_argument("--compare-moto", action="store_true",
                        help="also measure S3 with every request going through moto")
    args = parser.parse_args()
    load = os.getloadavg()[0]
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
        print(f"cold start (new function, handler imports boto3 and makes an S3 client): median "
              f"{statistics.median(cold):.2f} s, all {', '.join(f'{c:.2f}' for c in cold)} s")
    with LocalStack(port=0, spares=0) as stack:
        cold = cold_starts(stack, 3, "fresh")
        print(f"cold start without spare interpreters (fresh python -I -S): median "
              f"{statistics.median(cold):.2f} s, all {', '.join(f'{c:.2f}' for c in cold)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
