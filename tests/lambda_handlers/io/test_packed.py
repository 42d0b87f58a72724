"""Packed splits on the local stack's S3: the planner packs objects and pieces of objects, a map
task's reader reads them back. Every record exactly once, in order per object, ``input_uri()``
right for each; changed objects, whole objects, csv headers per object, splits stored apart."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lambda_handlers import context, runtime
from lambda_handlers.io import packed
from lambda_handlers.io.splits import reference_lines
from lambda_handlers.options import JobOptions, PlanError, TaskLimits
from lambda_handlers.plan import Plan, split_pieces, stored_documents
from lambda_handlers.planning import S3Object, build_plan, list_input, make_splits

DATA_BUCKET = "smr-data-test"  # the data bucket of tests/lambda_handlers/conftest.py

LINE = st.text(st.sampled_from("ab é\r\t€x"), max_size=12).map(lambda s: s.replace("\r", ""))
BODY = st.tuples(st.lists(LINE, max_size=30), st.booleans())  # lines, trailing newline


def _body(lines: list[str], newline: bool) -> bytes:
    text = "\n".join(lines) + ("\n" if newline and lines else "")
    return text.encode()


def _upload(s3, prefix: str, bodies: list[tuple[bytes, bool]]) -> dict[str, bytes]:
    """Objects ``prefix/NNN.txt`` (``.gz`` when asked): key -> their decompressed content."""
    contents = {}
    for i, (data, gz) in enumerate(bodies):
        key = f"{prefix}/{i:03d}.txt" + (".gz" if gz else "")
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=gzip.compress(data) if gz else data)
        contents[key] = data
    return contents


def _read(split: dict, **kw) -> list[tuple[str | None, str | None, object]]:
    """(input_uri(), input_name(), record) of every record of a split, as the mapper sees them."""
    src = packed.PackedInput(split, **kw)
    out = []
    for block in src.blocks():
        for raw in block:
            rec = src.parse(raw)
            out.append((context.input_uri(), context.input_name(), rec))
    return out


def _plan_splits(s3, prefix: str, split_size: int, fmt: str = "text", max_pieces: int = 1000) -> list[dict]:
    objects = list_input(s3, "logs", f"s3://{DATA_BUCKET}/{prefix}/")
    return make_splits(objects, split_size, {"logs": fmt}, max_pieces=max_pieces)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(bodies=st.lists(st.tuples(BODY, st.booleans()), min_size=1, max_size=7),
       split_size=st.integers(1, 200), max_pieces=st.integers(1, 8), preload=st.booleans())
def test_every_record_once_in_order_per_object_with_its_uri(s3, bodies, split_size, max_pieces, preload):
    prefix = f"prop/{uuid.uuid4().hex[:10]}"
    contents = _upload(s3, prefix, [(_body(lines, nl), gz) for (lines, nl), gz in bodies])
    splits = _plan_splits(s3, prefix, split_size, max_pieces=max_pieces)
    saved = packed.PRELOAD_MAX_BYTES
    packed.PRELOAD_MAX_BYTES = saved if preload else 0
    try:
        read = [r for split in splits for r in _read(split)]
    finally:
        packed.PRELOAD_MAX_BYTES = saved
    for key, data in contents.items():
        uri = f"s3://{DATA_BUCKET}/{key}"
        got = [rec for u, _, rec in read if u == uri]
        assert got == [ln.decode() for ln in reference_lines(data)]
    assert {u for u, _, _ in read} <= {f"s3://{DATA_BUCKET}/{k}" for k in contents}
    assert {n for _, n, _ in read} <= {"logs"}
    # packing: every split but the last holds at least split_size bytes or max_pieces pieces,
    # unless the next piece would not have fitted
    for split in splits:
        pieces = split_pieces(split)
        assert len(pieces) <= max_pieces
        assert len(pieces) == 1 or sum(p["end"] - p["start"] for p in pieces) <= split_size


def _read_spanning(split: dict, block_bytes: int) -> list[tuple[str, object, str]]:
    """(object URI, record, where the reader locates it) of every record of a split read in a
    batch mapper's blocks that span small objects, the URI from ``block_sources()``."""
    import bisect

    src = packed.PackedInput(split, block_records=None, block_bytes=block_bytes, span=True)
    out = []
    for block in src.blocks():
        sources = context.block_sources()
        assert [(s.start, s.uri) for s in sources] == (src.sources() or [(0, context.input_uri())])
        assert {s.name for s in sources} == {"logs"}
        if len(sources) > 1:
            event("a block spans several objects")
            with pytest.raises(context.BlockSpansObjectsError, match=r"block_sources\(\)"):
                context.input_uri()
        starts = [s.start for s in sources]
        for i, raw in enumerate(block):
            uri = sources[bisect.bisect_right(starts, i) - 1].uri
            out.append((uri, src.parse(raw), src.locate(i)))
            assert src.where()["key"] == uri.split("/", 3)[3]
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(bodies=st.lists(st.tuples(BODY, st.booleans()), min_size=1, max_size=7),
       split_size=st.integers(1, 200), block_bytes=st.integers(1, 120))
def test_blocks_spanning_small_objects_read_every_record_once_with_its_object_and_offset(s3, bodies, split_size,
                                                                                          block_bytes):
    prefix = f"span/{uuid.uuid4().hex[:10]}"
    contents = _upload(s3, prefix, [(_body(lines, nl), gz) for (lines, nl), gz in bodies])
    read = [r for split in _plan_splits(s3, prefix, split_size, max_pieces=8)
            for r in _read_spanning(split, block_bytes)]
    for key, data in contents.items():
        uri = f"s3://{DATA_BUCKET}/{key}"
        got = [(rec, where) for u, rec, where in read if u == uri]
        assert [rec for rec, _ in got] == [ln.decode() for ln in reference_lines(data)]
        for rec, where in got:  # the byte offset in its own object (decompressed for .gz)
            offset = int(where.split()[1])
            assert where.endswith(f" of {uri}") and data[offset:].startswith(rec.encode())
    assert {u for u, _, _ in read} <= {f"s3://{DATA_BUCKET}/{k}" for k in contents}


def test_many_small_objects_make_few_splits_that_keep_listing_order(s3):
    prefix = f"few/{uuid.uuid4().hex[:10]}"
    contents = _upload(s3, prefix, [(f"line {i}\nlast {i}".encode(), False) for i in range(50)])
    splits = _plan_splits(s3, prefix, 200)
    assert len(splits) == 4  # 50 objects of 13-15 bytes (700 in all), at most 200 bytes a split
    read = [(u, rec) for split in splits for u, _, rec in _read(split)]
    expected = [(f"s3://{DATA_BUCKET}/{k}", rec) for k, data in contents.items()
                for rec in data.decode().split("\n")]
    assert read == expected


def test_a_batch_mappers_block_never_spans_two_objects(s3):
    prefix = f"batch/{uuid.uuid4().hex[:10]}"
    contents = _upload(s3, prefix, [(b"a\nb\n", False), (b"", False), (b"c\nd", False), (b"e\n", True)])
    (split,) = _plan_splits(s3, prefix, 1000)
    src = packed.PackedInput(split, block_records=None, block_bytes=1 << 20)  # a batch mapper's blocks
    blocks = [(context.input_uri(), block) for block in src.blocks()]
    assert blocks == [(f"s3://{DATA_BUCKET}/{k}", [ln.decode() for ln in reference_lines(data)])
                      for k, data in contents.items() if data]


def test_a_changed_or_deleted_object_fails_the_task_naming_it_and_the_etag_pair(s3):
    prefix = f"chg/{uuid.uuid4().hex[:10]}"
    _upload(s3, prefix, [(b"a\n", False), (b"b\n", False), (b"c\n", False)])
    (split,) = _plan_splits(s3, prefix, 1000)
    planned = split_pieces(split)[1]["etag"]
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/001.txt", Body=b"changed\n")
    now = s3.head_object(Bucket=DATA_BUCKET, Key=f"{prefix}/001.txt")["ETag"].strip('"')
    with pytest.raises(runtime.ObjectChangedError) as err:
        _read(split)
    assert f"s3://{DATA_BUCKET}/{prefix}/001.txt" in str(err.value)
    assert planned in str(err.value) and now in str(err.value)
    s3.delete_object(Bucket=DATA_BUCKET, Key=f"{prefix}/002.txt")
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/001.txt", Body=b"b\n")  # the same bytes again
    with pytest.raises(runtime.ObjectChangedError, match=f"{prefix}/002.txt disappeared"):
        _read(split)


def test_csv_objects_packed_together_each_keep_their_own_header(s3):
    prefix = f"csv/{uuid.uuid4().hex[:10]}"
    _upload(s3, prefix, [(b"a,b\n1,2\n3,4\n", False), (b"x,y,z\n5,6,7", False)])
    (split,) = _plan_splits(s3, prefix, 1000, "csv")
    assert [(u.rsplit("/", 1)[1], rec) for u, _, rec in _read(split)] == [
        ("000.txt", {"a": "1", "b": "2"}), ("000.txt", {"a": "3", "b": "4"}),
        ("001.txt", {"x": "5", "y": "6", "z": "7"})]


def test_whole_objects_are_one_record_each_gunzipped_and_empty_ones_count(s3):
    prefix = f"whole/{uuid.uuid4().hex[:10]}"
    blobs = [bytes(range(256)) * 3, b"", b"\x00\xff\n\r\n" * 100]
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/a.bin", Body=blobs[0])
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/b.bin", Body=blobs[1])
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/c.bin.gz", Body=gzip.compress(blobs[2]))
    splits = _plan_splits(s3, prefix, 10, "whole")  # a split size below each object: never cut
    got = [rec for split in splits for _, _, rec in _read(split)]
    uris = [f"s3://{DATA_BUCKET}/{prefix}/{name}" for name in ("a.bin", "b.bin", "c.bin.gz")]
    assert got == list(zip(uris, blobs, strict=True))
    (packed_split,) = _plan_splits(s3, prefix, 10_000, "whole")
    assert len(split_pieces(packed_split)) == 3
    with pytest.raises(packed.WholeObjectTooLargeError, match=r"c\.bin\.gz decompresses to more than"):
        [r for split in splits for r in _read(split, whole_limit=400)]


def test_a_whole_object_over_the_memory_budget_is_refused_before_anything_runs():
    limits = TaskLimits(memory_mb=128)
    big = S3Object("default", "in", "big.warc", limits.memory_budget_bytes + 1, "e")
    from airflow_provider_smr.job import MapReduceJob

    job = MapReduceJob(mapper=lambda rec: [], input_format="whole")
    with pytest.raises(PlanError, match=r"s3://in/big\.warc.*33,554,432 bytes"):
        build_plan(job_id="j", work_bucket="work", job=job, inputs={"default": ["s3://in/"]},
                   objects=[big], output_uri="s3://out/x", options=JobOptions(), limits=limits)


def test_a_large_plan_stores_its_splits_apart_and_a_task_reads_only_its_chunk(s3):
    from airflow_provider_smr.job import MapReduceJob

    def plan_of(n: int) -> Plan:
        objects = [S3Object("default", "in", f"logs/{i:06d}.log", 2048, f"{i:032x}") for i in range(n)]
        return build_plan(job_id=f"big-{n}", work_bucket="work", job=MapReduceJob(mapper=len),
                          inputs={"default": ["s3://in/logs/"]}, objects=objects,
                          output_uri="s3://out/x", options=JobOptions(split_size=64 * 2048))
    sizes = {}
    for n in (2_000, 20_000):
        plan = plan_of(n)
        assert plan.num_splits == -(-n // 64)
        doc, chunks = stored_documents(plan)
        assert len(doc) < 8_000  # plan.json: settings, chunk starts; no split
        sizes[n] = max(len(body) for _, body in chunks)
        stored = Plan.from_json(json.loads(doc))
        assert stored.splits == () and stored.num_splits == plan.num_splits
        for key, body in chunks:
            s3.put_object(Bucket="smr-work-test", Key=key, Body=body)
        for task in (0, plan.num_splits // 2, plan.num_splits - 1):
            assert runtime.load_split("smr-work-test", stored, task) == plan.splits[task]
    assert sizes[20_000] <= sizes[2_000] * 1.1  # what one task reads does not grow with the input


@pytest.mark.parametrize("data", [
    b"a b\nc\n", b"a b\nc", b"\xef\xbb\xbfa\nb", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"\n\n", b"x",
    b"a\r\nb\r\nc", "\u00e9 \u00fc\nzz\n".encode(), b"ok\n\xff bad\nok", b'{"a": 1}\n{"b": [2]}',
], ids=["lines", "last-line-open", "bom", "bom-only", "bom-newline", "empty-lines", "one-char",
        "crlf", "multibyte", "undecodable", "jsonl"])
@pytest.mark.parametrize("fmt,block_records,block_bytes", [
    ("text", 1024, 0), ("text", None, 1 << 20), ("text", 1, 0), ("jsonl", 1024, 0), ("jsonl", None, 1 << 20)])
def test_a_preloaded_object_reads_as_the_streaming_reader_reads_it(data, fmt, block_records, block_bytes):
    """The same blocks, records and byte offsets (error messages) as SplitInput's."""
    from lambda_handlers.io import readers, splits

    def plain(rec):
        return ("undecodable", rec.raw) if isinstance(rec, readers.Undecodable) else rec

    def blocks_and_offsets(reader):
        return [(type(block).__name__, [plain(r) for r in block], [reader.locate(i) for i in range(len(block))])
                for block in reader.blocks()]

    splits.preloading({("b", "k", '"e"'): data})
    try:
        streamed = readers.SplitInput({"bucket": "b", "key": "k", "etag": '"e"', "start": 0, "end": len(data),
                                       "size": len(data), "format": fmt}, None, block_records, block_bytes, 0)
        expected = blocks_and_offsets(streamed)
    finally:
        splits.preloading({})
    fast = packed._InMemoryLines(data, fmt, block_records, block_bytes, "utf-8", "strict")
    assert blocks_and_offsets(fast) == expected
