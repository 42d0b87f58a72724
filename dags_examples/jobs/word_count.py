"""Word count: the "hello world" of MapReduce (lower-cased words, split on whitespace)."""

from __future__ import annotations

import operator

from airflow_provider_smr import MapReduceJob, fold


def tokenize(line):
    for word in line.split():
        yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


# fold(operator.add) sums each word's counts inside every mapper as they come (one running count per
# word, like Spark's reduceByKey); `combiner=total` would work too, grouping the counts first.
word_count = MapReduceJob(mapper=tokenize, combiner=fold(operator.add), reducer=total, name="word_count")
