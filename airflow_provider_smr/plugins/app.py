"""The plugin's FastAPI app: a task instance's SMR job pages, behind Airflow's own authentication.

Mounted by Airflow's API server under :data:`~airflow_provider_smr.plugins.urls.URL_PREFIX`. Every
route needs a user the auth manager accepts (the UI's session cookie, or a bearer token) who may
read the DAG's task instances (``requires_access_dag("GET", TASK_INSTANCE)``). The job and the
``aws`` connection come from what the task persisted (:func:`.jobs.find_job`), never from the
request, so a viewer cannot point the API server's credentials anywhere else.
"""

from __future__ import annotations

import html
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from airflow_provider_smr.plugins import jobs, pages, urls

CanReadTask = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))


def _map_index(map_index: Annotated[str | None, Query()] = None) -> int:
    # The UI fills {MAP_INDEX} only for mapped tasks: the literal placeholder means "not mapped".
    try:
        return int(map_index) if map_index is not None else -1
    except ValueError:
        return -1


def locate_job(dag_id: str, run_id: str, task_id: str,
               map_index: Annotated[int, Depends(_map_index)]) -> jobs.JobRef:
    """The job of the task instance in the path (a dependency, so tests can swap the lookup)."""
    return jobs.find_job(dag_id, run_id, task_id, map_index)


def job_source(ref: Annotated[jobs.JobRef, Depends(locate_job)]) -> jobs.JobSource:
    """The job, read through the ``aws`` connection its task used."""
    return jobs.JobSource(ref)


SourceDep = Annotated[jobs.JobSource, Depends(job_source)]
MapIndexDep = Annotated[int, Depends(_map_index)]


def create_app() -> FastAPI:
    """The app Airflow mounts (see :class:`~airflow_provider_smr.plugins.smr.SMRPlugin`)."""
    app = FastAPI(title="Serverless MapReduce jobs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(jobs.JobNotFound)
    async def job_not_found(request: Request, exc: jobs.JobNotFound) -> HTMLResponse:
        return HTMLResponse(pages.not_found(str(exc)), status_code=404)

    @app.exception_handler(ClientError)
    @app.exception_handler(BotoCoreError)
    @app.exception_handler(AirflowNotFoundException)
    async def unreadable(request: Request, exc: Exception) -> HTMLResponse:
        # The job exists (the task recorded it) but its connection cannot read it from here.
        return HTMLResponse(pages.unreadable(str(exc)), status_code=502)

    route = urls.ROUTE.replace("{page}", "")

    @app.get(route + urls.JOB, response_class=HTMLResponse, dependencies=[CanReadTask])
    def job_page(source: SourceDep, map_index: MapIndexDep) -> HTMLResponse:
        """Live status: the progress line, the task table, failures with their tracebacks."""
        return HTMLResponse(pages.status_page(source.view(), map_index))

    @app.get(route + urls.REPORT, response_class=HTMLResponse, dependencies=[CanReadTask])
    def report_page(source: SourceDep, map_index: MapIndexDep) -> HTMLResponse:
        """The HTML report: the stored one of a finished job, built live (and reloading) while it runs."""
        text = source.report_html(source.view(), refresh_s=pages.REFRESH_S)
        query = f"?map_index={map_index}" if map_index >= 0 else ""
        nav = (f'<nav style="font-size:14px;margin-bottom:12px"><a href="{urls.JOB}{query}">Status</a> '
               f'&middot; <a href="{urls.LOGS}{html.escape(query)}">Logs</a> &middot; '
               f'<a href="{urls.OUTPUT}{html.escape(query)}">Output</a></nav>')
        return HTMLResponse(text.replace("<body>", "<body>" + nav, 1))

    @app.get(route + urls.LOGS, response_class=HTMLResponse, dependencies=[CanReadTask])
    def logs_page(source: SourceDep, map_index: MapIndexDep) -> HTMLResponse:
        """The functions' CloudWatch log lines that name the job."""
        view = source.view()
        events = source.log_events(view.plan)
        return HTMLResponse(pages.logs_page(source.ref, events, source.log_groups(),
                                            terminal=view.status.terminal, map_index=map_index))

    @app.get(route + urls.OUTPUT, response_class=HTMLResponse, dependencies=[CanReadTask])
    def output_page(source: SourceDep, map_index: MapIndexDep) -> HTMLResponse:
        """A listing of the job's output prefix."""
        location, objects, more = source.output_objects()
        return HTMLResponse(pages.output_page(source.ref, location, objects, more, map_index))

    return app
