"""Stand-in for ``airflow.sdk.ResumableJobMixin`` on Airflow < 3.3 (no task_state_store there).

The SMR operator's ``submit_job`` already reuses a running or finished job found under the task
instance's deterministic id in S3, so without a task-state store the crash-safe behaviour comes
from the markers alone: submit-or-reconnect, poll, return the result.
"""

from __future__ import annotations

from typing import Any


class ResumableJobMixin:
    external_id_key: str = "remote_job_id"

    def __init__(self, *, durable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durable = durable

    def execute_resumable(self, context: Any) -> Any:
        external_id = self.submit_job(context)
        return self.poll_until_complete(external_id, context)

    # What the operator implements (as on Airflow's mixin).
    def submit_job(self, context: Any) -> str:
        raise NotImplementedError

    def poll_until_complete(self, external_id: str, context: Any) -> Any:
        raise NotImplementedError
