"""Line-exact splits: the property test against the local stack's S3 Range semantics, plus edge cases."""

from __future__ import annotations

import gzip
import itertools

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from lambda_handlers import runtime
from lambda_handlers.io import readers, splits

BUCKET = "smr-data-test"
_seq = itertools.count()

line_st = st.lists(st.sampled_from([b"a", b"b", b" ", b"\r", b"\xef", b"\xbb", b"\xbf", b"\xc3\xa9"]),
                   max_size=12).map(b"".join)
# Some lines longer than any split: up to 40 bytes against split sizes from 1.
long_line_st = st.integers(13, 40).map(lambda n: b"x" * n)


@st.composite
def objects(draw):
    lines = draw(st.lists(st.one_of(line_st, line_st, long_line_st), max_size=8))
    lines = [ln.rstrip(b"\r") for ln in lines]  # a trailing \r before \n would be a CRLF
    terms = [draw(st.sampled_from([b"\n", b"\r\n"])) for _ in lines]
    bom = draw(st.booleans())
    trailing = draw(st.booleans())
    if lines and not bom:
        assume(not lines[0].startswith(splits.BOM))
    body = b"".join(ln + t for ln, t in zip(lines, terms, strict=True))
    expected = list(lines)
    if lines and not trailing:
        body = body[: -len(terms[-1])]
        if lines[-1] == b"":
            expected.pop()  # an empty unterminated last line is nothing at all
        elif lines[-1].endswith(b"\r"):
            assume(False)
    data = (splits.BOM if bom else b"") + body
    # From 1 byte up; at most ~16 splits per object keeps the request count (and the test) small.
    split_size = draw(st.integers(max(1, len(data) // 16), max(1, len(data) + 2)))
    return data, expected, split_size


def _read_all(s3, data: bytes, split_size: int, chunk: int) -> list[bytes]:
    key = f"prop/{next(_seq)}.txt"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"]
    fetch = splits.s3_fetch(BUCKET, key, etag, chunk=chunk)
    out = []
    for start in range(0, len(data), split_size):
        out += splits.split_lines(fetch, start, start + split_size, len(data))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=objects(), chunk=st.sampled_from([1, 3, 1 << 20]), ext=st.sampled_from([1, 2, 64 * 1024]))
@example(case=(b"", [], 1), chunk=1, ext=1)  # empty object
@example(case=(b"a", [b"a"], 1), chunk=1, ext=1)  # 1-byte objects
@example(case=(b"\n", [b""], 1), chunk=1, ext=1)
@example(case=(splits.BOM + b"\r\n\r\nab", [b"", b"", b"ab"], 1), chunk=1, ext=1)
def test_splits_concatenate_to_the_objects_lines_each_exactly_once(s3, case, chunk, ext):
    data, expected, split_size = case
    saved = splits.FIRST_EXTENSION
    splits.FIRST_EXTENSION = ext
    try:
        assert _read_all(s3, data, split_size, chunk) == expected
    finally:
        splits.FIRST_EXTENSION = saved
    assert splits.reference_lines(data) == expected


def test_split_keeps_last_line_without_newline(s3):
    assert _read_all(s3, b"ab\ncd", 2, 1 << 20) == [b"ab", b"cd"]


def test_crlf_is_one_terminator_and_bom_is_stripped_only_at_offset_zero(s3):
    data = splits.BOM + b"x\r\n" + splits.BOM + b"y\r\n"
    assert _read_all(s3, data, 4, 1 << 20) == [b"x", splits.BOM + b"y"]


def test_a_split_inside_one_long_line_owns_nothing(s3):
    data = b"a" * 50 + b"\nz\n"
    key = "long.txt"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"]
    fetch = splits.s3_fetch(BUCKET, key, etag)
    assert splits.split_lines(fetch, 10, 20, len(data)) == []
    assert splits.split_lines(fetch, 0, 10, len(data)) == [b"a" * 50]
    assert splits.split_lines(fetch, 50, 52, len(data)) == [b"z"]


def test_empty_object_has_no_records_and_makes_no_request(s3):
    calls = []
    assert splits.split_lines(lambda a, b: calls.append((a, b)) or iter(()), 0, 10, 0) == []
    assert calls == []


def test_a_changed_object_fails_with_a_clear_error(s3):
    etag = s3.put_object(Bucket=BUCKET, Key="chg.txt", Body=b"one\ntwo\n")["ETag"]
    s3.put_object(Bucket=BUCKET, Key="chg.txt", Body=b"three\n")
    fetch = splits.s3_fetch(BUCKET, "chg.txt", etag)
    with pytest.raises(runtime.ObjectChangedError, match=r"object s3://smr-data-test/chg.txt changed during the job"):
        splits.split_lines(fetch, 0, 4, 8)


def _split(s3, key: str, body: bytes, start: int, end: int, fmt: str, compression=None) -> dict:
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"]
    return {"bucket": BUCKET, "key": key, "etag": etag, "start": start, "end": end,
            "size": len(body), "format": fmt, "compression": compression}


def _records(split: dict) -> list:
    src = readers.SplitInput(split)
    return [r for r in map(src.parse, src) if r is not readers.SKIP]


def test_csv_header_belongs_to_every_split(s3):
    body = b"a,b\n1,2\n3,4\n5,6\n"
    recs = [_records(_split(s3, "h.csv", body, s, s + 5, "csv")) for s in range(0, len(body), 5)]
    assert sum(recs, []) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}, {"a": "5", "b": "6"}]
    assert recs[0] == [{"a": "1", "b": "2"}]  # the header itself is not a record


def test_csv_quoted_newline_is_a_clear_error(s3):
    split = _split(s3, "q.csv", b'a,b\n"x\ny",1\n', 0, 100, "csv")
    with pytest.raises(readers.CsvQuotedNewlineError, match="quoted fields with embedded newlines"):
        _records(split)


def test_gzip_object_is_read_whole_as_one_split(s3):
    body = gzip.compress(b"\xef\xbb\xbfh\nx\n") + gzip.compress(b"y")  # two members
    split = _split(s3, "g.txt.gz", body, 0, len(body), "text", "gzip")
    assert _records(split) == ["h", "x", "y"]


def test_jsonl_records_skip_blank_lines(s3):
    split = _split(s3, "j.jsonl", b'{"a": 1}\n\n  \n[2]\n3', 0, 100, "jsonl")
    assert _records(split) == [{"a": 1}, [2], 3]
