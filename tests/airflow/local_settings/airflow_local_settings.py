"""Airflow cluster policy for the example-DAG tests: SMR tasks poll their job every 0.5 s, not 5 s.

On the ``PYTHONPATH`` of the test's Airflow process only (Airflow imports ``airflow_local_settings``
at start-up and applies ``task_policy`` to every task it parses, mapped ones included). The DAGs
themselves run unchanged; a few-second job then no longer waits up to a whole 5 s poll to be seen done.
"""

from __future__ import annotations

import inspect

WAITER_DELAY_S = 0.5


def task_policy(task) -> None:
    operator_class = getattr(task, "operator_class", type(task))  # a MappedOperator's, or the task's
    if not getattr(operator_class, "__module__", "").startswith("airflow_provider_smr."):
        return
    if "waiter_delay" not in inspect.signature(operator_class.__init__).parameters:
        return  # a sensor: it polls every poke_interval
    if hasattr(task, "partial_kwargs"):  # .partial(...).expand(...): the kwargs every mapped task gets
        task.partial_kwargs["waiter_delay"] = WAITER_DELAY_S
    else:
        task.waiter_delay = WAITER_DELAY_S
