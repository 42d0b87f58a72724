"""A batch-mapper job end to end on the local stack, through JobRunner: the exact answer."""

from __future__ import annotations

import operator
import random
import uuid
from collections import Counter

import pytest

from airflow_provider_smr import MapReduceJob, batch_mapper, fold
from lambda_handlers.options import JobOptions
from tests.engine.test_e2e import read_records

DATA = "smr-batch-e2e"

pytestmark = pytest.mark.timeout(600)


def count_words_block(lines):
    counts = {}
    get = counts.get
    for line in lines:
        for word in line.split():
            counts[word] = get(word, 0) + 1
    return counts.items()


def test_a_batch_word_count_on_the_local_stack_equals_counter(deploy_engine):
    engine = deploy_engine("smr-batch-e2e", input_buckets=[DATA])
    rng = random.Random(4)
    vocab = [f"w{i}" for i in range(300)] + ["naïve", "café"]
    texts = ["".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) + "\n"
                     for _ in range(1500)) for _ in range(2)]
    prefix = f"in-{uuid.uuid4().hex[:8]}"
    for i, text in enumerate(texts):
        engine.s3.put_object(Bucket=DATA, Key=f"{prefix}/part-{i}.txt", Body=text.encode())
    job = MapReduceJob(mapper=batch_mapper(count_words_block), combiner=fold(operator.add),
                       reducer=fold(operator.add), name="batch_word_count")
    result = engine.runner.run(job, input=f"s3://{DATA}/{prefix}/", output=f"s3://{DATA}/out/{prefix}/",
                               poll_interval=0.25, timeout=300,
                               options=JobOptions(split_size="16KiB", num_reducers=3))
    records = read_records(engine.s3, result)
    assert dict(records) == dict(Counter(w for t in texts for w in t.split()))
    assert len(records) == len(dict(records))
    assert result["counters"]["map_tasks"] > 2
    assert result["counters"]["records_read"] == sum(t.count("\n") for t in texts)
