"""Issue 5, faults 2 and 3: tasks Lambda kills without a word (timeout, out of memory).

A dedicated stack with a 6 s function timeout and 256 MB runs jobs whose own functions sleep past
the timeout or touch more memory than the function has. Nothing is written by a killed attempt;
the watcher's deadline check makes the coordinator retry it (or fail the job naming the cause).
``deadline_grace_s`` is small here to keep the suite fast; the default is 30 s.
"""

from __future__ import annotations

import pytest

from airflow_provider_smr.engine.runner import JobFailedError
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from tests.reliability import faults
from tests.reliability.conftest import DATA, POLL, TIMEOUT

pytestmark = pytest.mark.timeout(300)
GRACE = 1  # a killed attempt is silent from its function timeout on; 1 s covers the last write in flight


def one_task_each(texts: list[str]) -> int:
    """A split size that keeps each of these small objects a map task of its own (no two fit)."""
    return max(len(t.encode()) for t in texts)


def inputs(env, name: str, extra: str) -> tuple[str, list[str]]:
    prefix = env.fresh(name)
    texts = [faults.words_text(i, 30) for i in range(2)]
    texts[1] += extra
    for i, text in enumerate(texts):
        env.put(f"{prefix}/f{i}.txt", text)
    return f"s3://{DATA}/{prefix}/", texts


def starts(env, job_id: str, phase: str) -> dict[tuple[int, int], float]:
    """{(task, attempt): LastModified epoch} of the job's start markers of ``phase``."""
    out = {}
    for page in env.s3.get_paginator("list_objects_v2").paginate(
            Bucket=env.stack.work_bucket, Prefix=protocol.status_prefix(job_id)):
        for o in page.get("Contents", []):
            k = protocol.parse_status_key(job_id, o["Key"])
            if k and k.kind == "start" and k.phase == phase:
                out[(k.task, k.attempt)] = o["LastModified"].timestamp()
    return out


def assert_retried_within_deadline(env, result: dict, phase: str, task: int) -> None:
    seen = starts(env, result["job_id"], phase)
    assert (task, 0) in seen and (task, 1) in seen
    assert seen[(task, 1)] - seen[(task, 0)] <= env.stack.timeout_s + 30  # issue: timeout + 30 s
    assert result["counters"]["attempts"] == result["counters"]["retried_attempts"] + len(
        {(p, t) for p in ("map", "reduce") for (t, _) in starts(env, result["job_id"], p)})


def test_mapper_hanging_past_its_timeout_is_detected_and_retried(tight):
    uri, texts = inputs(tight, "hang-map", "stuck here\n")
    job = MapReduceJob(mapper=faults.mapper_hanging_once_on("stuck here", tight.fresh("hang")),
                       reducer=faults.total)
    result = tight.runner.run(job, input=uri, output=tight.output(), poll_interval=POLL, timeout=TIMEOUT,
                              options=JobOptions(num_reducers=1, deadline_grace_s=GRACE,
                                                 split_size=one_task_each(texts)))
    assert tight.records(result) == faults.word_count(*texts)
    assert result["counters"]["retried_attempts"] == 1
    assert_retried_within_deadline(tight, result, "map", 1)


def test_reducer_hanging_past_its_timeout_is_detected_and_retried(tight):
    uri, texts = inputs(tight, "hang-reduce", "")
    job = MapReduceJob(mapper=faults.tokenize,
                       reducer=faults.reducer_hanging_once_on("w3", tight.fresh("hang")))
    result = tight.runner.run(job, input=uri, output=tight.output(), poll_interval=POLL, timeout=TIMEOUT,
                              options=JobOptions(num_reducers=2, deadline_grace_s=GRACE))
    assert tight.records(result) == faults.word_count(*texts)
    assert result["counters"]["retried_attempts"] == 1
    hung = [t for (t, a) in starts(tight, result["job_id"], "reduce") if a == 1]
    assert len(hung) == 1
    assert_retried_within_deadline(tight, result, "reduce", hung[0])


def test_task_out_of_memory_is_retried_then_fails_naming_out_of_memory(tight):
    uri, texts = inputs(tight, "oom", "memory hog\n")
    output = tight.output()
    job = MapReduceJob(mapper=faults.mapper_eating_memory_on("memory hog", 400), reducer=faults.total)
    job_id = tight.runner.submit(job, input=uri, output=output,
                                 options=JobOptions(num_reducers=1, max_attempts=2, deadline_grace_s=GRACE,
                                                    split_size=one_task_each(texts)))
    with pytest.raises(JobFailedError) as err:
        tight.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    message = str(err.value)
    assert "out of memory" in message
    assert "Runtime exited with error: out of memory" in message  # from the function's log
    assert "map task 1 of step 0 failed 2 time(s)" in message
    assert set(starts(tight, job_id, "map")) >= {(1, 0), (1, 1)}
    assert not tight.objects(DATA, output[len(f"s3://{DATA}/"):])
