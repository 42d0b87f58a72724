"""A finished job as its functions and its user see it: ``job_params`` inside Lambda, the report.

Runs on the local stack with deployed functions.
"""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers.context import job_params

DATA = "smr-params-data"
pytestmark = pytest.mark.timeout(600)


def words_longer_than_min(line):
    shortest = int(job_params().get("min_length", 0))
    for word in line.split():
        if len(word) >= shortest:
            yield word, 1


def total(word, counts):
    yield word, sum(counts)


@pytest.fixture(scope="module")
def finished_job(deploy_engine):
    """(s3 client, result) of a word count run with ``job_params={"min_length": 4}``."""
    engine = deploy_engine("smr-params", input_buckets=[DATA], memory_mb=256, timeout_s=30)
    engine.s3.put_object(Bucket=DATA, Key="in/a.txt", Body=b"a bb ccc dddd\nbb ccc dddd eeeee\n")
    job = MapReduceJob(mapper=words_longer_than_min, reducer=total)
    output = f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/"
    result = engine.runner.run(job, input=f"s3://{DATA}/in/", output=output,
                               job_params={"min_length": 4}, poll_interval=0.25, timeout=300)
    return engine.s3, result


def test_job_params_are_visible_to_mappers_in_lambda(finished_job):
    s3, result = finished_job
    records = {}
    for uri in result["parts"]:
        key = uri[len(f"s3://{DATA}/"):]
        for line in s3.get_object(Bucket=DATA, Key=key)["Body"].read().decode().splitlines():
            rec = json.loads(line)
            records[rec["key"]] = rec["value"]
    assert records == {"dddd": 2, "eeeee": 1}


def test_a_succeeded_job_leaves_its_html_report_next_to_the_output(finished_job):
    s3, result = finished_job
    key = result["output"][len(f"s3://{DATA}/"):] + "_report.html"
    page = s3.get_object(Bucket=DATA, Key=key)["Body"].read().decode()
    assert result["job_id"] in page and "<svg" in page


def test_job_params_are_empty_outside_a_task():
    assert dict(job_params()) == {}
