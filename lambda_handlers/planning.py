"""Planning a job: list its inputs (always paginated), split them, choose reducers -> ``plan.json``.

Shared by the control plane (``airflow_provider_smr.engine.runner``) and the serverless driver
(``lambda_handlers.driver`` plans inside Lambda), so both make the same plan.
Standard library + boto3/botocore (imported lazily) only.

Inputs: an S3 prefix (``s3://b/logs/``), an exact key (``s3://b/a.csv``), a glob
(``s3://b/logs/2024-*/*.gz``), a DynamoDB table (``dynamodb://T``), a list of those, or a dict of
named inputs (``{"users": ..., ...}``). Listing skips folder markers and files whose name starts with
``_`` or ``.`` (``_SUCCESS``), so the output of one job can be the input of the next.

The plan: byte-range splits pinned to ETags, small objects packed several to a split
(:func:`make_splits`), scan segments of tables, reducers per step, settings; the shape is the
engine contract's ``plan.json``. ``build_plan`` takes any job object with ``name``, ``steps``
(``reducer``, ``num_reducers``), ``num_reducers``, ``output_format`` and ``input_format_for(name)``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import functools
import gc
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

from lambda_handlers import costmodel, protocol
from lambda_handlers.aws_errors import error_code, is_not_found
from lambda_handlers.io import dynamodb, listing, parquet
from lambda_handlers.options import JobOptions, PlanError, TaskLimits
from lambda_handlers.plan import (
    OUTPUT_EXTENSIONS,
    InputPlan,
    OutputPlan,
    Piece,
    Plan,
    Split,
    StepPlan,
    TableOutput,
    piece_of,
)
from lambda_handlers.prices import DEFAULT_PRICES, Prices
from lambda_handlers.s3uri import InputError, S3Uri

DEFAULT_INPUT = "default"
_GLOB_CHARS = "*?["


class InputNotFoundError(InputError):
    """An input (or its bucket) does not exist or matched no objects."""


class PlannedStep(Protocol):
    """What planning reads of one step (``airflow_provider_smr.job.Step`` or a ``StepShape``)."""

    @property
    def reducer(self) -> object: ...  # a function, or a JobShape step's bool; None/False: map-only

    @property
    def num_reducers(self) -> int | None: ...


class PlannedJob(Protocol):
    """What planning reads of a job: a ``MapReduceJob`` or the driver's :class:`JobShape`."""

    @property
    def name(self) -> str: ...

    @property
    def steps(self) -> Sequence[PlannedStep]: ...

    @property
    def num_reducers(self) -> int | None: ...

    @property
    def output_format(self) -> str: ...

    def input_format_for(self, name: str) -> str: ...


class S3Object(NamedTuple):
    """One listed input object (a named tuple: planning makes one per object, 100,000 of them in
    well under a second)."""

    input: str  # input name ("default" when unnamed)
    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return str(S3Uri(self.bucket, self.key))


def spec_uris(*specs: Any) -> list[str]:
    """Every URI string in input/output specs (a URI, a list of URIs, ``{name: URI or list}``), in
    order; nothing is checked (see :func:`normalize_inputs`)."""
    found: list[str] = []
    for spec in specs:
        if isinstance(spec, str):
            found.append(spec)
        elif isinstance(spec, dict):
            found.extend(spec_uris(*spec.values()))
        elif isinstance(spec, (list, tuple)):
            found.extend(spec_uris(*spec))
    return found


def s3_buckets(*specs: Any) -> list[str]:
    """The buckets the ``s3://`` URIs of input/output specs name, each once, in order (what a deploy
    grants)."""
    locations = (S3Uri.parse_or_none(uri) for uri in spec_uris(*specs))
    return list(dict.fromkeys(loc.bucket for loc in locations if loc is not None))


def s3_locations(*specs: Any) -> list[str]:
    """The ``s3://`` URIs of input/output specs, each once, in order: the prefixes a deploy grants
    (exactly those, see :mod:`lambda_handlers.grants`; never their whole buckets)."""
    return list(dict.fromkeys(uri for uri in spec_uris(*specs) if S3Uri.parse_or_none(uri) is not None))


def dynamodb_tables(*specs: Any) -> list[str]:
    """The tables the ``dynamodb://`` URIs of input/output specs name, each once, in order."""
    return list(dict.fromkeys(dynamodb.parse_uri(uri)["table"] for uri in spec_uris(*specs)
                              if dynamodb.is_dynamodb_uri(uri)))


def normalize_inputs(spec: Any) -> dict[str, list[str]]:
    """``"s3://..."`` / ``[...]`` / ``{name: uri-or-list}`` -> ``{name: [uri, ...]}``."""
    def as_list(value: Any, name: str) -> list[str]:
        uris = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
        if not uris or not all(isinstance(u, str) and u for u in uris):
            raise InputError(f"input {name!r} must be an S3 URI or a non-empty list of URIs, got {value!r}")
        for u in uris:
            if dynamodb.is_dynamodb_uri(u):
                dynamodb.parse_uri(u)
            else:
                S3Uri.parse(u)
        return uris

    if isinstance(spec, dict):
        if not spec:
            raise InputError("the dict of named inputs is empty")
        return {str(name): as_list(value, str(name)) for name, value in spec.items()}
    return {DEFAULT_INPUT: as_list(spec, DEFAULT_INPUT)}


def output_location(uri: str) -> S3Uri:
    """``s3://b/out`` -> ``S3Uri("b", "out/")``: an output is always a folder."""
    location = S3Uri.parse(uri, what="output")
    if is_glob(location.key):
        raise InputError(f"output {uri!r} must be a plain S3 prefix, not a pattern")
    return location.folder()


def is_glob(key: str) -> bool:
    return any(c in key for c in _GLOB_CHARS)


def glob_matches(pattern: str, key: str) -> bool:
    """Match a key against a glob, one path segment at a time (``*`` never crosses ``/``; ``**`` does)."""
    return _match_parts(pattern.split("/"), key.split("/"))


def _match_parts(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    if pat[0] == "**":
        return any(_match_parts(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and _match_parts(pat[1:], parts[1:])


def _literal_prefix(pattern: str) -> str:
    cut = min((pattern.index(c) for c in _GLOB_CHARS if c in pattern), default=len(pattern))
    return pattern[:cut]


def _hidden(key: str, base: str) -> bool:
    """Folder markers and ``_``/``.`` files (``_SUCCESS``) below the listed prefix are not input."""
    if key.endswith("/"):
        return True
    below = key[len(base):]
    return below.startswith(("_", ".")) or "/_" in below or "/." in below


def _visible(objects: list[listing.Listed], base: str) -> list[listing.Listed]:
    """The objects of one page that are input (not :func:`_hidden` below ``base``), checked per key
    only when the page's keys hold a folder marker or a ``_``/``.`` name at all."""
    keys = "\n" + "\n".join([o.key for o in objects]) + "\n"
    if "/\n" in keys or "/_" in keys or "/." in keys or f"\n{base}_" in keys or f"\n{base}." in keys:
        return [o for o in objects if not _hidden(o.key, base)]
    return objects


def list_pages(s3: Any, bucket: str, prefix: str) -> Iterator[list[listing.Listed]]:
    """Every page of objects under ``prefix`` in listing order (paginated,
    :mod:`lambda_handlers.io.listing`); raises :class:`InputNotFoundError` for a missing bucket."""
    from botocore.exceptions import ClientError

    try:
        for page in listing.list_pages(s3, bucket, prefix):
            yield page.objects
    except ClientError as exc:
        code = error_code(exc)
        if is_not_found(exc):
            raise InputNotFoundError(f"bucket {bucket!r} does not exist") from None
        if code in ("AccessDenied", "403"):
            raise InputError(f"access denied listing s3://{bucket}/{prefix}: check the connection's "
                             "credentials and the stack's declared input buckets") from None
        raise


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[listing.Listed]:
    """Every object under ``prefix`` in listing order (see :func:`list_pages`)."""
    for page in list_pages(s3, bucket, prefix):
        yield from page


def list_input(s3: Any, name: str, uri: str) -> list[S3Object]:
    """The objects one input URI names, sorted by key; :class:`InputNotFoundError` when none."""
    location = S3Uri.parse(uri)
    bucket, key = location.bucket, location.key
    found: list[S3Object] = []

    def add(objects: Iterable[listing.Listed]) -> None:
        # page by page: made while the next page is on its way
        found.extend([S3Object(name, bucket, k, size, etag) for k, size, etag in objects])

    if is_glob(key):
        base = _literal_prefix(key)
        base = base[: base.rfind("/") + 1]
        for page in list_pages(s3, bucket, base):
            add(o for o in _visible(page, base) if glob_matches(key, o.key))
    elif key == "" or key.endswith("/"):
        for page in list_pages(s3, bucket, key):
            add(_visible(page, key))
    else:
        everything = list(list_objects(s3, bucket, key))
        folder = key + "/"
        add([o for o in everything if o.key == key] or [
            o for o in everything if o.key.startswith(folder) and not _hidden(o.key, folder)])
    if not found:
        raise InputNotFoundError(f"input {uri!r} matched no objects")
    keys = [o.key for o in found]
    if keys != sorted(keys):  # S3 lists in key order; a directory bucket may not
        found.sort(key=lambda o: o.key)
    return found


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a job's inputs are listed and planned.

    The collector tracks every listed object (named tuples: it untracks plain tuples only) for as
    long as it lives, so tens of thousands of them, none in a cycle, push it into a full
    collection of the whole process (every object the process holds) in the middle of planning.
    Paused, they are freed by reference counting once the plan is built and never reach the
    oldest generation. (A collector some other code disabled stays disabled.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def resolve_inputs(s3: Any, inputs: dict[str, list[str]]) -> list[S3Object]:
    """List every input; an object named twice (overlapping URIs of one input) is read once."""
    result: list[S3Object] = []
    for name, uris in inputs.items():
        listings = [list_input(s3, name, uri) for uri in uris if not dynamodb.is_dynamodb_uri(uri)]
        if len(listings) == 1:
            result += listings[0]  # one listing names each object once
            continue
        seen: set[tuple[str, str]] = set()
        for listed in listings:
            for o in listed:
                if (o.bucket, o.key) not in seen:
                    seen.add((o.bucket, o.key))
                    result.append(o)
    return result


def check_output_outside_inputs(output_uri: str, inputs: dict[str, list[str]],
                                objects: Iterable[S3Object] = ()) -> None:
    """Refuse an output that lies inside an input (a rerun would read its own output) or vice versa."""
    if dynamodb.is_dynamodb_uri(output_uri):
        table = dynamodb.parse_uri(output_uri)["table"]
        if any(dynamodb.is_dynamodb_uri(u) and dynamodb.parse_uri(u)["table"] == table
               for uris in inputs.values() for u in uris):
            raise InputError(f"output {output_uri!r} is also an input: write to another table")
        return
    out = output_location(output_uri)
    for uris in inputs.values():
        for uri in uris:
            if dynamodb.is_dynamodb_uri(uri):
                continue
            location = S3Uri.parse(uri)
            if location.bucket != out.bucket:
                continue
            key = location.key
            if is_glob(key):
                inside = any(glob_matches(key, out.join(protocol.part_name(0, ext)).key)
                             for ext in OUTPUT_EXTENSIONS.values())
            else:
                inside = out.key.startswith(location.folder().key) or out.key == key + "/"
            if inside:
                raise InputError(f"output {output_uri!r} lies inside input {uri!r}: a later run would "
                                 "read its own output; choose an output outside the input")
    for o in objects:
        if o.bucket == out.bucket and o.key.startswith(out.key):
            raise InputError(f"input object {o.uri!r} lies inside output {output_uri!r}: the commit "
                             "would replace the output while the job reads it")


def describe_tables(dynamodb_client: Any, inputs: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The DynamoDB inputs: ``{"input", "table", "segments", "attributes", "consistent",
    "item_count", "size_bytes"}`` each (DescribeTable's approximate ItemCount/TableSizeBytes)."""
    tables: list[dict[str, Any]] = []
    for name, uris in inputs.items():
        for uri in uris:
            if not dynamodb.is_dynamodb_uri(uri):
                continue
            loc = dynamodb.parse_uri(uri)
            try:
                desc = dynamodb.with_backoff(
                    functools.partial(dynamodb_client.describe_table, TableName=loc["table"]))["Table"]
            except Exception as exc:
                if is_not_found(exc):
                    raise InputNotFoundError(f"input {uri!r}: DynamoDB table {loc['table']!r} does "
                                             "not exist") from None
                raise
            tables.append({"input": name, "uri": uri, "table": loc["table"],
                           "segments": loc["segments"], "attributes": loc["attributes"],
                           "consistent": loc["consistent"],
                           "item_count": int(desc.get("ItemCount") or 0),
                           "size_bytes": int(desc.get("TableSizeBytes") or 0)})
    return tables

MiB = 1024**2
# Sizing when the job gives no split_size / num_reducers (see choose_split_size, choose_num_reducers).
DEFAULT_CONCURRENCY = 1000  # Lambda's default account concurrency, when the caller does not say
MIN_SPLIT_SIZE = 8 * MiB  # below this the per-task overhead dominates (bench/README.md, tuning)
MAX_SPLIT_SIZE = 1024 * MiB
SAFE_MAP_BYTES_PER_VCPU_S = 4e6  # a quarter of the measured map rate: a split finishes in time
FULL_VCPU_MB = 1769  # Lambda: one full vCPU at 1,769 MB, CPU proportional to memory below
TAIL_FRACTION = 0.25  # a last range under this fraction of a split joins the previous split
FEW_WORKERS_TASKS = 64  # with few workers, up to 4 tasks each (at least this many) to balance load
BALANCE_SPLIT_SIZE = 32 * MiB  # with few workers, splits below this come 2 a worker, not 4
REDUCER_CORE_BYTES = 32 * MiB  # one core's worth of shuffle: more than this -> R >= 2
MIN_SLICE_BYTES = 1 * MiB  # a reducer's slice of one map output: R <= input / (M * this)
SPILL_FACTOR = 4  # a reducer's partition may be this many times its memory budget (it spills)
MAX_AUTO_REDUCERS = 1000


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2"}  # read whole within one split, streamed


_COMPRESSED_SUFFIXES = tuple(COMPRESSIONS)


def compression_of(key: str) -> str | None:
    if not key.endswith(_COMPRESSED_SUFFIXES):
        return None
    return next(c for suffix, c in COMPRESSIONS.items() if key.endswith(suffix))


def split_object(obj: S3Object, split_size: int, fmt: str, *, merge_tail: bool = False) -> list[Split]:
    """Byte ranges ``[start, end)`` of ``split_size`` covering one object; a ``.gz`` or ``.bz2`` is one split.

    With ``merge_tail`` (an automatic split size), a last range shorter than ``TAIL_FRACTION`` of
    ``split_size`` joins the previous one (a split is then under 1.25 x ``split_size``), so a 64 MiB
    object plus a few bytes is not one more task; a split size the user gives is exact. The handler
    reads the records whose first byte lies in its range (the contract's line rule), so ranges only
    need to tile the object exactly.
    """
    if split_size < 1:
        raise PlanError(f"split_size must be at least 1 byte, got {split_size}")
    compression = compression_of(obj.key)
    if compression or obj.size <= split_size:
        bounds = [(0, obj.size)]
    else:
        starts = list(range(0, obj.size, split_size))
        if merge_tail and len(starts) > 1 and obj.size - starts[-1] < TAIL_FRACTION * split_size:
            starts.pop()  # never a tiny tail split: the last split runs to the end
        bounds = list(zip(starts, starts[1:] + [obj.size], strict=True))
    return [{"input": obj.input, "bucket": obj.bucket, "key": obj.key, "etag": obj.etag,
             "start": start, "end": end, "size": obj.size, "format": fmt, "compression": compression}
            for start, end in bounds]


#: at most this many objects (pieces) in one packed split: each costs the task a GET, and the split
#: is the task's payload, so a task of tiny objects stays within its timeout and its slice small
MAX_PIECES = 1000
#: the same on a small pool (under :data:`SMALL_POOL_WORKERS` workers; see :func:`max_pieces`)
FEW_WORKERS_MAX_PIECES = 4000
#: below this many workers a pool is small: :func:`wanted_tasks` gives it more than 2 tasks a
#: worker, which :func:`choose_split_size` and :func:`max_pieces` bring back to 2 for small tasks
SMALL_POOL_WORKERS = FEW_WORKERS_TASKS // 2


def workers(concurrency: int | None) -> int:
    """The pool's size: ``concurrency``, or Lambda's default account concurrency when unknown."""
    return max(1, int(concurrency or DEFAULT_CONCURRENCY))


def max_pieces(num_objects: int, concurrency: int | None = None, *, total_bytes: int | None = None,
               split_size: int | None = None) -> int:
    """The most objects one packed split holds, for ``num_objects`` on ``concurrency`` workers.

    :data:`MAX_PIECES` on a large pool, where more tasks run at once. On a small pool (under
    :data:`SMALL_POOL_WORKERS` workers) the tasks of many small objects come in waves anyway, so a
    task may hold more, up to :data:`FEW_WORKERS_MAX_PIECES`, as long as the objects still make 2
    tasks a worker (whole waves, as :func:`choose_split_size` sizes bytes): each task's own cost
    (invoke, clients, its slice of the plan, its map output and the reducers' GETs of it) is paid
    less often, and its GETs (up to 32 at once, 15-30 ms each on S3: 2-4 s) stay well inside any
    timeout. E.g. on 4 workers: 20,000 objects -> 2,500 a task (8 tasks, not 20), 2,000 -> 1,000.

    Objects whose ``total_bytes`` fit one split of ``split_size`` are one task there, up to
    :data:`FEW_WORKERS_MAX_PIECES` of them, as the same bytes in one object are: a phase of one
    task coordinates inline and may run the next phase's one task in its own function
    (``runtime.coordinates_inline``), which saves more than a second map task's share of the GETs
    buys. 2,000 objects of 2 KB on 4 workers: 1 invocation instead of 5, the bench's CPU (all
    processes) 1.16 -> 0.86 s.
    """
    p = workers(concurrency)
    if p >= SMALL_POOL_WORKERS:
        return MAX_PIECES
    if (total_bytes is not None and split_size is not None and total_bytes <= split_size
            and num_objects <= FEW_WORKERS_MAX_PIECES):
        return FEW_WORKERS_MAX_PIECES
    return max(MAX_PIECES, min(FEW_WORKERS_MAX_PIECES, -(-int(num_objects) // (2 * p))))


#: formats read one whole object per record: an object is never cut into byte ranges
WHOLE_OBJECT_FORMATS = ("whole",)


RowGroupsOf = Callable[[S3Object], list[parquet.RowGroup]]
#: formats whose ranges are not split_object's byte ranges (see _ranges)
_RANGED_APART = frozenset((parquet.FORMAT, *WHOLE_OBJECT_FORMATS))


_listing_order = operator.attrgetter("input", "bucket", "key")


def format_of(obj: S3Object, formats: dict[str, str]) -> str:
    """The format ``obj`` is read in: its input's, except that an object ending in ``.parquet`` is
    Parquet when the input's format is the default ``text``."""
    fmt = formats[obj.input]
    return parquet.FORMAT if fmt == "text" and obj.key.endswith(parquet.SUFFIX) else fmt


def parquet_ranges(obj: S3Object, split_size: int, row_groups_of: RowGroupsOf | None) -> list[Split]:
    """A Parquet object as ranges of whole row groups: the file itself if it fits a split (or its
    footer is not read), else consecutive row groups up to ``split_size`` each (``row_groups``
    ``[first, end)``; ``start``/``end`` count their compressed bytes, which is what packing weighs)."""
    base: Split = {"input": obj.input, "bucket": obj.bucket, "key": obj.key, "etag": obj.etag,
                   "size": obj.size, "format": parquet.FORMAT}
    if obj.size <= split_size or row_groups_of is None:
        return [{**base, "start": 0, "end": obj.size}]
    return [{**base, "start": start, "end": end, "row_groups": [first, last]}
            for first, last, start, end in parquet.row_group_ranges(row_groups_of(obj), split_size)]


def _ranges(obj: S3Object, split_size: int, fmt: str, merge_tail: bool,
            row_groups_of: RowGroupsOf | None = None) -> list[Split]:
    if fmt == parquet.FORMAT:
        return parquet_ranges(obj, split_size, row_groups_of)
    if fmt in WHOLE_OBJECT_FORMATS:
        return [{"input": obj.input, "bucket": obj.bucket, "key": obj.key, "etag": obj.etag,
                 "start": 0, "end": obj.size, "size": obj.size, "format": fmt,
                 "compression": compression_of(obj.key)}]
    return split_object(obj, split_size, fmt, merge_tail=merge_tail)


def make_splits(objects: list[S3Object], split_size: int, formats: dict[str, str], *,
                merge_tail: bool = False, max_pieces: int = MAX_PIECES,
                row_groups_of: RowGroupsOf | None = None) -> list[Split]:
    """Splits of all objects in a stable order (input name, then key), numbered as map tasks.

    Packing (Hadoop's ``CombineFileInputFormat``): each object is cut into byte ranges as by
    :func:`split_object` (a ``.gz`` or a whole-object format: one range), and consecutive ranges
    are packed into one split while their bytes stay within ``split_size`` (and at most
    ``max_pieces`` of them), so the task count follows the bytes, not the object count. A range of a
    full ``split_size`` fills a split alone, so a large object splits exactly as before; its tail
    range packs with the objects after it. A split never spans two inputs, two buckets or two
    formats. A split of one range is that range's own fields; a packed one lists them in ``pieces``
    (:class:`~lambda_handlers.plan.Piece`). A Parquet object is cut into ranges of whole row groups
    (:func:`parquet_ranges`; ``row_groups_of`` reads the footer of one larger than a split).

    Empty objects hold no records and get no split (but for a whole-object format: one record),
    unless every object is empty: then one empty split keeps the job well-formed (it commits an
    empty output).
    """
    ordered = sorted(objects, key=_listing_order)
    splits: list[Split] = []
    packed: list[Piece] = []  # the pieces of the split being packed
    alone: Split | None = None  # packed[0] as a split of its own (None: a small plain object's)
    packed_bytes = 0
    group = ("", "", "")  # the (input, bucket, format) of the packed pieces

    def flush() -> None:
        nonlocal packed, packed_bytes, alone
        if len(packed) == 1:
            input_name, bucket, fmt = group
            splits.append(alone if alone is not None else cast(Split, {
                "input": input_name, "bucket": bucket, **packed[0], "format": fmt, "compression": None}))
        elif packed:
            splits.append({"input": group[0], "bucket": group[1], "format": group[2], "pieces": packed})
        packed, packed_bytes, alone = [], 0, None

    for obj in ordered:
        input_name, bucket, key, size, etag = obj
        fmt = formats[input_name]
        if size <= 0 and fmt not in WHOLE_OBJECT_FORMATS:
            continue  # no records (read whole, an empty object is one record: an empty body)
        if fmt == "text" and key.endswith(parquet.SUFFIX):
            fmt = parquet.FORMAT  # (format_of)
        if fmt != group[2] or bucket != group[1] or input_name != group[0]:
            flush()
            group = (input_name, bucket, fmt)
        if size <= split_size and fmt not in _RANGED_APART and not key.endswith(_COMPRESSED_SUFFIXES):
            # the common case, a small plain object: one piece, split_object's one range
            if packed and packed_bytes + size > split_size:
                flush()
            packed.append({"key": key, "etag": etag, "start": 0, "end": size, "size": size})
            packed_bytes += size
        else:
            for rng in _ranges(obj, split_size, fmt, merge_tail, row_groups_of):
                n = rng["end"] - rng["start"]
                if packed and packed_bytes + n > split_size:
                    flush()
                if not packed:
                    alone = rng
                packed.append(piece_of(rng))
                packed_bytes += n
                if len(packed) >= max_pieces:
                    flush()
            continue
        if len(packed) >= max_pieces:
            flush()
    flush()
    if not splits and ordered:
        first = ordered[0]
        splits = [{"input": first.input, "bucket": first.bucket, "key": first.key, "etag": first.etag,
                   "start": 0, "end": 0, "size": 0, "format": formats[first.input],
                   "compression": compression_of(first.key)}]
    if len(splits) > protocol.MAX_TASKS:
        raise PlanError(f"{len(splits)} splits exceed {protocol.MAX_TASKS} map tasks: raise split_size")
    return [{"task": task, **split} for task, split in enumerate(splits)]


def table_splits(tables: list[dict[str, Any]], split_size: int) -> list[Split]:
    """Parallel-scan segment splits of DynamoDB inputs (in input/table order), without ``task``.

    The segment count is the URI's ``segments=N`` or one per ``split_size`` of the table's size."""
    out: list[Split] = []
    for t in sorted(tables, key=lambda t: (t["input"], t["table"])):
        n = t.get("segments") or dynamodb.choose_segments(t.get("item_count", 0),
                                                          t.get("size_bytes", 0), split_size)
        out.extend(dynamodb.table_splits(t["input"], t, n))
    return out


def output_spec(output_uri: str, overwrite: bool, inputs: dict[str, list[str]], work_bucket: str,
                job_id: str, fmt: str) -> OutputPlan:
    """The plan's ``output``: an S3 folder, or a DynamoDB table (manifest under the job prefix)."""
    listed = tuple(u for uris in inputs.values() for u in uris)
    if dynamodb.is_dynamodb_uri(output_uri):
        loc = dynamodb.parse_uri(output_uri)
        table = TableOutput(loc["table"], loc["key_attribute"], loc["value_attribute"], loc["key_type"],
                            bool(loc["create_table"]))
        return OutputPlan(uri=output_uri, bucket=work_bucket,
                          prefix=protocol.table_manifest_key(job_id)[: -len(protocol.SUCCESS_MARKER)],
                          format=dynamodb.FORMAT, overwrite=bool(overwrite), inputs=listed, table=table)
    out = output_location(output_uri)
    return OutputPlan(uri=str(out), bucket=out.bucket, prefix=out.key, format=fmt,
                      overwrite=bool(overwrite), inputs=listed)


def wanted_tasks(concurrency: int | None = None) -> int:
    """Tasks a phase should have for ``concurrency`` workers: one wave on a large pool, up to 4
    tasks a worker (at least :data:`FEW_WORKERS_TASKS`) on a small one, so a slow worker or an
    uneven split does not leave the others idle at the end."""
    p = workers(concurrency)
    return max(p, min(4 * p, FEW_WORKERS_TASKS))


def max_split_size(task_timeout_s: int = 300, memory_mb: int = 1024) -> int:
    """The largest split a map task finishes well inside its timeout (at a quarter of the measured
    map rate, CPU proportional to memory below 1,769 MB), at most :data:`MAX_SPLIT_SIZE`."""
    vcpu = min(1.0, memory_mb / FULL_VCPU_MB)
    return int(max(MIN_SPLIT_SIZE, min(MAX_SPLIT_SIZE, task_timeout_s * SAFE_MAP_BYTES_PER_VCPU_S * vcpu)))


def choose_split_size(total_bytes: int, concurrency: int | None = None, *, task_timeout_s: int = 300,
                      memory_mb: int = 1024) -> int:
    """The split size when the job gives none: every worker gets work, no task is mostly overhead.

    ``total_bytes / wanted_tasks(concurrency)`` (one split per available worker on a large pool,
    up to 4 per worker on a small one), but at least :data:`MIN_SPLIT_SIZE` (8 MiB: the local
    stack's per-task overhead is worth ~2-3 MB of map work, so smaller splits buy little
    parallelism for their overhead and requests) and at most :func:`max_split_size`. E.g. with
    1,000 workers: 8 MiB -> 1 split, 64 MiB -> 8, 1 GiB -> 128, 126.8 GB -> 1,000 of 127 MB; with
    2 workers (``concurrency=2``): 64 MiB -> 4 splits of 16 MiB, 1 GiB -> 8 of 128 MiB.

    On a small pool (under 32 workers) the 4 tasks a worker are for balancing long tasks: a split
    that would be smaller than :data:`BALANCE_SPLIT_SIZE` (32 MiB) grows towards 2 tasks a worker
    instead: there every task's own cost (invoke, clients, plan, requests, its coordinator call;
    on the 2-core bench box about as much CPU as the map work of a 12.5 MiB AMPLab split) is a
    large share of its work, and 2 tasks a worker still keep the workers busy to the end. E.g.
    4 workers: 200 MiB -> 8 splits of 25 MiB (not 16 of 12.5 MiB), 1 GiB -> 16 of 64 MiB (as before).
    """
    if total_bytes <= 0:
        return MIN_SPLIT_SIZE
    total = int(total_bytes)
    size = -(-total // wanted_tasks(concurrency))
    two_a_worker = -(-total // (2 * workers(concurrency)))
    size = max(size, min(two_a_worker, BALANCE_SPLIT_SIZE))  # only ever raises it on a small pool
    return max(MIN_SPLIT_SIZE, min(size, max_split_size(task_timeout_s, memory_mb)))


def choose_num_reducers(total_bytes: int, num_map_tasks: int, *, memory_mb: int = 1024,
                        concurrency: int | None = None) -> int:
    """Reducers for a step when the job does not say, from the input size (the shuffle's upper
    bound: a combiner only shrinks it) and the function's memory.

    - parallelism: one reducer per :data:`REDUCER_CORE_BYTES` (32 MiB, one core's worth), at most
      :func:`wanted_tasks` of the concurrency, so R >= 2 as soon as there is more than one core's
      worth of data;
    - request cost: each reducer GETs one slice of every map output, so R <= input /
      (M x :data:`MIN_SLICE_BYTES`) (R x M GETs stay at one per MiB of input);
    - memory: at least enough reducers that a partition is at most :data:`SPILL_FACTOR` x the
      memory budget (memory_mb / 4), beyond which spilling dominates;
    - 1 <= R <= :data:`MAX_AUTO_REDUCERS`;
    - on a small pool (fewer than :data:`FEW_WORKERS_TASKS` workers) more reducers than workers
      come in whole waves (rounded down to a multiple of the workers, the memory bound still
      holding): a last wave of a few reducers adds their per-task cost and no parallelism.

    E.g. (1,024 MB, 1,000 workers): 8 MiB -> 1, 64 MiB (8 maps) -> 2, 1 GiB (128 maps) -> 8,
    126.8 GB (1,000 maps) -> 120; 4 workers: 200 MiB -> 4 (not 6), 1 GiB -> 16.
    """
    if total_bytes <= 0:
        return 1
    cores = total_bytes // REDUCER_CORE_BYTES
    parallel = min(max(cores, 2 if total_bytes > REDUCER_CORE_BYTES else 1), wanted_tasks(concurrency))
    slices = max(1, total_bytes // (max(1, num_map_tasks) * MIN_SLICE_BYTES))
    budget = max(1, memory_mb * MiB // 4)
    fits = math.ceil(total_bytes / (SPILL_FACTOR * budget))
    r = max(1, min(max(min(parallel, slices), fits), MAX_AUTO_REDUCERS))
    p = workers(concurrency)
    if p < FEW_WORKERS_TASKS and r > p:
        r = max(r - r % p, min(fits, MAX_AUTO_REDUCERS))
    return r


def plan_steps(job: PlannedJob, num_map_tasks: int, total_bytes: int,
               num_reducers: int | None = None, *, memory_mb: int = 1024,
               concurrency: int | None = None) -> tuple[StepPlan, ...]:
    """Each step's map tasks and reducers: a step's own reducer count wins, then the
    ``num_reducers`` argument, then the job's default, then the size-based choice."""
    default = num_reducers or job.num_reducers or choose_num_reducers(
        total_bytes, num_map_tasks, memory_mb=memory_mb, concurrency=concurrency)
    steps: list[StepPlan] = []
    maps = num_map_tasks
    for index, step in enumerate(job.steps):
        map_only = step.reducer is None or step.reducer is False  # a JobShape step says False
        reducers = 0 if map_only else (step.num_reducers or default)
        steps.append(StepPlan(index, maps, reducers))
        maps = reducers
    return tuple(steps)


def _renumbered(splits: list[Split]) -> list[Split]:
    """The splits numbered as map tasks in list order (``task`` last, as a new key)."""
    out: list[Split] = []
    for i, split in enumerate(splits):
        renumbered = split.copy()
        renumbered.pop("task", None)
        renumbered["task"] = i
        out.append(renumbered)
    return out


DEFAULT_LIMITS = TaskLimits()


def check_whole_objects(objects: Iterable[S3Object], formats: dict[str, str], limits: TaskLimits) -> None:
    """Refuse, before anything runs, an object read whole (``input_format="whole"``) that is larger
    than a task may hold in memory (the functions' memory budget)."""
    if not any(f in WHOLE_OBJECT_FORMATS for f in formats.values()):
        return
    limit = limits.memory_budget_bytes
    for o in objects:
        if formats.get(o.input) in WHOLE_OBJECT_FORMATS and o.size > limit:
            raise PlanError(
                f"input object {o.uri!r} ({o.size:,} bytes) is larger than a task may hold in memory "
                f"for input_format={formats[o.input]!r} ({limit:,} bytes, a quarter of the functions' "
                f"{limits.memory_mb} MB): raise the stack's memory or leave this object out")


def build_plan(*, job_id: str, work_bucket: str, job: PlannedJob, inputs: dict[str, list[str]],
               objects: list[S3Object], output_uri: str, options: JobOptions,
               limits: TaskLimits = DEFAULT_LIMITS, created: dt.datetime | None = None,
               tables: Sequence[dict[str, Any]] = (), concurrency: int | None = None,
               s3: Any = None) -> Plan:
    """The job's :class:`~lambda_handlers.plan.Plan` (stored as ``plan.json``) (``tables``: DynamoDB inputs as
    :func:`describe_tables` returns them).

    Without ``options.split_size`` the split size comes from the input size and ``concurrency``
    (the functions that can run at once; None: Lambda's default 1,000), see
    :func:`choose_split_size`; without ``num_reducers`` (option, job or step) the reducer count comes
    from the input size, the map count and the functions' memory, see :func:`choose_num_reducers`.
    The job's objective (``optimize``, ``max_cost_usd``, ``deadline_s``) may replace either, see
    :func:`choose_sizing`; the plan carries the cost model's estimate (``Plan.estimate``), and one
    above ``max_cost_usd`` is refused here, before anything is written (:func:`plan_estimate`).
    The options and the stack's ``limits`` travel in the plan (``Plan.options``, ``Plan.limits``).
    ``s3`` (a client) reads the footers of Parquet files larger than a split, to split them by row
    groups; without it such a file is one split.
    """
    protocol.validate_job_id(job_id)
    table_inputs = {t["input"] for t in tables}
    formats = {name: dynamodb.FORMAT if name in table_inputs else job.input_format_for(name)
               for name in inputs}
    mixed = sorted({o.input for o in objects} & table_inputs)
    if mixed:
        raise PlanError(f"input(s) {mixed} mix S3 and DynamoDB URIs: give each its own input name")
    total_bytes = sum(o.size for o in objects) + sum(t.get("size_bytes", 0) for t in tables)
    auto = not options.split_size
    first = job.steps[0] if job.steps else None
    map_only = first is not None and (first.reducer is None or first.reducer is False)
    own = first.num_reducers if first is not None else None
    fixed_reducers = 0 if map_only else own or options.num_reducers or job.num_reducers
    sizing = planned_sizing(total_bytes, options, limits, concurrency, fixed_reducers)
    split_size = options.split_size or sizing.split_size or choose_split_size(
        total_bytes, concurrency, task_timeout_s=limits.task_timeout_s, memory_mb=limits.memory_mb)
    check_whole_objects(objects, formats, limits)
    splits = make_splits(objects, split_size, formats, merge_tail=auto,
                         max_pieces=max_pieces(len(objects), concurrency, total_bytes=total_bytes,
                                               split_size=split_size),
                         row_groups_of=None if s3 is None else functools.partial(parquet.s3_row_groups, s3))
    if tables:
        splits = _renumbered(splits + table_splits(list(tables), split_size))
        if len(splits) > protocol.MAX_TASKS:
            raise PlanError(f"{len(splits)} splits exceed {protocol.MAX_TASKS} map tasks")
    created = created or dt.datetime.now(dt.timezone.utc)
    steps = plan_steps(job, len(splits), total_bytes, options.num_reducers or sizing.reducers,
                       memory_mb=limits.reducer_memory_mb, concurrency=concurrency)
    estimate = plan_estimate(total_bytes, len(splits), steps[0].num_reducers, options, limits, concurrency)
    return Plan(
        job_id=job_id,
        work_bucket=work_bucket,
        created=created.isoformat(),
        job_name=job.name,
        options=options,
        limits=limits,
        inputs={name: InputPlan(tuple(uris), formats[name]) for name, uris in inputs.items()},
        splits=tuple(splits),
        steps=steps,
        output=output_spec(output_uri, options.overwrite, inputs, work_bucket, job_id,
                           job.output_format),
        input_bytes=total_bytes,
        estimate=estimate,
    )


# -- sizing for an objective (optimize, max_cost_usd, deadline_s) ------------------------------------

#: reducer counts the planner's search tries (with the rules' own choice and the job's fixed one)
REDUCER_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1000)
MAP_TASKS_STEP = 1.4  # the search's map task counts grow by this factor, from the fewest allowed


def objective_of(options: JobOptions) -> costmodel.Objective:
    """The planner's objective as the job's options declare it."""
    return costmodel.Objective(options.optimize, options.max_cost_usd, options.deadline_s)


def map_task_candidates(total_bytes: int, concurrency: int | None, *, task_timeout_s: int,
                        memory_mb: int) -> list[int]:
    """Map task counts the search tries for one memory size: from the fewest whose splits finish
    within the timeout (:func:`max_split_size`) to the most whose splits stay >= MIN_SPLIT_SIZE and
    that run in at most 3 waves (on few workers: the rules' 4 tasks a worker), growing by
    :data:`MAP_TASKS_STEP`, plus whole waves."""
    if total_bytes <= 0:
        return [1]
    p = workers(concurrency)
    lo = max(1, -(-total_bytes // max_split_size(task_timeout_s, memory_mb)))
    hi = max(lo, min(protocol.MAX_TASKS, total_bytes // MIN_SPLIT_SIZE, max(3 * p, wanted_tasks(p))))
    found = {lo, hi, *(k * p for k in (1, 2, 3) if lo <= k * p <= hi)}
    n = float(lo)
    while n < hi:
        found.add(int(n))
        n *= MAP_TASKS_STEP
    return sorted(found)


def rules_sizing(total_bytes: int, concurrency: int | None, *, task_timeout_s: int, memory_mb: int,
                 split_size: int | None = None, num_reducers: int | None = None) -> costmodel.Sizing:
    """What :func:`choose_split_size` and :func:`choose_num_reducers` give one object of
    ``total_bytes`` (the sizing rules, before any objective)."""
    size = split_size or choose_split_size(total_bytes, concurrency, task_timeout_s=task_timeout_s,
                                           memory_mb=memory_mb)
    m = max(1, -(-total_bytes // size))
    if not split_size and m > 1 and total_bytes - (m - 1) * size < TAIL_FRACTION * size:
        m -= 1  # the tail joins the last split (split_object's merge_tail)
    r = num_reducers if num_reducers is not None else choose_num_reducers(
        total_bytes, m, memory_mb=memory_mb, concurrency=concurrency)
    return costmodel.Sizing(m, r, memory_mb, workers(concurrency))


def at_scale(total_bytes: int, concurrency: int | None) -> bool:
    """Whether the sizing rules' plan is one full split per function of a large pool (at least
    :data:`FEW_WORKERS_TASKS` functions, each with at least :data:`MIN_SPLIT_SIZE`): there cold
    starts and per-task requests decide the cost, which the model prices, so the planner takes the
    model's better plan. Below that the rules hold: on few workers they cut up to 4 tasks each to
    balance stragglers, which the model does not see."""
    p = workers(concurrency)
    return p >= FEW_WORKERS_TASKS and total_bytes >= p * MIN_SPLIT_SIZE


def sizing_options(total_bytes: int, *, concurrency: int | None = None, memory_mb: int = 1024,
                   memory_options: Sequence[int] = (), task_timeout_s: int = 300,
                   split_size: int | None = None, num_reducers: int | None = None,
                   workload: costmodel.Workload | None = None, rates: costmodel.Rates = costmodel.DEFAULT_RATES,
                   prices: Prices = DEFAULT_PRICES) -> tuple[costmodel.Modelled, list[costmodel.Modelled]]:
    """The sizing rules' plan and every candidate the planner searches, modelled.

    The candidates: every map task count of :func:`map_task_candidates` (or the one ``split_size``
    gives), reducer count of :data:`REDUCER_CANDIDATES` (or ``num_reducers``) and memory size of
    ``memory_options`` (default: the functions' ``memory_mb``, which a deployment fixes).
    ``workload`` defaults to the input size alone (:meth:`costmodel.Workload.of_input`, an upper
    bound)."""
    workload = workload or costmodel.Workload.of_input(total_bytes)
    p = workers(concurrency)
    rules = rules_sizing(total_bytes, concurrency, task_timeout_s=task_timeout_s, memory_mb=memory_mb,
                         split_size=split_size, num_reducers=num_reducers)
    options: list[costmodel.Modelled] = []
    for mem in memory_options or (memory_mb,):
        if split_size:
            maps = [max(1, -(-total_bytes // split_size))]
        else:
            maps = map_task_candidates(total_bytes, concurrency, task_timeout_s=task_timeout_s, memory_mb=mem)
        reducers = ([num_reducers] if num_reducers is not None else
                    sorted({r for r in REDUCER_CANDIDATES if r <= max(wanted_tasks(p), rules.reducers)}
                           | {rules.reducers}))
        options += costmodel.search(workload, rates, map_tasks=maps, reducers=reducers, memory_mb=[mem],
                                    concurrency=p, prices=prices)
    return costmodel.estimate(workload, rates, rules, prices), options


def choose_sizing(total_bytes: int, objective: costmodel.Objective = costmodel.DEFAULT_OBJECTIVE, *,
                  concurrency: int | None = None, memory_mb: int = 1024,
                  memory_options: Sequence[int] = (), task_timeout_s: int = 300,
                  split_size: int | None = None, num_reducers: int | None = None,
                  workload: costmodel.Workload | None = None, rates: costmodel.Rates = costmodel.DEFAULT_RATES,
                  prices: Prices = DEFAULT_PRICES) -> costmodel.Modelled:
    """The sizing the objective picks, modelled (:mod:`lambda_handlers.costmodel`).

    The default is the sizing rules' plan (:func:`rules_sizing`); :func:`at_scale`, when the job
    fixes neither size, the fastest candidate (:func:`sizing_options`) at least as fast and as
    cheap replaces it, so the default is on the model's Pareto front. Then
    :func:`costmodel.choose` applies the objective: ``optimize="time"`` keeps the default within
    the limits, ``"cost"`` takes the cheapest candidate. Raises :class:`costmodel.CostLimitError`
    when no candidate is estimated within ``max_cost_usd``.
    """
    if objective == costmodel.DEFAULT_OBJECTIVE and not at_scale(total_bytes, concurrency):
        rules = rules_sizing(total_bytes, concurrency, task_timeout_s=task_timeout_s, memory_mb=memory_mb,
                             split_size=split_size, num_reducers=num_reducers)
        return costmodel.estimate(workload or costmodel.Workload.of_input(total_bytes), rates, rules, prices)
    default, options = sizing_options(
        total_bytes, concurrency=concurrency, memory_mb=memory_mb, memory_options=memory_options,
        task_timeout_s=task_timeout_s, split_size=split_size, num_reducers=num_reducers,
        workload=workload, rates=rates, prices=prices)
    if at_scale(total_bytes, concurrency) and not split_size and num_reducers is None:
        better = [o for o in options if costmodel.dominates(o, default)]
        if better:
            default = min(better, key=lambda o: (o.wall_s, o.usd))
    return costmodel.choose(options, objective, default)


@dataclass(frozen=True)
class PlannedSizing:
    """What the objective changes of the sizing rules' plan: a split size and a reducer count, each
    None where the rules (or the job's own sizes) stand."""

    split_size: int | None = None
    reducers: int | None = None


def planned_sizing(total_bytes: int, options: JobOptions, limits: TaskLimits, concurrency: int | None,
                   fixed_reducers: int | None) -> PlannedSizing:
    """The split size and reducers :func:`choose_sizing` picks for the job's objective, where they
    differ from the sizing rules' (``fixed_reducers``: the first step's own, 0 when it maps only;
    raises :class:`costmodel.CostLimitError` past ``max_cost_usd``)."""
    try:
        chosen = choose_sizing(total_bytes, objective_of(options), concurrency=concurrency,
                               memory_mb=limits.memory_mb, task_timeout_s=limits.task_timeout_s,
                               split_size=options.split_size, num_reducers=fixed_reducers).sizing
    except costmodel.CostLimitError as exc:
        if exc.estimate is None:
            raise
        raise refusal(options, exc.estimate, cheapest=True) from None
    rules = rules_sizing(total_bytes, concurrency, task_timeout_s=limits.task_timeout_s,
                         memory_mb=limits.memory_mb, split_size=options.split_size, num_reducers=fixed_reducers)
    return PlannedSizing(
        split_size=None if options.split_size or chosen.map_tasks == rules.map_tasks
        else max(1, -(-total_bytes // chosen.map_tasks)),
        reducers=None if fixed_reducers is not None or chosen.reducers == rules.reducers else chosen.reducers)


def plan_estimate(total_bytes: int, map_tasks: int, reducers: int, options: JobOptions, limits: TaskLimits,
                  concurrency: int | None) -> dict[str, Any]:
    """The cost model's estimate of the plan as built (its first step; the input size alone, an upper
    bound), what the result shows next to the actual; refuses one above ``max_cost_usd``."""
    sizing = costmodel.Sizing(map_tasks, reducers, limits.memory_mb, workers(concurrency))
    modelled = costmodel.estimate(costmodel.Workload.of_input(total_bytes), costmodel.DEFAULT_RATES, sizing)
    limit = options.max_cost_usd
    if limit is not None and modelled.usd > limit:
        raise refusal(options, modelled)
    return {**modelled.summary(), "optimize": options.optimize, "max_cost_usd": limit,
            "deadline_s": options.deadline_s}


def refusal(options: JobOptions, modelled: costmodel.Modelled, cheapest: bool = False) -> costmodel.CostLimitError:
    """The error refusing a job estimated above ``max_cost_usd``: the estimate, and what to change."""
    fixed = [n for n in ("split_size", "num_reducers") if getattr(options, n)]
    hint = (f"leave {' and '.join(fixed)} to the planner or " if fixed else "") + "raise max_cost_usd"
    what = "its cheapest plan" if cheapest else "its plan"
    return costmodel.CostLimitError(
        f"max_cost_usd={options.max_cost_usd:g}: the job is estimated at ${modelled.usd:.4f} on AWS "
        f"({what}: {costmodel.describe(modelled)}), refused before it started; {hint}", modelled)
