"""A finished job as its functions and its user see it: ``job_params`` inside Lambda, the report.

Runs on the local stack with deployed functions.
"""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_smr.job import MapReduceJob
from lambda_handlers.context import job_params
from lambda_handlers.options import JobOptions

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


# -- typed parameters, a side file and text output, through the runner's whole submit path ---------


def tagged_long_words(line):
    from lambda_handlers.context import job_file

    with open(job_file("tags.txt")) as f:
        tag = f.read().strip()
    params = job_params()
    for word in line.split():
        if len(word) >= params["min_length"] and word not in params["skip"]:
            yield word, f"{tag}:{word}"


def first(word, tagged):
    yield word, min(tagged)


@pytest.mark.parametrize("driver", ["worker", "lambda"])
def test_typed_params_a_side_file_and_text_output_in_lambda(deploy_engine, tmp_path, driver):
    engine = deploy_engine("smr-params", input_buckets=[DATA], memory_mb=256, timeout_s=30)
    engine.s3.put_object(Bucket=DATA, Key="typed/a.txt", Body=b"a bb ccc dddd\nbb ccc dddd eeeee\n")
    (tmp_path / "tags.txt").write_text("long\n")
    job = MapReduceJob(mapper=tagged_long_words, reducer=first, output_format="text",
                       params={"min_length": 3, "skip": []}, files=[tmp_path / "tags.txt"])
    output = f"s3://{DATA}/typed-out/{uuid.uuid4().hex[:8]}/"
    result = engine.runner.run(job, input=f"s3://{DATA}/typed/", output=output,
                               job_params={"min_length": "4", "skip": ["eeeee"]}, poll_interval=0.25,
                               timeout=300, options=JobOptions(driver=driver))
    lines = []
    for uri in result["parts"]:
        assert uri.endswith(".txt")
        lines += engine.s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].read().splitlines()
    assert lines == [b"long:dddd"]

    # a text output is a later job's text input as it is
    again = MapReduceJob(mapper=lambda line: [(line, 1)], reducer=total)
    second = engine.runner.run(again, input=result["output"], output=output.rstrip("/") + "-again/",
                               poll_interval=0.25, timeout=300)
    assert second["counters"]["output_records"] == 1 and second["counters"]["records_read"] == 1


def test_a_missing_side_file_or_bad_param_fails_the_submit_before_anything_is_written(deploy_engine,
                                                                                     tmp_path):
    from airflow_provider_smr.job import JobDefinitionError

    engine = deploy_engine("smr-params", input_buckets=[DATA], memory_mb=256, timeout_s=30)
    missing = MapReduceJob(mapper=tagged_long_words, files=[tmp_path / "gone.txt"])
    typed = MapReduceJob(mapper=tagged_long_words, params={"min_length": 3})
    for job, params, match in ((missing, None, r"gone\.txt' does not exist"),
                               (typed, {"min_length": "x"}, r"job_params\['min_length'\]")):
        job_id = f"refused-{uuid.uuid4().hex[:8]}"
        with pytest.raises(JobDefinitionError, match=match):
            engine.runner.submit(job, input=f"s3://{DATA}/in/", output=f"s3://{DATA}/never/",
                                 job_id=job_id, job_params=params)
        assert not engine.runner.job_exists(job_id)
