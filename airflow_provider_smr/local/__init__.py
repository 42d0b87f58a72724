"""The local stack: moto for AWS's services plus a Lambda runtime that really runs functions.

``from airflow_provider_smr.local import LocalStack`` - see :mod:`airflow_provider_smr.local.stack`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_smr.local.stack import LocalStack, LocalStackError

__all__ = ["LocalStack", "LocalStackError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from airflow_provider_smr.local import stack

        return getattr(stack, name)
    raise AttributeError(name)
