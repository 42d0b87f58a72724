"""The ``smr`` job commands: argument parsing, and local input/output handling on the local stack."""

from __future__ import annotations

import argparse
import json

import pytest

from airflow_provider_smr.engine.commands import (
    LOCAL_BUCKET,
    CommandError,
    _parse_params,
    download_output,
    parse_inputs,
    register,
    upload_local_inputs,
)
from lambda_handlers.planning import dynamodb_tables, s3_buckets


def parser():
    p = argparse.ArgumentParser(prog="smr")
    register(p.add_subparsers(dest="command", required=True))
    return p


def test_run_arguments_parse_as_documented():
    args = parser().parse_args(["run", "jobs/wc.py:job", "--input", "s3://b/in/", "--input", "s3://b/x",
                                "--output", "s3://b/out/", "--num-reducers", "4", "--split-size", "1MiB",
                                "--local", "--overwrite", "--json"])
    assert (args.job, args.input, args.output) == ("jobs/wc.py:job", ["s3://b/in/", "s3://b/x"], "s3://b/out/")
    assert (args.num_reducers, args.split_size, args.local, args.overwrite, args.json) == (4, 2**20, True, True, True)
    assert args.stack_name == "smr"


def test_local_and_endpoint_url_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "m:j", "--input", "a", "--output", "b", "--local",
                             "--endpoint-url", "http://127.0.0.1:4566"])


def test_status_and_cancel_take_a_job_id():
    assert parser().parse_args(["status", "job-1", "--json"]).job_id == "job-1"
    assert parser().parse_args(["cancel", "job-1", "--stack-name", "s"]).stack_name == "s"


@pytest.mark.parametrize("values,expected", [
    (["s3://b/a"], "s3://b/a"),
    (["s3://b/a", "local.txt"], ["s3://b/a", "local.txt"]),
    (["users=s3://b/u.csv", "orders=s3://b/o/", "orders=s3://b/o2/"],
     {"users": "s3://b/u.csv", "orders": ["s3://b/o/", "s3://b/o2/"]}),
    (["s3://b/k=v/part"], "s3://b/k=v/part"),
])
def test_inputs_become_a_uri_a_list_or_named_inputs(values, expected):
    assert parse_inputs(values) == expected


def test_named_and_unnamed_inputs_cannot_mix():
    with pytest.raises(CommandError, match="not both"):
        parse_inputs(["users=s3://b/u", "s3://b/x"])


def test_params_are_json_or_strings():
    assert _parse_params(["k=3", "name=abc", "xs=[1, 2]"]) == {"k": 3, "name": "abc", "xs": [1, 2]}
    with pytest.raises(CommandError, match="KEY=VALUE"):
        _parse_params(["novalue"])


def test_buckets_of_an_input_spec():
    assert s3_buckets({"a": "s3://one/x", "b": ["s3://two/y", "s3://one/z"]}) == ["one", "two"]
    assert s3_buckets("s3://out/p/") == ["out"]


def test_tables_of_input_and_output_specs_each_once_in_order():
    specs = ({"a": "dynamodb://T1", "b": ["s3://x/in/", "dynamodb://T2?segments=2"]}, "dynamodb://T1")
    assert dynamodb_tables(*specs) == ["T1", "T2"]
    assert s3_buckets(*specs) == ["x"]


@pytest.fixture
def s3(aws_clients, aws_endpoint):
    client = aws_clients(aws_endpoint).s3
    client.create_bucket(Bucket=LOCAL_BUCKET)
    return client


def test_local_files_and_folders_are_uploaded_and_s3_uris_kept(s3, tmp_path):
    (tmp_path / "a.txt").write_text("a\n")
    folder = tmp_path / "dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_text("1\n")
    (folder / "sub" / "two.txt").write_text("2\n")
    spec = upload_local_inputs(s3, {"x": str(tmp_path / "a.txt"), "y": [str(folder), "s3://other/k"]})
    assert spec["x"].startswith(f"s3://{LOCAL_BUCKET}/inputs/x-") and spec["x"].endswith("/a.txt")
    assert spec["y"][1] == "s3://other/k" and spec["y"][0].endswith("/")
    prefix = spec["y"][0][len(f"s3://{LOCAL_BUCKET}/"):]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LOCAL_BUCKET, Prefix=prefix)["Contents"]]
    assert keys == [prefix + "one.txt", prefix + "sub/two.txt"]


def test_missing_local_input_is_one_clear_error(s3, tmp_path):
    with pytest.raises(CommandError, match="neither an S3 URI nor an existing local path"):
        upload_local_inputs(s3, str(tmp_path / "nope.txt"))


def test_parts_and_manifest_are_downloaded(s3, tmp_path):
    for key, body in {"o/part-00000.jsonl": b'{"key": "a", "value": 1}\n', "o/_SUCCESS": b"{}"}.items():
        s3.put_object(Bucket=LOCAL_BUCKET, Key=key, Body=body)
    result = {"parts": [f"s3://{LOCAL_BUCKET}/o/part-00000.jsonl"], "manifest": f"s3://{LOCAL_BUCKET}/o/_SUCCESS"}
    download_output(s3, result, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "part-00000.jsonl").read_text()) == {"key": "a", "value": 1}
    assert (tmp_path / "out" / "_SUCCESS").read_text() == "{}"


def test_smr_run_refuses_a_missing_input_bucket_before_deploying(aws_endpoint, aws_env, aws_clients):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_smr.cli", "run", "dags_examples/jobs/word_count.py:word_count",
         "--input", "s3://smr-no-such-bucket/in/", "--output", "s3://smr-no-such-bucket-either/out/",
         "--endpoint-url", aws_endpoint, "--stack-name", "smr-cli-never"],
        cwd=root, env={**aws_env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smr: error:")]
    assert errors == ["smr: error: InputNotFoundError: --input 's3://smr-no-such-bucket/in/': bucket "
                      "'smr-no-such-bucket' does not exist"]
    stacks = aws_clients(aws_endpoint).cloudformation.list_stacks()["StackSummaries"]
    assert not [s for s in stacks if s["StackName"] == "smr-cli-never"]  # the missing stack was not deployed
