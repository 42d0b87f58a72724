"""Part writers: encode sorted ``(key, value)`` pairs in the job's output format.

jsonl: ``{"key": k, "value": v}`` per line; tsv: ``json(k)<TAB>json(v)``; csv: ``k,v`` (scalars
only, csv-module quoting); text: the value alone per line (mrjob's ``RawValueProtocol``): a ``str``
as it is, anything else as its JSON, the key dropped (parts named ``.txt``, so they read back as
``input_format="text"``). Records are encoded in batches into one buffer per part. parquet: one
Parquet file per part (:class:`~lambda_handlers.io.parquet.ParquetPartWriter`; :func:`part_writer`
picks the writer).

JSON text is exactly ``json.dumps(x)`` (default separators, ``ensure_ascii``, ``NaN``/``Infinity``),
encoded a column at a time: all-``str`` columns through the C string encoder, columns of JSON
scalars in one call of the C encoder, anything else one value at a time.
"""

from __future__ import annotations

import csv
import io
import json
import json.encoder
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, Protocol

OUTPUT_FORMATS = ("jsonl", "tsv", "csv", "parquet", "text")
_EXTENSIONS = {"text": "txt"}  # a part's file extension where it is not the format's name
_SCALARS = (str, int, float, bool, type(None))
BATCH = 4096
_STR_ONLY = {str}
_first, _second = itemgetter(0), itemgetter(1)
_PLAIN = bytes(set(range(0x20, 0x7F)) - set(b'"\\'))  # what JSON writes as it is (ensure_ascii)
_JSON_SCALARS = set(_SCALARS)
_LINE_FORMATS = ("jsonl", "tsv")  # formats whose records are one JSON-text line each


def _make_encoders() -> tuple[Callable[[Any], str], Callable[[list[Any]], list[str]] | None]:
    """``(encode one value, encode a column of JSON scalars or None)``, both equal to json.dumps."""
    plain = json.JSONEncoder().encode
    # json's C accelerators (None where it has none); private, so typeshed does not declare them.
    make: Callable[..., Callable[[Any, int], Iterable[str]]] | None = getattr(
        json.encoder, "c_make_encoder", None)
    esc: Callable[[str], str] | None = getattr(json.encoder, "c_encode_basestring_ascii", None)
    if make is None or esc is None:  # no C accelerator: json's own encoder, one value at a time
        return plain, None
    markers: dict[int, Any] = {}
    one = make(markers, None, esc, None, ": ", ", ", False, False, True)
    lines = make(None, None, esc, None, ": ", "\n", False, False, True)

    def encode(value: Any) -> str:
        if type(value) is str:
            return esc(value)
        try:
            return "".join(one(value, 0))
        except Exception:  # noqa: BLE001 - json's own encoder raises the error a user should see
            markers.clear()
            return plain(value)  # raises json's own error (or encodes what the C encoder refused)

    def column(values: list[Any]) -> list[str]:  # scalars never contain a raw newline in JSON
        return "".join(lines(values, 0))[1:-1].split("\n")
    return encode, column


_encode_one, _encode_scalars = _make_encoders()


def encode_column(values: list[Any]) -> list[str]:
    """``[json.dumps(v) for v in values]``, fast for columns of str or of JSON scalars."""
    if not values:
        return []
    types = set(map(type, values))
    if types == _STR_ONLY:
        return list(map(json.encoder.encode_basestring_ascii, values))
    if _encode_scalars is not None and types <= _JSON_SCALARS:
        return _encode_scalars(values)
    return list(map(_encode_one, values))


def quoted_column(values: list[Any], strs: bool = False) -> tuple[list[str], str]:
    """``(texts, quote)`` such that ``json.dumps(values[i]) == quote + texts[i] + quote``: a column
    of ``str`` that JSON leaves as they are (printable ASCII without ``"`` or ``\\``) is its own
    text between quotes, checked once on the joined column; anything else is encoded. ``strs``:
    the caller knows every value is a ``str``."""
    if strs or set(map(type, values)) == _STR_ONLY:
        joined = "".join(values)  # cheap checks first: printable ASCII minus '"' and '\\' deleted
        if ('"' not in joined and "\\" not in joined and joined.isascii()
                and not joined.encode("ascii").translate(None, _PLAIN)):
            return values, '"'
        return list(map(json.encoder.encode_basestring_ascii, values)), ""
    return encode_column(values), ""


def _json_lines(batch: list[Any], fmt: str) -> str:
    """jsonl (``{"key": k, "value": v}``) or tsv (``k<TAB>v``) lines of a batch of pairs, assembled
    a column at a time (no Python call per record): the keys, the values and the constant text
    between them are laid into one list by slice assignment and joined once."""
    if set(map(len, batch)) != {2}:  # not pairs: unpacking says what is wrong
        batch = [(k, v) for k, v in batch]
    return _json_columns(list(map(_first, batch)), list(map(_second, batch)), fmt)


def _json_columns(key_column: list[Any], value_column: list[Any], fmt: str, strs: bool = False) -> str:
    """:func:`_json_lines` of the pairs ``zip(key_column, value_column)`` (``strs``: all ``str``)."""
    keys, kq = quoted_column(key_column, strs)
    values, vq = quoted_column(value_column, strs)
    if fmt == "jsonl":
        head, mid, tail = '{"key": ' + kq, f'{kq}, "value": {vq}', vq + "}\n"
    else:
        head, mid, tail = kq, f"{kq}\t{vq}", vq + "\n"
    n = len(keys)
    if not n:
        return ""
    out = [mid] * (4 * n)  # per record: key, mid, value, tail + the next record's head
    out[::4] = keys
    out[2::4] = values
    out[3::4] = [tail + head] * n
    out[-1] = tail
    return head + "".join(out)


def record_lines(keys: list[Any], values: list[Any], fmt: str, strs: bool = False) -> list[str]:
    """Each pair's jsonl or tsv line (without its newline), exactly as :class:`PartWriter` writes it:
    a reducer that sorts records it has not written yet can encode them first, in the order they
    arrived (one pass over objects that lie in memory in that order), and sort the lines.
    ``strs``: the caller knows every key and value is a ``str`` (a column batch's)."""
    if fmt not in _LINE_FORMATS:
        raise OutputFormatError(f"record_lines writes jsonl or tsv, not {fmt!r}")
    lines = _json_columns(keys, values, fmt, strs).split("\n")  # JSON text holds no raw newline
    lines.pop()  # after the last newline
    return lines


def line_pair(line: str, fmt: str) -> tuple[Any, Any]:
    """The ``(key, value)`` a :func:`record_lines` line was made of (decoded from its JSON)."""
    if fmt == "jsonl":
        rec = json.loads(line)
        return rec["key"], rec["value"]
    k, v = line.split("\t", 1)  # JSON text holds no raw tab
    return json.loads(k), json.loads(v)


class OutputFormatError(ValueError):
    """A record the output format cannot hold (e.g. a list value in csv)."""


def check_format(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise OutputFormatError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


def extension(fmt: str) -> str:
    """The file extension of a part in output format ``fmt``."""
    return _EXTENSIONS.get(check_format(fmt), fmt)


def _text_lines(batch: list[Any]) -> str:
    """text lines of a batch of pairs: each value, a ``str`` as it is, anything else as JSON."""
    values = [v for _, v in batch]
    if set(map(type, values)) != _STR_ONLY:
        values = [v if isinstance(v, str) else _encode_one(v) for v in values]
    values.append("")
    return "\n".join(values)


class PartWriter:
    """Accumulate one part in memory; ``getvalue()`` returns its bytes."""

    def __init__(self, fmt: str):
        self.fmt = check_format(fmt)
        if self.fmt == "parquet":
            raise OutputFormatError("Parquet parts are written by part_writer('parquet')")
        self.records = 0
        self._chunks: list[bytes] = []
        self._batch: list[tuple[Any, Any]] = []

    def write(self, key: Any, value: Any) -> None:
        self._batch.append((key, value))
        if len(self._batch) >= BATCH:
            self._flush()

    def write_many(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        for k, v in pairs:
            self.write(k, v)

    def write_batch(self, pairs: list[tuple[Any, Any]]) -> None:
        """Write a list of ``(key, value)`` tuples (the writer may keep the list's items)."""
        self._batch.extend(pairs)
        if len(self._batch) >= BATCH:
            self._flush()

    def write_lines(self, lines: Iterable[str]) -> None:
        """Write records already encoded by :func:`record_lines` (jsonl and tsv), after those before."""
        self._flush()
        lines = lines if isinstance(lines, list) else list(lines)
        if lines:
            self._chunks.append(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
            self.records += len(lines)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        self.records += len(batch)
        if self.fmt == "text":
            text = _text_lines(batch)
        elif self.fmt != "csv":
            text = _json_lines(batch, self.fmt)
        else:
            for k, v in batch:
                if not isinstance(k, _SCALARS) or not isinstance(v, _SCALARS):
                    raise OutputFormatError(
                        f"csv output holds scalar keys and values only, got key {k!r} value {v!r}; "
                        "use output_format='jsonl' or 'tsv'")
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(batch)
            text = buf.getvalue()
        self._chunks.append(text.encode("utf-8", "surrogatepass"))

    def getvalue(self) -> bytes:
        self._flush()
        return b"".join(self._chunks)

    @property
    def can_drain(self) -> bool:
        """Whether :meth:`drain` can give back the records (jsonl and tsv: csv loses key types,
        text the keys)."""
        return self.fmt not in ("csv", "text")

    def drain(self) -> Iterator[tuple[Any, Any]]:
        """Give back the records written so far (decoded from their JSON) and empty the writer.

        Re-encoding what is given back yields the same bytes (JSON text is a fixed point of
        ``json.dumps(json.loads(...))``), so a caller may re-order records and write them again.
        """
        if not self.can_drain:
            raise OutputFormatError(f"{self.fmt} parts cannot be read back; sort before writing")
        self._flush()
        chunks, self._chunks, self.records = self._chunks, [], 0
        loads = json.loads
        chunks.reverse()
        while chunks:  # one chunk (a batch of records) decoded at a time, then released
            lines = chunks.pop().decode("utf-8", "surrogatepass").split("\n")[:-1]
            if self.fmt == "jsonl":
                for line in lines:
                    rec = loads(line)
                    yield rec["key"], rec["value"]
            else:
                for line in lines:
                    k, v = line.split("\t", 1)
                    yield loads(k), loads(v)


class Part(Protocol):
    """What the tasks write a part through (:class:`PartWriter`, or Parquet's writer)."""

    records: int

    def write(self, key: Any, value: Any) -> None: ...

    def write_batch(self, pairs: list[Any]) -> None: ...

    def getvalue(self) -> bytes: ...


def part_writer(fmt: str) -> Part:
    """The writer of one part in output format ``fmt``."""
    if extension(fmt) == "parquet":
        from lambda_handlers.io.parquet import ParquetPartWriter

        return ParquetPartWriter()
    return PartWriter(fmt)


def keeps_empty_parts(fmt: str) -> bool:
    """Whether a part with no records is committed: not for Parquet, whose empty part has no
    column types and would make the parts' schemas disagree."""
    return fmt != "parquet"


def encode_part(fmt: str, pairs: Iterable[tuple[Any, Any]]) -> tuple[bytes, int]:
    """Encode ``pairs`` (already sorted) as one part; return (bytes, record count)."""
    w = PartWriter(fmt)
    w.write_many(pairs)
    data = w.getvalue()
    return data, w.records
