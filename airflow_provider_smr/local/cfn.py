"""CloudFormation on the local stack: apply what moto skips, refuse what nobody applies.

moto's CloudFormation silently ignores resource types it does not model and still reports
``CREATE_COMPLETE``; it also drops ``Layers`` from ``AWS::Lambda::Function`` (applied here). Here the two types our deploy templates use are applied through moto's own
backends (``AWS::Lambda::EventInvokeConfig``, ``AWS::S3::BucketPolicy``), and any other unmodelled
type makes ``CreateStack``/``UpdateStack`` fail with a ``ValidationError`` naming it.
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
                                        account_id: str, region_name: str, **kwargs: Any):
        props = dict(cloudformation_json.get("Properties", {}))
        return cls(cls.apply(props, account_id, region_name))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: dict, account_id: str,
                                        region_name: str):
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                   account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict,
                                        account_id: str, region_name: str) -> None:
        props = cloudformation_json.get("Properties", {})
        try:
            cls.remove(props, resource_name, account_id, region_name)
        except Exception:  # the function or bucket may be gone already
            pass

    def is_created(self) -> bool:
        return True


class LocalEventInvokeConfig(_Applied, CloudFormationModel):
    """``AWS::Lambda::EventInvokeConfig`` applied with moto's ``put_function_event_invoke_config``."""

    TYPE = "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def apply(cls, props: dict, account_id: str, region_name: str) -> str:
        from moto.awslambda.models import lambda_backends

        if props.get("DestinationConfig"):
            from moto.cloudformation.exceptions import ValidationError

            raise ValidationError(message=(
                "AWS::Lambda::EventInvokeConfig DestinationConfig is not applied by the local "
                "stack (failed events are only retried and logged); remove it for local runs"))
        name = props.pop("FunctionName")
        props.pop("Qualifier", None)
        config = {k: int(v) if k.startswith("Maximum") else v for k, v in props.items()}
        backend = lambda_backends[account_id][region_name]
        backend.get_function(name).event_invoke_config = []  # CloudFormation replaces
        backend.put_function_event_invoke_config(name, config)
        return name

    @classmethod
    def remove(cls, props: dict, resource_name: str, account_id: str, region_name: str) -> None:
        from moto.awslambda.models import lambda_backends

        name = props.get("FunctionName", resource_name)
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


def install() -> None:
    """Register the resources above and make unmodelled resource types fail the stack."""
    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import ValidationError

    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    original = parsing.parse_resource
    if getattr(original, "_smr_strict", False):
        return

    def parse_resource(resource_json: dict, resources_map: Any):
        resource_type = resource_json["Type"]
        if (parsing.resource_class_from_type(resource_type) is None
                and resource_type not in parsing.NULL_MODELS):
            raise ValidationError(message=(
                f"Template resource type {resource_type} is not supported by the local stack "
                f"(moto would skip it silently); remove it or add support in "
                f"airflow_provider_smr/local/cfn.py"))
        return original(resource_json, resources_map)

    parse_resource._smr_strict = True  # type: ignore[attr-defined]
    parsing.parse_resource = parse_resource
    _apply_function_layers()


def _apply_function_layers() -> None:
    """moto's ``AWS::Lambda::Function`` drops ``Layers``; the handler would miss its layers."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        fn = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        layers = cloudformation_json.get("Properties", {}).get("Layers")
        if layers:
            fn.layers = fn._get_layers_data(layers)
        return fn

    LambdaFunction.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
