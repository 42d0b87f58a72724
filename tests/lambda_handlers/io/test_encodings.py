"""Text decoding (encoding=, errors=) and .bz2 inputs, read through the local stack's S3."""

from __future__ import annotations

import bz2
import gzip
import itertools

import pytest

from lambda_handlers import mapper, runtime
from lambda_handlers.io import readers
from lambda_handlers.options import JobOptions, OptionError
from lambda_handlers.planning import compression_of

BUCKET = "smr-data-test"
_seq = itertools.count()


def _split(s3, body: bytes, fmt: str = "text", compression=None, start=0, end=None) -> dict:
    key = f"enc/{next(_seq)}.{fmt}"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"]
    return {"input": "default", "bucket": BUCKET, "key": key, "etag": etag, "start": start,
            "end": len(body) if end is None else end, "size": len(body), "format": fmt,
            "compression": compression}


def _map(split: dict, max_bad: int = 0, batch: int = 0, **decoding) -> tuple[list, tuple[int, int]]:
    source = mapper._split_source(split, runtime.TaskMetrics(), batch, JobOptions(**decoding))
    got: list = []
    counts = mapper.run_mapper(source, lambda rec: [(rec, 1)], got.extend, max_bad)
    return [k for k, _ in got], counts


def test_latin1_text_is_read_with_encoding_latin1(s3):
    split = _split(s3, "café\nnaïve\n".encode("latin-1"))
    assert _map(split, encoding="latin-1") == (["café", "naïve"], (2, 0))


def test_invalid_utf8_is_a_bad_record_naming_its_byte_and_the_fix(s3):
    split = _split(s3, b"good\nbad \xff here\nalso good\n")
    with pytest.raises(runtime.TaskError) as err:
        _map(split)
    msg = str(err.value)
    assert f"byte 5 of s3://{BUCKET}/{split['key']}" in msg
    assert "RecordDecodeError: the record is not valid utf-8: byte 0xff at position 4" in msg
    assert "errors='replace'" in msg and "encoding=" in msg


@pytest.mark.parametrize("batch", [0, 1 << 20], ids=["per-record", "batch-blocks"])
def test_invalid_bytes_count_against_max_bad_records_and_the_rest_is_read(s3, batch):
    split = _split(s3, b"a\n\xc3(\nb\n\xfe\nc")
    assert _map(split, max_bad=2, batch=batch) == (["a", "b", "c"], (5, 2))
    with pytest.raises(runtime.TaskError, match="more than max_bad_records=1"):
        _map(split, max_bad=1, batch=batch)


def test_a_batch_mapper_sees_only_the_records_that_decoded(s3):
    split = _split(s3, b"a\n\xff\nb\n")
    source = mapper._split_source(split, runtime.TaskMetrics(), 1 << 20, JobOptions())
    blocks: list = []
    fn = mapper.BatchMapper(lambda recs: blocks.append(list(recs)) or [(r, 1) for r in recs])
    got: list = []
    assert mapper.run_mapper(source, fn, got.extend, 1) == (3, 1)
    assert blocks == [["a", "b"]] and got == [("a", 1), ("b", 1)]


def test_errors_replace_reads_invalid_bytes_as_the_replacement_character(s3):
    split = _split(s3, b"ok\nbad \xff\n")
    assert _map(split, errors="replace") == (["ok", "bad \ufffd"], (2, 0))


def test_errors_surrogateescape_keeps_the_bytes(s3):
    split = _split(s3, b"bad \xff\n")
    (rec,), _ = _map(split, errors="surrogateescape")
    assert rec == "bad \udcff" and rec.encode("utf-8", "surrogateescape") == b"bad \xff"


def test_jsonl_and_csv_follow_the_encoding(s3):
    jsonl = _split(s3, '{"name": "Zoë"}\n'.encode("cp1252"), "jsonl")
    assert _map(jsonl, encoding="cp1252")[0] == [{"name": "Zoë"}]
    with pytest.raises(runtime.TaskError, match="not valid utf-8"):
        _map(jsonl)
    csv = _split(s3, "städt,n\nKöln,1\n".encode("latin-1"), "csv")
    assert _map(csv, encoding="latin-1")[0] == [{"städt": "Köln", "n": "1"}]


def test_a_csv_header_is_decoded_in_every_split(s3):
    body = "stä,n\nx,1\ny,2\n".encode("latin-1")
    recs = [_map(_split(s3, body, "csv", start=s, end=s + 8), encoding="latin-1")[0]
            for s in range(0, len(body), 8)]
    assert sum(recs, []) == [{"stä": "x", "n": "1"}, {"stä": "y", "n": "2"}]


def test_bz2_objects_are_one_split_read_whole_even_with_several_streams(s3):
    assert compression_of("logs/a.txt.bz2") == "bz2" and compression_of("a.gz") == "gzip"
    body = bz2.compress(b"\xef\xbb\xbfh\nx\n") + bz2.compress(b"y\nz")  # two streams (pbzip2)
    split = _split(s3, body, compression="bz2")
    assert _map(split) == (["h", "x", "y", "z"], (4, 0))


def test_an_undecodable_record_in_a_compressed_object_is_named_by_its_decompressed_offset(s3):
    split = _split(s3, gzip.compress(b"ok\n\xff\n"), compression="gzip")
    with pytest.raises(runtime.TaskError, match=r"byte 3 \(decompressed\) of s3://"):
        _map(split)


def test_a_truncated_bz2_object_fails_clearly(s3):
    split = _split(s3, bz2.compress(b"x\n" * 1000)[:-10], compression="bz2")
    with pytest.raises(EOFError, match="truncated .bz2"):
        _map(split)


def test_decoding_a_block_whole_equals_decoding_its_records_one_by_one():
    block = b"a\r\n\xe9\n\xff\xfe\nlast"
    whole = readers.decoded_records(block, "latin-1")
    assert whole == ["a", "é", "ÿþ", "last"] and type(whole) is list
    strict = readers.decoded_records(block, "utf-8")
    assert isinstance(strict, readers.UndecodedBlock) and strict[0] == "a" and strict[3] == "last"
    assert [type(r) for r in strict[1:3]] == [readers.Undecodable, readers.Undecodable]


@pytest.mark.parametrize("values, named", [
    ({"encoding": "utf-16"}, "encoding"), ({"encoding": "no-such-codec"}, "encoding"),
    ({"errors": "ignore"}, "errors"), ({"columns": "a"}, "columns"), ({"columns": {"x": [1]}}, "columns"),
])
def test_decoding_options_are_checked_when_built(values, named):
    with pytest.raises(OptionError, match=named):
        JobOptions(**values)


def test_encoding_names_any_ascii_compatible_codec():
    assert JobOptions(encoding="latin-1").encoding == "latin-1"
    assert JobOptions(encoding="cp1252", errors="replace").errors == "replace"


def test_a_whole_bz2_object_is_decompressed(s3):
    from lambda_handlers.io import packed

    body = bz2.compress(b"first stream ") + bz2.compress(b"second")
    split = {**_split(s3, body, "whole", compression="bz2"), "format": "whole"}
    (block,) = packed.PackedInput(split).blocks()
    assert block == [(f"s3://{BUCKET}/{split['key']}", b"first stream second")]
