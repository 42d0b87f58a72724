"""Issue 5, faults 12 and 13: a job of many more splits than a concurrency cap of 8 allows at once,
and a straggler that gets a speculative backup attempt (the first finisher wins).

Fault 12 runs the issue's 1,000 splits (125 times the cap), so a job's markers also list past one
1,000-key page; the watcher and the coordinator are also tested on such listings directly
(tests/engine/test_watch.py, tests/lambda_handlers/test_coordinator_handler.py).
"""

from __future__ import annotations

import random
import time

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from tests.reliability import faults
from tests.reliability.conftest import DATA, POLL, TIMEOUT, make_env

pytestmark = pytest.mark.timeout(600)


def fixed_lines(n: int, seed: int = 7) -> str:
    """``n`` lines of exactly 32 bytes (7 words of 4 bytes + ``end\\n``)."""
    rng = random.Random(seed)
    return "".join("".join(f"w{rng.randrange(60):02d} " for _ in range(7)) + "end\n" for _ in range(n))


@pytest.fixture(scope="module")
def capped(aws_clients):
    """A local stack of its own whose account-wide Lambda concurrency is 8."""
    from airflow_provider_smr.local import LocalStack

    with LocalStack(port=0, max_concurrency=8) as stack:
        yield make_env(aws_clients(stack.endpoint_url), "smr-rel-capped")


SPLITS = 1000  # issue 5, fault 12: "a 1,000-split job under a concurrency cap of 8"


def test_1000_splits_under_a_concurrency_cap_of_8_give_the_exact_answer(capped):
    text = fixed_lines(SPLITS)
    uri = capped.put(f"{capped.fresh('load')}/lines.txt", text)
    job = MapReduceJob(mapper=faults.tokenize, combiner=faults.total, reducer=faults.total)
    job_id = capped.runner.submit(job, input=uri, output=capped.output("load"),
                                  options=JobOptions(split_size=32, num_reducers=4, max_concurrency=8))
    assert capped.runner.plan(job_id).num_splits == SPLITS  # stored apart from plan.json
    result = capped.runner.wait(job_id, poll_interval=0.5, timeout=540)
    assert capped.records(result) == faults.word_count(text)
    assert result["counters"]["records_read"] == SPLITS
    assert result["counters"]["attempts"] == SPLITS + 4  # nothing retried, nothing run twice


def done_attempt(env, job_id: str, phase: str, task: int) -> int:
    marker = env.s3.get_object(Bucket=env.stack.work_bucket,
                               Key=protocol.done_marker_key(job_id, 0, phase, task))
    import json

    return json.loads(marker["Body"].read())["attempt"]


def one_task_each(texts: list[str]) -> int:
    """A split size that keeps each of these small objects a map task of its own (no two fit)."""
    return max(len(t.encode()) for t in texts)


def straggling_job(env, name: str, straggler: int) -> tuple[MapReduceJob, str, list[str], str]:
    """A word count over six files whose map task ``straggler`` straggles on its first attempt until
    released (``faults.release_straggler``) or for 15 s: (job, input URI, the files' texts, the
    straggler's flag)."""
    prefix = env.fresh(name)
    texts = [faults.words_text(i, 20) for i in range(6)]
    texts[straggler] += "straggle now\n"
    for i, text in enumerate(texts):
        env.put(f"{prefix}/f{i}.txt", text)
    flag = env.fresh("slow")
    job = MapReduceJob(mapper=faults.straggling_mapper("straggle now", flag, 15), reducer=faults.total)
    return job, f"s3://{DATA}/{prefix}/", texts, flag


def test_straggler_gets_a_speculative_backup_and_the_first_finisher_wins(rel):
    job, uri, texts, flag = straggling_job(rel, "straggler", straggler=4)
    output = rel.output("straggler")
    job_id = rel.runner.submit(job, input=uri, output=output,
                               options=JobOptions(num_reducers=2, speculation=True, speculation_threshold=3,
                                                  split_size=one_task_each(texts)))
    result = rel.runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    expected = faults.word_count(*texts)
    assert rel.records(result) == expected
    assert done_attempt(rel, job_id, "map", 4) == 1  # the backup finished first and won
    assert result["counters"]["attempts"] == 6 + 2 + 1

    # The straggler finishes later: its output is written but never used; the answer stays.
    faults.release_straggler(rel.s3, flag)
    late = protocol.map_output_key(job_id, 0, 4, 0)
    deadline = time.monotonic() + 40
    while late not in rel.job_objects(job_id):
        assert time.monotonic() < deadline, "the straggling attempt never finished"
        time.sleep(0.5)
    assert done_attempt(rel, job_id, "map", 4) == 1
    assert rel.records(result) == expected
    assert protocol.job_state_key(job_id, protocol.SUCCEEDED) in rel.job_objects(job_id)


async def test_deferred_wait_also_gets_the_straggler_a_backup(rel, aws_endpoint, airflow_conn,
                                                               monkeypatch):
    from airflow_provider_smr.triggers.smr import SUCCESS, SMRJobTrigger

    monkeypatch.setenv("AIRFLOW_CONN_SMR_REL_TRIGGER", airflow_conn(aws_endpoint))
    job, uri, texts, flag = straggling_job(rel, "straggler-deferred", straggler=2)
    job_id = rel.runner.submit(job, input=uri, output=rel.output("sd"),
                               options=JobOptions(num_reducers=1, speculation=True,
                                                  split_size=one_task_each(texts)))
    trigger = SMRJobTrigger(job_id=job_id, work_bucket=rel.stack.work_bucket, stack_name="smr-rel",
                            poll_interval=POLL, aws_conn_id="smr_rel_trigger")
    events = [event async for event in trigger.run()]
    assert [e.payload["status"] for e in events] == [SUCCESS]
    assert done_attempt(rel, job_id, "map", 2) == 1  # the backup the trigger asked for won
    assert rel.records(rel.runner.result(job_id)) == faults.word_count(*texts)
    faults.release_straggler(rel.s3, flag)  # its worker is free for the next test
