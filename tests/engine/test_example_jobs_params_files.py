"""The ported mrjob examples that use typed parameters and side files, on a deployed local stack,
each checked against an answer computed here without the engine."""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_smr.job import JobDefinitionError, load_job
from lambda_handlers.options import JobOptions

ROOT = Path(__file__).resolve().parents[2]
DATA = "smr-params-data"  # the bucket (and stack) of tests/engine/test_job_params.py
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def engine(deploy_engine):
    return deploy_engine("smr-params", input_buckets=[DATA], memory_mb=256, timeout_s=30)


def run_text(engine, job, body: bytes, split_size: int | None = None, **kw) -> list[str]:
    """Run ``job`` over ``body`` (two objects); the lines of its text output."""
    prefix = f"examples/{uuid.uuid4().hex[:8]}/"
    half = body.index(b"\n", len(body) // 2) + 1
    engine.s3.put_object(Bucket=DATA, Key=prefix + "in/a.txt", Body=body[:half])
    engine.s3.put_object(Bucket=DATA, Key=prefix + "in/b.txt", Body=body[half:])
    result = engine.runner.run(job, input=f"s3://{DATA}/{prefix}in/", output=f"s3://{DATA}/{prefix}out/",
                               options=JobOptions(split_size=split_size), poll_interval=0.25, timeout=300,
                               **kw)
    lines: list[str] = []
    for uri in result["parts"]:
        data = engine.s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].read()
        lines += data.decode().splitlines()
    return lines


def test_log_sampler_keeps_sample_size_distinct_lines_of_the_log(engine):
    log = [f"2026-12-07T00:00:{i % 60:02d} GET /page/{i} 200" for i in range(500)]
    job = load_job(f"{ROOT}/dags_examples/jobs/log_sampler.py:log_sampler")
    sample = run_text(engine, job, "\n".join(log).encode() + b"\n", split_size=4096,
                      job_params={"sample_size": "25"})
    assert len(sample) == 25 and len(set(sample)) == 25 and set(sample) <= set(log)
    everything = run_text(engine, job, b"a\nb\nc\n", job_params={"sample_size": 10, "expected_length": 3})
    assert sorted(everything) == ["a", "b", "c"]


def test_log_sampler_refuses_to_run_without_sample_size(engine):
    job = load_job(f"{ROOT}/dags_examples/jobs/log_sampler.py:log_sampler")
    with pytest.raises(JobDefinitionError, match=r"job_params\['sample_size'\]: .* is required \(an int\)"):
        engine.runner.submit(job, input=f"s3://{DATA}/in/", output=f"s3://{DATA}/never/")


def test_most_used_word_ignores_the_stop_words_it_ships(engine):
    rng = random.Random(17)
    vocabulary = ["the", "a", "of", "mapreduce", "lambda", "shuffle", "bucket", "it's", "reduce"]
    text = "\n".join(" ".join(rng.choice(vocabulary).upper() if rng.random() < 0.1 else rng.choice(vocabulary)
                              for _ in range(12)) for _ in range(300)) + "\n"
    stop = set((ROOT / "dags_examples/jobs/stop_words.txt").read_text().split())
    counts = Counter(w for w in re.findall(r"[\w']+", text.lower()) if w not in stop)
    expected = max((n, w) for w, n in counts.items())[1]
    job = load_job(f"{ROOT}/dags_examples/jobs/most_used_word.py:most_used_word")
    assert run_text(engine, job, text.encode(), split_size=2048) == [expected]
