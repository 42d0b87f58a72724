"""Extra links: AWS console URLs on AWS, the endpoint itself on the local stack."""

from __future__ import annotations

import pytest

from airflow_provider_smr.links.smr import SMRLogsLink, SMROutputLink, SMRReportLink
from lambda_handlers.protocol import report_key

AWS = {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "endpoint_url": None}
LOCAL = {"region_name": "us-east-1", "aws_domain": "aws.amazon.com", "endpoint_url": "http://127.0.0.1:4566"}


def test_output_link_opens_the_s3_console_at_the_prefix():
    assert SMROutputLink().format_link(output="s3://bkt/wc/out/", **AWS) == (
        "https://console.aws.amazon.com/s3/buckets/bkt?region=eu-west-1&prefix=wc/out/")


def test_output_link_on_the_local_stack_lists_the_prefix_at_the_endpoint():
    assert SMROutputLink().format_link(output="s3://bkt/wc/out/", **LOCAL) == (
        "http://127.0.0.1:4566/bkt?list-type=2&prefix=wc/out/")


def test_logs_link_filters_cloudwatch_log_groups_by_the_stack():
    url = SMRLogsLink().format_link(log_group_prefix="/aws/lambda/smr-", **AWS)
    assert url.startswith("https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups")
    assert "logGroupNameFilter" in url and "$252Faws$252Flambda$252Fsmr-" in url


def test_logs_link_on_the_local_stack_points_at_the_endpoint():
    assert SMRLogsLink().format_link(log_group_prefix="/aws/lambda/smr-", **LOCAL).startswith(
        "http://127.0.0.1:4566/")


def test_report_link_points_at_report_html_next_to_the_output():
    assert SMRReportLink().format_link(output="s3://bkt/wc/out", **LOCAL) == (
        "http://127.0.0.1:4566/bkt/wc/out/_report.html")
    assert "prefix=wc/out/_report.html" in SMRReportLink().format_link(output="s3://bkt/wc/out/", **AWS)
    assert report_key("") == "_report.html"


@pytest.mark.parametrize("link", [SMROutputLink(), SMRLogsLink(), SMRReportLink()], ids=lambda link: link.name)
def test_links_with_missing_data_are_empty_not_errors(link):
    assert link.format_link(region_name="us-east-1", aws_domain=None) == ""
    assert link.format_link(output="not-s3", log_group_prefix="x", **{**AWS, "aws_domain": None}) == ""
