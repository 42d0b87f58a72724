"""The functions' IAM, enforced by the local stack as AWS would.

Lambda hands each function temporary credentials of its execution role; so does the local stack
(:meth:`Credentials.for_role`, put into the worker's environment by the invoker). A request signed
with such a key is checked here, in the stack's own request path, before moto or the S3 fast path
see it: the role's policies (read live from moto's IAM) AND, for a session made by ``AssumeRole``,
its session policy must allow every action the request performs on its resource, and no explicit
deny may match; otherwise the answer is AccessDenied in the service's own error shape. ``AssumeRole``
and ``GetCallerIdentity`` with such keys are answered here (the caller's identity policy and the
target's trust policy checked; a session policy longer than AWS allows refused). Requests signed
with any other key (the caller's, a test's ``testing`` keys) are left alone, as before.

S3 requests are read path-style (how boto3 addresses the loopback endpoint). Known gap: a
DeleteObjects with one denied key is refused whole (AWS reports that key in the response's
``Errors`` and deletes the rest).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from airflow_provider_smr.local import iam_policy
from lambda_handlers.grants import SESSION_POLICY_LIMIT, partition_of

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
SESSION_S = 3600  # how long an AssumeRole session lasts (role chaining's maximum)

Response = tuple[str, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class Identity:
    """What a minted key stands for: a role, and the session policy of an AssumeRole session."""

    role_arn: str
    session_name: str
    secret: str
    token: str
    expires: float | None = None
    #: the session policy's JSON text (None: no session policy)
    session_policy: str | None = field(default=None, compare=False)

    @property
    def account(self) -> str:
        return self.role_arn.split(":")[4]

    @property
    def partition(self) -> str:
        return self.role_arn.split(":")[1]

    @property
    def arn(self) -> str:
        return (f"arn:{self.partition}:sts::{self.account}:assumed-role/"
                f"{self.role_arn.rsplit('/', 1)[-1]}/{self.session_name}")


class Credentials:
    """Temporary keys minted by the stack: a function's execution role, or an AssumeRole session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Identity] = {}
        self._roles: dict[str, tuple[str, str, str]] = {}

    def for_role(self, role_arn: str, function_name: str) -> dict[str, str]:
        """The environment variables of a function running as ``role_arn`` (one key per role)."""
        with self._lock:
            if role_arn not in self._roles:
                key = "ASIA" + hashlib.sha256(role_arn.encode()).hexdigest()[:16].upper()
                ident = Identity(role_arn, function_name, secrets.token_hex(20), secrets.token_hex(32))
                self._by_key[key] = ident
                self._roles[role_arn] = (key, ident.secret, ident.token)
            key, secret, token = self._roles[role_arn]
        return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}

    def session(self, role_arn: str, name: str, policy: str | None, duration_s: int) -> tuple[str, Identity]:
        key = "ASIA" + secrets.token_hex(8).upper()
        ident = Identity(role_arn, name, secrets.token_hex(20), secrets.token_hex(32),
                         time.time() + duration_s, policy)
        with self._lock:
            self._by_key[key] = ident
        return key, ident

    def lookup(self, key: str) -> Identity | None:
        return self._by_key.get(key)


@dataclass(frozen=True)
class Check:
    """One action a request performs on one resource, with its condition context."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


class Enforcer:
    """``handle(environ)``: None to let the request through, or the response to send instead."""

    def __init__(self, credentials: Credentials, account_id: str):
        self.credentials = credentials
        self.account_id = account_id
        self._roles: dict[str, tuple[Any, Any]] = {}  # role ARN -> (moto's IAM backend, role)

    def handle(self, environ: WSGIEnvironment) -> Response | None:
        found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if found is None:
            return None
        ident = self.credentials.lookup(found.group(1))
        if ident is None:
            return None
        region, service = found.group(2), found.group(3)
        if ident.expires is not None and time.time() > ident.expires:
            return _denied(service, "ExpiredToken", "The security token included in the request is expired")
        if service == "sts":
            return self._sts(environ, ident, region)
        for check in requests_of(service, environ, region, self.account_id):
            decision = self.decide(ident, check)
            if decision is not None:
                return _denied(service, "AccessDenied", f"User: {ident.arn} is not authorized to perform: "
                               f"{check.action} on resource: \"{check.resource}\" because {decision}")
        return None

    def decide(self, ident: Identity, check: Check, caller: iam_policy.Principal | None = None) -> str | None:
        """None when allowed, else why not (AWS's wording)."""
        role = iam_policy.evaluate(self.role_policies(ident.role_arn), check.action, check.resource,
                                   check.context, caller)
        if role == iam_policy.DENY:
            return f"an explicit deny in an identity-based policy denies the {check.action} action"
        if role != iam_policy.ALLOW:
            return f"no identity-based policy allows the {check.action} action"
        if ident.session_policy is not None:
            session = iam_policy.evaluate([ident.session_policy], check.action, check.resource, check.context)
            if session != iam_policy.ALLOW:
                return f"no session policy allows the {check.action} action"
        return None

    def role_policies(self, role_arn: str) -> list[str]:
        """The role's inline and attached policies (JSON texts), as moto holds them now."""
        role = self._role(role_arn)
        if role is None:
            return []
        documents = [*role.policies.values(),
                     *(getattr(p, "document", "") for p in getattr(role, "managed_policies", {}).values())]
        return [d if isinstance(d, str) else json.dumps(d) for d in documents if d]

    def _role(self, role_arn: str) -> Any:
        # Every request signed with a minted key asks this: remember the backend and the role, and
        # trust the remembered role only while moto still holds it (a role deleted and made again
        # is a new object, found by the scan).
        found = self._roles.get(role_arn)
        if found is not None:
            backend, role = found
            if backend.roles.get(role.id) is role and role.arn == role_arn:
                return role
        from moto.iam.models import iam_backends

        backend = iam_backends[self.account_id][role_arn.split(":")[1]]
        role = next((r for r in backend.roles.values() if r.arn == role_arn), None)
        if role is not None:
            self._roles[role_arn] = (backend, role)
        return role

    # -- STS ------------------------------------------------------------------------------------

    def _sts(self, environ: WSGIEnvironment, ident: Identity, region: str) -> Response:
        form = {k: v[0] for k, v in parse_qs(_body(environ).decode(), keep_blank_values=True).items()}
        action = form.get("Action", "")
        if action == "GetCallerIdentity":
            return _xml_ok("GetCallerIdentity", f"<Arn>{escape(ident.arn)}</Arn><UserId>AROA{ident.session_name}"
                           f"</UserId><Account>{ident.account}</Account>")
        if action != "AssumeRole":
            return _denied("sts", "AccessDenied", f"User: {ident.arn} is not authorized to perform: sts:{action}")
        target = form.get("RoleArn", "")
        why = self.decide(ident, Check("sts:AssumeRole", target))
        role = self._role(target)
        caller = iam_policy.Principal(ident.role_arn, ident.account, ident.partition)
        trusted = role is not None and iam_policy.evaluate(
            [role.assume_role_policy_document], "sts:AssumeRole", "", {
                "aws:PrincipalArn": ident.role_arn, "aws:PrincipalAccount": ident.account}, caller)
        if why is None and trusted != iam_policy.ALLOW:
            why = "the role's trust policy does not allow it"
        if why is not None:
            return _denied("sts", "AccessDenied", f"User: {ident.arn} is not authorized to perform: "
                           f"sts:AssumeRole on resource: {target} because {why}")
        policy_text = form.get("Policy")
        if policy_text is not None and len(policy_text) > SESSION_POLICY_LIMIT:
            return _denied("sts", "ValidationError", "1 validation error detected: Value at 'policy' failed "
                           f"to satisfy constraint: Member must have length less than or equal to "
                           f"{SESSION_POLICY_LIMIT}", status="400 Bad Request")
        duration = int(form.get("DurationSeconds") or SESSION_S)
        if duration > SESSION_S:  # role chaining
            return _denied("sts", "ValidationError", "The requested DurationSeconds exceeds the 1 hour "
                           "session limit for roles assumed by role chaining.", status="400 Bad Request")
        if policy_text:
            try:
                json.loads(policy_text)
            except ValueError:
                return _denied("sts", "MalformedPolicyDocument", "The policy is not in the valid JSON format.",
                               status="400 Bad Request")
        key, session = self.credentials.session(target, form.get("RoleSessionName", "session"), policy_text or None,
                                                duration)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expires or 0))
        return _xml_ok("AssumeRole", (
            f"<Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{session.secret}</SecretAccessKey>"
            f"<SessionToken>{session.token}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROA{uuid.uuid4().hex[:16].upper()}:{escape(session.session_name)}"
            f"</AssumedRoleId><Arn>{escape(session.arn)}</Arn></AssumedRoleUser>"
            f"<PackedPolicySize>{len(policy_text or '') * 100 // SESSION_POLICY_LIMIT}</PackedPolicySize>"))


# ---------------------------------------------------------------------------------------------
# What a request does


def requests_of(service: str, environ: WSGIEnvironment, region: str, account: str) -> list[Check]:
    """The (action, resource, context) checks of one request to ``service``."""
    if service == "s3":
        return s3_checks(environ, partition_of(region))
    if service == "dynamodb":
        return _dynamodb(environ, region, account)
    if service == "lambda":
        return _lambda(environ, region, account)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return [Check(f"{service}:{target.rsplit('.', 1)[-1] or 'Unknown'}", "*")]


_BUCKET_GET = {"location": "s3:GetBucketLocation", "uploads": "s3:ListBucketMultipartUploads",
               "versions": "s3:ListBucketVersions", "policy": "s3:GetBucketPolicy", "acl": "s3:GetBucketAcl",
               "versioning": "s3:GetBucketVersioning", "tagging": "s3:GetBucketTagging",
               "encryption": "s3:GetEncryptionConfiguration", "lifecycle": "s3:GetLifecycleConfiguration"}


def s3_checks(environ: WSGIEnvironment, partition: str = "aws") -> list[Check]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    if not path.isascii():
        path = path.encode("latin-1").decode("utf-8", "surrogateescape")
    bucket, _, key = path.lstrip("/").partition("/")
    raw_query = environ.get("QUERY_STRING", "")
    query = parse_qs(raw_query, keep_blank_values=True) if raw_query else {}
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    if not bucket:
        return [Check("s3:ListAllMyBuckets", "*")]
    if not key:
        if method == "GET":
            for sub, action in _BUCKET_GET.items():
                if sub in query:
                    return [Check(action, bucket_arn)]
            context = {"s3:prefix": query["prefix"][0]} if "prefix" in query else {}
            return [Check("s3:ListBucket", bucket_arn, context)]
        if method == "HEAD":
            return [Check("s3:ListBucket", bucket_arn)]
        if method == "POST" and "delete" in query:
            keys = re.findall(rb"<Key>(.*?)</Key>", _body(environ), re.S)
            return [Check("s3:DeleteObject", f"{bucket_arn}/{_xml_text(k)}") for k in keys]
        return [Check(f"s3:{method.capitalize()}Bucket", bucket_arn)]
    object_arn = f"{bucket_arn}/{key}"
    if method in ("GET", "HEAD"):
        action = "s3:GetObjectVersion" if "versionId" in query else "s3:GetObject"
        if "tagging" in query:
            action = "s3:GetObjectTagging"
        return [Check(action, object_arn)]
    if method == "DELETE":
        if "uploadId" in query:
            return [Check("s3:AbortMultipartUpload", object_arn)]
        return [Check("s3:DeleteObjectVersion" if "versionId" in query else "s3:DeleteObject", object_arn)]
    if method in ("PUT", "POST"):
        action = "s3:PutObjectTagging" if "tagging" in query else "s3:PutObject"
        checks = [Check(action, object_arn)]
        source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        if source:
            source = unquote(source.encode("latin-1").decode("utf-8")).split("?", 1)[0].lstrip("/")
            checks.append(Check("s3:GetObject", f"arn:{partition}:s3:::{source}"))
        return checks
    return [Check(f"s3:{method.capitalize()}Object", object_arn)]


def _xml_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
            .replace("&amp;", "&"))


def _dynamodb(environ: WSGIEnvironment, region: str, account: str) -> list[Check]:
    operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
    try:
        body = json.loads(_body(environ) or b"{}")
    except ValueError:
        body = {}
    tables: list[str] = []
    if isinstance(body.get("TableName"), str):
        tables.append(body["TableName"])
    tables += list(body.get("RequestItems") or {})
    for item in body.get("TransactItems") or []:
        tables += [v["TableName"] for v in item.values() if isinstance(v, dict) and "TableName" in v]
    partition = partition_of(region)
    arns = [f"arn:{partition}:dynamodb:{region}:{account}:table/{t}" for t in dict.fromkeys(tables)] or ["*"]
    return [Check(f"dynamodb:{operation}", arn) for arn in arns]


_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")


def _lambda(environ: WSGIEnvironment, region: str, account: str) -> list[Check]:
    path = environ.get("PATH_INFO", "")
    found = _INVOKE.match(path)
    if found is None:
        return [Check("lambda:Unknown", "*")]
    name = unquote(found["name"])
    qualifier = (parse_qs(environ.get("QUERY_STRING", "")).get("Qualifier") or [None])[0]
    if not name.startswith("arn:"):
        name = f"arn:{partition_of(region)}:lambda:{region}:{account}:function:{name}"
    if qualifier and name.count(":") == 6:
        name += f":{qualifier}"
    return [Check("lambda:InvokeFunction", name)]


def _body(environ: WSGIEnvironment) -> bytes:
    """The request body, read once and put back for whoever answers the request."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


# ---------------------------------------------------------------------------------------------
# Answers


def _denied(service: str, code: str, message: str, status: str = "403 Forbidden") -> Response:
    request_id = uuid.uuid4().hex
    if service in ("dynamodb", "lambda") or service not in ("s3", "sts"):
        error_type = "AccessDeniedException" if code == "AccessDenied" else code
        if service == "dynamodb":
            body = json.dumps({"__type": f"com.amazon.coral.service#{error_type}", "Message": message}).encode()
            return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                       ("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))], body
        body = json.dumps({"Type": "User", "Message": message, "message": message}).encode()
        return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type),
                        ("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))], body
    if service == "sts":
        body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    else:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}'
                f"</Message><RequestId>{request_id[:16]}</RequestId></Error>").encode()
        status = "400 Bad Request" if code == "ExpiredToken" else status
    return status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def _xml_ok(action: str, result: str) -> Response:
    body = (f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><{action}Result>{result}'
            f"</{action}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</{action}Response>").encode()
    return "200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body

