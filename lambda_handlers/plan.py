"""``plan.json`` as types: what a job was planned to do, read the same way by both planes.

The planner (:mod:`lambda_handlers.planning`) builds a :class:`Plan`; it is stored as JSON under the
job's prefix (:meth:`Plan.to_json`) and read back with :meth:`Plan.from_json` by the Lambda
handlers, the watcher, the result and the report. This module is the only place that knows the
document's keys. Splits stay plain dicts (:class:`Split`) because the input readers take them as
they are; everything else is a small frozen dataclass.

Where splits live: a plan of few splits keeps them inline (``"splits"``); a larger one (more than
:data:`INLINE_SPLITS_BYTES` of JSON) stores them apart, in chunk objects of about
:data:`SPLIT_CHUNK_BYTES` under ``jobs/<id>/splits/<digest>/`` (:func:`stored_documents`), and
``plan.json`` keeps only ``num_splits`` and the first task of each chunk (``split_chunks``), so a map
task reads ``plan.json`` plus its own chunk, never every split of the job, and the coordinator and
the watcher never read a split at all.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring_ascii
from typing import Any, TypedDict, cast

from lambda_handlers import protocol
from lambda_handlers.options import JobOptions, TaskLimits

PLAN_VERSION = 2
DYNAMODB_FORMAT = "dynamodb"
#: a file extension per S3 output format
OUTPUT_EXTENSIONS = {"jsonl": "jsonl", "tsv": "tsv", "csv": "csv", "parquet": "parquet", "text": "txt"}


#: a plan whose splits take more JSON than this stores them apart (see the module docstring)
INLINE_SPLITS_BYTES = 64 * 1024
#: about this much JSON per stored chunk of splits (a chunk holds at least one split)
SPLIT_CHUNK_BYTES = 128 * 1024


class Piece(TypedDict, total=False):
    """One piece of a packed split: a byte range of one S3 object, read pinned to its ETag.

    - ``key``: the object's key (in the split's ``bucket``);
    - ``etag``: the ETag listed at planning; every GET of the piece carries ``IfMatch`` with it;
    - ``start``, ``end``: the byte range ``[start, end)`` of the object the piece owns (records
      whose first byte lies in it, the line rule of :mod:`lambda_handlers.io.splits`); a whole
      object (a ``.gz``, an ``input_format="whole"`` object) is ``0, size``;
    - ``size``: the object's size in bytes (as listed);
    - ``compression``: ``"gzip"`` or ``"bz2"`` (read whole, decompressed) or absent/None;
    - ``row_groups``: Parquet: the row groups ``[first, end)`` of the file the piece reads
      (absent: all of them; ``start``, ``end`` then count their compressed bytes);
    - the planner packs a piece by its ``end - start`` bytes.
    """

    key: str
    etag: str | None
    start: int
    end: int
    size: int
    compression: str | None
    row_groups: list[int] | None


class Split(TypedDict, total=False):
    """One map task's input: pieces of S3 objects, or one scan segment of a table.

    An S3 split holding one piece carries the piece's fields itself (``key``, ``etag``, ``start``,
    ``end``, ``size``, ``compression``: a byte range of one object, as before packing). A packed
    split holds several in ``pieces`` (:class:`Piece`, read in order) and no piece fields of its
    own. Either way: ``task``, ``input`` (its named input: a split never spans two), ``format``
    and ``bucket`` (a split never spans two buckets). :func:`split_pieces` gives the pieces of any
    S3 split.
    """

    task: int
    input: str
    format: str
    bucket: str | None
    key: str | None
    etag: str | None
    start: int
    end: int
    size: int
    compression: str | None
    pieces: list[Piece]
    row_groups: list[int] | None
    # DynamoDB scan segments
    table: str
    segment: int
    total_segments: int
    attributes: list[str] | None
    consistent: bool


#: the fields of a split that are not a piece's (a one-piece split's other fields are its piece's)
SPLIT_FIELDS = ("task", "input", "format", "bucket", "pieces")


def piece_of(split: Mapping[str, Any]) -> Piece:
    """A one-piece split's piece: every field but the split's own (so a format's extra piece
    fields, e.g. Parquet row groups, travel), None values left out."""
    return cast(Piece, {k: v for k, v in split.items() if k not in SPLIT_FIELDS and v is not None})


def split_pieces(split: Mapping[str, Any]) -> list[Piece]:
    """The pieces of an S3 split, in reading order (a one-piece split's own fields as one piece)."""
    pieces = split.get("pieces")
    if pieces is not None:
        return list(pieces)
    return [piece_of(split)]


@dataclass(frozen=True)
class StepPlan:
    """One step: its map tasks (splits for step 0, the previous step's reducers after) and reducers."""

    index: int
    num_map_tasks: int
    num_reducers: int  # 0: a map-only step

    def tasks(self, phase: str) -> int:
        """Task count of a phase (``"map"`` or ``"reduce"``)."""
        return self.num_map_tasks if phase == "map" else self.num_reducers


@dataclass(frozen=True)
class InputPlan:
    """One named input: its URIs and the format its records are read in."""

    uris: tuple[str, ...]
    format: str


@dataclass(frozen=True)
class TableOutput:
    """Where a ``dynamodb://`` output writes: the table and how pairs become items."""

    table: str
    key_attribute: str = "key"
    value_attribute: str = "value"
    key_type: str = "S"
    create_table: bool = False


@dataclass(frozen=True)
class OutputPlan:
    """The job's output: an S3 folder (``bucket``/``prefix``), or a DynamoDB table whose manifest
    goes under the job's prefix in the work bucket."""

    uri: str
    bucket: str
    prefix: str
    format: str
    overwrite: bool = False
    inputs: tuple[str, ...] = ()
    table: TableOutput | None = None

    @property
    def extension(self) -> str:
        """The part files' extension (``jsonl``, ``tsv``, ``csv``, ``parquet``, ``txt``)."""
        return OUTPUT_EXTENSIONS[self.format]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OutputPlan:
        table = None
        if doc.get("format") == DYNAMODB_FORMAT:
            table = TableOutput(doc["table"], doc.get("key_attribute", "key"),
                                doc.get("value_attribute", "value"), doc.get("key_type", "S"),
                                bool(doc.get("create_table")))
        return cls(uri=doc.get("uri", ""), bucket=doc.get("bucket", ""), prefix=doc.get("prefix", ""),
                   format=doc.get("format", "jsonl"), overwrite=bool(doc.get("overwrite")),
                   inputs=tuple(doc.get("inputs", ())), table=table)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"uri": self.uri, "bucket": self.bucket, "prefix": self.prefix,
                               "format": self.format, "overwrite": self.overwrite,
                               "inputs": list(self.inputs)}
        if self.table is not None:
            doc.update(table=self.table.table, key_attribute=self.table.key_attribute,
                       value_attribute=self.table.value_attribute, key_type=self.table.key_type,
                       create_table=self.table.create_table)
        return doc


@dataclass(frozen=True)
class Plan:
    """Everything a job was planned to do. Built by the planner, never changed afterwards."""

    job_id: str
    steps: tuple[StepPlan, ...]
    output: OutputPlan
    options: JobOptions = field(default_factory=JobOptions)
    limits: TaskLimits = field(default_factory=TaskLimits)
    work_bucket: str = ""
    created: str = ""  # ISO 8601, UTC
    job_name: str = ""
    inputs: Mapping[str, InputPlan] = field(default_factory=dict)
    splits: tuple[Split, ...] = ()  # empty when stored apart (split_chunks)
    input_bytes: int = 0
    #: how planning went: ``plan_s`` (seconds), ``where`` ("lambda" for the serverless driver)
    driver: Mapping[str, Any] = field(default_factory=dict)
    #: splits stored apart: the chunks' key prefix and the first task of each chunk
    split_chunks: SplitChunks | None = None
    num_splits_stored: int = 0
    #: the function versions the job runs on, by role (``mapper``, ``reducer``, ``coordinator``,
    #: ``driver``): every invoke of the job names them, so a later deploy never changes it
    versions: Mapping[str, str] = field(default_factory=dict)
    #: the cost model's estimate of the plan (``wall_s``, ``usd``, the sizing and the objective:
    #: :func:`lambda_handlers.planning.plan_estimate`), which the result shows next to the actual
    estimate: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_splits(self) -> int:
        """How many map tasks step 0 has (splits inline or stored apart)."""
        return len(self.splits) if self.split_chunks is None else self.num_splits_stored

    def chunk_of(self, task: int) -> tuple[str, int]:
        """For splits stored apart: the key of the chunk holding ``task``'s split, and its index
        in that chunk."""
        if self.split_chunks is None:
            raise ValueError("this plan's splits are inline")
        starts = self.split_chunks.starts
        i = bisect.bisect_right(starts, task) - 1
        return self.split_chunks.key(i), task - starts[i]

    def function(self, role: str, name: str) -> str:
        """``name`` (the role's function) qualified with the job's pinned version, if any."""
        return qualified(name, self.versions.get(role))

    @property
    def silent_after_s(self) -> int:
        """Seconds after which a started attempt with no result is presumed killed by Lambda
        (timeout or out of memory write nothing): the function timeout plus the grace."""
        return self.limits.task_timeout_s + self.options.deadline_grace_s

    @property
    def last_step(self) -> int:
        return len(self.steps) - 1

    def tasks(self, step: int, phase: str) -> int:
        """Task count of one phase of one step."""
        return self.steps[step].tasks(phase)

    def with_driver(self, **facts: Any) -> Plan:
        """The same plan with how planning went recorded (the planner's own time, where it ran)."""
        return replace(self, driver={**self.driver, **facts})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Plan:
        """Read a ``plan.json`` document (as :meth:`to_json` wrote it)."""
        return cls(
            job_id=doc["job_id"],
            steps=tuple(StepPlan(int(s.get("index", i)), int(s["num_map_tasks"]),
                                 int(s.get("num_reducers") or 0))
                        for i, s in enumerate(doc["steps"])),
            output=OutputPlan.from_json(doc.get("output") or {}),
            options=JobOptions.from_mapping(doc.get("options") or {}),
            limits=TaskLimits(**(doc.get("limits") or {})),
            work_bucket=doc.get("work_bucket", ""),
            created=doc.get("created", ""),
            job_name=doc.get("job_name", ""),
            inputs={name: InputPlan(tuple(spec["uris"]), spec["format"])
                    for name, spec in (doc.get("inputs") or {}).items()},
            splits=tuple(doc.get("splits") or ()),
            input_bytes=int(doc.get("input_bytes") or 0),
            driver=dict(doc.get("driver") or {}),
            split_chunks=SplitChunks.from_json(doc["split_chunks"]) if doc.get("split_chunks") else None,
            num_splits_stored=int(doc.get("num_splits") or 0),
            versions=dict(doc.get("versions") or {}),
            estimate=dict(doc.get("estimate") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON-able ``plan.json`` document."""
        return {
            "v": PLAN_VERSION,
            "job_id": self.job_id,
            "work_bucket": self.work_bucket,
            "created": self.created,
            "job_name": self.job_name,
            "options": self.options.to_dict(),
            "limits": self.limits.to_dict(),
            "inputs": {name: {"uris": list(spec.uris), "format": spec.format}
                       for name, spec in self.inputs.items()},
            "splits": [dict(split) for split in self.splits],
            "steps": [{"index": s.index, "num_map_tasks": s.num_map_tasks, "num_reducers": s.num_reducers}
                      for s in self.steps],
            "output": self.output.to_json(),
            "input_bytes": self.input_bytes,
            **({"driver": dict(self.driver)} if self.driver else {}),
            **({"split_chunks": self.split_chunks.to_json(), "num_splits": self.num_splits_stored}
               if self.split_chunks is not None else {}),
            **({"versions": dict(self.versions)} if self.versions else {}),
            **({"estimate": dict(self.estimate)} if self.estimate else {}),
        }


def qualified(name: str, version: str | None) -> str:
    """``name:version`` (what Invoke's ``FunctionName`` takes for a version), or ``name``."""
    return f"{name}:{version}" if version else name


@dataclass(frozen=True)
class SplitChunks:
    """Where the splits of a plan stored apart are: ``<prefix><i>.json`` is chunk ``i``, a JSON
    list of the splits of tasks ``starts[i]`` .. ``starts[i + 1] - 1``."""

    prefix: str
    starts: tuple[int, ...]

    def key(self, index: int) -> str:
        return f"{self.prefix}{index:05d}.json"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SplitChunks:
        return cls(str(doc["prefix"]), tuple(int(x) for x in doc["starts"]))

    def to_json(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "starts": list(self.starts)}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


_PLAIN_PIECE = frozenset(("key", "etag", "start", "end", "size"))
_PIECES_HERE = "\x00pieces\x00"  # where a split's pieces go in its encoding (see _split_json)


def _piece_json(piece: Mapping[str, Any]) -> str:
    """``_dumps(piece)`` as text; a plain piece (a str key and ETag, int offsets) formatted
    directly, in half the encoder's time (a plan of 20,000 objects holds 20,000 of them)."""
    start, end, size, key, etag = (piece.get("start"), piece.get("end"), piece.get("size"),
                                   piece.get("key"), piece.get("etag"))
    if (piece.keys() == _PLAIN_PIECE and type(start) is int and type(end) is int and type(size) is int
            and type(key) is str and type(etag) is str):
        return (f'{{"end":{end},"etag":{encode_basestring_ascii(etag)},"key":{encode_basestring_ascii(key)},'
                f'"size":{size},"start":{start}}}')
    return json.dumps(piece, separators=(",", ":"), sort_keys=True)


def _split_json(split: Mapping[str, Any]) -> bytes:
    """``_dumps(split)``: a packed split's pieces by :func:`_piece_json`, the rest by the encoder."""
    pieces = split.get("pieces")
    if not isinstance(pieces, list) or not pieces:
        return _dumps(dict(split))
    outline = json.dumps({**split, "pieces": _PIECES_HERE}, separators=(",", ":"), sort_keys=True)
    marker = json.dumps(_PIECES_HERE)
    if outline.count(marker) != 1:
        return _dumps(dict(split))
    return outline.replace(marker, "[" + ",".join([_piece_json(p) for p in pieces]) + "]").encode()


def stored_documents(plan: Plan, inline_bytes: int = INLINE_SPLITS_BYTES,
                     chunk_bytes: int = SPLIT_CHUNK_BYTES) -> tuple[bytes, list[tuple[str, bytes]]]:
    """``plan.json``'s body and the chunk objects ``[(key, body)]`` to write BEFORE it.

    Splits of at most ``inline_bytes`` of JSON stay inline (no chunk). Otherwise they go in chunks
    of about ``chunk_bytes`` whose keys hold a digest of their content, so writing them again (a
    retried submission or driver) rewrites the same bytes, and two plans never share a chunk.
    """
    if plan.split_chunks is not None or not plan.splits:
        return _dumps(plan.to_json()), []
    encoded = [_split_json(split) for split in plan.splits]
    if sum(len(e) + 1 for e in encoded) <= inline_bytes:
        return _dumps(plan.to_json()), []
    groups: list[list[bytes]] = [[]]
    starts, size = [0], 0
    for task, body in enumerate(encoded):
        if groups[-1] and size + len(body) > chunk_bytes:
            groups.append([])
            starts.append(task)
            size = 0
        groups[-1].append(body)
        size += len(body) + 1
    bodies = [b"[" + b",".join(group) + b"]" for group in groups]
    digest = hashlib.sha256(b"\n".join(bodies)).hexdigest()[:16]
    chunks = SplitChunks(protocol.split_chunks_prefix(plan.job_id, digest), tuple(starts))
    stored = replace(plan, splits=(), split_chunks=chunks, num_splits_stored=len(plan.splits))
    return _dumps(stored.to_json()), [(chunks.key(i), body) for i, body in enumerate(bodies)]


def chunk_splits(body: bytes | str) -> Sequence[Split]:
    """The splits of one stored chunk."""
    splits: list[Split] = json.loads(body)
    return splits


@dataclass(frozen=True)
class StepShape:
    """What planning needs of one step of the job: whether it reduces, and its own reducer count."""

    reducer: bool
    num_reducers: int | None = None


@dataclass(frozen=True)
class JobShape:
    """The job facts planning needs, without the job's code (the serverless driver never unpickles
    it): the planner accepts this wherever it accepts a ``MapReduceJob``."""

    name: str
    output_format: str
    steps: tuple[StepShape, ...]
    num_reducers: int | None = None
    input_formats: Mapping[str, str] = field(default_factory=dict)

    def input_format_for(self, name: str) -> str:
        return self.input_formats[name]


@dataclass(frozen=True)
class PlanningRequest:
    """What the caller hands the serverless driver (``planning.json``): it lists and plans there."""

    job_id: str
    inputs: Mapping[str, list[str]]
    output: str
    job: JobShape
    options: JobOptions = field(default_factory=JobOptions)
    limits: TaskLimits = field(default_factory=TaskLimits)
    concurrency: int | None = None
    #: the function versions the job is pinned to (see :attr:`Plan.versions`)
    versions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlanningRequest:
        job = doc["job"]
        return cls(
            job_id=doc["job_id"], inputs={k: list(v) for k, v in doc["inputs"].items()},
            output=doc["output"],
            job=JobShape(job["name"], job["output_format"],
                         tuple(StepShape(bool(s["reducer"]), s.get("num_reducers")) for s in job["steps"]),
                         job.get("num_reducers"), dict(job.get("input_formats") or {})),
            options=JobOptions.from_mapping(doc.get("options") or {}),
            limits=TaskLimits(**(doc.get("limits") or {})), concurrency=doc.get("concurrency"),
            versions=dict(doc.get("versions") or {}))

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "inputs": dict(self.inputs), "output": self.output,
                "job": {"name": self.job.name, "output_format": self.job.output_format,
                        "num_reducers": self.job.num_reducers,
                        "input_formats": dict(self.job.input_formats),
                        "steps": [{"reducer": s.reducer, "num_reducers": s.num_reducers}
                                  for s in self.job.steps]},
                "options": self.options.to_dict(), "limits": self.limits.to_dict(),
                "concurrency": self.concurrency, "versions": dict(self.versions)}
