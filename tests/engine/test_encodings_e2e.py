"""Text encodings and .bz2 inputs end to end on the local stack with deployed functions (issue 15):
latin-1 data read with encoding="latin-1", invalid UTF-8 as bad records, errors="replace"."""

from __future__ import annotations

import bz2
import json
import uuid

import pytest

from airflow_provider_smr.engine.runner import JobFailedError
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers.options import JobOptions

DATA = "smr-encodings-data"
pytestmark = pytest.mark.timeout(600)


def tokenize(line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(values)


WORD_COUNT = MapReduceJob(mapper=tokenize, reducer=total, name="wc")


@pytest.fixture(scope="module")
def engine(deploy_engine):
    return deploy_engine("smr-encodings", input_buckets=[DATA], memory_mb=256, timeout_s=60)


def _run(engine, key: str, body: bytes, **options):
    engine.s3.put_object(Bucket=DATA, Key=key, Body=body)
    return engine.runner.run(WORD_COUNT, input=f"s3://{DATA}/{key}",
                             output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
                             options=JobOptions(**options), poll_interval=0.2, timeout=300)


def _counts(engine, result) -> dict:
    out = {}
    for uri in result["parts"]:
        body = engine.s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].read()
        out.update((r["key"], r["value"]) for r in map(json.loads, body.decode().splitlines()))
    return out


def test_latin1_input_is_read_with_encoding_latin1(engine):
    result = _run(engine, "enc/latin1.txt", "café crème\ncafé\n".encode("latin-1"), encoding="latin-1")
    assert _counts(engine, result) == {"café": 2, "crème": 1}


def test_invalid_utf8_is_a_bad_record_counted_against_max_bad_records(engine):
    body = b"good words\nbad \xff byte\nmore good\n"
    result = _run(engine, "enc/bad.txt", body, max_bad_records=1)
    assert _counts(engine, result) == {"good": 2, "words": 1, "more": 1}
    assert result["counters"]["bad_records"] == 1
    with pytest.raises(JobFailedError) as err:
        _run(engine, "enc/bad.txt", body)
    assert f"byte 11 of s3://{DATA}/enc/bad.txt" in str(err.value)
    assert "not valid utf-8" in str(err.value) and "errors='replace'" in str(err.value)


def test_errors_replace_reads_invalid_bytes_as_the_replacement_character(engine):
    result = _run(engine, "enc/replace.txt", b"bad \xff\nbad\n", errors="replace")
    assert _counts(engine, result) == {"bad": 2, "\ufffd": 1}


def test_a_bz2_input_is_read_whole(engine):
    body = bz2.compress(b"x y\n" * 5000) + bz2.compress(b"z")
    result = _run(engine, "enc/many.txt.bz2", body, split_size=1024)
    assert _counts(engine, result) == {"x": 5000, "y": 5000, "z": 1}


def test_a_parquet_input_on_a_stack_without_pyarrow_says_how_to_add_it(engine):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"line": ["a b"]}), buf)
    with pytest.raises(JobFailedError, match=r"input_format='parquet' needs pyarrow: add requirements=\['pyarrow'\]"):
        _run(engine, "enc/rows.parquet", buf.getvalue(), max_attempts=1)
