"""SMRPlugin: the provider's Airflow plugin (registered through the ``airflow.plugins`` entry point).

It mounts the job pages' FastAPI app (:mod:`.app`) on Airflow's API server under
:data:`~airflow_provider_smr.plugins.urls.URL_PREFIX`, and adds an "SMR job" tab to every task
instance page (an external view with destination ``task_instance``) that shows the task's job
status; tasks that ran no SMR job show a short "no SMR job here" page there.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_smr.plugins import urls


class _LazyApp:
    """Build the FastAPI app when the API server mounts it, not when a scheduler or a worker
    loads the plugin list (they never serve it)."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            from airflow_provider_smr.plugins.app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class SMRPlugin(AirflowPlugin):
    """Serverless MapReduce in the Airflow UI: a job's report, live status, logs and output."""

    name = "smr"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": urls.URL_PREFIX, "name": "Serverless MapReduce jobs"}]
    external_views = [{
        "name": "SMR job",
        "href": urls.TAB_HREF,
        "destination": "task_instance",
        "url_route": "smr_job",
    }]
