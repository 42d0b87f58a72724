"""Operator extra links: the job's report, its function logs and its output.

The task persists one small dict to XCom (:func:`persist_job_links`, under :data:`JOB_XCOM_KEY`):
the job id, the connection and stack it ran with, the output and the task instance. The three
links format it when the task finalizes:

- **SMR Report** and **SMR Logs** open the provider's Airflow plugin
  (:mod:`airflow_provider_smr.plugins`), which reads the job through the task's own ``aws``
  connection: the same pages on AWS and on the local stack, behind Airflow's login.
- **SMR Output** opens the S3 console at the output prefix on AWS; where the connection's
  ``endpoint_url`` is not AWS (the local stack), the plugin's listing of that prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from airflow_provider_smr.plugins import urls
from lambda_handlers.s3uri import S3Uri

if TYPE_CHECKING:
    from airflow.sdk import Context

# One XCom for the three links (and the plugin, which finds the job through it).
JOB_XCOM_KEY = "smr_job"


def _airflow_base_url() -> str | None:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=None) or None


class _SMRLink(BaseAwsLink):
    """A link formatted from the job's persisted fields (:func:`persist_job_links`): the plugin's
    :attr:`page` of the task instance, or on AWS what :meth:`format_console` opens."""

    key = JOB_XCOM_KEY
    page: ClassVar[str]

    def format_link(self, **kwargs: Any) -> str:
        try:
            if urls.is_aws_endpoint(kwargs.get("endpoint_url")):
                return self.format_console(**kwargs)
            return self.format_plugin(**kwargs)
        except (KeyError, TypeError, ValueError):
            return ""

    def format_plugin(self, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1,
                      **_: Any) -> str:
        return urls.page_url(self.page, dag_id=dag_id, run_id=run_id, task_id=task_id,
                             map_index=map_index, base_url=_airflow_base_url())

    def format_console(self, **kwargs: Any) -> str:
        return self.format_plugin(**kwargs)


class SMROutputLink(_SMRLink):
    """Where the job wrote its parts: the S3 console on AWS, the plugin's listing elsewhere."""

    name = "SMR Output"
    page = urls.OUTPUT
    format_str: ClassVar[str] = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def format_console(self, **kwargs: Any) -> str:
        if not kwargs.get("aws_domain"):  # a partition without a known console
            return ""
        location = S3Uri.parse(kwargs["output"], what="output")
        return self.format_str.format(aws_domain=kwargs["aws_domain"], bucket=location.bucket,
                                      region_name=kwargs["region_name"], prefix=quote(location.key, safe="/"))


class SMRLogsLink(_SMRLink):
    """The job's function log lines (CloudWatch Logs filtered by the job id), in the plugin."""

    name = "SMR Logs"
    page = urls.LOGS


class SMRReportLink(_SMRLink):
    """The job's HTML report (timeline, phases, cost; live while it runs), in the plugin."""

    name = "SMR Report"
    page = urls.REPORT


def persist_job_links(context: Context, operator: Any, *, job_id: str, aws_conn_id: str | None,
                      region_name: str, aws_partition: str, endpoint_url: str | None, output: str,
                      stack_name: str, stack: dict[str, Any] | None) -> None:
    """Store what the links and the plugin need to find the job (one XCom, :data:`JOB_XCOM_KEY`).

    :param stack: the deployed stack's ``StackInfo`` dict, when known (its work bucket and
        function names spare the plugin a CloudFormation call).
    """
    ti = context["ti"]
    SMRReportLink.persist(
        context=context, operator=operator, region_name=region_name, aws_partition=aws_partition,
        endpoint_url=endpoint_url, job_id=job_id, aws_conn_id=aws_conn_id, stack_name=stack_name,
        work_bucket=(stack or {}).get("work_bucket"), functions=(stack or {}).get("functions"),
        output=output, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
        map_index=getattr(ti, "map_index", -1))
