"""The CloudFormation template of one SMR stack, built by pure functions (no AWS calls).

One stack holds: a private, encrypted work bucket (TLS-only policy, ``jobs/`` and ``pins/``
expiring after N days), one least-privilege role for the functions, the mapper / reducer /
coordinator / driver functions on the worker's ``pythonX.Y`` runtime (the mapper and reducer may
have their own memory size), an event-invoke config per function with ``MaximumRetryAttempts: 0``
(retries are ours, driven by markers), and a log group per function with a retention. The content
hash of the template (which includes the code's hash through the artifact key) is stamped into its
metadata and outputs so an unchanged deploy can be skipped.

Every deploy also publishes an immutable Lambda version of each function (``AWS::Lambda::Version``,
as SAM's ``AutoPublishAlias`` does): its logical id and description carry the hash of the
function's configuration (:func:`function_config_hash`: code, memory, timeout, layers,
environment), so a changed configuration adds a new version in the same stack operation that
changed the function. Versions and their own event-invoke configs are retained when a later deploy
drops them from the template: a job pins the versions its deploy published (``Plan.versions``) and
runs on them until it ends, whatever is deployed meanwhile; :mod:`.versions` deletes them once no
unfinished job pins them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_smr.deploy import policy
from airflow_provider_smr.deploy.errors import StackSettingsError
from lambda_handlers import protocol
from lambda_handlers.grants import GrantError, Location, canonical

TEMPLATE_VERSION = 1
FUNCTION_ROLES = ("mapper", "reducer", "coordinator", "driver")
FUNCTION_ENV = {
    "mapper": protocol.ENV_MAPPER_FUNCTION,
    "reducer": protocol.ENV_REDUCER_FUNCTION,
    "coordinator": protocol.ENV_COORDINATOR_FUNCTION,
    "driver": protocol.ENV_DRIVER_FUNCTION,
}
# Retention values CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
ARCHITECTURES = ("x86_64", "arm64")  # what Lambda's Architectures accepts
MAX_EVENT_AGE_S = 21600  # Lambda's maximum: an async event waits in the queue up to 6 hours.
MAX_RESERVED_CONCURRENCY = 100_000  # above any account's concurrency quota; AWS checks the real one
# Stack names become function names ("<stack>-coordinator" must fit Lambda's 64 characters).
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,51}$")
_LAYER_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")
_TABLE_NAME = re.compile(r"^(?=.*[A-Za-z0-9_.-])[A-Za-z0-9_.*-]{1,255}$")  # a name, or a pattern with *
_KMS_KEY = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")
_DESTINATION = re.compile(r"^arn:aws[a-z-]*:(sqs|sns):[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$")

WORK_BUCKET = policy.WORK_BUCKET
ROLE = policy.ROLE
POLICY = "FunctionPolicy"
#: the description of a published version: the hash of the configuration it snapshots
VERSION_DESCRIPTION = "smr config {}"


def worker_runtime() -> str:
    """The Lambda runtime matching this interpreter (pickled job code needs the same X.Y)."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def function_name(stack_name: str, role: str) -> str:
    return f"{stack_name}-{role}"


def log_group_name(stack_name: str, role: str) -> str:
    return f"/aws/lambda/{function_name(stack_name, role)}"


def _logical(role: str, suffix: str) -> str:
    return f"{role.capitalize()}{suffix}"


@dataclass(frozen=True)
class TemplateSettings:
    """Everything a stack's template depends on (validated on construction).

    :param stack_name: CloudFormation stack name, also the prefix of the function names.
    :param artifacts_bucket: bucket holding the Lambda zip.
    :param code_key: key of the Lambda zip (contains the code hash).
    :param code_sha256: hex sha256 of the Lambda zip.
    :param runtime: Lambda runtime, ``pythonX.Y`` of the worker.
    :param memory_mb: MemorySize of every function (but the mapper and reducer when sized apart).
    :param timeout_s: Timeout of every function.
    :param input_buckets: locations the functions may read (``bucket`` or ``s3://bucket/prefix``).
    :param output_buckets: locations the functions may write.
    :param log_retention_days: retention of the functions' log groups.
    :param jobs_expire_days: days after which objects under ``jobs/`` in the work bucket expire.
    :param layers: Lambda layer version ARNs added to every function.
    :param tables: DynamoDB table names the functions may scan and write (``dynamodb://`` inputs
        and outputs), or name patterns with ``*`` (each job's session still names its own tables).
    :param architecture: the functions' instruction set, ``x86_64`` or ``arm64``.
    :param mapper_memory_mb: MemorySize of the mapper function (None: ``memory_mb``).
    :param reducer_memory_mb: MemorySize of the reducer function (None: ``memory_mb``).
    :param max_running_tasks: the stack-wide running-task budget jobs plan with (0: none); an
        output, not a resource: the coordinator enforces it.
    :param reserved_concurrency: ReservedConcurrentExecutions of each function (0: none).
    :param kms_key_arn: a customer-managed KMS key for the work bucket, the log groups and the
        functions' environment (None: AWS-managed keys).
    :param subnet_ids: VPC subnets of the functions (with ``security_group_ids``).
    :param security_group_ids: VPC security groups of the functions (with ``subnet_ids``).
    :param on_failure_destination: SQS queue or SNS topic ARN for the events Lambda gives up on.
    """

    stack_name: str
    artifacts_bucket: str
    code_key: str
    code_sha256: str
    runtime: str = field(default_factory=worker_runtime)
    memory_mb: int = 1024
    timeout_s: int = 300
    input_buckets: tuple[str, ...] = ()
    output_buckets: tuple[str, ...] = ()
    log_retention_days: int = 14
    jobs_expire_days: int = 7
    layers: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    architecture: str = "x86_64"
    mapper_memory_mb: int | None = None
    reducer_memory_mb: int | None = None
    max_running_tasks: int = 0
    reserved_concurrency: int = 0
    kms_key_arn: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    on_failure_destination: str | None = None

    def __post_init__(self) -> None:
        for name in ("input_buckets", "output_buckets", "layers", "tables", "subnet_ids", "security_group_ids"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise StackSettingsError(f"{name} must be a list of strings, got the string {value!r}")
            object.__setattr__(self, name, tuple(sorted(set(value))))
        validate_settings(self)
        object.__setattr__(self, "input_buckets", canonical_locations(self.input_buckets))
        object.__setattr__(self, "output_buckets", canonical_locations(self.output_buckets, folder=True))

    def memory_for(self, role: str) -> int:
        """The MemorySize of one function: the mapper and reducer may be sized apart."""
        own = {"mapper": self.mapper_memory_mb, "reducer": self.reducer_memory_mb}.get(role)
        return own or self.memory_mb

    @property
    def inputs(self) -> tuple[Location, ...]:
        return tuple(parse_location(location) for location in self.input_buckets)

    @property
    def outputs(self) -> tuple[Location, ...]:
        return tuple(parse_location(location, folder=True) for location in self.output_buckets)


def parse_location(location: str, *, folder: bool = False) -> Location:
    """A declared location (``bucket``, ``s3://bucket/prefix``, a glob); an output is a ``folder``."""
    try:
        return Location.parse(location, folder=folder)
    except GrantError as error:
        raise StackSettingsError(str(error)) from None


def canonical_locations(locations: Iterable[str], *, folder: bool = False) -> tuple[str, ...]:
    """Sorted ``s3://bucket/prefix`` forms without duplicates or locations another one covers
    (``s3://b/out/`` covers ``s3://b/out/x/``, never ``s3://b/outage/``)."""
    return tuple(loc.uri for loc in canonical(parse_location(x, folder=folder) for x in locations))


def merge_locations(*groups: Iterable[str], folder: bool = False) -> tuple[str, ...]:
    """The union of several location lists, canonical (see :func:`canonical_locations`)."""
    return canonical_locations([location for group in groups for location in group], folder=folder)


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    """Whether ``value`` is a string ``pattern`` matches (settings may come from untyped callers)."""
    return isinstance(value, str) and pattern.match(value) is not None


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StackSettingsError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def validate_settings(settings: TemplateSettings) -> None:
    """Raise :class:`StackSettingsError` for a setting AWS would reject (before any AWS call)."""
    if not _matches(_STACK_NAME, settings.stack_name):
        raise StackSettingsError(
            f"invalid stack name {settings.stack_name!r}: use 1-52 letters, digits and '-', "
            "starting with a letter (function names are '<stack>-coordinator' etc., at most 64)")
    if not re.match(r"^python3\.\d+$", settings.runtime):
        raise StackSettingsError(f"runtime must look like 'python3.X', got {settings.runtime!r}")
    _check_int("memory_mb", settings.memory_mb, 128, 10240)
    for name in ("mapper_memory_mb", "reducer_memory_mb"):
        if getattr(settings, name) is not None:
            _check_int(name, getattr(settings, name), 128, 10240)
    _check_int("timeout_s", settings.timeout_s, 1, 900)
    _check_int("jobs_expire_days", settings.jobs_expire_days, 1, 3650)
    _check_int("stack_max_running_tasks", settings.max_running_tasks, 0, protocol.MAX_SLOTS)
    _check_int("reserved_concurrency", settings.reserved_concurrency, 0, MAX_RESERVED_CONCURRENCY)
    if settings.log_retention_days not in LOG_RETENTION_DAYS:
        raise StackSettingsError(f"log_retention_days must be one of {LOG_RETENTION_DAYS}, "
                                 f"got {settings.log_retention_days!r}")
    for layer in settings.layers:
        if not _matches(_LAYER_ARN, layer):
            raise StackSettingsError(f"layers: each must be a layer version ARN "
                                     f"(arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION), got {layer!r}")
    for table in settings.tables:
        if not _matches(_TABLE_NAME, table):
            raise StackSettingsError(f"tables: {table!r} is not a DynamoDB table name (or a name pattern "
                                     "with *)")
    if settings.architecture not in ARCHITECTURES:
        raise StackSettingsError(f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                                 f"got {settings.architecture!r}")
    if len(settings.layers) > 5:
        raise StackSettingsError(f"layers: Lambda allows at most 5, got {len(settings.layers)}")
    _validate_hardening(settings)
    settings.inputs, settings.outputs  # noqa: B018 - parse (and so validate) the declared locations


def _validate_hardening(settings: TemplateSettings) -> None:
    if settings.kms_key_arn is not None and not _matches(_KMS_KEY, settings.kms_key_arn):
        raise StackSettingsError(f"kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), "
                                 f"got {settings.kms_key_arn!r}")
    for name, pattern, example in (("subnet_ids", _SUBNET, "subnet-0abc1234"),
                                   ("security_group_ids", _SECURITY_GROUP, "sg-0abc1234")):
        bad = [v for v in getattr(settings, name) if not _matches(pattern, v)]
        if bad:
            raise StackSettingsError(f"{name}: {bad[0]!r} is not an id like {example!r}")
    if bool(settings.subnet_ids) != bool(settings.security_group_ids):
        raise StackSettingsError("subnet_ids and security_group_ids go together: a function in a VPC "
                                 "needs both (or neither)")
    if settings.on_failure_destination is not None and not _matches(_DESTINATION, settings.on_failure_destination):
        raise StackSettingsError(f"on_failure_destination must be an SQS queue or SNS topic ARN, "
                                 f"got {settings.on_failure_destination!r}")


# ---------------------------------------------------------------------------------------------
# Resources


def _bucket_encryption(settings: TemplateSettings) -> dict:
    if settings.kms_key_arn is None:
        return {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    return {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": settings.kms_key_arn},
            "BucketKeyEnabled": True}


def _work_bucket(settings: TemplateSettings) -> dict:
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Delete",
        "Properties": {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "BlockPublicPolicy": True,
                "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [_bucket_encryption(settings)]},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "expire-jobs", "Status": "Enabled", "Prefix": protocol.JOBS_PREFIX,
                 "ExpirationInDays": settings.jobs_expire_days,
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
                # A pin whose job died without an end state stops pinning when the job's state goes.
                {"Id": "expire-pins", "Status": "Enabled", "Prefix": protocol.PINS_PREFIX,
                 "ExpirationInDays": settings.jobs_expire_days},
            ]},
        },
    }


def _work_bucket_policy() -> dict:
    bucket_arn = {"Fn::GetAtt": [WORK_BUCKET, "Arn"]}
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": WORK_BUCKET},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [bucket_arn, {"Fn::Sub": "${WorkBucket.Arn}/*"}],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }]},
        },
    }


def _role(settings: TemplateSettings) -> dict:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": {"Fn::Sub": "Serverless MapReduce functions of stack ${AWS::StackName}"},
            "Path": policy.role_path(settings.stack_name),
            "AssumeRolePolicyDocument": policy.trust_policy(settings.stack_name),
        },
    }


def _allow(sid: str, actions: list[str], resources: list) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _policy_statements(settings: TemplateSettings) -> list[dict]:
    names = [function_name(settings.stack_name, role) for role in FUNCTION_ROLES]
    statements = policy.s3_statements(settings.inputs, settings.outputs)
    if settings.tables:
        statements.append(_allow(
            "DeclaredTables",
            ["dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:PutItem"],
            [{"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/"
                         f"{table}"} for table in settings.tables]))
    statements += policy.own_statements(names)
    statements += policy.hardening_statements(settings.kms_key_arn, settings.subnet_ids,
                                              settings.security_group_ids, settings.on_failure_destination)
    return statements


def _policy(settings: TemplateSettings) -> dict:
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "smr-functions",
            "Roles": [{"Ref": ROLE}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": _policy_statements(settings)},
        },
    }


def function_environment(settings: TemplateSettings) -> dict:
    """The SMR_* variables every function gets (names from ``lambda_handlers.protocol``)."""
    env: dict[str, Any] = {protocol.ENV_WORK_BUCKET: {"Ref": WORK_BUCKET},
                           protocol.ENV_STACK_NAME: settings.stack_name,
                           protocol.ENV_ROLE_ARN: {"Fn::GetAtt": [ROLE, "Arn"]}}
    for role in FUNCTION_ROLES:
        env[FUNCTION_ENV[role]] = function_name(settings.stack_name, role)
    return env


def _function_properties(settings: TemplateSettings, role: str) -> dict:
    properties: dict[str, Any] = {
        "FunctionName": function_name(settings.stack_name, role),
        "Description": f"Serverless MapReduce {role} of stack {settings.stack_name}",
        "Runtime": settings.runtime,
        "Architectures": [settings.architecture],
        "Handler": f"lambda_handlers.{role}.handler",
        "Role": {"Fn::GetAtt": [ROLE, "Arn"]},
        "Code": {"S3Bucket": settings.artifacts_bucket, "S3Key": settings.code_key},
        "MemorySize": settings.memory_for(role),
        "Timeout": settings.timeout_s,
        "Environment": {"Variables": function_environment(settings)},
        "Tags": [{"Key": "smr:stack", "Value": settings.stack_name},
                 {"Key": "smr:function", "Value": role}],
    }
    if settings.layers:
        properties["Layers"] = list(settings.layers)
    if settings.kms_key_arn:
        properties["KmsKeyArn"] = settings.kms_key_arn
    if settings.subnet_ids:
        properties["VpcConfig"] = {"SubnetIds": list(settings.subnet_ids),
                                   "SecurityGroupIds": list(settings.security_group_ids)}
    return properties


def _function(settings: TemplateSettings, role: str) -> dict:
    properties = _function_properties(settings, role)
    if settings.reserved_concurrency:  # the function's, not a version's: no new version for it
        properties["ReservedConcurrentExecutions"] = settings.reserved_concurrency
    # The log group first (so Lambda never creates it without retention), the policy before any run.
    return {"Type": "AWS::Lambda::Function", "DependsOn": [_logical(role, "LogGroup"), POLICY],
            "Properties": properties}


def function_config_hash(settings: TemplateSettings, role: str) -> str:
    """The hash of what a version of ``role`` snapshots (code, memory, timeout, layers, env...):
    equal hashes, equal versions. 16 hex digits."""
    text = render(_function_properties(settings, role))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def version_logical_id(settings: TemplateSettings, role: str) -> str:
    """A new logical id per configuration, so CloudFormation publishes a version when it changes."""
    return _logical(role, "Version") + function_config_hash(settings, role)


def _version(settings: TemplateSettings, role: str) -> dict:
    # Retained: a job may still pin this version after a deploy has moved on (GC deletes it).
    return {
        "Type": "AWS::Lambda::Version",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "FunctionName": {"Ref": _logical(role, "Function")},
            "Description": VERSION_DESCRIPTION.format(function_config_hash(settings, role)),
        },
    }


def _invoke_config(role: str, qualifier: Any = "$LATEST", on_failure: str | None = None) -> dict:
    """No Lambda-side retries; an event-invoke config is per qualifier, so each version has one.
    An event Lambda gives up on (too old, throttled for 6 hours) goes to ``on_failure`` if set."""
    resource: dict[str, Any] = {
        "Type": "AWS::Lambda::EventInvokeConfig",
        "Properties": {
            "FunctionName": {"Ref": _logical(role, "Function")},
            "Qualifier": qualifier,
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": MAX_EVENT_AGE_S,
        },
    }
    if on_failure:
        resource["Properties"]["DestinationConfig"] = {"OnFailure": {"Destination": on_failure}}
    if qualifier != "$LATEST":
        resource.update(DeletionPolicy="Retain", UpdateReplacePolicy="Retain")
    return resource


def _log_group(settings: TemplateSettings, role: str) -> dict:
    return {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "Properties": {"LogGroupName": log_group_name(settings.stack_name, role),
                       "RetentionInDays": settings.log_retention_days,
                       **({"KmsKeyId": settings.kms_key_arn} if settings.kms_key_arn else {})},
    }


def _outputs(settings: TemplateSettings) -> dict:
    outputs: dict[str, Any] = {"WorkBucket": {"Value": {"Ref": WORK_BUCKET}}}
    for role in FUNCTION_ROLES:
        outputs[_logical(role, "Function")] = {"Value": {"Ref": _logical(role, "Function")}}
    for role in FUNCTION_ROLES:
        outputs[_logical(role, "Version")] = {
            "Value": {"Fn::GetAtt": [version_logical_id(settings, role), "Version"]}}
    outputs.update({
        "Runtime": {"Value": settings.runtime},
        "Architecture": {"Value": settings.architecture},
        "MemoryMb": {"Value": str(settings.memory_mb)},
        "MapperMemoryMb": {"Value": str(settings.memory_for("mapper"))},
        "ReducerMemoryMb": {"Value": str(settings.memory_for("reducer"))},
        "TimeoutS": {"Value": str(settings.timeout_s)},
        "CodeSha256": {"Value": settings.code_sha256},
        # What the role may read and write, so a later deploy can widen it instead of revoking.
        "InputLocations": {"Value": json.dumps(list(settings.input_buckets))},
        "OutputLocations": {"Value": json.dumps(list(settings.output_buckets))},
        "Tables": {"Value": json.dumps(list(settings.tables))},
        "ProtocolVersion": {"Value": str(protocol.PROTOCOL_VERSION)},
        "MaxRunningTasks": {"Value": str(settings.max_running_tasks)},
    })
    return outputs


def build_template(settings: TemplateSettings) -> dict:
    """The stack's template as a dict, without the content hash (see :func:`stamp_template`)."""
    resources: dict[str, Any] = {
        WORK_BUCKET: _work_bucket(settings),
        "WorkBucketPolicy": _work_bucket_policy(),
        ROLE: _role(settings),
        POLICY: _policy(settings),
    }
    for role in FUNCTION_ROLES:
        resources[_logical(role, "LogGroup")] = _log_group(settings, role)
        resources[_logical(role, "Function")] = _function(settings, role)
        resources[_logical(role, "InvokeConfig")] = _invoke_config(role, on_failure=settings.on_failure_destination)
        version = version_logical_id(settings, role)
        resources[version] = _version(settings, role)
        resources[_logical(role, "InvokeConfig") + function_config_hash(settings, role)] = \
            _invoke_config(role, {"Fn::GetAtt": [version, "Version"]}, settings.on_failure_destination)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Serverless MapReduce stack {settings.stack_name} (airflow-provider-smr)",
        "Resources": resources,
        "Outputs": _outputs(settings),
    }


def render(template: dict) -> str:
    """Canonical JSON text of a template (sorted keys: equal dicts give equal bytes)."""
    return json.dumps(template, sort_keys=True, separators=(",", ":"))


def content_hash(template: dict) -> str:
    """sha256 of the unstamped template: covers the code (artifact key) and every setting."""
    return hashlib.sha256(f"v{TEMPLATE_VERSION}:{render(template)}".encode()).hexdigest()


def stamp_template(template: dict, digest: str) -> dict:
    """A copy of ``template`` carrying ``digest`` in its metadata and as the ``ContentHash`` output."""
    stamped = copy.deepcopy(template)
    stamped["Metadata"] = {"SMR": {"ContentHash": digest, "TemplateVersion": TEMPLATE_VERSION}}
    stamped["Outputs"]["ContentHash"] = {"Value": digest}
    return stamped
