"""Real data as it sits in S3, end to end on the local stack with deployed functions (issue 15):
thousands of small objects packed into a handful of map tasks, a mapper that asks which object
its record came from, and whole-object input."""

from __future__ import annotations

import gzip
import hashlib
import json
import operator
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_smr.job import MapReduceJob, Step, batch_mapper, fold
from lambda_handlers import protocol
from lambda_handlers.context import block_sources, input_name, input_uri, task
from lambda_handlers.options import JobOptions
from lambda_handlers.plan import Plan

DATA = "smr-packing-data"
pytestmark = pytest.mark.timeout(900)
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def tokenize(line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(values)


def lines_per_file(line):
    yield input_uri(), 1


def lines_per_file_block(lines):  # a batch mapper: its block may hold the lines of many objects
    sources = block_sources()
    ends = [s.start for s in sources[1:]] + [len(lines)]
    return [(s.uri, end - s.start) for s, end in zip(sources, ends, strict=True)]


def uri_of_block(lines):
    return [(input_uri(), len(lines))]


def where_from(pair):
    key, count = pair
    yield input_uri(), [input_name(), task().step, key, count]


def describe_object(record):
    uri, body = record
    info = task()
    yield uri, [len(body), hashlib.sha256(body).hexdigest(), input_name(), info.phase, info.step]


@pytest.fixture(scope="module")
def engine(deploy_engine):
    return deploy_engine("smr-packing", input_buckets=[DATA], memory_mb=256, timeout_s=120)


def _put_all(s3, objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=DATA, Key=kv[0], Body=kv[1]), objects.items()))


def _output(s3, result) -> dict:
    out = {}
    for uri in result["parts"]:
        key = uri[len(f"s3://{DATA}/"):]
        for line in s3.get_object(Bucket=DATA, Key=key)["Body"].read().decode().splitlines():
            rec = json.loads(line)
            out[rec["key"]] = rec["value"]
    return out


@pytest.fixture(scope="module")
def small_logs(engine):
    """2,000 objects of about 2 KB under one prefix (the last line of every other object has no
    newline): (prefix, {key: body})."""
    prefix = f"logs-{uuid.uuid4().hex[:8]}/"
    objects = {}
    for i in range(2000):
        lines = [" ".join(WORDS[(i + j + k) % len(WORDS)] for k in range(6)) for j in range(50)]
        body = "\n".join(lines) + ("\n" if i % 2 else "")
        objects[f"{prefix}dt=2026-12-{i % 3 + 1:02d}/{i:05d}.log"] = body.encode()
    _put_all(engine.s3, objects)
    return prefix, objects


@pytest.mark.parametrize("driver", ["worker", "lambda"])
def test_two_thousand_small_objects_run_as_a_handful_of_map_tasks_with_the_exact_count(engine, small_logs,
                                                                                       driver):
    prefix, objects = small_logs
    result = engine.runner.run(MapReduceJob(mapper=tokenize, reducer=total), input=f"s3://{DATA}/{prefix}",
                               output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
                               options=JobOptions(split_size=1 << 20, driver=driver), poll_interval=0.25,
                               timeout=600)
    expected = Counter(w for body in objects.values() for w in body.decode().split())
    assert _output(engine.s3, result) == dict(expected)
    total_bytes = sum(map(len, objects.values()))
    assert result["counters"]["map_tasks"] == -(-total_bytes // (1 << 20))  # 4 MB -> 4 tasks
    assert result["counters"]["records_read"] == 2000 * 50
    # the plan is small: its splits are stored apart and each task reads its own chunk
    plan_doc = engine.s3.get_object(Bucket=engine.stack.work_bucket,
                                    Key=protocol.plan_key(result["job_id"]))["Body"].read()
    assert len(plan_doc) < 16_000
    plan = Plan.from_json(json.loads(plan_doc))
    assert plan.split_chunks is not None and plan.num_splits == result["counters"]["map_tasks"]


def test_small_objects_that_fit_one_split_are_one_map_task_without_a_split_size(engine, small_logs):
    """2,000 objects of ~2 KB (4 MB, under the 8 MiB split) on the local stack's small pool: one
    map task, as the same bytes in one object would be, not 1,000 objects a task."""
    prefix, objects = small_logs
    result = engine.runner.run(MapReduceJob(mapper=tokenize, reducer=total), input=f"s3://{DATA}/{prefix}",
                               output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/", poll_interval=0.1,
                               timeout=600)
    expected = Counter(w for body in objects.values() for w in body.decode().split())
    assert _output(engine.s3, result) == dict(expected)
    assert result["counters"]["map_tasks"] == 1 and result["counters"]["records_read"] == 2000 * 50


def test_a_mapper_counts_lines_per_file_with_input_uri(engine):
    prefix = f"files-{uuid.uuid4().hex[:8]}/"
    objects = {f"{prefix}{i:03d}.txt": b"x\n" * i + (b"tail" if i % 3 == 0 else b"") for i in range(1, 40)}
    objects[f"{prefix}zipped.txt.gz"] = gzip.compress(b"one\ntwo\nthree")
    _put_all(engine.s3, objects)
    result = engine.runner.run(MapReduceJob(mapper=lines_per_file, reducer=total),
                               input=f"s3://{DATA}/{prefix}", output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
                               options=JobOptions(split_size=200), poll_interval=0.25, timeout=600)
    expected = {f"s3://{DATA}/{key}": (3 if key.endswith(".gz") else body.count(b"\n") + body.endswith(b"tail"))
                for key, body in objects.items()}
    assert _output(engine.s3, result) == expected
    assert 1 < result["counters"]["map_tasks"] < len(objects)  # packed, by bytes


def test_a_batch_mapper_counts_lines_per_file_with_block_sources(engine):
    """A batch mapper's block fills across small objects: ``block_sources()`` names each record's
    object; ``input_uri()`` there fails the task naming it, and ``per_object=True`` makes it work."""
    prefix = f"batchfiles-{uuid.uuid4().hex[:8]}/"
    objects = {f"{prefix}{i:03d}.txt": b"x\n" * i + (b"tail" if i % 3 == 0 else b"") for i in range(1, 40)}
    objects[f"{prefix}zipped.txt.gz"] = gzip.compress(b"one\ntwo\nthree")
    _put_all(engine.s3, objects)
    expected = {f"s3://{DATA}/{key}": (3 if key.endswith(".gz") else body.count(b"\n") + body.endswith(b"tail"))
                for key, body in objects.items()}
    run = dict(input=f"s3://{DATA}/{prefix}", poll_interval=0.25, timeout=600)
    for mapper in (batch_mapper(lines_per_file_block), batch_mapper(uri_of_block, per_object=True)):
        result = engine.runner.run(MapReduceJob(mapper=mapper, combiner=fold(operator.add), reducer=fold(operator.add)),
                                   output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/", **run)
        assert _output(engine.s3, result) == expected
        assert result["counters"]["map_tasks"] == 1
    with pytest.raises(Exception, match=r"input_uri\(\) has no one answer in this batch mapper's block: it holds "
                                        r"the records of 39 objects .*block_sources\(\)"):
        engine.runner.run(MapReduceJob(mapper=batch_mapper(uri_of_block), reducer=fold(operator.add)),
                          output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/", **run)


def test_whole_objects_reach_the_mapper_as_uri_and_bytes(engine):
    prefix = f"blobs-{uuid.uuid4().hex[:8]}/"
    blobs = {f"{prefix}a.bin": bytes(range(256)) * 40, f"{prefix}b.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 999,
             f"{prefix}c.json": b'{"doc": 1,\n "lines": [1, 2]}'}
    raw = {**blobs, f"{prefix}d.warc.gz": gzip.compress(b"WARC/1.0\r\n" * 300)}
    _put_all(engine.s3, raw)
    result = engine.runner.run(MapReduceJob(mapper={"docs": describe_object}, input_format={"docs": "whole"}),
                               input={"docs": f"s3://{DATA}/{prefix}"},
                               output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/", poll_interval=0.25, timeout=600)
    bodies = {**blobs, f"{prefix}d.warc.gz": b"WARC/1.0\r\n" * 300}
    assert _output(engine.s3, result) == {
        f"s3://{DATA}/{key}": [len(body), hashlib.sha256(body).hexdigest(), "docs", "map", 0]
        for key, body in bodies.items()}
    assert result["counters"]["map_tasks"] == 1


def test_in_a_later_step_input_uri_is_the_previous_reducers_output(engine):
    prefix = f"chain-{uuid.uuid4().hex[:8]}/"
    _put_all(engine.s3, {f"{prefix}a.txt": b"x y\nx\n", f"{prefix}b.txt": b"y"})
    job = MapReduceJob(steps=[Step(mapper=tokenize, reducer=total, num_reducers=1), Step(mapper=where_from)])
    result = engine.runner.run(job, input=f"s3://{DATA}/{prefix}", output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
                               poll_interval=0.25, timeout=600)
    rows = []
    for uri in result["parts"]:
        key = uri[len(f"s3://{DATA}/"):]
        rows += [json.loads(line) for line in engine.s3.get_object(Bucket=DATA, Key=key)["Body"].read().splitlines()]
    reduce_output = f"s3://{engine.stack.work_bucket}/{protocol.job_prefix(result['job_id'])}reduce/0/00000."
    assert sorted(r["value"][2:] for r in rows) == [["x", 2], ["y", 2]]
    assert all(r["key"].startswith(reduce_output) and r["value"][:2] == ["default", 1] for r in rows)
