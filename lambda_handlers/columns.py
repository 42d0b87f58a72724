"""Column batches: the shuffle's compact encoding of a batch of pairs whose keys are all ``str``.

A batch payload (inside one shuffle frame) is either the serializer's encoding of a list of
``[key, value]`` pairs, or a *column batch*::

    b"\\x00" kind:u8 count:u32 key_bytes:u32 keys values

``keys`` is ``"\\0".join(keys)`` in UTF-8 (``surrogatepass``); ``values`` depends on ``kind``:
``s`` the same for ``str`` values, ``d`` little-endian float64s, ``q`` little-endian int64s,
``j`` the serializer's encoding of the list of values. A serializer's payload never starts with a
zero byte (JSON starts with ``[``, pickle with ``\\x80``), so the two never mix up.

Encoding and decoding run in C over whole columns (one ``join``/``split``/``array`` per batch),
with no Python call per record; a column batch decodes to exactly the pairs the serializer would
give back (``str``, ``float`` and ``int`` round-trip unchanged through JSON and pickle alike).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable
from operator import itemgetter
from typing import Any

HEADER = struct.Struct("<cBII")  # marker, kind, count, key bytes
MARKER = b"\x00"
STR, FLOAT, INT, OTHER = b"sdqj"
_INT64 = (-(1 << 63), (1 << 63) - 1)
_SWAP = sys.byteorder == "big"  # arrays travel little-endian
_first, _second = itemgetter(0), itemgetter(1)


def _joined(strings: list[str]) -> bytes | None:
    """``"\\0".join(strings)`` as UTF-8, or None if one of them holds a NUL (not separable).
    The NUL is looked for in the strings joined with nothing between them: a search for one
    character (``memchr``) and a copy cost less than counting the separators of the joined text."""
    if "\0" in "".join(strings):
        return None
    return "\0".join(strings).encode("utf-8", "surrogatepass")


def _array_bytes(code: str, values: list[Any]) -> bytes:
    a = array(code, values)
    if _SWAP:
        a.byteswap()
    return a.tobytes()


def encode_columns(keys: list[Any], values: list[Any], dumps: Callable[[list[Any]], bytes],
                   keys_are_str: bool = False) -> bytes | None:
    """The column batch of ``keys``/``values`` (equal lengths, at least one), or None when the keys
    are not all ``str`` (or one holds a NUL): then the caller uses the serializer's pairs.
    ``keys_are_str``: the caller has checked the keys' type already."""
    if not keys or not (keys_are_str or set(map(type, keys)) == {str}):
        return None
    key_bytes = _joined(keys)
    if key_bytes is None:
        return None
    types = set(map(type, values))
    kind, body = OTHER, None
    if types == {str}:
        kind, body = STR, _joined(values)
    elif types == {float}:
        kind, body = FLOAT, _array_bytes("d", values)
    elif types == {int} and _INT64[0] <= min(values) and max(values) <= _INT64[1]:
        kind, body = INT, _array_bytes("q", values)
    if body is None:
        kind, body = OTHER, dumps(values)
    return b"".join((HEADER.pack(MARKER, kind, len(keys), len(key_bytes)), key_bytes, body))


def encode_batch(batch: list[Any], dumps: Callable[[list[Any]], bytes]) -> bytes:
    """One batch of ``(key, value)`` pairs: a column batch when the keys allow it, else
    ``dumps(batch)`` (the serializer's own encoding, and its own errors)."""
    keys: list[Any] = []
    values: list[Any] = []
    try:
        if set(map(len, batch)) == {2} and type(batch[0][0]) is str:
            keys, values = list(map(_first, batch)), list(map(_second, batch))
    except (TypeError, IndexError, KeyError):  # not pairs: the serializer says what is wrong
        keys = []
    payload = encode_columns(keys, values, dumps) if keys else None
    return dumps(batch) if payload is None else payload


def is_columns(payload: bytes) -> bool:
    return payload[:1] == MARKER


def is_str_columns(payload: bytes) -> bool:
    """A column batch whose values are ``str`` too (its keys always are): a reader of it can skip
    checking the types of the columns it decodes to."""
    return payload[:1] == MARKER and len(payload) > 1 and payload[1] == STR


def _strings(view: memoryview, count: int) -> list[str]:
    items = str(view, "utf-8", "surrogatepass").split("\0")
    if len(items) != count:
        raise ValueError(f"a column batch holds {len(items)} strings where its header says {count}")
    return items


def _numbers(code: str, view: memoryview, count: int) -> list[Any]:
    a = array(code)
    a.frombytes(view)
    if _SWAP:
        a.byteswap()
    if len(a) != count:
        raise ValueError(f"a column batch holds {len(a)} numbers where its header says {count}")
    return a.tolist()


def decode_columns(payload: bytes, loads: Callable[[bytes], Any]) -> tuple[list[Any], list[Any]]:
    """``(keys, values)`` of a column batch (see :func:`is_columns`)."""
    _, kind, count, nkey = HEADER.unpack_from(payload, 0)
    view = memoryview(payload)
    start = HEADER.size + nkey
    keys = _strings(view[HEADER.size:start], count)
    body = view[start:]
    values: list[Any]
    if kind == STR:
        values = _strings(body, count)
    elif kind == FLOAT:
        values = _numbers("d", body, count)
    elif kind == INT:
        values = _numbers("q", body, count)
    elif kind == OTHER:
        values = loads(bytes(body))
        if len(values) != count:
            raise ValueError(f"a column batch holds {len(values)} values where its header says {count}")
    else:
        raise ValueError(f"unknown column batch kind {kind!r}")
    return keys, values


def split_pairs(pairs: list[Any]) -> tuple[list[Any], list[Any]]:
    """``(keys, values)`` of a list of pairs."""
    return list(map(_first, pairs)), list(map(_second, pairs))
