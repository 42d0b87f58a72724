"""Input and output locations: parse URIs, list what an input names (always paginated), check overlap.

The implementation lives in :mod:`lambda_handlers.planning` so that the serverless driver plans
exactly as the control plane does; this module re-exports it.
"""

from __future__ import annotations

from typing import Any

from lambda_handlers import planning as _planning
from lambda_handlers.planning import *  # noqa: F401,F403


def __getattr__(name: str) -> Any:
    return getattr(_planning, name)
