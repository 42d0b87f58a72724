"""Two steps in one job: count words, then keep the ten most frequent (ties broken by the word)."""

from __future__ import annotations

from airflow_provider_smr import MapReduceJob, Step

K = 10


def tokenize(line):
    for word in line.split():
        yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


def to_one_group(pair):
    word, count = pair
    yield None, [count, word]


def top_k(_, count_words):
    ranked = sorted(count_words, key=lambda cw: (-cw[0], cw[1]))[:K]
    for rank, (count, word) in enumerate(ranked, start=1):
        yield rank, [word, count]


top_words = MapReduceJob(
    steps=[Step(mapper=tokenize, combiner=total, reducer=total),
           Step(mapper=to_one_group, reducer=top_k, num_reducers=1)],
    name="top_words",
)
