"""Input and output locations: parse URIs, list what an input names (always paginated), check overlap.

An input is an S3 prefix (``s3://b/logs/``), an exact key (``s3://b/a.csv``), a glob
(``s3://b/logs/2024-*/*.gz``), a list of those, or a dict of named inputs (``{"users": ..., ...}``).
Listing skips folder markers and files whose name starts with ``_`` or ``.`` (``_SUCCESS``), so the
output of one job can be the input of the next.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Iterable

from lambda_handlers import protocol
from lambda_handlers.io import dynamodb

DEFAULT_INPUT = "default"
_GLOB_CHARS = "*?["


class InputError(ValueError):
    """An input or output location that cannot be used as given."""


class InputNotFoundError(InputError):
    """An input (or its bucket) does not exist or matched no objects."""


@dataclass(frozen=True)
class S3Object:
    """One listed input object."""

    input: str  # input name ("default" when unnamed)
    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str, *, what: str = "input") -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InputError(f"{what} {uri!r} is not an S3 URI (s3://bucket/prefix)")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise InputError(f"{what} {uri!r} names no bucket")
    return bucket, key


def normalize_inputs(spec: Any) -> dict[str, list[str]]:
    """``"s3://..."`` / ``[...]`` / ``{name: uri-or-list}`` -> ``{name: [uri, ...]}``."""
    def as_list(value: Any, name: str) -> list[str]:
        uris = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
        if not uris or not all(isinstance(u, str) and u for u in uris):
            raise InputError(f"input {name!r} must be an S3 URI or a non-empty list of URIs, got {value!r}")
        for u in uris:
            if dynamodb.is_dynamodb_uri(u):
                dynamodb.parse_uri(u)
            else:
                parse_s3_uri(u)
        return uris

    if isinstance(spec, dict):
        if not spec:
            raise InputError("the dict of named inputs is empty")
        return {str(name): as_list(value, str(name)) for name, value in spec.items()}
    return {DEFAULT_INPUT: as_list(spec, DEFAULT_INPUT)}


def output_location(uri: str) -> tuple[str, str]:
    """``s3://b/out`` -> ``("b", "out/")``: an output is always a folder."""
    bucket, prefix = parse_s3_uri(uri, what="output")
    if any(c in prefix for c in _GLOB_CHARS):
        raise InputError(f"output {uri!r} must be a plain S3 prefix, not a pattern")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def is_glob(key: str) -> bool:
    return any(c in key for c in _GLOB_CHARS)


def glob_matches(pattern: str, key: str) -> bool:
    """Match a key against a glob, one path segment at a time (``*`` never crosses ``/``; ``**`` does)."""
    return _match_parts(pattern.split("/"), key.split("/"))


def _match_parts(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    if pat[0] == "**":
        return any(_match_parts(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and _match_parts(pat[1:], parts[1:])


def _literal_prefix(pattern: str) -> str:
    cut = min((pattern.index(c) for c in _GLOB_CHARS if c in pattern), default=len(pattern))
    return pattern[:cut]


def _hidden(key: str, base: str) -> bool:
    """Folder markers and ``_``/``.`` files (``_SUCCESS``) below the listed prefix are not input."""
    if key.endswith("/"):
        return True
    return any(part.startswith(("_", ".")) for part in key[len(base):].split("/") if part)


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterable[dict]:
    """Every object under ``prefix`` (paginated; raises :class:`InputNotFoundError` for a missing bucket)."""
    from botocore.exceptions import ClientError

    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", ())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            raise InputNotFoundError(f"bucket {bucket!r} does not exist") from None
        if code in ("AccessDenied", "403"):
            raise InputError(f"access denied listing s3://{bucket}/{prefix}: check the connection's "
                             "credentials and the stack's declared input buckets") from None
        raise


def list_input(s3: Any, name: str, uri: str) -> list[S3Object]:
    """The objects one input URI names, sorted by key; :class:`InputNotFoundError` when none."""
    bucket, key = parse_s3_uri(uri)

    def obj(o: dict) -> S3Object:
        return S3Object(name, bucket, o["Key"], int(o["Size"]), o["ETag"].strip('"'))

    if is_glob(key):
        base = _literal_prefix(key)
        base = base[: base.rfind("/") + 1]
        found = [obj(o) for o in list_objects(s3, bucket, base)
                 if glob_matches(key, o["Key"]) and not _hidden(o["Key"], base)]
    elif key == "" or key.endswith("/"):
        found = [obj(o) for o in list_objects(s3, bucket, key) if not _hidden(o["Key"], key)]
    else:
        listed = list(list_objects(s3, bucket, key))
        exact = [obj(o) for o in listed if o["Key"] == key]
        folder = key + "/"
        found = exact or [obj(o) for o in listed
                          if o["Key"].startswith(folder) and not _hidden(o["Key"], folder)]
    if not found:
        raise InputNotFoundError(f"input {uri!r} matched no objects")
    return sorted(found, key=lambda o: o.key)


def resolve_inputs(s3: Any, inputs: dict[str, list[str]]) -> list[S3Object]:
    """List every input; an object named twice (overlapping URIs of one input) is read once."""
    result: list[S3Object] = []
    for name, uris in inputs.items():
        seen: set[tuple[str, str]] = set()
        for uri in uris:
            if dynamodb.is_dynamodb_uri(uri):
                continue
            for o in list_input(s3, name, uri):
                if (o.bucket, o.key) not in seen:
                    seen.add((o.bucket, o.key))
                    result.append(o)
    return result


def check_output_outside_inputs(output_uri: str, inputs: dict[str, list[str]],
                                objects: Iterable[S3Object] = ()) -> None:
    """Refuse an output that lies inside an input (a rerun would read its own output) or vice versa."""
    if dynamodb.is_dynamodb_uri(output_uri):
        table = dynamodb.parse_uri(output_uri)["table"]
        if any(dynamodb.is_dynamodb_uri(u) and dynamodb.parse_uri(u)["table"] == table
               for uris in inputs.values() for u in uris):
            raise InputError(f"output {output_uri!r} is also an input: write to another table")
        return
    out_bucket, out_prefix = output_location(output_uri)
    for uris in inputs.values():
        for uri in uris:
            if dynamodb.is_dynamodb_uri(uri):
                continue
            bucket, key = parse_s3_uri(uri)
            if bucket != out_bucket:
                continue
            if is_glob(key):
                inside = any(glob_matches(key, out_prefix + protocol.part_name(0, ext))
                             for ext in ("jsonl", "tsv", "csv"))
            else:
                folder = key if key == "" or key.endswith("/") else key + "/"
                inside = out_prefix.startswith(folder) or out_prefix == key + "/"
            if inside:
                raise InputError(f"output {output_uri!r} lies inside input {uri!r}: a later run would "
                                 "read its own output; choose an output outside the input")
    for o in objects:
        if o.bucket == out_bucket and o.key.startswith(out_prefix):
            raise InputError(f"input object {o.uri!r} lies inside output {output_uri!r}: the commit "
                             "would replace the output while the job reads it")


def describe_tables(dynamodb_client: Any, inputs: dict[str, list[str]]) -> list[dict]:
    """The DynamoDB inputs: ``{"input", "table", "segments", "attributes", "consistent",
    "item_count", "size_bytes"}`` each (DescribeTable's approximate ItemCount/TableSizeBytes)."""
    tables = []
    for name, uris in inputs.items():
        for uri in uris:
            if not dynamodb.is_dynamodb_uri(uri):
                continue
            loc = dynamodb.parse_uri(uri)
            try:
                desc = dynamodb.with_backoff(
                    lambda: dynamodb_client.describe_table(TableName=loc["table"]))["Table"]
            except Exception as exc:
                if dynamodb._code(exc) == "ResourceNotFoundException":
                    raise InputNotFoundError(f"input {uri!r}: DynamoDB table {loc['table']!r} does "
                                             "not exist") from None
                raise
            tables.append({"input": name, "uri": uri, "table": loc["table"],
                           "segments": loc["segments"], "attributes": loc["attributes"],
                           "consistent": loc["consistent"],
                           "item_count": int(desc.get("ItemCount") or 0),
                           "size_bytes": int(desc.get("TableSizeBytes") or 0)})
    return tables
