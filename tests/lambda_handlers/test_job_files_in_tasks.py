"""Side files inside tasks (``context.job_file``) and value-only ``text`` output, through the real
handlers against the local stack's S3."""

from __future__ import annotations

import os
import uuid

import pytest

from airflow_provider_smr import job_files
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers import context, jobfiles, protocol
from lambda_handlers.io import writers
from tests.lambda_handlers.conftest import WORK_BUCKET


def words_not_stopped(line):
    with open(context.job_file("stop_words.txt")) as f:
        stop = set(f.read().split())
    for word in line.split():
        if word not in stop:
            yield word, 1


def count_line(word, counts):
    yield word, f"{word}: {sum(counts)}"


def test_a_mapper_reads_a_side_file_and_the_output_is_its_values(harness, chain, tmp_path):
    (tmp_path / "stop_words.txt").write_text("the\na\n")
    spec = MapReduceJob(mapper=words_not_stopped, reducer=count_line, output_format="text",
                        files=[tmp_path / "stop_words.txt"]).to_spec()
    job_id = f"t-{uuid.uuid4().hex[:12]}"
    job_files.upload(harness.s3, WORK_BUCKET, job_id, spec.files)
    objs = [harness.put("sf/a.txt", b"the cat sat on a mat\nthe dog sat\n" * 20)]
    plan = harness.submit(spec, harness.splits(objs, 200), [2], output_format="text", job_id=job_id)
    chain(workers=2).run(plan["events"])
    lines, manifest = harness.output(plan)
    assert sorted(lines) == [b"cat: 20", b"dog: 20", b"mat: 20", b"on: 20", b"sat: 40"]
    assert all(p["key"].endswith(".txt") for p in manifest["parts"])


def test_a_side_file_is_downloaded_once_per_process(s3, tmp_path):
    job_id = f"t-{uuid.uuid4().hex[:12]}"
    s3.put_object(Bucket=WORK_BUCKET, Key=protocol.job_file_key(job_id, "m.bin"), Body=b"12345")
    files = {"m.bin": {"size": 5, "source": "/nowhere/m.bin"}}
    path = jobfiles.local_path(WORK_BUCKET, job_id, files, "m.bin")
    assert open(path, "rb").read() == b"12345"
    s3.delete_object(Bucket=WORK_BUCKET, Key=protocol.job_file_key(job_id, "m.bin"))
    assert jobfiles.local_path(WORK_BUCKET, job_id, files, "m.bin") == path  # no second GET


def test_a_copy_that_is_not_what_was_shipped_is_an_error(s3):
    job_id = f"t-{uuid.uuid4().hex[:12]}"
    s3.put_object(Bucket=WORK_BUCKET, Key=protocol.job_file_key(job_id, "m.bin"), Body=b"123")
    with pytest.raises(jobfiles.JobFileError, match="has 3 bytes, but 5 were shipped"):
        jobfiles.local_path(WORK_BUCKET, job_id, {"m.bin": {"size": 5, "source": ""}}, "m.bin")


def test_other_jobs_copies_make_room_for_a_new_jobs_files(s3, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_JOB_FILES_BYTES", 8)
    old, new = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    for job_id in (old, new):
        s3.put_object(Bucket=WORK_BUCKET, Key=protocol.job_file_key(job_id, "f"), Body=b"12345")
    entry = {"f": {"size": 5, "source": ""}}
    first = jobfiles.local_path(WORK_BUCKET, old, entry, "f")
    second = jobfiles.local_path(WORK_BUCKET, new, entry, "f")
    assert not os.path.exists(first) and os.path.exists(second)


def test_asking_for_a_file_the_job_does_not_ship_lists_the_ones_it_does():
    with pytest.raises(LookupError, match=r"job_file\('stopwords.txt'\): the job ships no file "
                                          r"'stopwords.txt'; its files: stop_words.txt"):
        jobfiles.local_path(WORK_BUCKET, "j", {"stop_words.txt": {"size": 1}}, "stopwords.txt")


def test_job_file_outside_a_task_says_where_it_works():
    with pytest.raises(LookupError, match="works only inside a task"):
        context.job_file("x")


def test_text_parts_hold_values_a_str_as_it_is_anything_else_as_json():
    part = writers.part_writer("text")
    part.write_batch([("k1", "plain line"), ("k2", {"n": 1}), ("k3", 3), ("k4", None), ("k5", "é")])
    assert part.getvalue() == 'plain line\n{"n": 1}\n3\nnull\né\n'.encode()
    assert part.records == 5 and writers.extension("text") == "txt"
