"""How many words occur once, 2-9 times, 10-99 times ...: reads a word-count job's jsonl output."""

from __future__ import annotations

from airflow_provider_smr import MapReduceJob


def count_bucket(row):
    count = row["value"]
    if count < 10:
        yield ("1" if count == 1 else "2-9"), 1
    else:
        low = 10 ** (len(str(count)) - 1)
        yield f"{low}-{low * 10 - 1}", 1


def total(bucket, ones):
    yield bucket, sum(ones)


count_histogram = MapReduceJob(mapper=count_bucket, combiner=total, reducer=total,
                               input_format="jsonl", name="count_histogram")
