"""Deploy, describe and delete one SMR CloudFormation stack (the I/O around ``template.py``).

``deploy_stack`` is idempotent: it computes the content hash of the template it would deploy
(code + settings) and, when the existing stack already carries that hash, returns with read calls
only. Otherwise it uploads the zip to the artifacts bucket (created on first use), creates or
updates the stack, waits, and on failure raises :class:`DeployError` naming the resource that
failed first and its reason, read from the stack events.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from airflow_provider_smr.deploy.errors import DeployError, RuntimeMismatchError, StackNotFoundError
from airflow_provider_smr.deploy.package import lambda_package
from airflow_provider_smr.deploy.template import (
    FUNCTION_ROLES,
    StackSettings,
    build_template,
    content_hash,
    render,
    stamp_template,
    worker_runtime,
)

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients

log = logging.getLogger(__name__)

COMPLETE_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
# A create that failed and rolled back leaves an empty stack that can only be deleted.
DEAD_STATES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED")
# States an update can start from (a rolled-back update left the previous, working version).
UPDATABLE_STATES = COMPLETE_STATES + ("UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")
CAPABILITIES = ["CAPABILITY_IAM"]
CODE_KEY_PREFIX = "smr/lambda/"


@dataclass
class StackInfo:
    """What the control plane needs to know about a deployed stack (read from its outputs).

    ``code_hash`` is the sha256 of the Lambda zip; ``content_hash`` covers code and settings.
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
    status: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StackInfo:
        known = {name: d[name] for name in cls.__dataclass_fields__ if name in d}
        known["functions"] = dict(known.get("functions") or {})
        return cls(**known)


# ---------------------------------------------------------------------------------------------
# Reading a stack


def _client_error_code(error: Exception) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code", "")


def _is_missing_stack(error: Exception) -> bool:
    return _client_error_code(error) == "ValidationError" and "does not exist" in str(error)


def _find_stack(cf: Any, stack_name: str) -> dict | None:
    """The stack's DescribeStacks entry, or None when there is none (deleted stacks are none)."""
    from botocore.exceptions import ClientError

    try:
        stacks = cf.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if _is_missing_stack(error):
            return None
        raise
    live = [s for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


def _outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def stack_info_from_description(stack: dict, region: str) -> StackInfo:
    """Build :class:`StackInfo` from a DescribeStacks entry (raises if it is not an SMR stack)."""
    outputs = _outputs(stack)
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
        content_hash=outputs.get("ContentHash", ""), status=stack["StackStatus"],
    )


def describe_stack(clients: AwsClients, stack_name: str) -> StackInfo:
    """The deployed stack's :class:`StackInfo`; :class:`StackNotFoundError` if there is none."""
    stack = _find_stack(clients.cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name, clients.region_name)
    if stack["StackStatus"] in DEAD_STATES:
        raise StackNotFoundError(stack_name, clients.region_name,
                                 f"its creation failed ({stack['StackStatus']}); deploy again")
    return stack_info_from_description(stack, clients.region_name)


def check_runtime(stack_info: StackInfo, runtime: str | None = None) -> None:
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
# Stack events -> the failing resource


def failure_from_events(events: Iterable[dict]) -> tuple[str, str, str] | None:
    """``(logical id, resource type, reason)`` of the first failure of the latest operation.

    ``events`` come newest first, as DescribeStackEvents returns them. The latest operation
    starts at the newest stack-level ``*_IN_PROGRESS`` event with reason "User Initiated". The
    first failure (not the "Resource creation cancelled" echoes that follow it) is the cause.
    """
    current: list[dict] = []
    for event in events:
        current.append(event)
        is_stack = event.get("ResourceType") == "AWS::CloudFormation::Stack"
        if (is_stack and event.get("ResourceStatus", "").endswith("_IN_PROGRESS")
                and event.get("ResourceStatusReason") == "User Initiated"):
            break
    failures = [e for e in reversed(current)
                if e.get("ResourceStatus", "").endswith("_FAILED")
                and e.get("ResourceType") != "AWS::CloudFormation::Stack"]
    if not failures:
        failures = [e for e in reversed(current) if e.get("ResourceStatus", "").endswith("_FAILED")]
    for event in failures:
        reason = event.get("ResourceStatusReason") or ""
        if "cancelled" not in reason.lower() or event is failures[-1]:
            return event["LogicalResourceId"], event.get("ResourceType", ""), reason
    return None


def _stack_events(cf: Any, stack_id: str, limit: int = 200) -> list[dict]:
    events: list[dict] = []
    for page in cf.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        events.extend(page["StackEvents"])
        if len(events) >= limit:
            break
    return events


def _failure_error(cf: Any, stack: dict, action: str) -> DeployError:
    name, status = stack["StackName"], stack["StackStatus"]
    failure = failure_from_events(_stack_events(cf, stack.get("StackId", name)))
    if failure is None:
        reason = stack.get("StackStatusReason") or "no failure event recorded"
        return DeployError(f"{action} of stack {name!r} failed ({status}): {reason}",
                           stack_name=name, status=status, reason=reason)
    resource, resource_type, reason = failure
    return DeployError(f"{action} of stack {name!r} failed ({status}): resource {resource} "
                       f"({resource_type}) failed: {reason}",
                       stack_name=name, status=status, resource=resource, reason=reason)


def wait_for_stack(cf: Any, stack_name: str, action: str, *, timeout_s: float = 1800,
                   poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> dict | None:
    """Poll until the stack leaves ``*_IN_PROGRESS``; return it (None once deleted).

    Raises :class:`DeployError` (with the failing resource) when it ends anywhere but complete.
    """
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        stack = _find_stack(cf, stack_name)
        if stack is None:
            if action == "delete":
                return None
            raise DeployError(f"stack {stack_name!r} disappeared during {action}", stack_name=stack_name)
        status = stack["StackStatus"]
        if action == "delete":
            if status == "DELETE_FAILED":
                raise _failure_error(cf, stack, action)
        elif status in COMPLETE_STATES:
            return stack
        elif not status.endswith("_IN_PROGRESS"):
            raise _failure_error(cf, stack, action)
        if time.monotonic() > deadline:
            raise DeployError(f"{action} of stack {stack_name!r} still {status} after {timeout_s:.0f} s; "
                              "check the CloudFormation console", stack_name=stack_name, status=status)
        sleep(delay)
        delay = min(delay * 1.5, 10.0)


# ---------------------------------------------------------------------------------------------
# Deploy


def artifacts_bucket_name(account_id: str, region: str) -> str:
    """The per-account, per-region bucket holding Lambda zips (deterministic, shared by stacks)."""
    return f"smr-artifacts-{account_id}-{region}"


def code_key(code_sha256: str) -> str:
    return f"{CODE_KEY_PREFIX}{code_sha256}.zip"


def _ensure_artifacts_bucket(s3: Any, bucket: str, region: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as error:
        code = _client_error_code(error)
        if code in ("403", "AccessDenied", "Forbidden"):
            raise DeployError(f"artifacts bucket {bucket!r} exists but this account cannot use it; "
                              "pass artifacts_bucket= with a bucket you own", stack_name="") from error
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    log.info("creating artifacts bucket %s", bucket)
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**create)
    except ClientError as error:
        if _client_error_code(error) != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})


def _upload_code(s3: Any, bucket: str, key: str, data: bytes) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return  # the key contains the hash: same key, same bytes
    except ClientError as error:
        if _client_error_code(error) not in ("404", "NoSuchKey", "NotFound"):
            raise
    log.info("uploading Lambda package s3://%s/%s (%d bytes)", bucket, key, len(data))
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def _error_detail(error: Exception) -> str:
    """The service's own message: ``Code: message`` for API errors, also for unparsable bodies."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        return f"{response['Error'].get('Code', '')}: {response['Error'].get('Message', '')}"
    # moto answers some CloudFormation failures with a JSON body botocore cannot parse as XML.
    match = re.search(r"b'(\{.*\})'", str(error), re.S)
    if match:
        try:
            body = json.loads(match.group(1))
            return f"{body.get('__type', '')}: {body.get('message', body.get('Message', ''))}"
        except ValueError:
            pass
    return str(error)


def _api_error(stack_name: str, action: str, error: Exception) -> DeployError:
    """An error CloudFormation returned synchronously (invalid template, or moto failing a resource)."""
    detail = _error_detail(error)
    return DeployError(f"{action} of stack {stack_name!r} was rejected: {detail}",
                       stack_name=stack_name, reason=detail)


def _discard_stuck_create(cf: Any, stack_name: str) -> None:
    """Remove a stack a rejected CreateStack left behind.

    AWS creates nothing when it rejects CreateStack. moto creates resources inside the call, and
    when one fails it answers with an error but keeps the stack CREATE_IN_PROGRESS forever (and
    cannot even describe it), which would block every later deploy of that name.
    """
    from botocore.parsers import ResponseParserError

    try:
        stack = _find_stack(cf, stack_name)
    except ResponseParserError:
        stack = {"StackStatus": "CREATE_IN_PROGRESS"}
    if stack is not None and stack["StackStatus"] == "CREATE_IN_PROGRESS" and not stack.get("Outputs"):
        log.warning("deleting stack %s left behind by the rejected create", stack_name)
        cf.delete_stack(StackName=stack_name)


def _api_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError)


def _create(cf: Any, stack_name: str, body: str, tags: list[dict], wait: dict) -> dict:
    log.info("creating stack %s", stack_name)
    try:
        cf.create_stack(StackName=stack_name, TemplateBody=body, Capabilities=CAPABILITIES,
                        Tags=tags, OnFailure="ROLLBACK")
    except _api_errors() as error:
        if _client_error_code(error) == "AlreadyExistsException":
            raise DeployError(f"stack {stack_name!r} was created concurrently by another deploy; "
                              "retry", stack_name=stack_name) from error
        _discard_stuck_create(cf, stack_name)
        raise _api_error(stack_name, "create", error) from error
    return wait_for_stack(cf, stack_name, "create", **wait)


def _update(cf: Any, stack_name: str, body: str, tags: list[dict], wait: dict) -> dict:
    log.info("updating stack %s", stack_name)
    try:
        cf.update_stack(StackName=stack_name, TemplateBody=body, Capabilities=CAPABILITIES, Tags=tags)
    except _api_errors() as error:
        if "No updates are to be performed" in str(error):
            return _find_stack(cf, stack_name) or {}
        raise _api_error(stack_name, "update", error) from error
    return wait_for_stack(cf, stack_name, "update", **wait)


def deploy_stack(
    clients: AwsClients,
    stack_name: str = "smr",
    *,
    memory_mb: int = 1024,
    timeout_s: int = 300,
    input_buckets: Iterable[str] = (),
    output_buckets: Iterable[str] = (),
    log_retention_days: int = 14,
    jobs_expire_days: int = 7,
    layers: Iterable[str] = (),
    artifacts_bucket: str | None = None,
    wait_timeout_s: float = 1800,
    poll_s: float = 1.0,
) -> StackInfo:
    """Create or update the stack so it runs this installation's code with these settings.

    Unchanged content hash (code + settings) -> no AWS writes, only describe/get calls.

    :param clients: AWS clients (the hook's or the CLI's).
    :param stack_name: CloudFormation stack name; functions are named ``<stack_name>-<role>``.
    :param memory_mb: MemorySize of every function.
    :param timeout_s: Timeout of every function (seconds, at most 900).
    :param input_buckets: locations the functions may read: ``bucket`` or ``s3://bucket/prefix``.
    :param output_buckets: locations the functions may write (commit targets).
    :param log_retention_days: retention of the functions' log groups.
    :param jobs_expire_days: job state under ``jobs/`` in the work bucket expires after this.
    :param layers: Lambda layer version ARNs for every function.
    :param artifacts_bucket: bucket for the zip; default ``smr-artifacts-<account>-<region>``.
    :param wait_timeout_s: give up waiting for CloudFormation after this long.
    :param poll_s: first delay between stack status polls (grows to 10 s).
    """
    region = clients.region_name
    package = lambda_package()
    if artifacts_bucket is None:
        account = clients.sts.get_caller_identity()["Account"]
        artifacts_bucket = artifacts_bucket_name(account, region)
    settings = StackSettings(
        stack_name=stack_name, artifacts_bucket=artifacts_bucket, code_key=code_key(package.sha256),
        code_sha256=package.sha256, runtime=worker_runtime(), memory_mb=memory_mb,
        timeout_s=timeout_s, input_buckets=tuple(input_buckets), output_buckets=tuple(output_buckets),
        log_retention_days=log_retention_days, jobs_expire_days=jobs_expire_days, layers=tuple(layers))
    template = build_template(settings)
    digest = content_hash(template)
    cf = clients.cloudformation
    wait = {"timeout_s": wait_timeout_s, "poll_s": poll_s}

    stack = _existing_stack(cf, stack_name, wait)
    if (stack is not None and stack["StackStatus"] in COMPLETE_STATES
            and _outputs(stack).get("ContentHash") == digest):
        log.info("stack %s is up to date (content hash %s)", stack_name, digest[:12])
        return stack_info_from_description(stack, region)

    _ensure_artifacts_bucket(clients.s3, artifacts_bucket, region)
    _upload_code(clients.s3, artifacts_bucket, settings.code_key, package.data)
    body = render(stamp_template(template, digest))
    tags = [{"Key": "smr:content-hash", "Value": digest}, {"Key": "smr:code-sha256", "Value": package.sha256}]
    if stack is None:
        stack = _create(cf, stack_name, body, tags, wait)
    else:
        stack = _update(cf, stack_name, body, tags, wait)
    info = stack_info_from_description(stack, region)
    log.info("stack %s deployed: %s, %d MB, %d s, work bucket %s", stack_name, info.runtime,
             info.memory_mb, info.timeout_s, info.work_bucket)
    return info


def _existing_stack(cf: Any, stack_name: str, wait: dict) -> dict | None:
    """The stack to update, or None when a create is needed (a dead failed create is deleted).

    An operation someone else started is waited out first (its failure is not ours to raise).
    """
    stack = _find_stack(cf, stack_name)
    if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
        log.info("stack %s is %s; waiting for it first", stack_name, stack["StackStatus"])
        try:
            wait_for_stack(cf, stack_name, "wait", **wait)
        except DeployError:
            pass
        stack = _find_stack(cf, stack_name)
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
        if _client_error_code(error) == "NoSuchBucket":
            return deleted
        raise
    return deleted


def delete_stack(clients: AwsClients, stack_name: str, *, missing_ok: bool = False,
                 wait_timeout_s: float = 1800, poll_s: float = 1.0) -> None:
    """Empty the stack's work bucket (all versions), then delete the stack and wait.

    The shared artifacts bucket is kept. :class:`StackNotFoundError` if there is no such stack,
    unless ``missing_ok``.
    """
    cf = clients.cloudformation
    stack = _find_stack(cf, stack_name)
    if stack is None:
        if missing_ok:
            return
        raise StackNotFoundError(stack_name, clients.region_name, "nothing to delete")
    bucket = _outputs(stack).get("WorkBucket")
    if bucket:
        count = empty_bucket(clients.s3, bucket)
        log.info("emptied work bucket %s (%d object versions)", bucket, count)
    log.info("deleting stack %s", stack_name)
    cf.delete_stack(StackName=stack_name)
    wait_for_stack(cf, stack_name, "delete", timeout_s=wait_timeout_s, poll_s=poll_s)
