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


def _one_by_one(documents, action, resource, context):
    """The decision taken statement by statement (what :func:`evaluate` did before it joined the
    plain statements' resource patterns): the reference the joined patterns must agree with."""
    import json

    from airflow_provider_smr.local import iam_policy

    allowed = False
    for document in documents:
        for st in iam_policy._for_action(json.dumps(document, sort_keys=True), action):
            if iam_policy._statement_applies(st, action, resource, context, None):
                if st.effect == "Deny":
                    return DENY
                allowed = allowed or st.effect == "Allow"
    return ALLOW if allowed else IMPLICIT


def test_joined_resource_patterns_decide_as_statement_by_statement():
    import random

    rng = random.Random(15)
    resources = ["arn:aws:s3:::b/*", "arn:aws:s3:::b/in/*", "arn:aws:s3:::b/in/k?", "arn:aws:s3:::c/*",
                 "arn:aws:s3:::b/a${*}/*", "*", ["arn:aws:s3:::b/out/*", "arn:aws:s3:::c/x"]]
    actions = ["s3:GetObject", "s3:Get*", ["s3:PutObject", "s3:GetObject"], "s3:ListBucket"]
    conditions = [None, {"StringLike": {"s3:prefix": ["in/*"]}}, {"Bool": {"aws:SecureTransport": "true"}}]
    asked = ["arn:aws:s3:::b/in/k1", "arn:aws:s3:::b/in/k12", "arn:aws:s3:::b/out/x", "arn:aws:s3:::c/x",
             "arn:aws:s3:::b/a*/k", "arn:aws:s3:::b/aX/k", "arn:aws:s3:::d/k"]
    for _ in range(80):
        documents = []
        for _ in range(rng.randint(1, 3)):
            statements = []
            for _ in range(rng.randint(1, 5)):
                st = {"Effect": rng.choice(["Allow", "Allow", "Deny", "Other"]), "Action": rng.choice(actions)}
                st["NotResource" if rng.random() < 0.15 else "Resource"] = rng.choice(resources)
                condition = rng.choice(conditions)
                if condition:
                    st["Condition"] = condition
                statements.append(st)
            documents.append({"Version": "2012-10-17", "Statement": statements})
        for resource in asked:
            for context in ({}, {"s3:prefix": "in/x", "aws:SecureTransport": "false"}):
                want = _one_by_one(documents, "s3:GetObject", resource, context)
                assert evaluate(documents, "s3:GetObject", resource, context) == want, (documents, resource)


def test_a_deny_after_an_allow_in_one_document_wins_and_a_conditional_deny_only_when_it_holds():
    doc = {"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:aws:s3:::b/*", "arn:aws:s3:::c/*"]},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::c/*",
         "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}}]}
    assert evaluate([doc], "s3:GetObject", "arn:aws:s3:::b/k") == ALLOW
    assert evaluate([doc], "s3:GetObject", "arn:aws:s3:::b/secret/k") == DENY
    assert evaluate([doc], "s3:GetObject", "arn:aws:s3:::c/k") == ALLOW
    assert evaluate([doc], "s3:GetObject", "arn:aws:s3:::c/k", {"aws:SourceVpc": "vpc-1"}) == DENY
    assert evaluate([doc], "s3:PutObject", "arn:aws:s3:::b/k") == IMPLICIT
