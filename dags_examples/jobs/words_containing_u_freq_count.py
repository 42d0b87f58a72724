"""mrjob's ``mr_u_word_freq_count``: the frequency of the words that contain a "u"."""

from __future__ import annotations

import re

from airflow_provider_smr import MapReduceJob

WORD_RE = re.compile(r"[\w']*u[\w']*", re.I)


def mapper(line):
    if "u" in line.lower():  # mrjob pre-filters with `grep -i u`
        for word in WORD_RE.findall(line):
            yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


u_word_freq_count = MapReduceJob(mapper=mapper, combiner=total, reducer=total,
                                 name="words_containing_u_freq_count")
