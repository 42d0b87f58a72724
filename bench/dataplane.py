"""Profile the data plane alone: the real planner and handlers, in one process, one task at a time.

No local stack and no worker processes: a moto S3 server on loopback, the runner's real planner,
and a queue standing in for Lambda's async invoke, so every handler call runs in the main thread
under cProfile. Prints per-phase seconds, per-byte rates (what bench/model.py calls map and reduce
CPU rates, S3 client time included) and the functions that dominate::

    python bench/dataplane.py --workload amplab --size 32MiB --split-size 8MiB --reducers 4
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import jobs  # noqa: E402
from bench.engine import FAKE_ENV  # noqa: E402
from bench.gen_common import parse_size  # noqa: E402
from bench.gen_sort import sort_file  # noqa: E402
from bench.gen_uservisits import uservisits_file  # noqa: E402
from bench.gen_words import words_file  # noqa: E402
from lambda_handlers.options import JobOptions

WORK_BUCKET = "smr-prof-work"
DATA_BUCKET = "smr-prof-data"
FUNCTIONS = {"mapper": "prof-mapper", "reducer": "prof-reducer", "coordinator": "prof-coordinator",
             "driver": "prof-driver"}


class QueueLambda:
    """Stands in for the Lambda client: ``invoke`` queues the event (the control plane's side)."""

    def __init__(self, queue: collections.deque) -> None:
        self.queue = queue
        self.meta = SimpleNamespace(events=SimpleNamespace(register=lambda *a, **k: None))

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:
        self.queue.append((FunctionName, json.loads(Payload)))
        return {"StatusCode": 202}


WORKLOADS = {
    "wordcount": (words_file, jobs.word_count_job),
    "wordcount-batch": (words_file, jobs.word_count_batch_job),
    "wordcount-nocombine": (words_file, jobs.word_count_without_combiner_job),
    "amplab": (uservisits_file, jobs.amplab_q2_job),
    "amplab-batch": (uservisits_file, jobs.amplab_q2_batch_job),
    "sort": (sort_file, jobs.sort_job),
    "sort-builtin": (sort_file, jobs.sort_builtin_job),
}


def workload_job(workload: str, data_dir: Path, size: int, reducers: int) -> tuple[object, object]:
    """The generated input and the job of a workload (sort jobs get cut points from a key sample)."""
    generate, make_job = WORKLOADS[workload]
    gen = generate(data_dir, size)
    if workload.startswith("sort"):
        keys = [line[:jobs.SORT_KEY] for line in gen.path.read_text().splitlines()[::97]]
        return gen, make_job(jobs.sample_boundaries(keys, reducers))
    return gen, make_job()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(endpoint: str) -> None:
    from lambda_handlers import protocol

    os.environ.update(FAKE_ENV, AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    os.environ.update({protocol.ENV_WORK_BUCKET: WORK_BUCKET, protocol.ENV_STACK_NAME: "prof",
                       protocol.ENV_MAPPER_FUNCTION: FUNCTIONS["mapper"],
                       protocol.ENV_REDUCER_FUNCTION: FUNCTIONS["reducer"],
                       protocol.ENV_COORDINATOR_FUNCTION: FUNCTIONS["coordinator"],
                       protocol.ENV_DRIVER_FUNCTION: FUNCTIONS["driver"]})


def _floor_one_core(workload: str, path: Path) -> float | None:
    """Seconds of the floor's pure-Python pass over ``path`` in this one process (same moment)."""
    from bench import floors

    work = {"amplab": floors._sum_revenue, "wordcount": floors._count_words}.get(workload.split("-")[0])
    if work is None:
        return None
    began = time.perf_counter()
    work((str(path), 0, path.stat().st_size))
    return time.perf_counter() - began


def profile(workload: str, size: int, split_size: int, reducers: int, top: int = 20,
            enabled: bool = True) -> dict:
    from moto.server import ThreadedMotoServer

    from airflow_provider_smr.engine.aws import AwsClients
    from airflow_provider_smr.engine.runner import JobRunner
    from lambda_handlers import coordinator, mapper, reducer, runtime

    data_dir = Path(tempfile.mkdtemp(prefix="smr-prof-"))
    gen, job = workload_job(workload, data_dir, size, reducers)

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    _env(endpoint)
    runtime.reset()
    queue: collections.deque = collections.deque()
    runtime.set_invoker(lambda name, event: queue.append((name, event)))
    clients = AwsClients(endpoint_url=endpoint, region_name="us-east-1")
    for bucket in (WORK_BUCKET, DATA_BUCKET):
        clients.s3.create_bucket(Bucket=bucket)
    clients.s3.upload_file(str(gen.path), DATA_BUCKET, "input/data")
    clients._clients["lambda"] = QueueLambda(queue)
    stack = SimpleNamespace(work_bucket=WORK_BUCKET, functions=FUNCTIONS, memory_mb=1024, timeout_s=300,
                            runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}", stack_name="prof",
                            max_running_tasks=0, mapper_memory_mb=None, reducer_memory_mb=None,
                            versions={}, architecture="x86_64")
    runner = JobRunner(clients, stack)
    handlers = {FUNCTIONS["mapper"]: ("map", mapper.handler), FUNCTIONS["reducer"]: ("reduce", reducer.handler),
                FUNCTIONS["coordinator"]: ("coordinate", coordinator.handler)}
    seconds: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    prof = cProfile.Profile()
    began = time.perf_counter()
    job_id = runner.submit(job, input=f"s3://{DATA_BUCKET}/input/data", output=f"s3://{DATA_BUCKET}/out/",
                           options=JobOptions(split_size=split_size, num_reducers=reducers, overwrite=True))
    submit_s = time.perf_counter() - began
    while queue:
        name, event = queue.popleft()
        phase, handler = handlers[name]
        t = time.perf_counter()
        if enabled:
            prof.enable()
        result = handler(event)
        if enabled:
            prof.disable()
        seconds[phase] += time.perf_counter() - t
        calls[phase] += 1
        if isinstance(result, dict) and "error" in result:
            raise RuntimeError(f"{phase} failed: {result}")
    result = runner.wait(job_id, poll_interval=0.05)
    wall = time.perf_counter() - began
    runtime.set_invoker(None)
    server.stop()
    floor_s = _floor_one_core(workload, gen.path)
    for f in data_dir.iterdir():
        f.unlink()
    data_dir.rmdir()

    counters = result["counters"]
    out = io.StringIO()
    if enabled:
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return {
        "workload": workload, "bytes": gen.size, "M": counters["map_tasks"], "R": counters["reduce_tasks"],
        "wall_s": round(wall, 3), "submit_s": round(submit_s, 3),
        "phase_s": {k: round(v, 3) for k, v in seconds.items()}, "calls": dict(calls),
        "map_mb_s": round(gen.size / 1e6 / seconds["map"], 2) if seconds["map"] else None,
        "reduce_mb_s": (round(counters["shuffle_bytes"] / 1e6 / seconds["reduce"], 2)
                        if seconds["reduce"] else None),
        "floor_one_core_mb_s": round(gen.size / 1e6 / floor_s, 2) if floor_s else None,
        "shuffle_bytes": counters["shuffle_bytes"], "map_output_records": counters["map_output_records"],
        "profile": out.getvalue(),
    }


def map_outputs_in_memory(workload: str, size: int, split_size: int, reducers: int,
                          seed: int = 0) -> tuple[object, dict[str, bytes], list[list]]:
    """The job and its map outputs built in this process (the job's mapper and combiner, the
    shuffle's format): ``(job, {output_key: bytes}, [[output_key, index], ...])``."""
    from lambda_handlers import shuffle

    data_dir = Path(tempfile.mkdtemp(prefix="smr-prof-"))
    gen, job = workload_job(workload, data_dir, size, reducers)
    text = gen.path.read_bytes()
    gen.path.unlink()
    data_dir.rmdir()
    spec, ser = job.steps[0], shuffle.serializer(job.serializer)
    objects, outputs, start = {}, [], 0
    while start < len(text):
        end = text.find(b"\n", min(len(text), start + split_size))
        end = len(text) if end < 0 else end + 1
        out = shuffle.PartitionedOutput(reducers, ser, spec.partitioner)
        pairs = [kv for line in text[start:end].decode().splitlines() for kv in spec.mapper(line)]
        if spec.combiner is not None:  # combined once per split (one record per distinct key)
            groups: dict = {}
            for k, v in pairs:
                groups.setdefault(k, []).append(v)
            pairs = [kv for k, vs in groups.items() for kv in spec.combiner(k, vs)]
        out.add_many(pairs)
        key = f"map/{len(objects)}"
        objects[key], index = out.finish()
        outputs.append([key, index])
        start = end
    return job, objects, outputs


def reduce_only(workload: str, size: int, split_size: int, reducers: int, budget: int,
                repeat: int = 3, enabled: bool = False, top: int = 20, fmt: str = "jsonl") -> dict:
    """CPU seconds of reduce task 0 alone (the real ``reduce_task``; S3 replaced by the map outputs
    in memory), best of ``repeat``, and the SHA-256 of its part (compare it across revisions)."""
    import hashlib

    from lambda_handlers import reducer, runtime
    from lambda_handlers.options import TaskLimits
    from lambda_handlers.plan import OutputPlan, Plan, StepPlan

    job, objects, outputs = map_outputs_in_memory(workload, size, split_size, reducers)
    put: dict = {}

    def get_bytes(bucket, key, Range=None, **_):
        lo, hi = (int(x) for x in Range.split("=")[1].split("-"))
        return objects[key][lo:hi + 1]

    def put_bytes(bucket, key, body, **_):
        put[key] = body

    plan = Plan(job_id="j", steps=(StepPlan(index=0, num_map_tasks=len(outputs), num_reducers=reducers),),
                output=OutputPlan(uri="s3://b/out/", bucket="b", prefix="out/", format=fmt),
                limits=TaskLimits(memory_budget_bytes=budget, reducer_memory_budget_bytes=budget))
    event = {"bucket": "b", "job_id": "j", "step": 0, "task": 0, "attempt": 0}
    times, prof = [], cProfile.Profile()
    # the stand-ins last while it runs: a test session runs the real reducer next
    with mock.patch.multiple(runtime, get_bytes=get_bytes, put_bytes=put_bytes), \
            mock.patch.multiple(reducer, map_outputs=lambda *a: outputs):
        for _ in range(repeat):
            put.clear()
            cpu = time.process_time()
            if enabled:
                prof.enable()
            done = reducer.reduce_task(event, plan, job, runtime.TaskMetrics())
            if enabled:
                prof.disable()
            times.append(time.process_time() - cpu)
    out = io.StringIO()
    if enabled:
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    part = next(iter(put.values()))
    shuffle_bytes = sum(index[0][1] for _, index in outputs)
    return {"workload": workload, "bytes": size, "M": len(outputs), "R": reducers,
            "slice_bytes": shuffle_bytes, "records_in": done["records_in"],
            "records_out": done["records_out"], "spilled_bytes": done.get("spilled_bytes"),
            "reduce_cpu_s": [round(t, 3) for t in times],
            "best_mb_s": round(shuffle_bytes / 1e6 / min(times), 2),
            "part_sha256": hashlib.sha256(part).hexdigest()[:16], "profile": out.getvalue()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="amplab")
    p.add_argument("--size", type=parse_size, default=parse_size("32MiB"))
    p.add_argument("--split-size", type=parse_size, default=parse_size("8MiB"))
    p.add_argument("--reducers", type=int, default=4)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--no-profile", action="store_true", help="time only (cProfile roughly doubles CPU)")
    p.add_argument("--reduce-only", action="store_true",
                   help="CPU seconds of reduce task 0 alone, map outputs built in memory (no S3)")
    p.add_argument("--budget", type=parse_size, default=parse_size("256MiB"),
                   help="--reduce-only: the reducer's memory budget")
    p.add_argument("--repeat", type=int, default=3, help="--reduce-only: runs (best is reported)")
    args = p.parse_args(argv)
    if args.reduce_only:
        got = reduce_only(args.workload, args.size, args.split_size, args.reducers, args.budget,
                          args.repeat, not args.no_profile, args.top)
        text = got.pop("profile")
        print(json.dumps(got, indent=1))
        print(text)
        return
    got = profile(args.workload, args.size, args.split_size, args.reducers, args.top, not args.no_profile)
    text = got.pop("profile")
    print(json.dumps(got, indent=1))
    print(text)


if __name__ == "__main__":
    main()
