"""Operator extra links: the job's output (S3), its logs (CloudWatch) and its HTML report.

Each link persists a small dict to XCom while the task runs (``BaseAwsLink.persist``) and formats it
when the UI asks. On AWS the links open the console. When the connection points at an endpoint
(the local stack), the console is meaningless, so the links point at that endpoint instead: an S3
listing of the output prefix, the stack's log groups, the report object itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from lambda_handlers import protocol
from lambda_handlers.s3uri import S3Uri


def _console_escape(text: str) -> str:
    # CloudWatch's logsV2 fragment wants '?', '=', '&', '/' percent-encoded with '$' instead of '%'.
    return quote_plus(text).replace("%", "$")


class _SMRLink(BaseAwsLink):
    """A console link that falls back to the local endpoint when one is configured.

    Each link defines ``format_console`` and ``format_local``, taking the persisted fields it uses
    as keyword arguments (and ignoring the rest).
    """

    format_console: Callable[..., str]
    format_local: Callable[..., str]

    def format_link(self, **kwargs: Any) -> str:
        try:
            if kwargs.get("endpoint_url"):
                return self.format_local(**kwargs)
            if not kwargs.get("aws_domain"):
                return ""
            return self.format_console(**kwargs)
        except (KeyError, ValueError):
            return ""


class SMROutputLink(_SMRLink):
    """Where the job wrote its parts: the S3 console, or an S3 listing on the local stack."""

    name = "SMR Output"
    key = "smr_output"
    format_str: ClassVar[str] = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def format_console(self, *, output: str, aws_domain: str, region_name: str, **_: Any) -> str:
        location = S3Uri.parse(output, what="output")
        return self.format_str.format(aws_domain=aws_domain, bucket=location.bucket, region_name=region_name,
                                      prefix=quote(location.key, safe="/"))

    def format_local(self, *, output: str, endpoint_url: str, **_: Any) -> str:
        location = S3Uri.parse(output, what="output")
        prefix = quote(location.key, safe="/")
        return f"{endpoint_url.rstrip('/')}/{location.bucket}?list-type=2&prefix={prefix}"


class SMRLogsLink(_SMRLink):
    """The stack's Lambda log groups: CloudWatch console, or the log groups API on the local stack."""

    name = "SMR Logs"
    key = "smr_logs"
    format_str: ClassVar[str] = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups{query}"
    )

    def format_console(self, *, log_group_prefix: str, aws_domain: str, region_name: str, **_: Any) -> str:
        # The console double-encodes filter values: "/" is "%2F" quoted again, "$252F".
        query = _console_escape("?logGroupNameFilter=") + _console_escape(quote_plus(log_group_prefix))
        return self.format_str.format(aws_domain=aws_domain, region_name=region_name, query=query)

    def format_local(self, *, endpoint_url: str, **_: Any) -> str:
        # moto serves its state browser here; there is no CloudWatch console to deep-link into.
        return f"{endpoint_url.rstrip('/')}/moto-api/"


class SMRReportLink(_SMRLink):
    """The job's HTML report, written next to the output as ``_report.html``."""

    name = "SMR Report"
    key = "smr_report"
    format_str: ClassVar[str] = BASE_AWS_CONSOLE_LINK + "/s3/object/{bucket}?region={region_name}&prefix={key}"

    def format_console(self, *, output: str, aws_domain: str, region_name: str, **_: Any) -> str:
        location = S3Uri.parse(output, what="output")
        key = quote(protocol.report_key(location.key), safe="/")
        return self.format_str.format(aws_domain=aws_domain, bucket=location.bucket, region_name=region_name,
                                      key=key)

    def format_local(self, *, output: str, endpoint_url: str, **_: Any) -> str:
        location = S3Uri.parse(output, what="output")
        key = quote(protocol.report_key(location.key), safe="/")
        return f"{endpoint_url.rstrip('/')}/{location.bucket}/{key}"
