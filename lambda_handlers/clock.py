"""Timestamps as the job's records carry them, read back as epoch seconds.

S3 listings give ``LastModified`` as a ``datetime``; ``plan.json`` and the done markers hold ISO 8601
strings (``created``, ``committed``) or epoch seconds (``started``, ``finished``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def epoch_seconds(value: Any) -> float | None:
    """Epoch seconds of a ``datetime``, an ISO 8601 string (``Z`` allowed) or a number; None for
    None or ``""``. Raises :class:`ValueError` for a string that is not ISO 8601."""
    if value is None or value == "":
        return None
    if hasattr(value, "timestamp"):  # datetime
        return float(value.timestamp())
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)
