"""Word count: the "hello world" of MapReduce (lower-cased words, split on whitespace)."""

from __future__ import annotations

from airflow_provider_smr import MapReduceJob


def tokenize(line):
    for word in line.split():
        yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


word_count = MapReduceJob(mapper=tokenize, combiner=total, reducer=total, name="word_count")
