"""Extra links: the plugin's pages for the report and logs, the S3 console or the plugin for the output."""

from __future__ import annotations

import pytest

from airflow_provider_smr.links.smr import SMRLogsLink, SMROutputLink, SMRReportLink
from airflow_provider_smr.plugins.urls import is_aws_endpoint

TI = {"dag_id": "smr_word_count", "run_id": "manual__2026-01-01T00:00:00+00:00", "task_id": "count_words",
      "map_index": -1, "job_id": "j1", "output": "s3://bkt/wc/out/"}
AWS = {**TI, "region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "endpoint_url": None}
LOCAL = {**TI, "region_name": "us-east-1", "aws_domain": "aws.amazon.com", "endpoint_url": "http://127.0.0.1:4566"}
PAGES = "/smr/dags/smr_word_count/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/count_words"


def test_output_link_opens_the_s3_console_at_the_prefix_in_the_region():
    assert SMROutputLink().format_link(**AWS) == (
        "https://console.aws.amazon.com/s3/buckets/bkt?region=eu-west-1&prefix=wc/out/")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "http://localhost:4566", "http://smr-local:4566"])
def test_output_link_off_aws_opens_the_plugins_listing(endpoint):
    assert SMROutputLink().format_link(**{**LOCAL, "endpoint_url": endpoint}) == PAGES + "/output"


@pytest.mark.parametrize("where", [AWS, LOCAL], ids=["aws", "local"])
def test_report_and_logs_links_open_the_plugin_on_aws_and_locally(where):
    assert SMRReportLink().format_link(**where) == PAGES + "/report"
    assert SMRLogsLink().format_link(**where) == PAGES + "/logs"


def test_links_of_a_mapped_task_carry_its_map_index():
    assert SMRReportLink().format_link(**{**LOCAL, "map_index": 3}) == PAGES + "/report?map_index=3"


def test_links_are_absolute_when_airflow_knows_its_base_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert SMRLogsLink().format_link(**AWS) == "https://airflow.example.com" + PAGES + "/logs"


def test_only_aws_hosts_count_as_aws():
    assert is_aws_endpoint(None) and is_aws_endpoint("https://s3.eu-west-1.amazonaws.com")
    assert not is_aws_endpoint("http://127.0.0.1:4566") and not is_aws_endpoint("http://minio:9000")


@pytest.mark.parametrize("link", [SMROutputLink(), SMRLogsLink(), SMRReportLink()], ids=lambda link: link.name)
def test_links_with_missing_data_are_empty_not_errors(link):
    assert link.format_link(region_name="us-east-1", aws_domain=None) == ""
    assert link.format_link(**{**LOCAL, "dag_id": None}) == ""


def test_output_link_to_a_location_that_is_not_s3_is_empty():
    assert SMROutputLink().format_link(**{**AWS, "output": "not-s3"}) == ""
