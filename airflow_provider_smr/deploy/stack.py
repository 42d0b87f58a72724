"""Deploy, describe and delete one SMR CloudFormation stack (the I/O around ``template.py``).

``deploy_stack`` is idempotent: it computes the content hash of the template it would deploy
(code + settings) and, when the existing stack already carries that hash, returns with read calls
only. Otherwise it uploads the zip to the artifacts bucket (created on first use), creates or
updates the stack, waits, and on failure raises :class:`DeployError` naming the resource that
failed first and its reason, read from the stack events.

Each deploy that changes a function publishes a new immutable version of it in the same stack
operation; the returned :class:`StackInfo` names the versions *this* deploy published
(``versions``), which the job run after it pins. A deploy that changed the stack then deletes the
versions no unfinished job pins (:mod:`.versions`).

Declared input/output locations and DynamoDB tables accumulate: a deploy adds the locations and
tables it asks for to those the stack already grants and never revokes them implicitly, so concurrent tasks that declare
different buckets neither take access away from each other's running jobs nor make the stack
flip between versions (``replace_locations=True`` narrows the grants).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_smr.deploy import artifacts
from airflow_provider_smr.deploy.errors import (
    DeployError,
    RuntimeMismatchError,
    StackNotFoundError,
    StackSettingsError,
)
from airflow_provider_smr.deploy.package import lambda_package
from airflow_provider_smr.deploy.status import (
    COMPLETE_STATES,
    DEAD_STATES,
    UPDATABLE_STATES,
    api_errors,
    error_detail,
    find_stack,
    stack_outputs,
    wait_for_stack,
)
from airflow_provider_smr.deploy.template import (
    FUNCTION_ROLES,
    TemplateSettings,
    build_template,
    content_hash,
    merge_locations,
    render,
    stamp_template,
    worker_runtime,
)
from airflow_provider_smr.deploy.versions import collect_versions, published_versions
from lambda_handlers.aws_errors import error_code, is_not_found
from lambda_handlers.options import StackSettings

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients

log = logging.getLogger(__name__)

CAPABILITIES = ["CAPABILITY_IAM"]
# Concurrent deploys of one stack (mapped tasks) wait for each other and start over this often.
MAX_DEPLOY_ROUNDS = 5


@dataclass
class StackInfo:
    """What the control plane needs to know about a deployed stack (read from its outputs).

    ``code_hash`` is the sha256 of the Lambda zip; ``content_hash`` covers code and settings;
    ``input_locations`` / ``output_locations`` are what the functions' role may read / write;
    ``versions`` are the published function versions, by role, a job started now pins (empty for
    a stack deployed before versions were published: its jobs run on ``$LATEST``);
    ``mapper_memory_mb`` / ``reducer_memory_mb`` the memory of those two functions.
    """

    stack_name: str
    region: str
    work_bucket: str
    functions: dict[str, str]
    runtime: str
    memory_mb: int
    timeout_s: int
    code_hash: str
    content_hash: str = ""
    input_locations: list[str] = field(default_factory=list)
    output_locations: list[str] = field(default_factory=list)
    #: DynamoDB tables the role may scan and write (accumulated across deploys like locations)
    tables: list[str] = field(default_factory=list)
    status: str = field(default="", compare=False)
    architecture: str = "x86_64"
    versions: dict[str, str] = field(default_factory=dict)
    mapper_memory_mb: int = 0
    reducer_memory_mb: int = 0
    #: the stack-wide running-task budget (``StackSettings.stack_max_running_tasks``; 0: none)
    max_running_tasks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StackInfo:
        known = {name: d[name] for name in cls.__dataclass_fields__ if name in d}
        known["functions"] = dict(known.get("functions") or {})
        known["versions"] = dict(known.get("versions") or {})
        for name in ("input_locations", "output_locations", "tables"):
            known[name] = list(known.get(name) or [])
        return cls(**known)


def missing_grants(stack: StackInfo, inputs: Any, output: Any) -> list[str]:
    """What a job reading ``inputs`` and writing ``output`` needs that ``stack``'s role does not
    grant (``read s3://...``, ``write s3://...``, ``table NAME``); empty when everything is granted.
    The same :class:`~lambda_handlers.grants.Location` rules as the policy, so a declared
    ``s3://b/out`` covers ``s3://b/out/day=1/`` but not ``s3://b/outage/``."""
    from lambda_handlers.grants import Location
    from lambda_handlers.planning import dynamodb_tables, s3_locations

    def uncovered(granted: list[str], wanted: list[str], folder: bool) -> list[str]:
        have = [Location.parse(g, folder=folder) for g in granted]
        return [w for w in wanted
                if not any(h.covers(Location.parse(w, folder=folder)) for h in have)]

    missing = [f"read {u}" for u in uncovered(stack.input_locations, s3_locations(inputs), False)]
    missing += [f"write {u}" for u in uncovered(stack.output_locations, s3_locations(output), True)]
    missing += [f"table {t}" for t in dynamodb_tables(inputs, output)
                if not any(fnmatch.fnmatchcase(t, pattern) for pattern in stack.tables)]
    return missing


# ---------------------------------------------------------------------------------------------
# Reading a stack


def stack_info_from_description(stack: dict, region: str) -> StackInfo:
    """Build :class:`StackInfo` from a DescribeStacks entry (raises if it is not an SMR stack)."""
    outputs = stack_outputs(stack)
    needed = ["WorkBucket", "Runtime", "MemoryMb", "TimeoutS", "CodeSha256"] + [
        f"{role.capitalize()}Function" for role in FUNCTION_ROLES]
    missing = [key for key in needed if not outputs.get(key)]
    if missing:
        raise StackNotFoundError(stack["StackName"], region,
                                 f"stack exists (status {stack['StackStatus']}) but lacks the SMR "
                                 f"outputs {missing}; it is not a usable SMR stack")
    return StackInfo(
        stack_name=stack["StackName"], region=region, work_bucket=outputs["WorkBucket"],
        functions={role: outputs[f"{role.capitalize()}Function"] for role in FUNCTION_ROLES},
        runtime=outputs["Runtime"], memory_mb=int(outputs["MemoryMb"]),
        timeout_s=int(outputs["TimeoutS"]), code_hash=outputs["CodeSha256"],
        content_hash=outputs.get("ContentHash", ""),
        input_locations=_locations(outputs, "InputLocations"),
        output_locations=_locations(outputs, "OutputLocations"), tables=_locations(outputs, "Tables"),
        status=stack["StackStatus"],
        architecture=outputs.get("Architecture") or "x86_64",
        versions={role: outputs[f"{role.capitalize()}Version"] for role in FUNCTION_ROLES
                  if outputs.get(f"{role.capitalize()}Version")},
        mapper_memory_mb=int(outputs.get("MapperMemoryMb") or outputs["MemoryMb"]),
        reducer_memory_mb=int(outputs.get("ReducerMemoryMb") or outputs["MemoryMb"]),
        max_running_tasks=int(outputs.get("MaxRunningTasks") or 0),
    )


def _locations(outputs: dict[str, str], key: str) -> list[str]:
    try:
        value = json.loads(outputs.get(key) or "[]")
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def describe_stack(clients: AwsClients, stack_name: str) -> StackInfo:
    """The deployed stack's :class:`StackInfo`; :class:`StackNotFoundError` if there is none."""
    stack = find_stack(clients.cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name, clients.region_name)
    if stack["StackStatus"] in DEAD_STATES:
        raise StackNotFoundError(stack_name, clients.region_name,
                                 f"its creation failed ({stack['StackStatus']}); deploy again")
    return stack_info_from_description(stack, clients.region_name)


def check_stack_runtime(stack_info: StackInfo, runtime: str | None = None) -> None:
    """Raise :class:`RuntimeMismatchError` unless the stack runs this worker's ``pythonX.Y``.

    Job code travels cloudpickled, and cloudpickle output only loads on the same Python minor
    version, so this check runs before anything is invoked.
    """
    expected = runtime or worker_runtime()
    if stack_info.runtime != expected:
        raise RuntimeMismatchError(
            f"stack {stack_info.stack_name!r} runs {stack_info.runtime} but this worker runs "
            f"{expected}: pickled job code only loads on the same Python version. Redeploy the "
            f"stack from this worker (deploy_stack / deploy=True) or run the worker on "
            f"{stack_info.runtime}.")


# ---------------------------------------------------------------------------------------------
# Deploy


class _StackBusy(Exception):
    """Another deploy is changing the stack right now; wait for it and start over."""


def _discard_stuck_create(cf: Any, stack_name: str) -> None:
    """Remove a stack a rejected CreateStack left behind.

    AWS creates nothing when it rejects CreateStack. moto creates resources inside the call, and
    when one fails it answers with an error but keeps the stack CREATE_IN_PROGRESS forever (and
    cannot even describe it), which would block every later deploy of that name.
    """
    from botocore.parsers import ResponseParserError

    try:
        stack = find_stack(cf, stack_name)
    except ResponseParserError:
        stack = {"StackStatus": "CREATE_IN_PROGRESS"}
    if stack is not None and stack["StackStatus"] == "CREATE_IN_PROGRESS" and not stack.get("Outputs"):
        log.warning("deleting stack %s left behind by the rejected create", stack_name)
        cf.delete_stack(StackName=stack_name)


def _rejected(stack_name: str, action: str, error: Exception) -> DeployError:
    detail = error_detail(error)
    return DeployError(f"{action} of stack {stack_name!r} was rejected: {detail}",
                       stack_name=stack_name, reason=detail)


def _create(cf: Any, stack_name: str, body: str, tags: list[dict], wait: dict) -> dict:
    log.info("creating stack %s", stack_name)
    try:
        cf.create_stack(StackName=stack_name, TemplateBody=body, Capabilities=CAPABILITIES,
                        Tags=tags, OnFailure="ROLLBACK")
    except api_errors() as error:
        if error_code(error) == "AlreadyExistsException":
            raise _StackBusy(stack_name) from error
        _discard_stuck_create(cf, stack_name)
        raise _rejected(stack_name, "create", error) from error
    return wait_for_stack(cf, stack_name, "create", **wait)


def _update(cf: Any, stack_name: str, body: str, tags: list[dict], wait: dict) -> dict:
    log.info("updating stack %s", stack_name)
    try:
        cf.update_stack(StackName=stack_name, TemplateBody=body, Capabilities=CAPABILITIES, Tags=tags)
    except api_errors() as error:
        if "No updates are to be performed" in str(error):
            return find_stack(cf, stack_name) or {}
        if re.search(r"is in [A-Z_]+_IN_PROGRESS state", str(error)):
            raise _StackBusy(stack_name) from error
        raise _rejected(stack_name, "update", error) from error
    return wait_for_stack(cf, stack_name, "update", **wait)


def _existing_stack(cf: Any, stack_name: str, wait: dict) -> dict | None:
    """The stack to update, or None when a create is needed (a dead failed create is deleted).

    An operation someone else started is waited out first (its failure is not ours to raise).
    """
    stack = find_stack(cf, stack_name)
    if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
        log.info("stack %s is %s; waiting for it first", stack_name, stack["StackStatus"])
        try:
            wait_for_stack(cf, stack_name, "wait", **wait)
        except DeployError:
            pass
        stack = find_stack(cf, stack_name)
    if stack is None or stack["StackStatus"] in UPDATABLE_STATES:
        return stack
    if stack["StackStatus"] in DEAD_STATES:
        log.info("stack %s is %s after a failed create; deleting it", stack_name, stack["StackStatus"])
        cf.delete_stack(StackName=stack_name)
        wait_for_stack(cf, stack_name, "delete", **wait)
        return None
    raise DeployError(f"stack {stack_name!r} is {stack['StackStatus']} and cannot be updated; "
                      "fix or delete it in the CloudFormation console", stack_name=stack_name,
                      status=stack["StackStatus"])


def deploy_stack(
    clients: AwsClients,
    stack_name: str = "smr",
    settings: StackSettings | None = None,
    *,
    input_buckets: Iterable[str] = (),
    output_buckets: Iterable[str] = (),
    tables: Iterable[str] = (),
    replace_locations: bool = False,
    artifacts_bucket: str | None = None,
    wait_timeout_s: float = 1800,
    poll_s: float = 1.0,
) -> StackInfo:
    """Create or update the stack so it runs this installation's code with these settings.

    Unchanged content hash (code + settings) -> no AWS writes, only describe/get calls.

    :param clients: AWS clients (the hook's or the CLI's).
    :param stack_name: CloudFormation stack name; functions are named ``<stack_name>-<role>``.
    :param settings: the deployment settings (memory, timeout, layers, requirements, log
        retention, job expiry, architecture; see ``lambda_handlers.options.StackSettings``).
        ``requirements`` are built into a layer from wheels for Lambda's platform (native code
        included; see ``deploy.requirements``), uploaded to the artifacts bucket and attached to
        every function.
    :param input_buckets: locations the functions may read: ``bucket`` or ``s3://bucket/prefix``.
    :param output_buckets: locations the functions may write (commit targets).
    :param tables: DynamoDB tables the functions may scan and write (names, or ``dynamodb://`` URIs).
    :param replace_locations: grant exactly the given locations instead of adding them to the
        ones the stack already grants.
    :param artifacts_bucket: bucket for the zip; default ``smr-artifacts-<account>-<region>``.
    :param wait_timeout_s: give up waiting for CloudFormation after this long.
    :param poll_s: first delay between stack status polls (grows to 10 s).
    """
    settings = settings or StackSettings()
    package = lambda_package()
    layers = list(settings.layers)
    if artifacts_bucket is None:
        account = clients.sts.get_caller_identity()["Account"]
        artifacts_bucket = artifacts.artifacts_bucket_name(account, clients.region_name)
    template_settings = TemplateSettings(
        stack_name=stack_name, artifacts_bucket=artifacts_bucket,
        code_key=artifacts.code_key(package.sha256), code_sha256=package.sha256,
        runtime=worker_runtime(), memory_mb=settings.memory_mb, timeout_s=settings.timeout_s,
        input_buckets=tuple(input_buckets), output_buckets=tuple(output_buckets),
        log_retention_days=settings.log_retention_days, jobs_expire_days=settings.jobs_expire_days,
        layers=tuple(layers),
        tables=tuple(sorted({t.removeprefix("dynamodb://").split("?")[0] for t in tables})),
        architecture=settings.architecture,
        mapper_memory_mb=settings.mapper_memory_mb, reducer_memory_mb=settings.reducer_memory_mb,
        max_running_tasks=settings.stack_max_running_tasks,
        reserved_concurrency=settings.reserved_concurrency, kms_key_arn=settings.kms_key_arn,
        subnet_ids=tuple(settings.subnet_ids), security_group_ids=tuple(settings.security_group_ids),
        on_failure_destination=settings.on_failure_destination)
    if settings.requirements:  # built after the settings are validated: it may take a while
        from airflow_provider_smr.deploy.requirements import publish_layer

        if len(layers) >= 5:
            raise StackSettingsError(f"layers: Lambda allows at most 5 per function and requirements "
                                     f"adds one to the {len(layers)} given; drop a layer")

        layers.append(publish_layer(
            clients.lambda_, stack_name, list(settings.requirements),
            worker_runtime().removeprefix("python"), architecture=settings.architecture,
            function_code=package.data, s3=clients.s3, bucket=artifacts_bucket,
            region=clients.region_name))
        template_settings = replace(template_settings, layers=tuple(layers))
    wait = {"timeout_s": wait_timeout_s, "poll_s": poll_s}
    for _round in range(MAX_DEPLOY_ROUNDS):
        try:
            return _deploy_once(clients, template_settings, package.data, replace_locations, wait)
        except _StackBusy:
            log.info("stack %s is being changed by another deploy; waiting and starting over", stack_name)
    raise DeployError(f"stack {stack_name!r} kept being changed by other deploys; retry later",
                      stack_name=stack_name)


def _deploy_once(clients: AwsClients, settings: TemplateSettings, code: bytes, replace_locations: bool,
                 wait: dict) -> StackInfo:
    cf, stack_name, region = clients.cloudformation, settings.stack_name, clients.region_name
    stack = _existing_stack(cf, stack_name, wait)
    if stack is not None and not _is_smr(stack):
        raise DeployError(f"stack {stack_name!r} exists but is not an SMR stack (it has no SMR "
                          "outputs); refusing to overwrite it: choose another stack_name",
                          stack_name=stack_name, status=stack["StackStatus"])
    if stack is not None and not replace_locations:
        granted = stack_info_from_description(stack, region)
        settings = replace(
            settings,
            input_buckets=merge_locations(settings.input_buckets, granted.input_locations),
            output_buckets=merge_locations(settings.output_buckets, granted.output_locations, folder=True),
            tables=tuple(sorted({*settings.tables, *granted.tables})))
    template = build_template(settings)
    digest = content_hash(template)
    if (stack is not None and stack["StackStatus"] in COMPLETE_STATES
            and stack_outputs(stack).get("ContentHash") == digest):
        log.info("stack %s is up to date (content hash %s)", stack_name, digest[:12])
        return stack_info_from_description(stack, region)

    artifacts.ensure_bucket(clients.s3, settings.artifacts_bucket, region)
    artifacts.upload_code(clients.s3, settings.artifacts_bucket, settings.code_key, code)
    body = render(stamp_template(template, digest))
    tags = [{"Key": "smr:content-hash", "Value": digest},
            {"Key": "smr:code-sha256", "Value": settings.code_sha256}]
    created = stack is None
    if created:
        stack = _create(cf, stack_name, body, tags, wait)
    else:
        stack = _update(cf, stack_name, body, tags, wait)
    info = stack_info_from_description(stack, region)
    if stack_outputs(stack).get("ContentHash") != digest:
        # Another deploy changed the stack right after ours: pin what ours published.
        info = replace(info, versions=published_versions(clients.lambda_, settings),
                       memory_mb=settings.memory_mb, timeout_s=settings.timeout_s,
                       mapper_memory_mb=settings.memory_for("mapper"),
                       reducer_memory_mb=settings.memory_for("reducer"))
    log.info("stack %s deployed: %s, %d MB (mapper %d MB, reducer %d MB), %d s, work bucket %s, "
             "versions %s", stack_name, info.runtime, info.memory_mb, info.mapper_memory_mb,
             info.reducer_memory_mb, info.timeout_s, info.work_bucket,
             ", ".join(f"{role} {v}" for role, v in info.versions.items()) or "$LATEST")
    # A created stack's functions are new: each holds the one version it just published, and
    # collecting would only list them (5-6 requests of every first deploy, and of smr run --local).
    if info.versions and not created:
        try:
            collect_versions(clients, stack_name, info.work_bucket, keep=info.versions)
        except Exception as exc:  # noqa: BLE001 - old versions only cost storage; the deploy stands
            log.warning("stack %s: old function versions not collected: %s", stack_name, exc)
    return info


def _is_smr(stack: dict) -> bool:
    outputs = stack_outputs(stack)
    return "WorkBucket" in outputs and "CodeSha256" in outputs


# ---------------------------------------------------------------------------------------------
# Delete


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version, delete marker and pending upload; return objects deleted."""
    from botocore.exceptions import ClientError

    deleted = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(batch), 1000):
                chunk = batch[start:start + 1000]
                response = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise DeployError(f"cannot empty work bucket {bucket!r}: {first.get('Key')}: "
                                      f"{first.get('Code')} {first.get('Message')}", stack_name="")
                deleted += len(chunk)
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except ClientError as error:
        if is_not_found(error):
            return deleted
        raise
    return deleted


def _request_delete(cf: Any, stack_name: str) -> None:
    try:
        cf.delete_stack(StackName=stack_name)
    except api_errors() as error:
        raise _rejected(stack_name, "delete", error) from error


def delete_stack(clients: AwsClients, stack_name: str, *, missing_ok: bool = False,
                 wait_timeout_s: float = 1800, poll_s: float = 1.0) -> None:
    """Empty the stack's work bucket (all versions), then delete the stack and wait.

    The shared artifacts bucket is kept. :class:`StackNotFoundError` if there is no such stack,
    unless ``missing_ok``.
    """
    cf = clients.cloudformation
    stack = find_stack(cf, stack_name)
    if stack is None:
        if missing_ok:
            return
        raise StackNotFoundError(stack_name, clients.region_name, "nothing to delete")
    bucket = stack_outputs(stack).get("WorkBucket")
    if bucket:
        count = empty_bucket(clients.s3, bucket)
        log.info("emptied work bucket %s (%d object versions)", bucket, count)
    log.info("deleting stack %s", stack_name)
    _request_delete(cf, stack_name)
    try:
        wait_for_stack(cf, stack_name, "delete", timeout_s=wait_timeout_s, poll_s=poll_s)
    except DeployError as error:
        if not bucket or error.resource != "WorkBucket":
            raise
        # A job still running wrote into the bucket after it was emptied: empty it once more.
        log.warning("work bucket %s was written to during the delete; emptying it again", bucket)
        empty_bucket(clients.s3, bucket)
        _request_delete(cf, stack_name)
        wait_for_stack(cf, stack_name, "delete", timeout_s=wait_timeout_s, poll_s=poll_s)
