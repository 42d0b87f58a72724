"""Where the plugin's pages live: one URL per task instance and page, shared by links and routes."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

# Mounted on Airflow's API server (next to /api/v2 and /ui), so the pages share its origin and login.
URL_PREFIX = "/smr"

# The pages of one task instance's job.
JOB = "job"  # live status: progress line, task table, failures (the "SMR job" tab)
REPORT = "report"  # the HTML report (timeline, phases, cost)
LOGS = "logs"  # the functions' CloudWatch log lines that name the job
OUTPUT = "output"  # a listing of the output prefix
PAGES = (JOB, REPORT, LOGS, OUTPUT)

# The route of a page; the external view's href uses the UI's placeholders in the same places.
ROUTE = "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/{page}"
TAB_HREF = URL_PREFIX + "/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}/" + JOB + "?map_index={MAP_INDEX}"

# Hosts of AWS's own endpoints: any other endpoint_url (the local stack on loopback or a Docker
# network name, MinIO, ...) has no AWS console to open.
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def page_url(page: str, *, dag_id: str, run_id: str, task_id: str, map_index: int | None = -1,
             base_url: str | None = None) -> str:
    """The URL of one page of a task instance's job.

    :param base_url: Airflow's ``[api] base_url``; without it the URL is relative to the Airflow
        origin (what the UI opens the extra links against).
    """
    path = ROUTE.format(dag_id=quote(dag_id, safe=""), run_id=quote(run_id, safe=""),
                        task_id=quote(task_id, safe=""), page=page)
    query = f"?map_index={map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{(base_url or '').rstrip('/')}{URL_PREFIX}{path}{query}"


def is_aws_endpoint(endpoint_url: str | None) -> bool:
    """True when requests go to AWS itself (no ``endpoint_url``, or one on an AWS domain)."""
    if not endpoint_url:
        return True
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return host.endswith(_AWS_HOST_SUFFIXES)
