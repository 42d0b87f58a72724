"""Which words follow each word, how often, and in what share (mrjob's ``mr_next_word_stats``).

The second step relies on ``sort_values``: each word's values reach the reducer in order, so its
total (``"A"``) comes before the counts of the words that follow it (``"B"``, by word), and the
reducer streams them without holding them.
"""

from __future__ import annotations

import operator
import re
from itertools import pairwise

from airflow_provider_smr import MapReduceJob, Step, fold

WORD_RE = re.compile(r"[\w']+")


def word_pairs(line):
    words = [w.lower() for w in WORD_RE.findall(line)]
    for prev, word in pairwise(words):
        yield (prev, "*"), 1  # how often prev is followed by any word
        yield (prev, word), 1


def by_first_word(pair, counts):
    prev, word = pair
    count = sum(counts)
    yield prev, ("A", count) if word == "*" else ("B", word, count)


def stats(prev, values):
    for kind, *data in values:  # sorted: ("A", total) first, then ("B", word, count) by word
        if kind == "A":
            total = data[0]
        else:
            word, count = data
            yield (prev, word), (total, count, 100.0 * count / total)


next_word_stats = MapReduceJob(
    steps=[Step(mapper=word_pairs, combiner=fold(operator.add), reducer=by_first_word),
           Step(reducer=stats, sort_values=True)],
    name="next_word_stats",
)
