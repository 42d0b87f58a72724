"""Issue 5, faults 1, 4, 5 and 9: failing tasks, duplicate delivery, a stampeding coordinator,
poison records. Real handlers on the local stack; faults injected by the job's own functions or by
sending the same Lambda events again."""

from __future__ import annotations

import json
import threading
import time

import pytest

from airflow_provider_smr.engine import submit as submit_mod
from airflow_provider_smr.engine.runner import JobFailedError
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from tests.reliability import faults
from tests.reliability.conftest import DATA, POLL, TIMEOUT

pytestmark = pytest.mark.timeout(300)


def inputs(env, name: str, files: int = 3, lines: int = 60, extra: str = "") -> tuple[str, list[str]]:
    prefix = env.fresh(name)
    texts = [faults.words_text(i, lines) + (extra if i == 1 else "") for i in range(files)]
    for i, text in enumerate(texts):
        env.put(f"{prefix}/f{i}.txt", text)
    return f"s3://{DATA}/{prefix}/", texts


def test_mapper_failing_on_its_first_attempt_is_retried_and_the_attempt_counted(rel):
    uri, texts = inputs(rel, "fail-once", extra="boom here\n")
    job = MapReduceJob(mapper=faults.mapper_failing_once_on("boom here", rel.fresh("flag")),
                       reducer=faults.total)
    result = rel.runner.run(job, input=uri, output=rel.output(), poll_interval=POLL, timeout=TIMEOUT,
                            options=JobOptions(num_reducers=2))
    assert rel.records(result) == faults.word_count(*texts)
    tasks = result["counters"]["map_tasks"] + 2  # small objects are packed: maps follow the bytes
    assert result["counters"]["attempts"] == tasks + 1
    assert result["counters"]["retried_attempts"] == 1
    errors = [k for k in rel.job_objects(result["job_id"]) if "/errors/" in k]
    assert len(errors) == 1 and "/map/" in errors[0] and errors[0].endswith(".0.json")  # attempt 0
    detail = json.loads(rel.s3.get_object(Bucket=rel.stack.work_bucket, Key=errors[0])["Body"].read())
    assert "f1.txt" in json.dumps(detail)  # the task holding f1.txt (packed with the others) failed


def test_every_task_delivered_twice_concurrently_gives_the_exact_answer(rel):
    uri, texts = inputs(rel, "twice")
    job = MapReduceJob(mapper=faults.tokenize, reducer=faults.total)
    runner, lam = rel.runner, rel.clients.lambda_
    job_id = runner.submit(job, input=uri, output=rel.output(), options=JobOptions(num_reducers=3))
    plan = runner.plan(job_id)
    submit_mod.fan_out(lam, rel.stack.functions["mapper"], submit_mod.map_events(plan, None))
    seen_reduce = threading.Event()

    def duplicate_reducers():  # the moment the reduce phase is claimed, deliver every reducer again
        claim = protocol.claim_key(job_id, "reduce-0")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and claim not in rel.job_objects(job_id):
            time.sleep(0.05)
        events = [protocol.task_event(protocol.REDUCE, rel.stack.work_bucket, job_id, 0, r, 0)
                  for r in range(3)]
        submit_mod.fan_out(lam, rel.stack.functions["reducer"], events)
        seen_reduce.set()

    thread = threading.Thread(target=duplicate_reducers, daemon=True)
    thread.start()
    result = runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    thread.join(10)
    assert seen_reduce.is_set()
    assert rel.records(result) == faults.word_count(*texts)
    assert result["counters"]["records_read"] == sum(t.count("\n") for t in texts)


def test_coordinator_stampede_starts_each_reducer_once_and_commits_once(rel):
    versioned = "smr-rel-versioned"
    rel.s3.create_bucket(Bucket=versioned) if versioned not in rel.snapshot() else None
    rel.s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    uri, texts = inputs(rel, "stampede", files=4, lines=30, extra="")
    calls = rel.fresh("calls")
    job = MapReduceJob(mapper=faults.tokenize, reducer=faults.counting_reducer(calls))
    output = f"s3://{versioned}/out/{rel.fresh('st')}/"
    job_id = rel.runner.submit(job, input=uri, output=output, options=JobOptions(num_reducers=2))
    stop = threading.Event()
    coordinator = rel.stack.functions["coordinator"]

    def stampede():
        while not stop.is_set():
            events = [protocol.coordinate_event(rel.stack.work_bucket, job_id, reason=r)
                      for r in ("", "check-deadlines", "map-0-0-done", "reduce-0-1-done") * 3]
            submit_mod.fan_out(rel.clients.lambda_, coordinator, events)
            time.sleep(0.05)

    thread = threading.Thread(target=stampede, daemon=True)
    thread.start()
    try:
        result = rel.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    finally:
        stop.set()
        thread.join(10)
    expected = faults.word_count(*texts)
    assert rel.records(result) == expected
    assert faults.count_calls(rel.s3, calls) == {k: 1 for k in expected}  # each key reduced once
    assert result["counters"]["attempts"] == result["counters"]["map_tasks"] + 2
    prefix = output[len(f"s3://{versioned}/"):]
    versions = rel.s3.list_object_versions(Bucket=versioned, Prefix=prefix)
    success = [v for v in versions.get("Versions", []) if v["Key"].endswith("_SUCCESS")]
    assert len(success) == 1  # committed exactly once
    parts = [v for v in versions.get("Versions", []) if "part-" in v["Key"]]
    assert len(parts) == 2


def test_poison_record_fails_naming_object_offset_and_preview_with_traceback_and_log_tail(rel):
    prefix = rel.fresh("poison")
    good = "a b c\n" * 5
    rel.put(f"{prefix}/ok.txt", good)
    rel.put(f"{prefix}/bad.txt", good + "POISON pill 42\n" + good)
    job = MapReduceJob(mapper=faults.poison_mapper, reducer=faults.total)
    output = rel.output()
    with pytest.raises(JobFailedError) as err:
        rel.runner.run(job, input=f"s3://{DATA}/{prefix}/", output=output, poll_interval=POLL,
                       timeout=TIMEOUT, options=JobOptions(num_reducers=1, max_attempts=2))
    message = str(err.value)
    assert f"s3://{DATA}/{prefix}/bad.txt" in message
    assert f"byte {len(good)}" in message
    assert "POISON pill 42" in message  # the record preview
    assert "ValueError: cannot parse this record" in message
    assert "remote traceback:" in message and "poison_mapper" in message
    assert "log tail:" in message  # the failed task's CloudWatch log lines
    assert not rel.objects(DATA, output[len(f"s3://{DATA}/"):])  # nothing reached the output


def test_poison_records_up_to_max_bad_records_are_skipped_and_counted(rel):
    prefix = rel.fresh("poison-ok")
    good = "a b c\n" * 5
    rel.put(f"{prefix}/bad.txt", good + "POISON 1\n" + good + "POISON 2\n")
    job = MapReduceJob(mapper=faults.poison_mapper, reducer=faults.total)
    result = rel.runner.run(job, input=f"s3://{DATA}/{prefix}/", output=rel.output(), poll_interval=POLL,
                            timeout=TIMEOUT, options=JobOptions(num_reducers=1, max_bad_records=2))
    assert rel.records(result) == {"a": 10, "b": 10, "c": 10}
    assert result["counters"]["bad_records"] == 2


def test_failure_after_max_attempts_names_the_cause_and_keeps_every_attempt(rel):
    uri, _ = inputs(rel, "always", files=1, lines=5)
    job = MapReduceJob(mapper=faults.failing_mapper, reducer=faults.total)
    with pytest.raises(JobFailedError) as err:
        rel.runner.run(job, input=uri, output=rel.output(), poll_interval=POLL, timeout=TIMEOUT,
                       options=JobOptions(max_attempts=2))
    assert "failed 2 time(s)" in str(err.value)
    assert "RuntimeError: this job always fails" in str(err.value)
    failed = err.value.failed
    assert failed["phase"] == "map" and failed["attempt"] == 1
    assert json.dumps(failed)  # JSON-able for XCom and logs
