"""The most used word, stop words excepted (mrjob's ``mr_most_used_word``): a side file and two steps.

``stop_words.txt`` (next to this module) travels with the job; a task reads it once with
``job_file``. The second step only reduces: the first step's pairs pass straight to its reducer.
"""

from __future__ import annotations

import re

from airflow_provider_smr import MapReduceJob, Step
from lambda_handlers.context import job_file

WORD_RE = re.compile(r"[\w']+")
_stop_words: dict[str, frozenset[str]] = {}  # per process: path -> words


def words(line):
    path = job_file("stop_words.txt")
    if path not in _stop_words:
        with open(path) as f:
            _stop_words[path] = frozenset(w.strip() for w in f)
    for word in WORD_RE.findall(line.lower()):
        if word not in _stop_words[path]:
            yield word, 1


def total(word, counts):
    yield word, sum(counts)


def count_word(word, counts):
    yield None, [sum(counts), word]



def max_word(_, count_words):
    count, word = max(count_words)  # the most used; among equals, the last in sort order
    yield count, word


most_used_word = MapReduceJob(
    steps=[Step(mapper=words, combiner=total, reducer=count_word),
           Step(reducer=max_word, num_reducers=1)],
    output_format="text", files=["stop_words.txt"], name="most_used_word")
