"""Deploy the SMR CloudFormation stack: the Lambda package, the template, and the stack's lifecycle.

``deploy_stack`` creates or updates one stack (idempotent by content hash) and publishes a
version of each function a job pins, ``describe_stack`` reads it back as a :class:`StackInfo`,
``collect_versions`` deletes the versions no unfinished job pins, ``delete_stack`` empties its
work bucket and deletes it, and ``check_stack_runtime`` refuses a stack whose Python is not the worker's.
"""

from __future__ import annotations

from airflow_provider_smr.deploy.artifacts import artifacts_bucket_name
from airflow_provider_smr.deploy.errors import (
    DeployError,
    RuntimeMismatchError,
    SMRStackError,
    StackNotFoundError,
    StackSettingsError,
)
from airflow_provider_smr.deploy.package import LambdaPackage, build_zip, lambda_package
from airflow_provider_smr.deploy.stack import (
    StackInfo,
    check_stack_runtime,
    delete_stack,
    deploy_stack,
    describe_stack,
    empty_bucket,
)
from airflow_provider_smr.deploy.status import failure_from_events
from airflow_provider_smr.deploy.template import (
    FUNCTION_ROLES,
    TemplateSettings,
    build_template,
    content_hash,
    function_name,
    log_group_name,
    render,
    stamp_template,
    worker_runtime,
)
from airflow_provider_smr.deploy.versions import collect_versions

__all__ = [
    "FUNCTION_ROLES",
    "DeployError",
    "LambdaPackage",
    "RuntimeMismatchError",
    "SMRStackError",
    "StackInfo",
    "StackNotFoundError",
    "TemplateSettings",
    "StackSettingsError",
    "artifacts_bucket_name",
    "build_template",
    "build_zip",
    "check_stack_runtime",
    "collect_versions",
    "content_hash",
    "delete_stack",
    "deploy_stack",
    "describe_stack",
    "empty_bucket",
    "failure_from_events",
    "function_name",
    "lambda_package",
    "log_group_name",
    "render",
    "stamp_template",
    "worker_runtime",
]
