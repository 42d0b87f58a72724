"""The benchmark's MapReduce jobs (shipped to the functions by value, like any user's job module)."""

from __future__ import annotations

import bisect
import math
import operator

from airflow_provider_smr import MapReduceJob, fold

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


def range_partitioner(boundaries):
    """``partitioner(key, n)``: partition ``i`` holds keys in ``[boundaries[i-1], boundaries[i])``."""
    cuts = list(boundaries)

    def partition(key, n):
        return min(bisect.bisect_right(cuts, key), n - 1)

    return partition


def sample_boundaries(sample_keys, partitions):
    """``partitions - 1`` cut points at the quantiles of a key sample."""
    keys = sorted(sample_keys)
    if partitions <= 1 or not keys:
        return []
    return [keys[len(keys) * i // partitions] for i in range(1, partitions)]


def word_count_job():
    return MapReduceJob(mapper=words, combiner=fold(operator.add), reducer=total, name="bench_word_count")


def word_count_without_combiner_job():
    return MapReduceJob(mapper=words, reducer=total, name="bench_word_count_nocombine")


def amplab_q2_job():
    return MapReduceJob(mapper=ip_prefix_revenue, combiner=fold(operator.add), reducer=revenue_sum,
                        name="bench_amplab_q2")


def sort_job(boundaries):
    return MapReduceJob(mapper=sort_record, reducer=sorted_values,
                        partitioner=range_partitioner(boundaries), name="bench_sort")
