"""Byte sizes written by people: ``64MiB``, ``512KiB``, ``1GiB``, ``10MB`` or a plain integer."""

from __future__ import annotations

import re

_UNITS = {
    "": 1, "B": 1,
    "K": 1024, "KB": 1024, "KIB": 1024,
    "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
    "G": 1024**3, "GB": 1024**3, "GIB": 1024**3,
    "T": 1024**4, "TB": 1024**4, "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


class SizeError(ValueError):
    """A size string that is not a number of bytes with an optional unit."""


def parse_size(value: int | str | None, *, name: str = "size") -> int | None:
    """Return ``value`` in bytes; ``MB``/``KB``/``GB`` mean the binary units, like ``MiB``.

    :param value: an int (bytes), a string such as ``"64MiB"``, or None (returned as is).
    :param name: what the size is for, used in the error message.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise SizeError(f"{name} must be a number of bytes or a string like '64MiB', got {value!r}")
    if isinstance(value, int):
        result = value
    else:
        m = _SIZE.match(str(value))
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS:
            raise SizeError(f"{name} {value!r} is not a size: use bytes or a number with a unit "
                            "(B, KiB, MiB, GiB, TiB; KB/MB/GB mean the same binary units)")
        result = int(float(m.group(1)) * _UNITS[unit])
    if result <= 0:
        raise SizeError(f"{name} must be positive, got {value!r}")
    return result
