"""SMRJobSensor: poke says done / not yet / failed; deferrable mode hands the wait to the trigger."""

from __future__ import annotations

from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_provider_smr.hooks.smr import SMRHook
from airflow_provider_smr.sensors.smr import SMRJobSensor
from lambda_handlers import protocol


def fake_hook(state):
    """An autospec of SMRHook whose every job is in ``state``; retried job ids go to ``retried``."""
    hook = mock.create_autospec(SMRHook, instance=True)
    hook.retried = []
    hook.get_job_status.side_effect = lambda job_id, stack_name="smr": {
        "job_id": job_id, "state": state, "progress": {}, "error": "ValueError: bad row"}
    hook.get_stack_info.side_effect = lambda stack_name="smr": {"stack_name": stack_name,
                                                                "work_bucket": "smr-work"}
    hook.retry_overdue_tasks.side_effect = lambda job_id, stack_name="smr": hook.retried.append(job_id)
    return hook


def call(sensor, hook, method, *args):
    with mock.patch.object(SMRJobSensor, "hook", new_callable=mock.PropertyMock) as prop:
        prop.return_value = hook
        return getattr(sensor, method)(*args)


@pytest.mark.parametrize(("state", "done"), [
    (protocol.PENDING, False), (protocol.RUNNING, False), (protocol.SUCCEEDED, True)])
def test_poke_is_true_only_when_the_job_succeeded(state, done):
    assert call(SMRJobSensor(task_id="s", job_id="j"), fake_hook(state), "poke", {}) is done


@pytest.mark.parametrize("state", [protocol.FAILED, protocol.CANCELLED])
def test_poke_raises_with_the_remote_error_when_the_job_failed(state):
    with pytest.raises(AirflowException, match="ValueError: bad row"):
        call(SMRJobSensor(task_id="s", job_id="j"), fake_hook(state), "poke", {})


def test_deferrable_sensor_defers_to_the_trigger_on_the_stacks_work_bucket():
    sensor = SMRJobSensor(task_id="s", job_id="j-1", deferrable=True, poke_interval=2)
    with pytest.raises(TaskDeferred) as deferred:
        call(sensor, fake_hook(protocol.RUNNING), "execute", {})
    trigger = deferred.value.trigger
    assert (trigger.job_id, trigger.work_bucket, trigger.waiter_delay) == ("j-1", "smr-work", 2)
    assert trigger.cancel_on_kill is False  # a sensor watches a job it does not own


def test_deferrable_sensor_returns_at_once_for_a_finished_job():
    sensor = SMRJobSensor(task_id="s", job_id="j-1", deferrable=True)
    assert call(sensor, fake_hook(protocol.SUCCEEDED), "execute", {}) is None


def test_needs_attention_event_retries_overdue_tasks_and_defers_again():
    hook = fake_hook(protocol.RUNNING)
    sensor = SMRJobSensor(task_id="s", job_id="j-1", deferrable=True)
    with pytest.raises(TaskDeferred):
        call(sensor, hook, "execute_complete", {}, {"status": "needs_attention", "job_id": "j-1"})
    assert hook.retried == ["j-1"]


def test_failure_event_raises():
    sensor = SMRJobSensor(task_id="s", job_id="j-1", deferrable=True)
    with pytest.raises(AirflowException, match="division by zero"):
        call(sensor, fake_hook(protocol.FAILED), "execute_complete", {},
             {"status": "failed", "job_id": "j-1", "message": "ZeroDivisionError: division by zero"})
