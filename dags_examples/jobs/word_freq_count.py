"""mrjob's ``mr_word_freq_count``: the classic MapReduce job, the frequency of each word."""

from __future__ import annotations

import re

from airflow_provider_smr import MapReduceJob

WORD_RE = re.compile(r"[\w']+")


def mapper(line):
    for word in WORD_RE.findall(line):
        yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


word_freq_count = MapReduceJob(mapper=mapper, combiner=total, reducer=total, name="word_freq_count")
