"""The functions' role: its trust policy and its permissions, as CloudFormation fragments (pure).

The role may read the declared input locations and write the declared output locations, exactly
(object grants on ``folder/*``, ``name`` + ``name/*`` or the glob; list grants with ``s3:prefix``
conditions: see :mod:`lambda_handlers.grants`), use its own work bucket, invoke its own four
functions, write its own log groups, and assume itself: each task narrows its credentials to its
own job with an STS session policy (``lambda_handlers.runtime``). The trust policy lets Lambda
assume the role, and the role itself (and only it: the role lives under its own IAM path, which the
condition names) for those sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lambda_handlers.grants import OBJECT_READ, OBJECT_WRITE, Location, list_conditions

WORK_BUCKET = "WorkBucket"
ROLE = "FunctionRole"


def _partition_arn(tail: str) -> dict:
    """``arn:<partition>:<tail>``; a Join, not a Sub: ``tail`` may hold IAM's ``${*}`` escapes."""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":{tail}"]]}


def role_path(stack_name: str) -> dict:
    """The role's IAM path, one per stack and region, so the trust policy can name the role itself."""
    return {"Fn::Sub": f"/smr/${{AWS::Region}}/{stack_name}/"}


def trust_policy(stack_name: str) -> dict:
    own = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/smr/${AWS::Region}/"
                      f"{stack_name}/*"}
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
        # The role assuming itself with a per-job session policy (role chaining, at most 1 h).
        {"Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
         "Action": "sts:AssumeRole", "Condition": {"ArnLike": {"aws:PrincipalArn": own}}},
    ]}


def _allow(sid: str, actions: Sequence[str], resources: list, condition: dict | None = None) -> dict:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _sid_part(bucket: str) -> str:
    return "".join(c for c in bucket.title() if c.isalnum())


def location_statements(kind: str, locations: Iterable[Location], actions: Sequence[str]) -> list[dict]:
    """``<kind>List<Bucket>`` (one per bucket: its ``s3:prefix`` condition) and ``<kind>Objects``."""
    locations = list(locations)
    if not locations:
        return []
    statements = []
    for bucket, prefixes in sorted(list_conditions(locations).items()):
        condition = None if prefixes is None else {"StringLike": {"s3:prefix": prefixes}}
        statements.append(_allow(f"{kind}List{_sid_part(bucket)}", ["s3:ListBucket"],
                                 [_partition_arn(f"s3:::{bucket}")], condition))
    statements.append(_allow(f"{kind}Objects", actions, [
        _partition_arn(f"s3:::{loc.bucket}/{pattern}") for loc in locations for pattern in loc.object_patterns()]))
    return statements


def s3_statements(inputs: Iterable[Location], outputs: Iterable[Location]) -> list[dict]:
    """The work bucket, the declared inputs (read) and outputs (write)."""
    return [
        _allow("WorkBucketList", ["s3:ListBucket", "s3:GetBucketLocation"], [{"Fn::GetAtt": [WORK_BUCKET, "Arn"]}]),
        _allow("WorkBucketObjects", OBJECT_WRITE, [{"Fn::Sub": "${WorkBucket.Arn}/*"}]),
        *location_statements("Input", inputs, OBJECT_READ),
        *location_statements("Output", outputs, OBJECT_WRITE),
    ]


def own_statements(function_names: Sequence[str]) -> list[dict]:
    """Its own log groups, functions and role."""
    return [
        _allow("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                        f"/aws/lambda/{name}:*"} for name in function_names]),
        # Unqualified and qualified (a job's pinned version) ARNs of the stack's own functions.
        _allow("InvokeOwnFunctions", ["lambda:InvokeFunction"], [
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
                        f"{name}{suffix}"} for name in function_names for suffix in ("", ":*")]),
        # Each task's per-job session (lambda_handlers.runtime): the role assuming itself.
        _allow("AssumeOwnRoleForJobSessions", ["sts:AssumeRole"], [{"Fn::GetAtt": [ROLE, "Arn"]}]),
    ]


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """``value`` with the intrinsic functions the template uses evaluated from ``refs`` (``Ref``
    and ``Fn::GetAtt`` names, ``AWS::Partition``...): a rendered policy for scanners and tests."""
    import re

    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return refs[value["Ref"]]
    if "Fn::GetAtt" in value:
        return refs[".".join(value["Fn::GetAtt"])]
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(parts, refs))
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}!]+)\}", lambda m: refs[m.group(1)], value["Fn::Sub"])
    return {k: resolve(v, refs) for k, v in value.items()}


def _ec2_arn(kind: str, name: str) -> dict:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:ec2:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/{name}"}


def hardening_statements(kms_key_arn: str | None, subnet_ids: Sequence[str], security_group_ids: Sequence[str],
                         on_failure: str | None) -> list[dict]:
    """What the hardening settings need: the KMS key, the VPC's network interfaces, the destination."""
    statements = []
    if kms_key_arn:
        statements.append(_allow("CustomerManagedKey", ["kms:Decrypt", "kms:GenerateDataKey"], [kms_key_arn]))
    if subnet_ids:  # AWSLambdaVPCAccessExecutionRole's actions, on the declared subnets and groups
        interfaces = _ec2_arn("network-interface", "*")
        statements += [
            _allow("VpcCreateInterfaces", ["ec2:CreateNetworkInterface"], [
                interfaces, *(_ec2_arn("subnet", s) for s in subnet_ids),
                *(_ec2_arn("security-group", g) for g in security_group_ids)]),
            _allow("VpcManageInterfaces", ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                                           "ec2:UnassignPrivateIpAddresses"], [interfaces]),
            _allow("VpcDescribeInterfaces", ["ec2:DescribeNetworkInterfaces"], ["*"]),  # takes no resource
        ]
    if on_failure:
        action = "sqs:SendMessage" if ":sqs:" in on_failure else "sns:Publish"
        statements.append(_allow("OnFailureDestination", [action], [on_failure]))
    return statements
