"""Side files (``MapReduceJob(files=...)``): where relative paths point, and the checks at submit."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from airflow_provider_smr import job_files
from airflow_provider_smr.job import JobDefinitionError, MapReduceJob


def words(line):
    yield from ((w, 1) for w in line.split())


def build_in_module(folder: Path, files: list[str]) -> MapReduceJob:
    """Build a job the way a job module in ``folder`` does (its ``__file__`` sets the base)."""
    module = types.ModuleType("user_jobs")
    module.__file__ = str(folder / "user_jobs.py")
    module.words = words
    namespace = {**vars(module), "MapReduceJob": MapReduceJob}
    exec(f"job = MapReduceJob(mapper=words, files={files!r})", namespace)
    return namespace["job"]


def test_relative_paths_are_relative_to_the_module_that_builds_the_job(tmp_path, monkeypatch):
    (tmp_path / "stop_words.txt").write_text("the\n")
    monkeypatch.chdir("/")
    job = build_in_module(tmp_path, ["stop_words.txt"])
    assert job.to_spec().files == {"stop_words.txt": {"size": 4, "source": str(tmp_path / "stop_words.txt")}}


def test_without_a_module_file_relative_paths_are_relative_to_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "model.bin").write_bytes(b"\0" * 10)
    monkeypatch.chdir(tmp_path)
    namespace = {"MapReduceJob": MapReduceJob, "words": words}
    exec("job = MapReduceJob(mapper=words, files=['model.bin'])", namespace)
    assert namespace["job"].to_spec().files["model.bin"]["size"] == 10


def test_a_missing_file_is_an_error_at_submit_not_when_the_job_is_built(tmp_path):
    job = MapReduceJob(mapper=words, files=[tmp_path / "later.txt"])
    with pytest.raises(JobDefinitionError, match=r"files: '.*later\.txt' does not exist"):
        job.dumps()
    (tmp_path / "later.txt").write_text("now\n")
    assert job.to_spec().files["later.txt"]["size"] == 4


def test_a_folder_is_not_a_side_file(tmp_path):
    with pytest.raises(job_files.JobFileError, match="is a folder, not a file"):
        MapReduceJob(mapper=words, files=[tmp_path]).to_spec()


def test_files_over_the_limit_are_refused_naming_the_file(tmp_path, monkeypatch):
    from lambda_handlers import protocol

    monkeypatch.setattr(protocol, "MAX_JOB_FILES_BYTES", 1024**2)
    (tmp_path / "a.txt").write_bytes(b"a" * 600_000)
    (tmp_path / "b.bin").write_bytes(b"b" * 600_000)
    job = MapReduceJob(mapper=words, files=[tmp_path / "a.txt", tmp_path / "b.bin"])
    with pytest.raises(job_files.JobFileError, match=r"'.*b\.bin' \(0\.6 MiB\) brings the job's files to "
                                                     r"1\.1 MiB, over the limit of 1\.0 MiB"):
        job.to_spec()


def test_two_files_of_one_name_are_refused_when_the_job_is_built(tmp_path):
    with pytest.raises(JobDefinitionError, match="have the same name 'x.txt'"):
        MapReduceJob(mapper=words, files=[tmp_path / "a" / "x.txt", tmp_path / "b" / "x.txt"])


def test_a_single_path_instead_of_a_list_says_what_to_write():
    with pytest.raises(JobDefinitionError, match=r"write files=\['stop_words.txt'\]"):
        MapReduceJob(mapper=words, files="stop_words.txt")


def test_with_files_adds_files_relative_to_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "extra.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    base = MapReduceJob(mapper=words)
    job = base.with_files(["extra.txt"])
    assert [f.path for f in job.files] == [tmp_path / "extra.txt"] and base.files == ()
