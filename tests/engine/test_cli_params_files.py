"""``smr run --param`` read as the job declares it and ``--file``: errors before any stack starts,
and a run on the local stack whose task reads both."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from airflow_provider_smr.cli import main

DATA = "smr-params-data"  # the bucket of tests/engine/test_job_params.py's stack
NO_ENDPOINT = "http://127.0.0.1:9"  # nothing listens: a command that reached AWS would fail otherwise
pytestmark = pytest.mark.timeout(600)

JOB = textwrap.dedent('''
    from airflow_provider_smr import MapReduceJob
    from lambda_handlers.context import job_file, job_params


    def sample(line):
        with open(job_file("prefix.txt")) as f:
            prefix = f.read().strip()
        if len(line) >= job_params()["min_length"]:
            label = job_params()["label"]  # declared str: "--param label=42" stays "42"
            with open(job_file("extra.txt")) as f:
                yield line, f"{prefix}{line}:{label}:{type(label).__name__}:{f.read()}"


    def first(line, values):
        yield line, min(values)


    job = MapReduceJob(mapper=sample, reducer=first, output_format="text",
                       params={"min_length": 0, "label": str}, files=["prefix.txt"])
''')


@pytest.fixture
def job_folder(tmp_path, monkeypatch):
    (tmp_path / "lines_job.py").write_text(JOB)
    (tmp_path / "prefix.txt").write_text("->\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def smr_run(*args):
    return main(["run", "lines_job.py:job", "--input", f"s3://{DATA}/cli-in/", "--output",
                 f"s3://{DATA}/cli-out/{uuid.uuid4().hex[:8]}/", *args])


@pytest.mark.parametrize("args, error", [
    (["--param", "min_length=long", "--param", "label=x"],
     "JobParamError: --param min_length=long: parameter 'min_length' must be an int like its default "
     "0, got str 'long'"),
    (["--param", "label=x", "--param", "min_lenght=3"],
     "JobParamError: --param min_lenght=3: the job has no parameter 'min_lenght'"),
    ([], "JobParamError: --param label=...: parameter 'label' is required (a str)"),
    (["--param", "label=x", "--file", "nowhere.txt"], "nowhere.txt' does not exist"),
])
def test_a_bad_param_or_file_is_one_line_before_any_stack_is_reached(job_folder, capsys, args, error):
    assert smr_run("--endpoint-url", NO_ENDPOINT, *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("smr: error: ") and error in err


def test_params_are_read_as_declared_and_files_reach_the_task(job_folder, deploy_engine, aws_endpoint,
                                                                aws_env, monkeypatch, capsys):
    engine = deploy_engine("smr-params", input_buckets=[DATA], memory_mb=256, timeout_s=30)
    engine.s3.put_object(Bucket=DATA, Key="cli-in/a.txt", Body=b"ab\nabcd\nabcdef\n")
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    (job_folder / "extra.txt").write_text("x")
    assert smr_run("--endpoint-url", aws_endpoint, "--stack-name", "smr-params", "--param",
                   "min_length=4", "--param", "label=42", "--file", "extra.txt", "--json") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lines = b"".join(engine.s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].read()
                     for uri in result["parts"])
    assert sorted(lines.splitlines()) == [b"->abcd:42:str:x", b"->abcdef:42:str:x"]
