"""mrjob's ``mr_wc``: ``wc`` as a job, counting in the mapper and emitting totals in its teardown
(mrjob's ``mapper_final``), so each map task ships three pairs whatever its input."""

from __future__ import annotations

from airflow_provider_smr import MapReduceJob
from lambda_handlers.context import state


def start():
    return {"chars": 0, "words": 0, "lines": 0}  # one tally per map task attempt


def mapper(line):
    tally = state()
    tally["chars"] += len(line) + 1  # +1 for the newline
    tally["words"] += len(line.split())
    tally["lines"] += 1


def emit_totals():
    yield from state().items()


def total(key, values):
    yield key, sum(values)


wc = MapReduceJob(mapper=mapper, mapper_setup=start, mapper_teardown=emit_totals, reducer=total, name="wc")
