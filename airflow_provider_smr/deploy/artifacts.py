"""The artifacts bucket: where the Lambda zip waits for CloudFormation, keyed by its hash."""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_smr.deploy.errors import DeployError
from lambda_handlers.aws_errors import error_code, is_not_found

log = logging.getLogger(__name__)

CODE_KEY_PREFIX = "smr/lambda/"


def artifacts_bucket_name(account_id: str, region: str) -> str:
    """The per-account, per-region bucket holding Lambda zips (deterministic, shared by stacks)."""
    return f"smr-artifacts-{account_id}-{region}"


def code_key(code_sha256: str) -> str:
    """The zip's key: the hash makes the key immutable (same key, same bytes)."""
    return f"{CODE_KEY_PREFIX}{code_sha256}.zip"


def ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    """Create the artifacts bucket (private, encrypted) unless it exists."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as error:
        code = error_code(error)
        if code in ("403", "AccessDenied", "Forbidden"):
            raise DeployError(f"artifacts bucket {bucket!r} exists but this account cannot use it; "
                              "pass artifacts_bucket= with a bucket you own", stack_name="") from error
        if not is_not_found(error):
            raise
    log.info("creating artifacts bucket %s", bucket)
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**create)
    except ClientError as error:
        if error_code(error) != "BucketAlreadyOwnedByYou":  # a concurrent deploy made it
            raise
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})


def upload_code(s3: Any, bucket: str, key: str, data: bytes) -> None:
    """Upload the zip unless the key (which contains its hash) is already there."""
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return
    except ClientError as error:
        if not is_not_found(error):
            raise
    log.info("uploading Lambda package s3://%s/%s (%d bytes)", bucket, key, len(data))
    s3.put_object(Bucket=bucket, Key=key, Body=data)
