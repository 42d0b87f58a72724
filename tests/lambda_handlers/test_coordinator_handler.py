"""Coordinator: exactly-once transitions under concurrency, commit rules, deadlines, cancel, security."""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from lambda_handlers import coordinator, driver, mapper, protocol, reducer, runtime
from lambda_handlers.jobspec import JobSpec, StepSpec
from lambda_handlers.plan import Plan


def words(line):
    for w in line.split():
        yield w, 1


def total(k, vs):
    yield k, sum(vs)


SPEC = JobSpec(steps=[StepSpec(mapper=words, combiner=total, reducer=total)])


@pytest.fixture
def recorded(s3_endpoint):
    events: list[dict] = []
    runtime.set_invoker(lambda name, ev: events.append(ev))
    yield events
    runtime.set_invoker(None)


def _concurrently(fn, n=16):
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def _keys(s3, bucket, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_concurrent_coordinator_calls_start_reduce_once_and_commit_once(harness, recorded):
    objs = [harness.put("cc/a.txt", b"x y z\n" * 20)]
    plan = harness.submit(SPEC, harness.splits(objs, 16), [3])
    job_id, bucket = plan["job_id"], plan["work_bucket"]
    for ev in plan["events"]:
        mapper.handler(ev)
    recorded.clear()
    event = protocol.coordinate_event(bucket, job_id, "test")
    _concurrently(lambda: coordinator.handler(event))
    reduces = [e for e in recorded if e["kind"] == "reduce"]
    assert sorted(e["task"] for e in reduces) == [0, 1, 2]
    recorded.clear()
    for ev in reduces:
        reducer.handler(ev)
    results = _concurrently(lambda: coordinator.handler(event))
    commits = [r for r in results if ["commit"] in r.get("actions", [])]
    assert len(commits) == 1
    assert harness.state(job_id) == [protocol.SUCCEEDED]
    lines, manifest = harness.output(plan)
    assert {json.loads(x)["key"]: json.loads(x)["value"] for x in lines} == {"x": 20, "y": 20, "z": 20}
    assert [e for e in recorded if e["kind"] != "coordinate"] == []


def _run(harness, chain, body: bytes, reducers: int, prefix: str, **kw):
    objs = [harness.put(f"inputs/{prefix}in.txt", body)]
    plan = harness.submit(SPEC, harness.splits(objs, 1000), [reducers], output_prefix=prefix, **kw)
    chain().run(plan["events"])
    return plan


def test_commit_refuses_a_committed_output_and_a_failed_job_leaves_it_unchanged(harness, chain):
    prefix = "commit1/out/"
    first = _run(harness, chain, b"a b\n", 2, prefix)
    before = {k: harness.s3.get_object(Bucket="smr-data-test", Key=k)["Body"].read()
              for k in _keys(harness.s3, "smr-data-test", prefix)}
    second = _run(harness, chain, b"c d\n", 2, prefix)
    assert harness.state(second["job_id"]) == [protocol.FAILED]
    failed = json.loads(harness.s3.get_object(Bucket=second["work_bucket"],
                                              Key=protocol.failed_key(second["job_id"]))["Body"].read())
    assert "already committed" in failed["reason"] and "overwrite" in failed["reason"]
    after = {k: harness.s3.get_object(Bucket="smr-data-test", Key=k)["Body"].read()
             for k in _keys(harness.s3, "smr-data-test", prefix)}
    assert after == before and harness.state(first["job_id"]) == [protocol.SUCCEEDED]


def test_overwrite_commit_removes_stale_parts_only(harness, chain):
    prefix = "commit2/out/"
    _run(harness, chain, b"a b c d e f\n", 3, prefix)
    harness.put(prefix + "notes.txt", b"keep me")
    harness.put(prefix + "sub/part-00009.jsonl", b"keep me too")
    plan = _run(harness, chain, b"z\n", 1, prefix, overwrite=True)
    assert harness.state(plan["job_id"]) == [protocol.SUCCEEDED]
    assert _keys(harness.s3, "smr-data-test", prefix) == [
        prefix + "_SUCCESS", prefix + "notes.txt", prefix + "part-00000.jsonl",
        prefix + "sub/part-00009.jsonl"]
    lines, manifest = harness.output(plan)
    assert lines == [b'{"key": "z", "value": 1}']
    assert manifest["job_id"] == plan["job_id"] and manifest["records"] == 1
    assert manifest["parts"] == [{"key": prefix + "part-00000.jsonl", "size": 25, "records": 1}]
    done = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"],
                                            Key=protocol.done_key(plan["job_id"]))["Body"].read())
    assert done["state"] == "SUCCEEDED" and done["manifest"] == f"s3://smr-data-test/{prefix}_SUCCESS"


def test_check_deadlines_retries_a_silent_attempt(harness, recorded):
    objs = [harness.put("dl/a.txt", b"x\n")]
    plan = harness.submit(SPEC, harness.splits(objs, 100), [1])
    job_id, bucket = plan["job_id"], plan["work_bucket"]
    harness.s3.put_object(Bucket=bucket, Key=protocol.start_marker_key(job_id, 0, "map", 0, 0), Body=b"")
    assert coordinator.coordinate(bucket, job_id, "map-0-0")["actions"] == []  # not yet late
    assert coordinator.coordinate(bucket, job_id, "check-deadlines")["actions"] == []
    later = time.time() + plan["limits"]["task_timeout_s"] + 31
    result = coordinator.coordinate(bucket, job_id, "check-deadlines", now=later)
    assert [a[0] for a in result["actions"]] == ["timeout", "retry"]
    assert [(e["kind"], e["task"], e["attempt"]) for e in recorded] == [("map", 0, 1)]
    detail = json.loads(harness.s3.get_object(
        Bucket=bucket, Key=protocol.error_detail_key(job_id, 0, "map", 0, 0))["Body"].read())
    assert "timed out or ran out of memory" in detail["message"]
    coordinator.coordinate(bucket, job_id, "check-deadlines")
    coordinator.coordinate(bucket, job_id, "map-0-0")
    assert len(recorded) == 1  # the retry claim makes it once


def test_cancelled_job_starts_nothing(harness, recorded):
    objs = [harness.put("cx/a.txt", b"x\n")]
    plan = harness.submit(SPEC, harness.splits(objs, 100), [1])
    job_id, bucket = plan["job_id"], plan["work_bucket"]
    harness.s3.put_object(Bucket=bucket, Key=protocol.cancel_key(job_id), Body=b"")
    assert mapper.handler(plan["events"][0]) == {"cancelled": True}
    assert _keys(harness.s3, bucket, protocol.status_prefix(job_id)) == []


@pytest.mark.parametrize("change", [{"bucket": "someone-elses-bucket"}, {"job_id": "../etc"},
                                    {"kind": "reduce"}, {"task": -1}])
def test_handlers_refuse_foreign_or_malformed_events_before_any_write(harness, change):
    objs = [harness.put("sec/a.txt", b"x\n")]
    plan = harness.submit(SPEC, harness.splits(objs, 100), [1])
    before = _keys(harness.s3, plan["work_bucket"], "")
    event = {**plan["events"][0], **change}
    with pytest.raises(protocol.InvalidEventError, match="invalid map event: "):
        mapper.handler(event)
    if "bucket" in change or "job_id" in change:
        with pytest.raises(protocol.InvalidEventError, match="invalid coordinate event: "):
            coordinator.handler({**event, "kind": "coordinate"})
    assert _keys(harness.s3, plan["work_bucket"], "") == before


def test_driver_invokes_each_task_of_a_batch_and_a_drive_without_plan_or_request_fails(harness, recorded):
    tasks = [protocol.task_event("map", "smr-work-test", "j1", 0, t, 0) for t in range(3)]
    assert driver.handler(protocol.invoke_event("smr-work-test", "j1", tasks)) == {"invoked": 3}
    assert sorted(e["task"] for e in recorded) == [0, 1, 2]
    job_id = f"j-{uuid.uuid4().hex[:8]}"
    assert "error" in driver.handler(protocol.drive_event("smr-work-test", job_id))
    assert len(recorded) == 3  # nothing else invoked


def test_done_marker_carries_metrics(harness, chain):
    plan = _run(harness, chain, b"a b\nc\n", 1, "metrics/out/")
    m = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"], Key=protocol.done_marker_key(
        plan["job_id"], 0, "map", 0))["Body"].read())
    assert m["records_in"] == 2 and m["records_out"] == 3 and m["bytes_in"] == 6
    assert m["bytes_out"] > 0 and m["max_rss_mb"] > 0 and m["duration_s"] >= 0
    assert m["requests"]["GetObject"] >= 3 and m["requests"]["PutObject"] == 3  # start, data, marker
    assert m["output_key"] == protocol.map_output_key(plan["job_id"], 0, 0, 0) and len(m["index"]) == 1


def _finisher(s3, job_id: str, n: int):
    plan = Plan.from_json({"job_id": job_id, "steps": [{"index": 0, "num_map_tasks": n, "num_reducers": 1}]})

    def finish(task: int) -> bool:
        s3.put_object(Bucket="smr-work-test", Key=protocol.start_marker_key(job_id, 0, "map", task, 0), Body=b"")
        s3.put_object(Bucket="smr-work-test", Key=protocol.done_marker_key(job_id, 0, "map", task), Body=b"{}")
        return coordinator.phase_complete("smr-work-test", job_id, plan, 0, "map", task)
    return finish


def test_tally_tree_reports_completion_only_for_the_last_task(harness):
    import random

    order = list(range(23))
    random.Random(3).shuffle(order)
    finish = _finisher(harness.s3, "tally-seq", 23)
    assert [finish(t) for t in order] == [False] * 22 + [True]
    assert _finisher(harness.s3, "tally-one", 1)(0)


def test_tally_tree_reports_completion_exactly_once_under_concurrency(harness):
    finish = _finisher(harness.s3, "tally-par", 23)
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(finish, range(23))).count(True) == 1


def test_a_map_task_runs_in_a_fresh_process_with_only_the_function_env(harness, s3_endpoint):
    import os
    import subprocess
    import sys

    objs = [harness.put("proc/a.txt", b"x y\n")]
    plan = harness.submit(JobSpec(steps=[StepSpec(mapper=_module_free_mapper(), reducer=None)]),
                          harness.splits(objs, 100), [0])
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "SMR_"))}
    env["PATH"], env["PYTHONPATH"] = os.environ.get("PATH", ""), os.getcwd()
    code = ("import json, sys; from lambda_handlers import mapper;"
            "print(json.dumps(mapper.handler(json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(plan["events"][0])], env=env,
                         capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"done": True, "won": True}, out.stderr
    marker = harness.s3.get_object(Bucket=plan["work_bucket"],
                                   Key=protocol.done_marker_key(plan["job_id"], 0, "map", 0))
    assert json.loads(marker["Body"].read())["records_out"] == 2


def _module_free_mapper():
    """A mapper pickled by value (no test module needed in the other process)."""
    ns: dict = {}
    exec("def split_words(line):\n    return [(w, 1) for w in line.split()]\n", ns)
    return ns["split_words"]


def test_the_status_listing_returns_every_marker_past_one_thousand(s3):
    """The coordinator's scan reads a job's markers through one paginated listing (a page is 1,000)."""
    job_id, bucket = f"many-{uuid.uuid4().hex[:6]}", os.environ[protocol.ENV_WORK_BUCKET]
    keys = [protocol.done_marker_key(job_id, 0, protocol.MAP, i) for i in range(1105)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    listed = runtime.list_keys(bucket, protocol.status_prefix(job_id))
    assert sorted(o["Key"] for o in listed) == sorted(keys)
