"""SMRJobSensor: wait for an SMR job started elsewhere (the CLI, another DAG)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_smr.hooks.smr import SMRHook
from lambda_handlers import protocol

if TYPE_CHECKING:
    from airflow.sdk import Context


class SMRJobSensor(AwsBaseSensor[SMRHook]):
    """
    Wait until an SMR job succeeds; fail with the remote error if it fails or is cancelled.

    :param job_id: the job to wait for. (templated)
    :param stack_name: the SMR stack the job runs on. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poke_interval: seconds between polls (also the trigger's poll interval).
    :param aws_conn_id: the Airflow ``aws`` connection.
    :param region_name: AWS region; the connection's when None.
    :param verify: whether to verify SSL certificates.
    :param botocore_config: botocore client configuration dict.
    """

    aws_hook_class = SMRHook
    template_fields: Sequence[str] = aws_template_fields("job_id", "stack_name")
    ui_color = "#f9c915"

    SUCCESS_STATES = protocol.SUCCESS_STATES
    FAILURE_STATES = protocol.FAILURE_STATES

    def __init__(
        self,
        *,
        job_id: str,
        stack_name: str = "smr",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.stack_name = stack_name
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool:
        status = self.hook.get_job_status(self.job_id, stack_name=self.stack_name)
        state = status["state"]
        if state in self.FAILURE_STATES:
            raise AirflowException(f"SMR job {self.job_id} {state}: {status.get('error')}")
        self.log.info("SMR job %s: %s %s", self.job_id, state, status.get("progress") or "")
        return state in self.SUCCESS_STATES

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if not self.poke(context):
            self._defer()
        return None

    def _defer(self) -> None:
        from airflow_provider_smr.triggers.smr import SMRJobTrigger

        stack = self.hook.get_stack_info(self.stack_name)
        self.defer(
            trigger=SMRJobTrigger(
                job_id=self.job_id,
                work_bucket=stack["work_bucket"],
                stack_name=self.stack_name,
                waiter_delay=self.poke_interval,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        from airflow_provider_smr.operators.smr import validate_event
        from airflow_provider_smr.triggers.smr import NEEDS_ATTENTION, SUCCESS

        checked = validate_event(event)
        if checked["status"] == SUCCESS:
            self.log.info("SMR job %s succeeded", self.job_id)
            return
        if checked["status"] == NEEDS_ATTENTION:
            self.log.warning("SMR job %s: %s; retrying them", self.job_id, checked.get("message"))
            self.hook.retry_overdue_tasks(self.job_id, stack_name=self.stack_name)
            self._defer()
            return
        raise AirflowException(f"SMR job {self.job_id} {checked['status']}: {checked.get('message')}")
