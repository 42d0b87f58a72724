"""Parquet: footers read without pyarrow, row-group planning, reading pieces through the local
stack's S3 (projection, batches, bad files) and writing parts."""

from __future__ import annotations

import io
import itertools

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_handlers import mapper, runtime
from lambda_handlers.io import packed, parquet, parquet_footer
from lambda_handlers.options import JobOptions
from lambda_handlers.planning import S3Object, make_splits

BUCKET = "smr-data-test"
_seq = itertools.count()


def _parquet(table: pa.Table, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def _rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "name": [f"n{i}" for i in range(start, start + n)],
                     "score": [i / 2 for i in range(start, start + n)]})


def _put(s3, data: bytes, key: str | None = None) -> S3Object:
    key = key or f"pq/{next(_seq):06d}.parquet"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
    return S3Object("default", BUCKET, key, len(data), etag)


def _read(split: dict, columns=None, batches: bool = False) -> list:
    src = packed.PackedInput(split, None, None if batches else 1024, 1 << 20 if batches else 0,
                             options=JobOptions(columns=columns or ()))
    return list(src.blocks())


def _row_groups_of(s3):
    return lambda obj: parquet.s3_row_groups(s3, obj)


# -- footers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("table, kw", [
    (_rows(10), {"row_group_size": 3}),
    (_rows(1000), {"row_group_size": 1000, "compression": "zstd"}),
    (pa.table({"tags": [["a", "b"], []], "m": [{"x": 1}, None], "ok": [True, False]}), {}),
    (pa.table({f"c{i}": [i] for i in range(1500)}), {}),  # a footer larger than the first read
])
def test_the_footer_decoder_agrees_with_pyarrow(table, kw):
    data = _parquet(table, **kw)
    reads = []

    def read(first, last):
        reads.append((first, last))
        return data[first:last + 1]

    got = parquet_footer.read_row_groups(read, len(data), "s3://b/k")
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [(g.rows, g.bytes) for g in got] == [
        (meta.row_group(i).num_rows,
         sum(meta.row_group(i).column(j).total_compressed_size for j in range(meta.num_columns)))
        for i in range(meta.num_row_groups)]
    assert len(reads) == (2 if len(data) - parquet_footer.TAIL_BYTES > 0 and
                          meta.serialized_size + 8 > parquet_footer.TAIL_BYTES else 1)


@pytest.mark.parametrize("data, says", [(b"a,b\n1,2\n" * 4, "not a Parquet file"),
                                        (b"PAR1" + b"\x00" * 20 + b"PARE", "encrypted"),
                                        (b"PAR1\x19\x00\x00\x00\xff\xff\xff\xff\xff\x0f\x00\x00PAR1", "footer length"),
                                        (b"x", "too short")])
def test_a_file_that_is_not_parquet_is_named(data, says):
    with pytest.raises(parquet_footer.ParquetFileError, match=f"s3://b/bad.parquet .*{says}"):
        parquet_footer.read_row_groups(lambda a, z: data[a:z + 1], len(data), "s3://b/bad.parquet")


# -- planning ----------------------------------------------------------------------------------------


def test_row_groups_are_grouped_up_to_the_split_size():
    groups = [parquet.RowGroup(10, n) for n in (40, 40, 40, 150, 10)]
    assert parquet.row_group_ranges(groups, 100) == [(0, 2, 4, 84), (2, 3, 84, 124), (3, 4, 124, 274),
                                                     (4, 5, 274, 284)]


def test_small_files_are_packed_and_a_large_one_is_split_by_row_groups(s3):
    small = [_put(s3, _parquet(_rows(5, 100 * i)), f"pq/plan/a{i}.parquet") for i in range(3)]
    large = _put(s3, _parquet(_rows(4000), row_group_size=500), "pq/plan/b.parquet")
    size = sum(o.size for o in small) + 10
    splits = make_splits(small + [large], size, {"default": "text"}, row_groups_of=_row_groups_of(s3))
    assert all(s["format"] == "parquet" for s in splits)
    assert [p["key"] for p in splits[0]["pieces"]] == [o.key for o in small]
    groups = [s.get("row_groups") or [g for p in s["pieces"] for g in p.get("row_groups") or []]
              for s in splits[1:]]
    assert groups[0][0] == 0 and groups[-1][-1] == 8 and len(splits) > 2
    rows = [r["id"] for s in splits for block in _read(s) for r in block]
    assert rows == [r for i in range(3) for r in range(100 * i, 100 * i + 5)] + list(range(4000))


def test_a_split_never_mixes_parquet_and_text_objects(s3):
    objs = [_put(s3, b"line\n", "pq/mix/a.txt"), _put(s3, _parquet(_rows(2)), "pq/mix/b.parquet"),
            _put(s3, b"line\n", "pq/mix/c.txt")]
    splits = make_splits(objs, 1 << 20, {"default": "text"})
    assert [s["format"] for s in splits] == ["text", "parquet", "text"]


# -- reading -----------------------------------------------------------------------------------------


def _split(objs: list[S3Object], **extra) -> dict:
    if len(objs) == 1:
        o = objs[0]
        return {"input": "default", "bucket": BUCKET, "format": "parquet", "key": o.key, "etag": o.etag,
                "start": 0, "end": o.size, "size": o.size, **extra}
    return {"input": "default", "bucket": BUCKET, "format": "parquet",
            "pieces": [{"key": o.key, "etag": o.etag, "start": 0, "end": o.size, "size": o.size}
                       for o in objs]}


def test_projection_reads_only_the_asked_columns(s3):
    obj = _put(s3, _parquet(_rows(3)))
    assert _read(_split([obj]), columns=["name"]) == [[{"name": "n0"}, {"name": "n1"}, {"name": "n2"}]]


def test_a_batch_mapper_gets_record_batches_of_one_row_group(s3):
    obj = _put(s3, _parquet(_rows(10), row_group_size=4))
    blocks = _read(_split([obj], row_groups=[1, 3]), columns=["id", "score"], batches=True)
    assert all(isinstance(b, pa.RecordBatch) for b in blocks)
    assert [b.num_rows for b in blocks] == [4, 2] and blocks[0].schema.names == ["id", "score"]
    assert [i for b in blocks for i in b.column("id").to_pylist()] == list(range(4, 10))


def test_an_unreadable_parquet_file_is_named(s3):
    good, bad = _put(s3, _parquet(_rows(2))), _put(s3, b"this is not parquet at all\n" * 3)
    with pytest.raises(parquet.ParquetFileError, match=f"s3://{BUCKET}/{bad.key} is not a readable Parquet"):
        _read(_split([good, bad]))


def test_a_column_a_file_lacks_is_named_with_the_file(s3):
    obj = _put(s3, _parquet(_rows(2)))
    with pytest.raises(parquet.ParquetFileError, match=rf"{obj.key} has no column\(s\) \['nope'\]"):
        _read(_split([obj]), columns=["id", "nope"])


def test_a_changed_parquet_file_fails_the_task_with_its_uri(s3):
    obj = _put(s3, _parquet(_rows(2)))
    s3.put_object(Bucket=BUCKET, Key=obj.key, Body=_parquet(_rows(3)))
    with pytest.raises(runtime.ObjectChangedError, match=f"s3://{BUCKET}/{obj.key} changed"):
        _read(_split([obj]))


def test_a_failing_row_of_a_batch_is_found_and_counted(s3):
    obj = _put(s3, _parquet(_rows(6)))
    source = mapper._split_source(_split([obj]), runtime.TaskMetrics(), 1 << 20)

    def fn(batch):
        ids = batch.column("id").to_pylist()
        if 4 in ids:
            raise ValueError("id 4")
        return [(i, 1) for i in ids]

    got: list = []
    assert mapper.run_mapper(source, mapper.BatchMapper(fn), got.extend, 1) == (6, 1)
    assert sorted(k for k, _ in got) == [0, 1, 2, 3, 5]
    source = mapper._split_source(_split([obj]), runtime.TaskMetrics(), 1 << 20)
    with pytest.raises(runtime.TaskError, match=rf"row 4 \(row group 0\) of s3://{BUCKET}/{obj.key}") as err:
        mapper.run_mapper(source, mapper.BatchMapper(fn), got.extend, 0)
    assert "'id': 4" in err.value.record_preview


# -- writing -----------------------------------------------------------------------------------------


def _written(batches: list[list]) -> pa.Table:
    part = parquet.ParquetPartWriter()
    part.BATCH = 1  # each batch its own Arrow batch: their types are unified
    for batch in batches:
        part.write_batch(batch)
    return pq.read_table(io.BytesIO(part.getvalue()))


def test_pairs_become_key_and_value_columns():
    table = _written([[("a", 1), ("b", 2)], [("c", 3)]])
    assert table.to_pylist() == [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "c", "value": 3}]


def test_dict_rows_become_columns_and_types_are_unified_across_batches():
    table = _written([[{"user": "u1", "n": 1, "note": None}], [{"user": "u2", "n": 2.5, "note": "x"}]])
    assert table.schema.field("n").type == pa.float64() and table.schema.field("note").type == pa.string()
    assert table.to_pylist() == [{"user": "u1", "n": 1.0, "note": None}, {"user": "u2", "n": 2.5, "note": "x"}]


def test_a_dict_value_is_a_struct_column():
    table = _written([[("k", {"a": 1, "b": "x"})]])
    assert table.to_pylist() == [{"key": "k", "value": {"a": 1, "b": "x"}}]


@pytest.mark.parametrize("batches, says", [
    ([[("a", 1), {"x": 1}]], "pairs or dict rows, not both"),
    ([[("a", 1), ("b", "two")]], "cannot be a Parquet column"),
    ([[("a", 1)], [("b", [1])]], "differ between batches"),
])
def test_records_a_column_cannot_hold_are_a_clear_error(batches, says):
    with pytest.raises(parquet.ParquetOutputError, match=says):
        _written(batches)


def test_an_empty_part_is_a_readable_parquet_file():
    part = parquet.ParquetPartWriter()
    assert part.records == 0 and pq.read_table(io.BytesIO(part.getvalue())).num_rows == 0


# -- every row exactly once ----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(st.integers(0, 300), st.integers(1, 120)), min_size=1, max_size=4),
       split_size=st.integers(200, 20_000), batches=st.booleans())
def test_packed_and_split_parquet_files_yield_every_row_once_in_order(s3, files, split_size, batches):
    objs, expected, start = [], [], 0
    for rows, group in files:
        objs.append(_put(s3, _parquet(_rows(rows, start), row_group_size=group, compression="none"),
                         f"pq/prop/{next(_seq):06d}.parquet"))
        expected += list(range(start, start + rows))
        start += rows
    splits = make_splits(objs, split_size, {"default": "parquet"}, row_groups_of=_row_groups_of(s3))
    got = []
    for split in splits:
        for block in _read(split, columns=["id"], batches=batches):
            got += block.column("id").to_pylist() if batches else [r["id"] for r in block]
    assert got == expected


def test_columns_are_per_named_input_or_for_all():
    assert JobOptions(columns=["a"]).columns_for("x") == ("a",)
    by_input = JobOptions(columns={"users": ["id"], "orders": ["user", "amount"]})
    assert by_input.columns_for("orders") == ("user", "amount") and by_input.columns_for("other") is None
    assert JobOptions().columns_for("x") is None
