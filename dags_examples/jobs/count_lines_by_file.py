"""mrjob's ``mr_count_lines_by_file``: how many lines each input object holds."""

from __future__ import annotations

from airflow_provider_smr import MapReduceJob
from lambda_handlers.context import input_uri


def mapper(line):
    yield input_uri(), 1


def total(uri, ones):
    yield uri, sum(ones)


count_lines_by_file = MapReduceJob(mapper=mapper, combiner=total, reducer=total, name="count_lines_by_file")
