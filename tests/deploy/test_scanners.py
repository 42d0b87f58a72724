"""The rendered stack passes cfn-lint, checkov and parliament, but for the listed exceptions.

Two renderings, each once per module: the defaults, and every option on (KMS key, VPC, on-failure
destination, reserved concurrency, tables, layers...). cfn-lint and parliament (the functions'
policy) must find nothing; checkov's failures must be exactly those ``scanner_exceptions.toml``
lists with a reason. checkov pins boto3 far below this project's, so it runs from its own
environment (``uv tool run``, cached after the first run) unless it is importable here.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from airflow_provider_smr.deploy.policy import resolve
from airflow_provider_smr.deploy.template import POLICY, TemplateSettings, build_template, render, stamp_template

CHECKOV = "checkov==3.3.30"
EXCEPTIONS = Path(__file__).with_name("scanner_exceptions.toml")
REFS = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
        "AWS::StackName": "smr", "WorkBucket": "smr-workbucket-1a2b3c",
        "WorkBucket.Arn": "arn:aws:s3:::smr-workbucket-1a2b3c",
        "FunctionRole.Arn": "arn:aws:iam::123456789012:role/smr/eu-west-1/smr/smr-FunctionRole-1A2B3C"}
BASE = dict(stack_name="smr", artifacts_bucket="smr-artifacts-123456789012-eu-west-1", code_key="smr/lambda/abc.zip",
            code_sha256="abc", input_buckets=("s3://my-data/logs/", "s3://my-data/dims/day 1.csv"),
            output_buckets=("s3://my-data/counts/",))
CONFIGS = {
    "defaults": TemplateSettings(**BASE),
    "hardened": TemplateSettings(
        **BASE, tables=("Scores",), layers=("arn:aws:lambda:eu-west-1:123456789012:layer:numpy:3",),
        reserved_concurrency=10, max_running_tasks=50, mapper_memory_mb=2048, reducer_memory_mb=3008,
        architecture="arm64", kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        subnet_ids=("subnet-0123456789abcdef0", "subnet-0fedcba9876543210"),
        security_group_ids=("sg-0123456789abcdef0",),
        on_failure_destination="arn:aws:sqs:eu-west-1:123456789012:smr-dropped-events"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("templates")
    paths = {}
    for name, settings in CONFIGS.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(render(stamp_template(build_template(settings), "f00d")))
    return paths


def _checkov_command() -> list[str]:
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.fail(f"checkov is needed: install uv (make install does) or `pip install {CHECKOV}` elsewhere")
    return [uv, "tool", "run", "--from", CHECKOV, "checkov"]


@pytest.mark.timeout(600)
def test_checkov_fails_only_the_checks_the_project_deliberately_fails(rendered):
    command = [*_checkov_command(), "--framework", "cloudformation", "--compact", "--quiet", "-o", "json",
               "--skip-download", *(arg for path in rendered.values() for arg in ("-f", str(path)))]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                         cwd=next(iter(rendered.values())).parent)
    report = json.loads(run.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = {(Path(c["file_path"]).stem, c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    assert report["summary"]["passed"] > 40  # it did check the templates
    excepted = tomllib.loads(EXCEPTIONS.read_text())["checkov"]
    assert all(entry.get("reason", "").strip() for entry in excepted), "every exception needs its reason"

    def listed(config: str, check: str, resource: str) -> bool:
        return any(check == e["check"] and config in e["configs"]
                   and any(fnmatch.fnmatch(resource.split(".", 1)[1], p) or resource == p for p in e["resources"])
                   for e in excepted)

    unexpected = sorted(f for f in failed if not listed(*f))
    assert unexpected == [], "fix these, or list them with a reason in scanner_exceptions.toml"
    stale = sorted((e["check"], config) for e in excepted for config in e["configs"]
                   if not any(f[0] == config and f[1] == e["check"] for f in failed))
    assert stale == [], "these exceptions no longer fail: remove them from scanner_exceptions.toml"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_cfn_lint_finds_nothing(rendered, config):
    from cfnlint.api import ManualArgs, lint

    matches = lint(rendered[config].read_text(), config=ManualArgs(regions=["eu-west-1"]))
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_parliament_finds_nothing_in_the_functions_policy(config):
    from parliament import analyze_policy_string

    document = resolve(build_template(CONFIGS[config])["Resources"][POLICY]["Properties"]["PolicyDocument"], REFS)
    findings = analyze_policy_string(json.dumps(document)).findings
    assert [(f.issue, f.detail) for f in findings] == []
