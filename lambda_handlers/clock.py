"""Timestamps as the job's records carry them, read back as epoch seconds.

S3 listings give ``LastModified`` as a ``datetime``; ``plan.json`` and the done markers hold ISO 8601
strings (``created``, ``committed``) or epoch seconds (``started``, ``finished``).
"""

from __future__ import annotations

import datetime as dt
import re
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


# -- parsing the timestamps of AWS responses -----------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                       "Oct", "Nov", "Dec"), 1)}
_ISO_UTC = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z\Z")
_HTTP_DATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) "
                        r"(\d\d):(\d\d):(\d\d) GMT\Z")


#: the tzinfo botocore gives each fast-parsed form: dateutil's ``tzlocal()`` for ``Z`` where the
#: process's zone is UTC (Lambda), ``tzutc()`` otherwise; asked of botocore once per process
_ZONES: dict[str, Any] = {}


def _zone(sample: str) -> Any:
    zone = _ZONES.get(sample)
    if zone is None:
        from botocore.utils import parse_timestamp

        zone = _ZONES[sample] = parse_timestamp(sample).tzinfo
    return zone


def aws_timestamp(value: Any) -> dt.datetime:
    """botocore's ``parse_timestamp``, exactly (the same ``datetime``, with the same dateutil
    ``tzinfo``), with a fast path for the two forms S3 sends: ``2026-12-07T05:57:14.000Z``
    (``LastModified`` in a listing) and ``Mon, 07 Dec 2026 05:57:14 GMT`` (the ``Last-Modified``
    header of a GET or HEAD). botocore hands both to dateutil's generic parser, about 0.15 ms of
    CPU each: most of the planner's time per listed object, and a tenth of a small GET's.
    Anything else is botocore's."""
    if isinstance(value, str):
        try:
            m = _ISO_UTC.match(value)
            if m:
                year, month, day, hour, minute, second, fraction = m.groups()
                return dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                                   int(second), int((fraction or "0").ljust(6, "0")),
                                   _zone("2000-01-01T00:00:00Z"))
            m = _HTTP_DATE.match(value)
            if m and m.group(2) in _MONTHS:
                day, month, year, hour, minute, second = m.groups()
                return dt.datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute),
                                   int(second), tzinfo=_zone("Sat, 01 Jan 2000 00:00:00 GMT"))
        except ValueError:  # not a date (Feb 30): botocore's error
            pass
    from botocore.utils import parse_timestamp

    result: dt.datetime = parse_timestamp(value)
    return result


def fast_timestamp_session(**kwargs: Any) -> Any:
    """A new ``boto3.session.Session(**kwargs)`` whose clients parse timestamps with
    :func:`aws_timestamp` (botocore's public ``response_parser_factory`` default): same values,
    less CPU per listed object and per GET."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=aws_timestamp)
    return boto3.session.Session(botocore_session=core, **kwargs)
