"""CloudFormation on the local stack: apply what moto skips, refuse what nobody applies.

moto's CloudFormation silently ignores resource types it does not model and still reports
``CREATE_COMPLETE``; it also drops ``Layers`` from ``AWS::Lambda::Function`` (applied by
:mod:`~airflow_provider_smr.local.moto_internals`). Here the two types our deploy templates use are
applied through moto's own
backends (``AWS::Lambda::EventInvokeConfig``, ``AWS::S3::BucketPolicy``), and any other unmodelled
type makes ``CreateStack``/``UpdateStack`` fail with a ``ValidationError`` naming it (the patches
of moto that do this are in :mod:`airflow_provider_smr.local.moto_internals`).
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.common_models import CloudFormationModel


class _Applied:
    """What both resources share: moto's CloudFormationModel plumbing around two hooks.

    A subclass names its ``TYPE``, applies its properties with ``apply`` (returning the physical
    id) and undoes them with ``remove``. Updates re-apply. Mixed in before ``CloudFormationModel``
    (moto finds models among that class's *direct* subclasses only).
    """

    TYPE = ""

    def __init__(self, resource_id: str):
        self.resource_id = resource_id

    @classmethod
    def apply(cls, props: dict, account_id: str, region_name: str) -> str:
        raise NotImplementedError

    @classmethod
    def remove(cls, props: dict, resource_name: str, account_id: str, region_name: str) -> None:
        raise NotImplementedError

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.resource_id

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict,
                                        account_id: str, region_name: str, **kwargs: Any) -> _Applied:
        props = dict(cloudformation_json.get("Properties", {}))
        return cls(cls.apply(props, account_id, region_name))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: dict, account_id: str,
                                        region_name: str) -> _Applied:
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                   account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict,
                                        account_id: str, region_name: str) -> None:
        if cloudformation_json.get("DeletionPolicy") == "Retain":
            return  # CloudFormation leaves it in place (a pinned version's invoke config)
        props = cloudformation_json.get("Properties", {})
        try:
            cls.remove(props, resource_name, account_id, region_name)
        except Exception:  # noqa: BLE001 - the function or bucket may be gone already
            pass

    def is_created(self) -> bool:
        return True


def _qualified(props: dict) -> str:
    """The function (``name`` or ``name:version``) an invoke config's properties apply to."""
    name, qualifier = props.get("FunctionName", ""), str(props.get("Qualifier") or "$LATEST")
    return name if qualifier == "$LATEST" else f"{name}:{qualifier}"


class LocalEventInvokeConfig(_Applied, CloudFormationModel):
    """``AWS::Lambda::EventInvokeConfig`` applied with moto's ``put_function_event_invoke_config``,
    to the qualifier it names (``$LATEST`` or a published version: Lambda keeps one per qualifier)."""

    TYPE = "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def apply(cls, props: dict, account_id: str, region_name: str) -> str:
        from moto.awslambda.models import lambda_backends

        if props.get("DestinationConfig"):
            from moto.cloudformation.exceptions import ValidationError

            raise ValidationError(message=(
                "AWS::Lambda::EventInvokeConfig DestinationConfig is not applied by the local "
                "stack (failed events are only retried and logged); remove it for local runs"))
        name = _qualified(props)
        props.pop("FunctionName")
        props.pop("Qualifier", None)
        config = {k: int(v) if k.startswith("Maximum") else v for k, v in props.items()}
        backend = lambda_backends[account_id][region_name]
        backend.get_function(name).event_invoke_config = []  # CloudFormation replaces
        backend.put_function_event_invoke_config(name, config)
        return name

    @classmethod
    def remove(cls, props: dict, resource_name: str, account_id: str, region_name: str) -> None:
        from moto.awslambda.models import lambda_backends

        name = _qualified(props) or resource_name
        lambda_backends[account_id][region_name].get_function(name).event_invoke_config = []


_INSECURE_TRANSPORT = {"Bool": {"aws:SecureTransport": "false"}}


def local_policy(document: dict) -> dict:
    """The bucket policy as moto must hold it: moto ignores ``Condition`` blocks, so a conditional
    statement would apply unconditionally. A deny of insecure transport is dropped (the loopback
    endpoint stands for AWS's TLS endpoint: its callers count as secure transport); any other
    conditional statement is refused rather than misapplied."""
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        condition = statement.get("Condition")
        if condition is None:
            kept.append(statement)
        elif not (statement.get("Effect") == "Deny" and condition == _INSECURE_TRANSPORT):
            raise ValueError(f"the local stack cannot apply bucket policy condition {condition!r} "
                             "(moto ignores conditions)")
    return {**document, "Statement": kept}


class LocalBucketPolicy(_Applied, CloudFormationModel):
    """``AWS::S3::BucketPolicy`` applied with moto's ``put_bucket_policy``."""

    TYPE = "AWS::S3::BucketPolicy"

    @classmethod
    def apply(cls, props: dict, account_id: str, region_name: str) -> str:
        from moto.s3.models import s3_backends

        bucket, document = props["Bucket"], props["PolicyDocument"]
        document = json.dumps(local_policy(json.loads(document) if isinstance(document, str) else document))
        s3_backends[account_id]["global"].put_bucket_policy(bucket, document.encode())
        return bucket

    @classmethod
    def remove(cls, props: dict, resource_name: str, account_id: str, region_name: str) -> None:
        from moto.s3.models import s3_backends

        s3_backends[account_id]["global"].delete_bucket_policy(props.get("Bucket", resource_name))


def unsupported_resource_message(resource_type: str) -> str:
    """The ``ValidationError`` message of a template resource type no model here or in moto
    covers (``moto_internals.install_patches`` makes such a resource fail the stack)."""
    return (f"Template resource type {resource_type} is not supported by the local stack "
            f"(moto would skip it silently); remove it or add support in "
            f"airflow_provider_smr/local/cfn.py")
