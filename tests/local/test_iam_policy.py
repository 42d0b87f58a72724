"""The local stack's IAM evaluation agrees with AWS on what the functions' policies use (pure)."""

from __future__ import annotations

from airflow_provider_smr.local.iam_policy import ALLOW, DENY, IMPLICIT, Principal, evaluate


def allow(resource, condition=None, action="s3:GetObject"):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_wildcards_and_policy_variables():
    assert evaluate([allow("arn:aws:s3:::b/out/*")], "s3:GetObject", "arn:aws:s3:::b/out/x/y") == ALLOW
    assert evaluate([allow("arn:aws:s3:::b/out/*")], "s3:GetObject", "arn:aws:s3:::b/outage/x") == IMPLICIT
    assert evaluate([allow("arn:aws:s3:::b/a${*}b${?}${$}/*")], "s3:GetObject", "arn:aws:s3:::b/a*b?$/k") == ALLOW
    assert evaluate([allow("arn:aws:s3:::b/a${*}b/*")], "s3:GetObject", "arn:aws:s3:::b/aXXb/k") == IMPLICIT
    assert evaluate([allow("*", action="s3:Get*")], "S3:GETOBJECT", "x") == ALLOW  # actions ignore case


def test_conditions_on_present_and_missing_keys():
    listing = allow("arn:aws:s3:::b", {"StringLike": {"s3:prefix": ["in/", "in/*"]}}, "s3:ListBucket")
    assert evaluate([listing], "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "in/x/"}) == ALLOW
    assert evaluate([listing], "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "inbox/"}) == IMPLICIT
    assert evaluate([listing], "s3:ListBucket", "arn:aws:s3:::b", {}) == IMPLICIT
    unknown = allow("*", {"NumericLessThan": {"s3:max-keys": "10"}})
    assert evaluate([unknown], "s3:GetObject", "x", {"s3:max-keys": "5"}) == IMPLICIT  # unknown: not granted


def test_an_explicit_deny_wins():
    deny = {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/in/*"}]}
    assert evaluate([allow("*"), deny], "s3:GetObject", "arn:aws:s3:::b/in/k") == DENY


def test_a_trust_policy_names_the_role_through_the_account_and_a_condition():
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/smr/*"}}}]}
    me = Principal("arn:aws:iam::123456789012:role/smr/r1", "123456789012")
    other = Principal("arn:aws:iam::123456789012:role/other", "123456789012")
    assert evaluate([trust], "sts:AssumeRole", "", {"aws:PrincipalArn": me.role_arn}, me) == ALLOW
    assert evaluate([trust], "sts:AssumeRole", "", {"aws:PrincipalArn": other.role_arn}, other) == IMPLICIT
    assert evaluate([trust], "sts:AssumeRole", "", {"aws:PrincipalArn": me.role_arn}, None) == IMPLICIT
