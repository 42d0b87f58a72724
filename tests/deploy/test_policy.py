"""The role's grants are exactly the declared prefixes (rendered policy, exact ARNs; no AWS)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_smr.deploy.errors import StackSettingsError
from airflow_provider_smr.deploy.template import TemplateSettings, build_template, merge_locations
from lambda_handlers.grants import GrantError, JobGrants, Location, session_policy
from lambda_handlers.planning import s3_locations
from tests.deploy.test_deploy_template import allow_statements


def statements(inputs=(), outputs=()):
    settings = TemplateSettings(stack_name="smr-test", artifacts_bucket="smr-artifacts-x", code_key="k.zip",
                                code_sha256="abc", input_buckets=tuple(inputs), output_buckets=tuple(outputs))
    return {s["Sid"]: s for s in allow_statements(build_template(settings))}


def test_an_output_prefix_never_covers_a_longer_name_beside_it():
    granted = statements(inputs=["s3://my-data/in/"], outputs=["my-data/out"])
    assert granted["OutputObjects"]["Resource"] == ["arn:aws:s3:::my-data/out/*"]
    assert granted["InputObjects"]["Resource"] == ["arn:aws:s3:::my-data/in/*"]
    assert granted["OutputObjects"]["Action"] == [
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    assert granted["InputObjects"]["Action"] == ["s3:GetObject"]
    assert granted["OutputListMyData"]["Condition"] == {"StringLike": {"s3:prefix": ["out/", "out/*"]}}
    assert granted["InputListMyData"]["Condition"] == {"StringLike": {"s3:prefix": ["in/", "in/*"]}}
    assert granted["OutputListMyData"]["Resource"] == ["arn:aws:s3:::my-data"]
    # Both are kept when declared together: out/ does not cover outage/.
    both = statements(outputs=["s3://my-data/out", "s3://my-data/outage"])
    assert both["OutputObjects"]["Resource"] == ["arn:aws:s3:::my-data/out/*", "arn:aws:s3:::my-data/outage/*"]


def test_an_input_named_without_a_slash_is_that_object_or_that_folder():
    granted = statements(inputs=["s3://my-data/in/day1.csv"])
    assert granted["InputObjects"]["Resource"] == [
        "arn:aws:s3:::my-data/in/day1.csv", "arn:aws:s3:::my-data/in/day1.csv/*"]
    assert granted["InputListMyData"]["Condition"] == {
        "StringLike": {"s3:prefix": ["in/day1.csv", "in/day1.csv/", "in/day1.csv/*"]}}


def test_a_bucket_root_grants_the_bucket_and_lists_it_without_condition():
    granted = statements(inputs=["raw-bucket"], outputs=["s3://out-bucket"])
    assert granted["InputObjects"]["Resource"] == ["arn:aws:s3:::raw-bucket/*"]
    assert "Condition" not in granted["InputListRawBucket"]
    assert granted["OutputObjects"]["Resource"] == ["arn:aws:s3:::out-bucket/*"]
    assert "Condition" not in granted["OutputListOutBucket"]


def test_iam_wildcards_in_a_key_are_granted_literally():
    granted = statements(outputs=["s3://my-data/price$ list (€)/"])
    assert granted["OutputObjects"]["Resource"] == ["arn:aws:s3:::my-data/price${$} list (€)/*"]
    assert granted["OutputListMyData"]["Condition"] == {
        "StringLike": {"s3:prefix": ["price${$} list (€)/", "price${$} list (€)/*"]}}
    assert Location.parse("s3://bkt/a*b?", folder=True).object_patterns() == ["a${*}b${?}/*"]  # an output
    # In an input, * ? [ are a glob; [...] cannot be said in IAM and widens to *.
    assert Location("b", "logs/2024-[01]*.gz").object_patterns() == ["logs/2024-*"]


def test_declared_locations_accumulate_per_prefix_across_deploys():
    assert merge_locations(["s3://my-data/out"], ["s3://my-data/outage"], folder=True) == (
        "s3://my-data/out/", "s3://my-data/outage/")
    assert merge_locations(["s3://my-data/out/"], ["s3://my-data/out/deeper/", "my-data"]) == ("s3://my-data/",)
    assert merge_locations(["s3://bkt/in/day1.csv"], ["s3://bkt/in/day1.csv.bak"]) == (
        "s3://bkt/in/day1.csv", "s3://bkt/in/day1.csv.bak")


def test_bad_locations_name_themselves():
    with pytest.raises(StackSettingsError, match="Bad_Bucket"):
        statements(outputs=["s3://Bad_Bucket/out/"])
    with pytest.raises(GrantError, match="no bucket"):
        Location.parse("s3:///x")


def test_a_job_declares_its_prefixes_not_its_buckets():
    assert s3_locations({"a": "s3://one/x", "b": ["s3://two/y", "dynamodb://T"]}, "s3://one/out") == [
        "s3://one/x", "s3://two/y", "s3://one/out"]


def test_the_session_policy_allows_only_the_jobs_prefixes():
    grants = JobGrants.of("job-1", "work-bucket", {"a": ["s3://my-data/in/"]}, "s3://my-data/out",
                          tables=["Scores"])
    doc = json.loads(session_policy(grants, "eu-west-1", "123456789012"))
    resources = sorted(r for s in doc["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                             else s["Resource"]))
    assert resources == sorted([
        "*",  # lambda:InvokeFunction: the role names the stack's own functions
        "arn:aws:s3:::work-bucket/jobs/job-1/*", "arn:aws:s3:::work-bucket",
        "arn:aws:s3:::my-data/in/*", "arn:aws:s3:::my-data", "arn:aws:s3:::my-data/out/*", "arn:aws:s3:::my-data",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/Scores",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/Scores/index/*"])
    writes = [s for s in doc["Statement"] if "s3:PutObject" in s["Action"]]
    assert sorted(r for s in writes for r in s["Resource"] if isinstance(s["Resource"], list)) + [
        s["Resource"] for s in writes if isinstance(s["Resource"], str)] == [
        "arn:aws:s3:::work-bucket/jobs/job-1/*", "arn:aws:s3:::my-data/out/*"]


def test_a_session_policy_too_long_for_sts_reads_the_folder_its_inputs_share():
    many = [f"s3://my-data/in/2026/day-{i:03d}.csv" for i in range(60)]
    doc = json.loads(session_policy(JobGrants.of("job-1", "work", many, "s3://my-data/out/"), "us-east-1", "1"))
    reads = [s for s in doc["Statement"] if s["Action"] == "s3:GetObject"]
    assert [s["Resource"] for s in reads] == ["arn:aws:s3:::my-data/in/2026/*"]
    buckets = [f"s3://bucket-number-{i:03d}/in/" for i in range(40)]
    with pytest.raises(GrantError, match="session policy"):
        session_policy(JobGrants.of("job-1", "work", buckets, "s3://my-data/out/"), "us-east-1", "1")


def test_a_dynamodb_output_job_may_use_its_tables_record_in_the_work_bucket_only():
    grants = JobGrants.of("job-1", "work-bucket", ["s3://my-data/in/"], "dynamodb://Scores", tables=["Scores"],
                          output_table="Scores")
    doc = json.loads(session_policy(grants, "eu-west-1", "123456789012"))
    writes = [s for s in doc["Statement"] if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writes] == [
        ["arn:aws:s3:::work-bucket/jobs/job-1/*", "arn:aws:s3:::work-bucket/tables/Scores/*"]]


def test_a_stack_may_grant_a_table_name_pattern():
    granted = statements()  # no tables: no table statement
    assert "DeclaredTables" not in granted
    settings = TemplateSettings(stack_name="smr-test", artifacts_bucket="smr-artifacts-x", code_key="k.zip",
                                code_sha256="abc", tables=("soak-*", "Scores"))
    tables = {s["Sid"]: s for s in allow_statements(build_template(settings))}["DeclaredTables"]
    assert sorted(tables["Resource"]) == ["arn:aws:dynamodb:eu-west-1:123456789012:table/Scores",
                                          "arn:aws:dynamodb:eu-west-1:123456789012:table/soak-*"]
    with pytest.raises(StackSettingsError, match="tables"):
        TemplateSettings(stack_name="smr-test", artifacts_bucket="a", code_key="k", code_sha256="x", tables=("a/b",))
