"""Parquet input and output: row groups as the split unit, dict records or column batches, parts.

Input (``input_format="parquet"``, or an input whose objects end in ``.parquet``). The planner
packs whole small files into splits up to ``split_size`` and splits a larger file by row groups,
read from its footer (:mod:`lambda_handlers.io.parquet_footer`, no pyarrow needed to plan). A split
is a list of *pieces* ``{"bucket", "key", "etag", "size", "row_groups": [first, end] or None}``
(None: every row group of the file). A map task reads each piece through :class:`S3RangeFile`:
ranged GETs pinned to the planned ETag (a changed object fails the task naming it), the footer
once, then one row group at a time, only the byte ranges of the projected columns (``columns``).
Records are ``dict`` rows (``{column: value}``, Python values as ``pyarrow`` gives them); a
:func:`~airflow_provider_smr.job.batch_mapper` gets a ``pyarrow.RecordBatch`` per block instead
(up to :data:`BATCH_ROWS` rows of one row group, only the projected columns), to work on columns
(``pyarrow.compute``) rather than rows; when it fails, it is called again with one-row batches
to find the failing row.

Output (``output_format="parquet"``): one Parquet file per part. ``(key, value)`` pairs become the
columns ``key`` and ``value`` (as in jsonl; a dict value becomes a struct column); a reducer that
yields ``dict`` rows instead of pairs writes their fields as columns. Column types are inferred
from the records (batches are unified: ints and floats give a float column, a column that starts
as None takes the type of its first value); a value that fits no common type fails the task naming
the column. ``pyarrow.parquet.read_table(output prefix)`` reads the parts (``_SUCCESS`` is ignored,
as pyarrow ignores ``_`` files).

``pyarrow`` is imported only here and only when a Parquet input or output is read or written:
a stack for jobs without Parquet stays small; one with them needs ``requirements=["pyarrow"]``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lambda_handlers.io import splits
from lambda_handlers.io.parquet_footer import MAGIC, ParquetFileError, RowGroup, read_row_groups
from lambda_handlers.s3uri import S3Uri

if TYPE_CHECKING:
    import pyarrow

FORMAT = "parquet"
SUFFIX = ".parquet"
BLOCK_ROWS = 1024  # rows per block for a per-record mapper (dicts)
BATCH_ROWS = 1 << 16  # rows per RecordBatch for a batch mapper
MERGE_GAP = 1 << 20  # column chunks closer than this are fetched with one GET

__all__ = ["BATCH_ROWS", "FORMAT", "ParquetDependencyError", "ParquetFileError", "ParquetPartWriter",
           "PieceReader", "RowGroup", "row_group_ranges"]


class ParquetDependencyError(ImportError):
    """pyarrow is not importable where a Parquet input or output is read or written."""


def pyarrow_modules(what: str) -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a :class:`ParquetDependencyError` saying how to get them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ParquetDependencyError(
            f"{what} needs pyarrow: add requirements=['pyarrow'] (the stack builds a layer from its "
            f"Lambda wheels) or a layer that has it ({exc})") from None
    return pa, pq


# ---------------------------------------------------------------------------------------------
# Planning


def row_group_ranges(groups: Sequence[RowGroup], split_size: int) -> list[tuple[int, int, int, int]]:
    """``(first, end, start_byte, end_byte)``: consecutive row groups ``[first, end)`` of up to
    ``split_size`` compressed bytes (a larger group alone), and where their bytes lie were the
    groups laid out one after the other from byte 4 (after the leading ``PAR1``): what packing
    weighs a piece by."""
    out: list[tuple[int, int, int, int]] = []
    first, size, offset = 0, 0, len(MAGIC)
    for i, group in enumerate(groups):
        if i > first and size + group.bytes > split_size:
            out.append((first, i, offset, offset + size))
            first, offset, size = i, offset + size, 0
        size += group.bytes
    if groups:
        out.append((first, len(groups), offset, offset + size))
    return out


def s3_row_groups(s3: Any, obj: Any) -> list[RowGroup]:
    """The row groups of a listed object, from its footer (ranged GETs with client ``s3``, pinned to
    the object's ETag)."""
    def read(first: int, last: int) -> bytes:
        kw = {"IfMatch": obj.etag} if obj.etag else {}
        data: bytes = s3.get_object(Bucket=obj.bucket, Key=obj.key, Range=f"bytes={first}-{last}",
                                    **kw)["Body"].read()
        return data

    return read_row_groups(read, obj.size, str(S3Uri(obj.bucket, obj.key)))


# ---------------------------------------------------------------------------------------------
# Reading


class S3RangeFile(io.RawIOBase):
    """A read-only, seekable file over an S3 object: ranges :meth:`preload` fetched are served from
    memory, any other read is one ranged GET; every GET is pinned to ``etag``."""

    def __init__(self, bucket: str, key: str, etag: str | None, size: int,
                 on_bytes: Callable[[int], None] | None = None):
        super().__init__()
        self.size, self.pos = size, 0
        self._fetch = splits.s3_fetch(bucket, key, etag, on_bytes)
        self._cached: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def get(self, first: int, last: int) -> bytes:
        return b"".join(self._fetch(first, last))

    def preload(self, ranges: list[tuple[int, int]], keep: int = 0) -> None:
        """Fetch ``[start, end)`` ranges (merged when close) and serve reads from them, dropping all
        but the first ``keep`` ranges preloaded before."""
        self._cached = self._cached[:keep]
        for start, end in _merged(ranges):
            self._cached.append((start, self.get(start, end - 1)))

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        end = self.pos + n
        for start, data in self._cached:
            if start <= self.pos and end <= start + len(data):
                buffer[:n] = data[self.pos - start:end - start]
                break
        else:
            buffer[:n] = self.get(self.pos, end - 1)
        self.pos = end
        return n


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + MERGE_GAP:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


class PieceReader:
    """The rows of one piece of a Parquet object (see :class:`~lambda_handlers.plan.Piece`: its
    ``row_groups``, or all), in blocks: lists of dicts, or RecordBatches.

    :param bucket: the object's bucket (the split's).
    :param piece: the piece: ``key``, ``etag``, ``size``, ``row_groups``.
    :param on_bytes: told the bytes of every GET.
    :param batches: hand out ``pyarrow.RecordBatch`` blocks of up to :data:`BATCH_ROWS` rows (for a
        batch mapper) instead of lists of dicts.
    :param columns: read only these columns (None: all).
    """

    def __init__(self, bucket: str, piece: Mapping[str, Any], on_bytes: Callable[[int], None] | None = None,
                 batches: bool = False, columns: Sequence[str] | None = None):
        self.bucket, self.key = bucket, piece["key"]
        self.etag, self.size = piece.get("etag"), int(piece["size"])
        groups = piece.get("row_groups")
        self.row_groups = (int(groups[0]), int(groups[1])) if groups else None
        self.on_bytes, self.batches = on_bytes, batches
        self.columns = list(columns) if columns else None
        self.uri = str(S3Uri(bucket, self.key))
        self._at: tuple[int, int] = (0, 0)  # the current block's row group and first row

    def blocks(self) -> Iterator[Any]:
        pa, pq = pyarrow_modules("input_format='parquet'")
        f = S3RangeFile(self.bucket, self.key, self.etag, self.size, self.on_bytes)
        f.preload([(max(0, self.size - 64 * 1024), self.size)])
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException):
                raise  # not pyarrow's: an S3 error (the object changed) says what it is
            raise ParquetFileError(f"{self.uri} is not a readable Parquet file: {exc}") from None
        meta = pf.metadata
        names = pf.schema_arrow.names
        if self.columns:
            missing = [c for c in self.columns if c not in names]
            if missing:
                raise ParquetFileError(f"{self.uri} has no column(s) {missing} (asked by columns=); "
                                       f"its columns are {names}")
        first, end = self.row_groups or (0, meta.num_row_groups)
        rows = sum(meta.row_group(g).num_rows for g in range(first))
        size = BATCH_ROWS if self.batches else BLOCK_ROWS
        for g in range(first, min(end, meta.num_row_groups)):
            f.preload(_chunk_ranges(meta.row_group(g), self.columns), keep=1)
            try:
                for batch in pf.iter_batches(batch_size=size, row_groups=[g], columns=self.columns,
                                             use_threads=False):
                    self._at = (g, rows)
                    rows += batch.num_rows
                    yield batch if self.batches else batch.to_pylist()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ParquetFileError(f"{self.uri} is not a readable Parquet file: row group {g}: "
                                       f"{exc}") from None

    def locate(self, index: int) -> str:
        group, first = self._at
        return f"row {first + index} (row group {group}) of {self.uri}"


def _chunk_ranges(group: Any, columns: list[str] | None) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` of a row group's column chunks (of ``columns`` only, if given)."""
    out = []
    for j in range(group.num_columns):
        chunk = group.column(j)
        if columns is not None and chunk.path_in_schema.split(".")[0] not in columns:
            continue
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and chunk.dictionary_page_offset:
            start = min(start, chunk.dictionary_page_offset)
        out.append((start, start + chunk.total_compressed_size))
    return out


def one_row_batches(batch: pyarrow.RecordBatch) -> list[pyarrow.RecordBatch]:
    """A RecordBatch as one-row RecordBatches (to find the row a batch mapper fails on)."""
    return [batch.slice(i, 1) for i in range(batch.num_rows)]


def row_preview(row: Any) -> Any:
    """A one-row RecordBatch as its dict (for error messages); anything else as it is."""
    to_pylist = getattr(row, "to_pylist", None)
    return to_pylist()[0] if to_pylist is not None and getattr(row, "num_rows", 0) == 1 else row


# ---------------------------------------------------------------------------------------------
# Writing


class ParquetPartWriter:
    """Accumulate one part as Arrow record batches; ``getvalue()`` returns the Parquet file's bytes.

    The same interface as :class:`~lambda_handlers.io.writers.PartWriter` (``write``,
    ``write_batch``, ``write_many``, ``records``); records are kept in the order written.
    """

    fmt = FORMAT
    can_drain = False
    BATCH = 4096

    def __init__(self) -> None:
        self.pa, self.pq = pyarrow_modules("output_format='parquet'")
        self.records = 0
        self._rows: bool | None = None  # dict rows (True) or pairs (False), from the first record
        self._pending: list[Any] = []
        self._batches: list[Any] = []

    def write(self, key: Any, value: Any) -> None:
        self.write_batch([(key, value)])

    def write_many(self, pairs: Any) -> None:
        for k, v in pairs:
            self.write(k, v)

    def write_batch(self, records: list[Any]) -> None:
        """Write pairs, or (from a reducer yielding rows) dicts."""
        self._pending.extend(records)
        if len(self._pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        recs, self._pending = self._pending, []
        if not recs:
            return
        rows = isinstance(recs[0], dict)
        if self._rows is None:
            self._rows = rows
        if any(isinstance(r, dict) != self._rows for r in recs):
            raise ParquetOutputError(
                "a Parquet part holds (key, value) pairs or dict rows, not both: the reducer "
                f"yielded {'a pair' if self._rows else 'a dict'} after {'dicts' if self._rows else 'pairs'}")
        try:
            if rows:
                names = list(dict.fromkeys(name for r in recs for name in r))
                bad = next((n for n in names if not isinstance(n, str)), None)
                if bad is not None:
                    raise ParquetOutputError(f"a dict row's field names must be str, got {bad!r}")
                arrays = [self.pa.array([r.get(n) for r in recs]) for n in names]
            else:
                names = ["key", "value"]
                arrays = [self.pa.array([k for k, _ in recs]), self.pa.array([v for _, v in recs])]
        except (self.pa.ArrowInvalid, self.pa.ArrowTypeError) as exc:
            raise ParquetOutputError(f"records that cannot be a Parquet column: {exc}; yield one type "
                                     "per column (or output_format='jsonl')") from None
        self._batches.append(self.pa.RecordBatch.from_arrays(arrays, names=names))
        self.records += len(recs)

    def getvalue(self) -> bytes:
        self._flush()
        pa = self.pa
        if self._batches:
            try:
                schema = pa.unify_schemas([b.schema for b in self._batches], promote_options="permissive")
                table = pa.Table.from_batches([_conformed(pa, b, schema) for b in self._batches], schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ParquetOutputError(f"the records' types differ between batches of the part: {exc}; "
                                         "yield one type per column") from None
        else:
            table = pa.table({"key": pa.array([], pa.null()), "value": pa.array([], pa.null())})
        buf = io.BytesIO()
        self.pq.write_table(table, buf)
        return buf.getvalue()


def _conformed(pa: Any, batch: Any, schema: Any) -> Any:
    """``batch`` with the columns of ``schema``, in its order (missing ones null), cast to its types."""
    arrays = [batch.column(f.name).cast(f.type) if f.name in batch.schema.names
              else pa.nulls(batch.num_rows, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class ParquetOutputError(ValueError):
    """Records a Parquet part cannot hold as they are."""
