"""What a declared S3 location grants, in IAM terms: the one place both planes turn prefixes into ARNs.

A declared location is ``s3://bucket`` (the whole bucket), ``s3://bucket/folder/`` (everything under
the folder), ``s3://bucket/name`` (the object ``name`` or the folder ``name/``, as the planner reads
it) or a glob (``s3://bucket/logs/2024-*.gz``). An output is always a folder. Object grants are on
``folder/*`` and ``name`` + ``name/*``, never ``name*`` (which would also cover ``name-other/...``);
list grants carry an ``s3:prefix`` condition with the prefixes the planner and the commit list.
IAM's wildcards ``*`` and ``?`` and the variable marker ``$`` in a key are written as the policy
variables ``${*}``, ``${?}`` and ``${$}``, so a key holding them is matched literally.

The stack's role policy (``airflow_provider_smr.deploy.policy``) and each job's STS session policy
(:func:`session_policy`, built inside the tasks) are made from these. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambda_handlers import protocol
from lambda_handlers.s3uri import SCHEME, S3Uri, is_s3_uri

GLOB_CHARS = "*?["
#: AWS's limit on the plaintext of an AssumeRole session policy
SESSION_POLICY_LIMIT = 2048
OBJECT_READ = ("s3:GetObject",)
OBJECT_WRITE = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
#: what a job's tasks do with the tables it names (the role grants the actions; the session the tables)
TABLE_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem",
                 "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem",
                 "dynamodb:DeleteItem", "dynamodb:UpdateItem")


class GrantError(ValueError):
    """A declared location that cannot be granted (no bucket, a bad bucket name)."""


def iam_literal(text: str) -> str:
    """``text`` as a literal inside an IAM resource or condition pattern (``$``, ``*``, ``?`` escaped)."""
    return text.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}")


def _glob_pattern(key: str) -> str:
    """A planner glob as an IAM pattern: ``*``/``**``/``?`` stay wildcards (IAM's ``*`` also crosses
    ``/``); a ``[...]`` class, which IAM cannot say, becomes ``*`` from there on."""
    cut = key.find("[")
    if cut >= 0:
        key = key[:cut] + "*"
    while "**" in key:
        key = key.replace("**", "*")
    return key.replace("$", "${$}")


@dataclass(frozen=True, order=True)
class Location:
    """A declared S3 location; ``key`` is ``""`` (bucket), ends with ``/`` (folder), holds a glob
    character (pattern), or else names an object or a folder."""

    bucket: str
    key: str = ""
    #: a folder declared as an output: ``*`` and ``?`` in it are characters, not a glob
    literal: bool = False

    @classmethod
    def parse(cls, location: str, *, folder: bool = False) -> Location:
        """Accept ``bucket``, ``s3://bucket`` or ``s3://bucket/key``; ``folder`` makes it a folder
        (an output)."""
        if not isinstance(location, str):
            raise GrantError(f"declared S3 location {location!r} is not a string")
        uri = S3Uri.parse_or_none(location if is_s3_uri(location) else SCHEME + location)
        if uri is None:
            raise GrantError(f"declared S3 location {location!r} names no bucket")
        try:
            protocol.validate_bucket(uri.bucket)
        except protocol.ProtocolError as error:
            raise GrantError(f"declared S3 location {location!r}: {error}") from None
        key = uri.key
        if folder and key and not key.endswith("/"):
            key += "/"
        return cls(uri.bucket, key, literal=folder)

    @property
    def uri(self) -> str:
        return str(S3Uri(self.bucket, self.key))

    @property
    def is_glob(self) -> bool:
        return not self.literal and any(c in self.key for c in GLOB_CHARS)

    def object_patterns(self) -> list[str]:
        """IAM resource patterns of the objects, after ``bucket/``."""
        if not self.key:
            return ["*"]
        if self.is_glob:
            return [_glob_pattern(self.key)]
        literal = iam_literal(self.key)
        if self.key.endswith("/"):
            return [literal + "*"]
        return [literal, literal + "/*"]

    def list_prefixes(self) -> list[str] | None:
        """``s3:prefix`` values (StringLike) the listing of this location needs; None: the whole bucket."""
        if self.is_glob:
            base = self.key[:min(self.key.find(c) for c in GLOB_CHARS if c in self.key)]
            base = base[:base.rfind("/") + 1]
            return None if not base else [iam_literal(base), iam_literal(base) + "*"]
        if not self.key:
            return None
        literal = iam_literal(self.key)
        if self.key.endswith("/"):
            return [literal, literal + "*"]
        return [literal, literal + "/", literal + "/*"]

    def covers(self, other: Location) -> bool:
        """Whether every object and listing ``other`` grants is granted by this location already."""
        if self.bucket != other.bucket:
            return False
        if self.key == other.key and self.is_glob == other.is_glob or not self.key:
            return True
        if self.is_glob:
            return False
        folder = self.key if self.key.endswith("/") else self.key + "/"
        return other.key.startswith(folder) or (not self.key.endswith("/") and other.key == self.key)

    def object_arns(self, partition: str = "aws") -> list[str]:
        return [f"arn:{partition}:s3:::{self.bucket}/{p}" for p in self.object_patterns()]

    def bucket_arn(self, partition: str = "aws") -> str:
        return f"arn:{partition}:s3:::{self.bucket}"


def canonical(locations: Iterable[Location]) -> tuple[Location, ...]:
    """Sorted, without duplicates and without locations another one covers."""
    unique = set(locations)
    return tuple(sorted(loc for loc in unique if not any(o != loc and o.covers(loc) for o in unique)))


def list_conditions(locations: Iterable[Location]) -> dict[str, list[str] | None]:
    """Per bucket, the ``s3:prefix`` values its listings need (None: list the whole bucket)."""
    out: dict[str, list[str] | None] = {}
    for loc in canonical(locations):
        prefixes = loc.list_prefixes()
        if prefixes is None or (loc.bucket in out and out[loc.bucket] is None):
            out[loc.bucket] = None
        else:
            out[loc.bucket] = sorted(set(out.get(loc.bucket) or []) | set(prefixes))
    return out


# ---------------------------------------------------------------------------------------------
# The per-job session policy


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class JobGrants:
    """What one job touches: its input and output locations, its tables and its work-bucket keys."""

    job_id: str
    work_bucket: str
    inputs: tuple[Location, ...] = ()
    output: Location | None = None
    tables: tuple[str, ...] = ()
    #: whether the job takes slots from the stack-wide budget (``budget/`` in the work bucket)
    stack_budget: bool = False
    #: the DynamoDB table the job commits to (its record and lock live under ``tables/<table>/``)
    output_table: str | None = None

    @classmethod
    def of(cls, job_id: str, work_bucket: str, inputs: Mapping[str, Sequence[str]] | Sequence[str],
           output: str, tables: Iterable[str] = (), stack_budget: bool = False,
           output_table: str | None = None) -> JobGrants:
        uris = [u for group in inputs.values() for u in group] if isinstance(inputs, Mapping) else list(inputs)
        return cls(job_id=job_id, work_bucket=work_bucket,
                   inputs=canonical(Location.parse(u) for u in uris if is_s3_uri(u)),
                   output=Location.parse(output, folder=True) if is_s3_uri(output) else None,
                   tables=tuple(sorted(set(tables))), stack_budget=stack_budget, output_table=output_table)


def _statement(actions: Sequence[str], resources: Sequence[str],
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Effect": "Allow", "Action": list(actions) if len(actions) > 1 else actions[0],
                "Resource": list(resources) if len(resources) > 1 else resources[0]}
    if condition:
        st["Condition"] = condition
    return st


def _list_statements(locations: Iterable[Location], partition: str) -> list[dict[str, Any]]:
    out = []
    for bucket, prefixes in sorted(list_conditions(locations).items()):
        arn = f"arn:{partition}:s3:::{bucket}"
        out.append(_statement(["s3:ListBucket"], [arn],
                              None if prefixes is None else {"StringLike": {"s3:prefix": prefixes}}))
    return out


def _session_statements(g: JobGrants, partition: str, region: str, account: str,
                        inputs: Sequence[Location]) -> list[dict[str, Any]]:
    work = [Location(g.work_bucket, protocol.job_prefix(g.job_id))]
    if g.stack_budget:
        work.append(Location(g.work_bucket, protocol.STACK_BUDGET_PREFIX))
    if g.output_table:
        work.append(Location(g.work_bucket, f"{protocol.TABLES_PREFIX}{g.output_table}/", literal=True))
    statements = [_statement(OBJECT_WRITE, [a for loc in work for a in loc.object_arns(partition)]),
                  *_list_statements(work, partition)]
    if inputs:
        statements.append(_statement(OBJECT_READ, [a for loc in inputs for a in loc.object_arns(partition)]))
        statements += _list_statements(inputs, partition)
    if g.output is not None:
        statements.append(_statement(OBJECT_WRITE, g.output.object_arns(partition)))
        statements += _list_statements([g.output], partition)
    if g.tables:
        statements.append(_statement(TABLE_ACTIONS, [
            f"arn:{partition}:dynamodb:{region}:{account}:table/{t}{suffix}"
            for t in g.tables for suffix in ("", "/index/*")]))
    # The stack's functions (the role names which ones): fan-out and notifications.
    statements.append(_statement(["lambda:InvokeFunction"], ["*"]))
    return statements


def session_policy(g: JobGrants, region: str, account: str) -> str:
    """The compact JSON session policy of ``g``'s tasks (at most :data:`SESSION_POLICY_LIMIT`).

    A job naming so many input locations that the policy would be longer reads each input bucket
    through one grant of the folder all its locations share (still read-only, still narrowed by
    the role); :class:`GrantError` if even that is too long.
    """
    partition = partition_of(region)
    for inputs in (list(g.inputs), _coarsened(g.inputs)):
        doc = {"Version": "2012-10-17", "Statement": _session_statements(g, partition, region, account, inputs)}
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) <= SESSION_POLICY_LIMIT:
            return text
    raise GrantError(f"job {g.job_id}: its session policy would exceed {SESSION_POLICY_LIMIT} characters "
                     f"({len(g.inputs)} input locations in {len({i.bucket for i in g.inputs})} buckets); "
                     "declare fewer, wider input prefixes")


def _coarsened(inputs: Iterable[Location]) -> list[Location]:
    by_bucket: dict[str, list[str]] = {}
    for loc in inputs:
        key = loc.key
        if loc.is_glob:
            key = key[:min(key.find(c) for c in GLOB_CHARS if c in key)]
        by_bucket.setdefault(loc.bucket, []).append(key)
    out = []
    for bucket, keys in sorted(by_bucket.items()):
        common = keys[0] if len(keys) == 1 and keys[0].endswith("/") else _common_folder(keys)
        out.append(Location(bucket, common))
    return out


def _common_folder(keys: list[str]) -> str:
    first, last = min(keys), max(keys)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n][:first[:n].rfind("/") + 1]
