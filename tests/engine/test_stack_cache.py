"""``smr run`` keeps the stack's description between runs; a stack that changed since is described
again and the job still gives the right answer (engine/stack_cache.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from airflow_provider_smr.cli import main
from lambda_handlers import protocol

ROOT = Path(__file__).resolve().parents[2]
DATA = "smr-e2e-data"  # the bucket of tests/engine/test_e2e.py's stack
STACK = "smr-e2e"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def cli(deploy_engine, aws_endpoint, aws_env, monkeypatch, tmp_path, capsys):
    """``cli()``: ``smr run`` of the README's word count on a 3-line input, in this process, with
    its own cache folder; returns the result dict. ``.entry()``: the cache entry as JSON."""
    engine = deploy_engine(STACK, input_buckets=[DATA])
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SMR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SMR_STACK_CACHE_S", "300")  # the suite runs with the cache off (conftest)
    monkeypatch.chdir(ROOT)
    key = f"stack-cache/{uuid.uuid4().hex[:8]}.txt"
    engine.s3.put_object(Bucket=DATA, Key=key, Body=b"a b\nb c\nc c\n")

    class Cli:
        deployment = engine
        input = f"s3://{DATA}/{key}"

        def __call__(self, job: str = "dags_examples/jobs/word_count.py:word_count", status: int = 0,
                     *flags: str) -> dict:
            capsys.readouterr()
            output = f"s3://{DATA}/stack-cache-out/{uuid.uuid4().hex[:8]}/"
            assert main(["run", job, "--input", f"s3://{DATA}/{key}", "--output", output, "--num-reducers", "1",
                         "--endpoint-url", aws_endpoint, "--stack-name", STACK, "--json", *flags]) == status
            out = capsys.readouterr().out.strip()
            return json.loads(out.splitlines()[-1]) if out else {}

        def entries(self) -> list[Path]:
            return sorted((tmp_path / "stacks").glob("*.json"))

        def entry(self) -> dict:
            [path] = self.entries()
            return json.loads(path.read_text())

        def rewrite(self, **stack_fields) -> None:
            [path] = self.entries()
            doc = json.loads(path.read_text())
            doc["stack"].update(stack_fields)
            path.write_text(json.dumps(doc))

        def counts(self, result: dict) -> dict:
            s3 = engine.s3
            pairs = [json.loads(line) for uri in result["parts"]
                     for line in s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].iter_lines()]
            return {p["key"]: p["value"] for p in pairs}

    return Cli()


EXPECTED = {"a": 1, "b": 2, "c": 3}


def test_the_second_run_uses_the_description_the_first_kept(cli):
    assert cli.counts(cli()) == EXPECTED
    kept = cli.entry()
    assert kept["stack"]["work_bucket"] == cli.deployment.stack.work_bucket
    assert kept["stack"]["versions"] == cli.deployment.stack.versions
    assert cli.counts(cli()) == EXPECTED
    assert cli.entry()["saved_at"] == kept["saved_at"]  # used as kept, not described again


def test_a_stack_whose_work_bucket_is_gone_is_described_again(cli):
    cli()
    cli.rewrite(work_bucket="smr-no-such-work-bucket")  # as if the stack was deleted and made again
    assert cli.counts(cli()) == EXPECTED
    assert cli.entry()["stack"]["work_bucket"] == cli.deployment.stack.work_bucket


def test_collected_function_versions_cancel_the_written_job_and_run_it_on_fresh_ones(cli):
    cli()
    stale = {**cli.deployment.stack.versions, "mapper": "999"}  # a version deleted since it was kept
    cli.rewrite(versions=stale)
    result = cli()
    assert cli.counts(result) == EXPECTED
    assert cli.entry()["stack"]["versions"] == cli.deployment.stack.versions
    s3, bucket, runner = cli.deployment.s3, cli.deployment.stack.work_bucket, cli.deployment.runner
    abandoned = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="jobs/word_count-"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/plan.json"):
                plan = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                if plan.get("versions", {}).get("mapper") == "999":
                    abandoned.append(plan["job_id"])
    assert len(abandoned) == 1 and abandoned[0] != result["job_id"]
    assert runner.status(abandoned[0]).state == protocol.CANCELLED  # nothing of it is left running


def test_a_failed_run_forgets_the_description(cli, tmp_path):
    cli()
    assert cli.entries()
    (tmp_path / "failing_job.py").write_text(
        "from airflow_provider_smr import MapReduceJob\n\n\n"
        "def boom(line):\n    raise ValueError('no')\n    yield line, 1\n\n\n"
        "job = MapReduceJob(mapper=boom, name='failing')\n")
    cli(f"{tmp_path / 'failing_job.py'}:job", 1, "--max-attempts", "1")  # fails in the stack
    assert not cli.entries()
    assert cli.counts(cli()) == EXPECTED
    assert cli.entries()  # described again and kept


def test_smr_stack_cache_s_zero_turns_the_cache_off(cli, monkeypatch):
    monkeypatch.setenv("SMR_STACK_CACHE_S", "0")
    assert cli.counts(cli()) == EXPECTED
    assert cli.counts(cli()) == EXPECTED
    assert not cli.entries()


def test_a_warm_smr_run_imports_nothing_once_its_job_is_seen_done(cli, aws_endpoint, aws_env, tmp_path):
    """What the result and its report need is imported while the job runs, not after it; the
    run never makes a botocore session (its calls are ``engine.lite_aws``'s)."""
    import os
    import subprocess
    import sys

    cli()  # the stack's description is kept: the process below runs as a warm ``smr run`` does
    code = ("import sys\n"
            "from airflow_provider_smr import cli\n"
            "from airflow_provider_smr.engine import runner\n"
            "polled = []\n"
            "poll = runner.JobRunner._poll\n"
            "def recorded(self, job_id):\n"
            "    out = poll(self, job_id)\n"
            "    polled.append(set(sys.modules))\n"
            "    return out\n"
            "runner.JobRunner._poll = recorded\n"
            "status = cli.main(sys.argv[1:])\n"
            "print(status, sorted(m for m in set(sys.modules) - polled[-1] if m.startswith(('airflow_provider_smr', "
            "'lambda_handlers'))), 'botocore.session' in sys.modules, 'boto3' in sys.modules)\n")
    env = {**os.environ, **aws_env, "PYTHONPATH": str(ROOT), "SMR_CACHE_DIR": str(tmp_path),
           "SMR_STACK_CACHE_S": "300"}
    output = f"s3://{DATA}/stack-cache-out/{uuid.uuid4().hex[:8]}/"
    done = subprocess.run([sys.executable, "-c", code, "run", "dags_examples/jobs/word_count.py:word_count",
                           "--input", cli.input, "--output", output, "--num-reducers", "1", "--endpoint-url",
                           aws_endpoint, "--stack-name", STACK, "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
    # ... and its S3 and Lambda calls never needed botocore's session or boto3 (engine.lite_aws)
    assert done.stdout.splitlines()[-1] == "0 [] False False", done.stderr
