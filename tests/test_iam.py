"""The README's IAM policies cover every AWS call the code makes, so the lists cannot rot.

The code is scanned (``ast``) for boto3 client calls: an attribute named like an operation of a
service the provider uses (``s3.put_object``, ``functools.partial(client.describe_table)``) and
the operation names passed as strings (``get_paginator("list_objects_v2")``). Each call maps to the
IAM actions it needs; every one must be in the README policy of the role whose code makes it.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SERVICES = ("s3", "lambda", "logs", "cloudformation", "dynamodb", "sts", "iam")
# A receiver's name says its service (``self.s3``, ``lambda_client``, ``cf``, ``clients.logs``).
HINTS = (("s3", "s3"), ("lambda", "lambda"), ("cloudformation", "cloudformation"), ("cf", "cloudformation"),
         ("logs", "logs"), ("dynamodb", "dynamodb"), ("ddb", "dynamodb"), ("sts", "sts"), ("iam", "iam"))
# Our own objects whose methods share a name with an AWS operation (``hook.delete_stack``).
OWN_RECEIVERS = {"hook", "runner", "tracker", "reqs", "submit_mod"}
# String arguments naming an operation.
OPERATION_ARGUMENTS = {"get_paginator", "can_paginate", "_call"}
# boto3 methods that are not operations, and the operations behind them.
S3_TRANSFER = {"upload_file": "put_object", "upload_fileobj": "put_object", "download_file": "get_object",
               "download_fileobj": "get_object"}
# Where an IAM action is not ``<service>:<OperationName>``.
ACTIONS = {
    ("s3", "list_objects_v2"): ["s3:ListBucket"], ("s3", "list_objects"): ["s3:ListBucket"],
    ("s3", "head_object"): ["s3:GetObject"], ("s3", "head_bucket"): ["s3:ListBucket"],
    ("s3", "list_object_versions"): ["s3:ListBucketVersions"],
    ("s3", "list_multipart_uploads"): ["s3:ListBucketMultipartUploads"],
    ("s3", "delete_objects"): ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    ("s3", "copy_object"): ["s3:GetObject", "s3:PutObject"],
    ("s3", "put_bucket_encryption"): ["s3:PutEncryptionConfiguration"],
    ("s3", "put_public_access_block"): ["s3:PutBucketPublicAccessBlock"],
    ("s3", "put_bucket_lifecycle_configuration"): ["s3:PutLifecycleConfiguration"],
    ("lambda", "invoke"): ["lambda:InvokeFunction"],
}


def _modules(*patterns: str) -> list[Path]:
    return sorted(p for pattern in patterns for p in ROOT.glob(pattern))


# What each role's code is. Job role: a deploy=False task, the trigger, the sensor, the links, the UI plugin,
# `smr status/cancel/report`; the planning code the driver runs in the worker; the stack's
# description. Deploy role: deploy/ (deploy_stack, delete_stack). Not scanned: the data plane
# (the functions run with the role the stack creates), the local stack, and the CLI's
# `--local` helpers (engine/commands.py: they upload to and download from the local stack), and the
# in-process runner (engine/inline.py: its S3 is in memory).
JOB_SCOPE: list[tuple[str, set[str] | None]] = [
    *((str(p.relative_to(ROOT)), None) for p in _modules(
        "airflow_provider_smr/engine/*.py", "airflow_provider_smr/hooks/*.py",
        "airflow_provider_smr/operators/*.py", "airflow_provider_smr/triggers/*.py",
        "airflow_provider_smr/sensors/*.py", "airflow_provider_smr/links/*.py", "airflow_provider_smr/plugins/*.py",
        "airflow_provider_smr/report*.py", "airflow_provider_smr/cost.py", "airflow_provider_smr/job.py",
        "lambda_handlers/planning.py", "lambda_handlers/io/listing.py") if p.name not in ("commands.py", "inline.py")),
    ("airflow_provider_smr/deploy/stack.py", {"describe_stack", "stack_info_from_description"}),
    ("airflow_provider_smr/deploy/status.py", {"find_stack"}),
    ("lambda_handlers/io/dynamodb.py", {"ensure_table"}),
]
DEPLOY_SCOPE: list[tuple[str, set[str] | None]] = [
    (str(p.relative_to(ROOT)), None) for p in _modules("airflow_provider_smr/deploy/*.py")]


@dataclass(frozen=True)
class Call:
    where: str
    service: str
    operation: str  # boto3's snake_case name

    @property
    def actions(self) -> list[str]:
        if (self.service, self.operation) in ACTIONS:
            return ACTIONS[(self.service, self.operation)]
        return [f"{self.service}:{OPERATIONS[self.service][self.operation]}"]


def _operations() -> dict[str, dict[str, str]]:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    found = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        found[service] = {xform_name(name): name for name in model.operation_names}
    return found


OPERATIONS = _operations()


def _receiver(node: ast.AST) -> str:
    """``self.clients.s3`` -> ``s3``; ``lambda_client`` -> ``lambda_client``; else ``""``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _service(receiver: str, operation: str, where: str) -> str | None:
    offering = [s for s in SERVICES if operation in OPERATIONS[s]]
    if not offering or receiver.lstrip("_") in OWN_RECEIVERS:
        return None
    hinted = [service for hint, service in HINTS if hint in receiver.lower() and service in offering]
    if hinted:
        return hinted[0]
    assert len(offering) == 1, (f"{where}: cannot tell the service of {receiver}.{operation} "
                                f"(one of {offering}): name the client after its service")
    return offering[0]


def scan(path: str, functions: set[str] | None) -> list[Call]:
    """The boto3 calls in a module (or in the named top-level functions/methods of it)."""
    tree = ast.parse((ROOT / path).read_text())
    roots: list[ast.AST] = [tree] if functions is None else [
        node for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in functions]
    assert functions is None or {n.name for n in roots} == functions, f"{path}: {functions} not all found"
    calls: list[Call] = []
    for root in roots:
        called = {id(node.func) for node in ast.walk(root) if isinstance(node, ast.Call)}
        for node in ast.walk(root):
            where = f"{path}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute):
                receiver = _receiver(node.value)
                operation = S3_TRANSFER.get(node.attr, node.attr) if "s3" in receiver else node.attr
                service = _service(receiver, operation, where)
                # A client named after its service counts wherever it appears (a partial); another
                # receiver only when called (``options.create_table`` is an option, not a call).
                hinted = any(hint in receiver.lower() for hint, _ in HINTS)
                if service is not None and (hinted or id(node) in called):
                    calls.append(Call(where, service, operation))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in OPERATION_ARGUMENTS and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                receiver = _receiver(node.func.value)
                receiver = "s3" if node.func.attr == "_call" else receiver  # the trigger's S3 reader
                service = _service(receiver, node.args[0].value, where)
                if service is not None:
                    calls.append(Call(where, service, node.args[0].value))
    return calls


def documented(role: str) -> set[str]:
    """The actions of the README's ``<!-- iam-policy: role -->`` policy."""
    match = re.search(rf"<!-- iam-policy: {role} -->\s*```json\n(.*?)```", README, re.S)
    assert match, f"README has no <!-- iam-policy: {role} --> json block"
    actions: set[str] = set()
    for statement in json.loads(match.group(1))["Statement"]:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


@pytest.mark.parametrize("role, scope", [("job", JOB_SCOPE), ("deploy", DEPLOY_SCOPE)])
def test_the_readme_policy_allows_every_aws_call_of_the_roles_code(role, scope):
    calls = [call for path, functions in scope for call in scan(path, functions)]
    assert len(calls) >= 5  # the scan finds the code's calls at all
    allowed = documented(role)
    missing = sorted({f"{action} ({call.where}: {call.service}.{call.operation})"
                      for call in calls for action in call.actions if action not in allowed})
    assert missing == [], f"add to the README's {role} policy:\n" + "\n".join(missing)


def test_the_scan_sees_calls_through_clients_paginators_and_partials():
    calls = {(c.service, c.operation) for c in scan("airflow_provider_smr/engine/runner.py", None)}
    assert {("lambda", "invoke"), ("s3", "put_object"), ("logs", "filter_log_events")} & calls
    planning = {(c.service, c.operation) for path in ("lambda_handlers/planning.py", "lambda_handlers/io/listing.py")
                for c in scan(path, None)}
    assert {("s3", "list_objects_v2"), ("dynamodb", "describe_table")} <= planning


def test_the_job_policy_grants_nothing_only_a_deploy_needs():
    assert not {a for a in documented("job") if a.split(":")[1].startswith(("Create", "Update", "Delete"))
                and a != "dynamodb:CreateTable"}


def test_the_readme_names_every_resource_type_the_stack_creates():
    from airflow_provider_smr.deploy.template import TemplateSettings, build_template

    template = build_template(TemplateSettings(stack_name="smr", artifacts_bucket="smr-artifacts-1-us-east-1",
                                               code_key="code/x.zip", code_sha256="x", runtime="python3.11"))
    types = {resource["Type"] for resource in template["Resources"].values()}
    section = README[README.index("<!-- iam-policy: job -->"):README.index("<!-- iam-policy: deploy -->")]
    assert sorted(t for t in types if f"`{t}`" not in section) == []


def test_a_new_call_shows_up_with_its_action(tmp_path):
    module = tmp_path / "new_code.py"
    module.write_text("import functools\n"
                      "def f(clients, options, hook):\n"
                      "    clients.s3.delete_bucket(Bucket='b')\n"
                      "    functools.partial(clients.lambda_.delete_function, FunctionName='x')\n"
                      "    clients.cloudformation.get_paginator('list_stacks')\n"
                      "    hook.delete_stack('smr')  # ours, not boto3's\n"
                      "    return options.create_table  # an option, not a call\n")
    actions = sorted(a for call in scan(str(module), None) for a in call.actions)
    assert actions == ["cloudformation:ListStacks", "lambda:DeleteFunction", "s3:DeleteBucket"]
    assert not set(actions) & documented("job")


# The functions' role: the template renders it; every AWS call of the data plane must be allowed by it.
# ``io/dynamodb.ensure_table`` runs in the worker (the job role's, above).
DATA_PLANE: list[tuple[str, set[str] | None]] = [
    (str(p.relative_to(ROOT)), None) for p in _modules("lambda_handlers/*.py", "lambda_handlers/io/*.py")
    if p.name != "dynamodb.py"] + [
    ("lambda_handlers/io/dynamodb.py", {"scan_segment", "key_names", "flush", "stage_output"}),
]
FUNCTIONS_REFS = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
                  "AWS::StackName": "smr", "WorkBucket": "smr-workbucket-1a2b3c",
                  "WorkBucket.Arn": "arn:aws:s3:::smr-workbucket-1a2b3c",
                  "FunctionRole.Arn": "arn:aws:iam::123456789012:role/smr/eu-west-1/smr/smr-FunctionRole-1A2B3C"}


def rendered_functions_policy(tables: tuple[str, ...] = ()) -> dict:
    """The functions' policy of stack ``smr`` declaring ``s3://my-data/logs/`` and ``s3://my-data/counts/``."""
    from airflow_provider_smr.deploy.policy import resolve
    from airflow_provider_smr.deploy.template import POLICY, TemplateSettings, build_template

    template = build_template(TemplateSettings(
        stack_name="smr", artifacts_bucket="smr-artifacts-1-eu-west-1", code_key="code/x.zip", code_sha256="x",
        runtime="python3.11", input_buckets=("s3://my-data/logs/",), output_buckets=("s3://my-data/counts/",),
        tables=tables))
    return resolve(template["Resources"][POLICY]["Properties"]["PolicyDocument"], FUNCTIONS_REFS)


def test_the_functions_role_allows_every_aws_call_of_the_data_plane():
    calls = [call for path, functions in DATA_PLANE for call in scan(path, functions)]
    assert {"s3:GetObject", "lambda:InvokeFunction", "sts:AssumeRole", "dynamodb:Scan"} <= {
        a for call in calls for a in call.actions}
    allowed = {a for s in rendered_functions_policy(("Scores",))["Statement"] for a in s["Action"]}
    missing = sorted({f"{action} ({call.where})" for call in calls for action in call.actions
                      if action not in allowed and action != "s3:DeleteObjectVersion"})  # unversioned buckets
    assert missing == [], "the functions' role (deploy/policy.py) lacks:\n" + "\n".join(missing)


def test_the_readme_shows_the_functions_policy_as_the_template_renders_it():
    match = re.search(r"<!-- iam-policy: functions -->\s*```json\n(.*?)```", README, re.S)
    assert match, "README has no <!-- iam-policy: functions --> json block"
    assert json.loads(match.group(1)) == rendered_functions_policy()
