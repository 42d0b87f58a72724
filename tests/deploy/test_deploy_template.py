"""The stack template is least-privilege and locks the work bucket down (parsed, no AWS)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from airflow_provider_smr.deploy.errors import StackSettingsError
from airflow_provider_smr.deploy.template import (
    FUNCTION_ROLES,
    TemplateSettings,
    build_template,
    canonical_locations,
    content_hash,
    function_config_hash,
    merge_locations,
    render,
    stamp_template,
    version_logical_id,
    worker_runtime,
)
from lambda_handlers import protocol

ACCOUNT, REGION, WORK = "123456789012", "eu-west-1", "smr-test-workbucket-abc"
REFS = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
        "AWS::StackName": "smr-test", "WorkBucket": WORK, "WorkBucket.Arn": f"arn:aws:s3:::{WORK}",
        "FunctionRole": "role-name", "FunctionRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/role-name"}
REFS.update({f"{role.capitalize()}Function": f"smr-test-{role}" for role in FUNCTION_ROLES})


def resolve(value):
    """Evaluate the intrinsic functions the template uses into plain strings."""
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return REFS[value["Ref"]]
    if "Fn::GetAtt" in value:
        return REFS[".".join(value["Fn::GetAtt"])]
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(parts))
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda m: REFS[m.group(1)], value["Fn::Sub"])
    return {k: resolve(v) for k, v in value.items()}


def settings(**overrides) -> TemplateSettings:
    base = dict(stack_name="smr-test", artifacts_bucket="smr-artifacts-x", code_key="smr/lambda/abc.zip",
                code_sha256="abc", memory_mb=512, timeout_s=120, input_buckets=("in-bucket",),
                output_buckets=("s3://out-bucket/results/",), log_retention_days=30, jobs_expire_days=3)
    base.update(overrides)
    return TemplateSettings(**base)


def resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def allow_statements(template):
    policies = resources(template, "AWS::IAM::Policy").values()
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    for role in resources(template, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            statements += policy["PolicyDocument"]["Statement"]
    return [resolve(s) for s in statements if s["Effect"] == "Allow"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_no_statement_allows_a_wildcard_action_or_a_wildcard_resource():
    statements = allow_statements(build_template(settings()))
    assert statements
    for statement in statements:
        assert not any("*" in action for action in as_list(statement["Action"])), statement
        assert "*" not in as_list(statement["Resource"]), statement
        assert "NotAction" not in statement and "NotResource" not in statement


def test_s3_access_is_scoped_to_the_work_bucket_and_the_declared_locations():
    statements = allow_statements(build_template(settings()))
    s3 = [s for s in statements if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    allowed = (f"arn:aws:s3:::{WORK}", f"arn:aws:s3:::{WORK}/*", "arn:aws:s3:::in-bucket",
               "arn:aws:s3:::in-bucket/*", "arn:aws:s3:::out-bucket", "arn:aws:s3:::out-bucket/results/*")
    resources_seen = {r for s in s3 for r in as_list(s["Resource"])}
    assert resources_seen == set(allowed)
    writers = {r for s in s3 if "s3:PutObject" in as_list(s["Action"]) for r in as_list(s["Resource"])}
    assert writers == {f"arn:aws:s3:::{WORK}/*", "arn:aws:s3:::out-bucket/results/*"}


def test_without_declared_locations_only_the_work_bucket_is_reachable():
    statements = allow_statements(build_template(settings(input_buckets=(), output_buckets=())))
    s3_resources = {r for s in statements if as_list(s["Action"])[0].startswith("s3:")
                    for r in as_list(s["Resource"])}
    assert s3_resources == {f"arn:aws:s3:::{WORK}", f"arn:aws:s3:::{WORK}/*"}


def test_input_glob_is_granted_as_the_pattern_and_listed_from_its_folder():
    template = build_template(settings(input_buckets=("s3://logs/app/2024-*/*.gz",), output_buckets=()))
    statements = {s["Sid"]: s for s in allow_statements(template)}
    assert statements["InputObjects"]["Resource"] == ["arn:aws:s3:::logs/app/2024-*/*.gz"]
    assert statements["InputListLogs"]["Condition"] == {"StringLike": {"s3:prefix": ["app/", "app/*"]}}


def test_role_cannot_pass_roles_or_touch_iam_and_assumes_only_itself():
    text = json.dumps(build_template(settings()))
    assert "PassRole" not in text
    statements = allow_statements(build_template(settings()))
    actions = [a for s in statements for a in as_list(s["Action"])]
    assert not [a for a in actions if a.startswith("iam:")]
    assert [s["Resource"] for s in statements if "sts:AssumeRole" in s["Action"]] == [
        [f"arn:aws:iam::{ACCOUNT}:role/role-name"]]
    assert [a for a in actions if a.startswith("sts:")] == ["sts:AssumeRole"]


def test_functions_may_invoke_only_their_own_four_functions_and_log_only_to_their_groups():
    statements = {s["Sid"]: s for s in allow_statements(build_template(settings()))}
    invoke = statements["InvokeOwnFunctions"]
    assert invoke["Action"] == ["lambda:InvokeFunction"]
    assert sorted(invoke["Resource"]) == sorted(
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:smr-test-{role}{suffix}"
        for role in FUNCTION_ROLES for suffix in ("", ":*"))  # unqualified, or a pinned version
    logs = statements["OwnLogs"]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert sorted(logs["Resource"]) == sorted(
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/smr-test-{role}:*" for role in FUNCTION_ROLES)


def test_work_bucket_is_private_encrypted_and_expires_job_state():
    bucket = build_template(settings())["Resources"]["WorkBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True}
    rules = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rules = {r["Prefix"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert sorted(rules) == ["jobs/", "pins/"]  # a dead job's pin goes with its state
    assert all((r["ExpirationInDays"], r["Status"]) == (3, "Enabled") for r in rules.values())


def test_work_bucket_policy_denies_requests_without_tls():
    [policy] = resources(build_template(settings()), "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "WorkBucket"}
    [statement] = resolve(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(statement["Resource"]) == {f"arn:aws:s3:::{WORK}", f"arn:aws:s3:::{WORK}/*"}


def test_every_function_has_lambda_retries_switched_off():
    template = build_template(settings())
    configs = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    # One for $LATEST and one for the published version (a config is per qualifier).
    assert sorted(c["Properties"]["FunctionName"]["Ref"] for c in configs) == sorted(
        f"{role.capitalize()}Function" for role in FUNCTION_ROLES for _ in range(2))
    assert all(c["Properties"]["MaximumRetryAttempts"] == 0 for c in configs)


def test_each_function_publishes_a_retained_version_named_by_its_configuration():
    template = build_template(settings())
    versions = resources(template, "AWS::Lambda::Version")
    assert len(versions) == 4
    for role in FUNCTION_ROLES:
        logical = version_logical_id(settings(), role)
        version = versions[logical]
        assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")
        assert version["Properties"]["FunctionName"] == {"Ref": f"{role.capitalize()}Function"}
        assert function_config_hash(settings(), role) in version["Properties"]["Description"]
        assert template["Outputs"][f"{role.capitalize()}Version"]["Value"] == {
            "Fn::GetAtt": [logical, "Version"]}
        [config] = [c for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
                    if c["Properties"]["Qualifier"] == {"Fn::GetAtt": [logical, "Version"]}]
        assert config["DeletionPolicy"] == "Retain"


def test_a_changed_function_setting_names_a_new_version_and_an_unchanged_one_keeps_it():
    ids = {role: version_logical_id(settings(), role) for role in FUNCTION_ROLES}
    assert ids == {role: version_logical_id(settings(input_buckets=("other",)), role)
                   for role in FUNCTION_ROLES}  # the role's grants are not in a version
    for change in (dict(memory_mb=1024), dict(timeout_s=60), dict(runtime="python3.12"),
                   dict(code_key="smr/lambda/def.zip", code_sha256="def"),
                   dict(layers=("arn:aws:lambda:eu-west-1:123456789012:layer:numpy:3",))):
        assert all(version_logical_id(settings(**change), role) != ids[role] for role in FUNCTION_ROLES)
    mapper_only = settings(mapper_memory_mb=2048)
    assert version_logical_id(mapper_only, "mapper") != ids["mapper"]
    assert version_logical_id(mapper_only, "reducer") == ids["reducer"]


def test_mapper_and_reducer_memory_may_differ_from_the_other_functions():
    template = build_template(settings(mapper_memory_mb=256, reducer_memory_mb=2048))
    functions = resources(template, "AWS::Lambda::Function")
    memory = {role: functions[f"{role.capitalize()}Function"]["Properties"]["MemorySize"]
              for role in FUNCTION_ROLES}
    assert memory == {"mapper": 256, "reducer": 2048, "coordinator": 512, "driver": 512}
    outputs = template["Outputs"]
    assert (outputs["MapperMemoryMb"]["Value"], outputs["ReducerMemoryMb"]["Value"]) == ("256", "2048")


def test_functions_run_the_workers_python_with_the_requested_memory_timeout_and_env():
    functions = resources(build_template(settings()), "AWS::Lambda::Function")
    assert len(functions) == 4
    for role in FUNCTION_ROLES:
        props = functions[f"{role.capitalize()}Function"]["Properties"]
        assert props["FunctionName"] == f"smr-test-{role}"
        assert props["Handler"] == f"lambda_handlers.{role}.handler"
        assert props["Runtime"] == worker_runtime()
        assert (props["MemorySize"], props["Timeout"]) == (512, 120)
        assert props["Code"] == {"S3Bucket": "smr-artifacts-x", "S3Key": "smr/lambda/abc.zip"}
        assert resolve(props["Environment"]["Variables"]) == {
            protocol.ENV_WORK_BUCKET: WORK, protocol.ENV_STACK_NAME: "smr-test",
            protocol.ENV_MAPPER_FUNCTION: "smr-test-mapper",
            protocol.ENV_REDUCER_FUNCTION: "smr-test-reducer",
            protocol.ENV_COORDINATOR_FUNCTION: "smr-test-coordinator",
            protocol.ENV_DRIVER_FUNCTION: "smr-test-driver",
            protocol.ENV_ROLE_ARN: f"arn:aws:iam::{ACCOUNT}:role/role-name"}
        assert "Layers" not in props


def test_layers_are_attached_to_every_function():
    layer = "arn:aws:lambda:eu-west-1:123456789012:layer:numpy:3"
    functions = resources(build_template(settings(layers=(layer,))), "AWS::Lambda::Function")
    assert all(f["Properties"]["Layers"] == [layer] for f in functions.values())


def test_architecture_is_rendered_on_every_function_and_as_an_output():
    default = build_template(settings())
    assert all(f["Properties"]["Architectures"] == ["x86_64"]
               for f in resources(default, "AWS::Lambda::Function").values())
    arm = build_template(settings(architecture="arm64"))
    assert all(f["Properties"]["Architectures"] == ["arm64"]
               for f in resources(arm, "AWS::Lambda::Function").values())
    assert arm["Outputs"]["Architecture"] == {"Value": "arm64"}
    assert content_hash(arm) != content_hash(default)


def test_log_groups_are_the_functions_groups_with_retention():
    groups = resources(build_template(settings()), "AWS::Logs::LogGroup").values()
    assert sorted(g["Properties"]["LogGroupName"] for g in groups) == sorted(
        f"/aws/lambda/smr-test-{role}" for role in FUNCTION_ROLES)
    assert all(g["Properties"]["RetentionInDays"] == 30 for g in groups)


def test_content_hash_is_stable_and_changes_with_any_setting_or_the_code():
    base = content_hash(build_template(settings()))
    assert base == content_hash(build_template(settings()))
    # Declared buckets are a set: order and duplicates do not matter.
    assert base == content_hash(build_template(settings(input_buckets=("in-bucket", "in-bucket"))))
    changes = [dict(memory_mb=1024), dict(timeout_s=60), dict(input_buckets=("other",)),
               dict(output_buckets=()), dict(log_retention_days=14), dict(jobs_expire_days=4),
               dict(code_key="smr/lambda/def.zip", code_sha256="def"), dict(runtime="python3.12")]
    hashes = {content_hash(build_template(settings(**change))) for change in changes}
    assert base not in hashes and len(hashes) == len(changes)


def test_stamped_template_carries_the_hash_in_metadata_and_outputs():
    template = build_template(settings())
    stamped = stamp_template(template, "f00d")
    assert stamped["Metadata"]["SMR"]["ContentHash"] == "f00d"
    assert stamped["Outputs"]["ContentHash"] == {"Value": "f00d"}
    assert "ContentHash" not in template["Outputs"]  # the input is not modified


@pytest.mark.parametrize(("change", "named"), [
    (dict(stack_name="1-starts-with-digit"), "stack name"), (dict(stack_name="x" * 53), "stack name"),
    (dict(stack_name="under_score"), "stack name"), (dict(memory_mb=64), "memory_mb"),
    (dict(memory_mb=20000), "memory_mb"), (dict(timeout_s=901), "timeout_s"),
    (dict(timeout_s=0), "timeout_s"), (dict(log_retention_days=10), "log_retention_days"),
    (dict(jobs_expire_days=0), "jobs_expire_days"), (dict(layers=("not-an-arn",)), "layers"),
    (dict(input_buckets=("Bad_Bucket",)), "Bad_Bucket"), (dict(output_buckets="out-bucket"), "output_buckets"),
    (dict(runtime="nodejs20.x"), "runtime"), (dict(architecture="aarch64"), "architecture"),
    (dict(mapper_memory_mb=64), "mapper_memory_mb"),
    (dict(reducer_memory_mb=20000), "reducer_memory_mb"),
])
def test_invalid_settings_are_refused_with_the_setting_named(change, named):
    with pytest.raises(StackSettingsError, match=named):
        settings(**change)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings().memory_mb = 2048


def test_locations_are_canonical_and_covered_ones_are_dropped():
    assert canonical_locations(["bkt", "s3://bkt/logs/", "s3://aaa/x/*.gz", "s3://aaa/x/"]) == (
        "s3://aaa/x/", "s3://bkt/")
    assert merge_locations(["s3://out/one/"], ["s3://out/two/", "s3://out/one/deeper/"]) == (
        "s3://out/one/", "s3://out/two/")
    assert settings(input_buckets=("in-bucket", "s3://in-bucket/sub/")).input_buckets == ("s3://in-bucket/",)


def test_granted_locations_are_published_as_outputs():
    outputs = build_template(settings())["Outputs"]
    assert json.loads(outputs["InputLocations"]["Value"]) == ["s3://in-bucket/"]
    assert json.loads(outputs["OutputLocations"]["Value"]) == ["s3://out-bucket/results/"]


def test_template_passes_cfn_lint_against_the_cloudformation_resource_schemas():
    # No AWS here: cfn-lint (shipped with moto's cloudformation extra) checks every property
    # against the published resource schemas, which moto does not.
    from cfnlint.api import ManualArgs, lint

    layer = "arn:aws:lambda:eu-west-1:123456789012:layer:numpy:3"
    template = stamp_template(build_template(settings(layers=(layer,))), "f00d")
    matches = lint(render(template), config=ManualArgs(regions=[REGION]))
    assert [str(m) for m in matches] == []


def test_reserved_concurrency_is_set_on_every_function_only_when_asked():
    def reserved(template):
        return {r["Properties"]["FunctionName"]: r["Properties"].get("ReservedConcurrentExecutions")
                for r in resources(template, "AWS::Lambda::Function").values()}

    assert set(reserved(build_template(settings())).values()) == {None}
    assert set(reserved(build_template(settings(reserved_concurrency=5))).values()) == {5}
    with pytest.raises(StackSettingsError, match="reserved_concurrency"):
        settings(reserved_concurrency=-1)


def test_the_stack_budget_is_published_for_the_jobs_to_plan_with():
    assert build_template(settings(max_running_tasks=8))["Outputs"]["MaxRunningTasks"] == {"Value": "8"}
    assert build_template(settings())["Outputs"]["MaxRunningTasks"] == {"Value": "0"}
