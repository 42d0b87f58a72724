"""The benchmark's MapReduce jobs (shipped to the functions by value, like any user's job module)."""

from __future__ import annotations

import bisect
import math
import operator

from airflow_provider_smr import (
    MapReduceJob,
    batch_mapper,
    fold,
    identity,
    range_partitioner,
    sample_boundaries,  # noqa: F401  (run.py and dataplane.py sample sort keys)
)
from bench.floors import word_counter

SORT_KEY = 10


def words(line):
    for word in line.split():
        yield word, 1


def total(key, counts):
    yield key, sum(counts)


def ip_prefix_revenue(line):
    fields = line.split(",", 4)
    yield fields[0][:8], float(fields[3])


def revenue_sum(prefix, revenues):
    yield prefix, math.fsum(revenues)


def sort_record(line):
    yield line[:SORT_KEY], line[SORT_KEY:]


def sorted_values(key, values):
    for value in sorted(values):
        yield key, value


def python_range_partitioner(boundaries):
    """The same cut as the built-in ``range_partitioner``, written as a user would: a call per key."""
    cuts = list(boundaries)

    def partition(key, n):
        return min(bisect.bisect_right(cuts, key), n - 1)

    return partition


def count_words_block(lines):
    """In-mapper combining: the floor's own ``Counter`` loop (bench/floors.py), which the Lithops row
    runs too, on a block of lines."""
    return word_counter(lines).items()


def prefix_revenue_block(lines):
    """AMPLab Q2's map with in-mapper combining: the floor's own loop, on a block of lines."""
    sums = {}
    get = sums.get
    for line in lines:
        fields = line.split(",", 4)
        key = fields[0][:8]
        sums[key] = get(key, 0.0) + float(fields[3])
    return sums.items()


def sort_records_block(lines):
    return [(line[:SORT_KEY], line[SORT_KEY:]) for line in lines]


def word_count_batch_job():
    return MapReduceJob(mapper=batch_mapper(count_words_block), combiner=fold(operator.add),
                        reducer=fold(operator.add), name="bench_word_count_batch")


def amplab_q2_batch_job():
    return MapReduceJob(mapper=batch_mapper(prefix_revenue_block), combiner=fold(operator.add),
                        reducer=fold(operator.add), name="bench_amplab_q2_batch")


def sort_builtin_job(boundaries):
    """Sort with the engine's built-ins: a batch mapper, a total-order partitioner, identity reducer."""
    return MapReduceJob(mapper=batch_mapper(sort_records_block), reducer=identity,
                        partitioner=range_partitioner(boundaries), name="bench_sort_builtin")


def word_count_job():
    return MapReduceJob(mapper=words, combiner=fold(operator.add), reducer=total, name="bench_word_count")


#: the README-style job as ``smr run`` loads it (``bench/jobs.py:word_count``): the whole-process row
word_count = word_count_job()


def word_count_without_combiner_job():
    return MapReduceJob(mapper=words, reducer=total, name="bench_word_count_nocombine")


def amplab_q2_job():
    return MapReduceJob(mapper=ip_prefix_revenue, combiner=fold(operator.add), reducer=revenue_sum,
                        name="bench_amplab_q2")


def sort_job(boundaries):
    return MapReduceJob(mapper=sort_record, reducer=sorted_values,
                        partitioner=python_range_partitioner(boundaries), name="bench_sort")
