"""Check a job's input and output locations before anything is deployed or submitted.

:func:`check_locations` needs no stack: it runs first, so a mistyped bucket fails in a second with
a message naming the argument, instead of after a stack update. Its checks are cheap (one LIST of
at most one key per input URI, one DescribeTable per table, one LIST of the output's ``_SUCCESS``);
the planner still lists every input in full when the job is submitted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lambda_handlers import protocol
from lambda_handlers.aws_errors import error_code, is_not_found
from lambda_handlers.io import dynamodb
from lambda_handlers.planning import (
    InputNotFoundError,
    check_output_outside_inputs,
    describe_tables,
    is_glob,
    normalize_inputs,
    output_location,
)
from lambda_handlers.s3uri import InputError, S3Uri


def check_locations(s3: Any, dynamodb_client: Any, input: Any, output: str, *, overwrite: bool = False,
                    create_table: bool = False, own_job: Callable[[str], bool] | None = None) -> None:
    """Refuse a job whose locations cannot work, before any deploy; each message starts with the
    argument at fault (``input``, ``input 'users'``, ``output``).

    - every URI parses; the output is a plain prefix outside every input;
    - every input bucket exists and the input's literal prefix holds at least one object;
    - every DynamoDB table exists (an output table may be created later with ``create_table``);
    - the output bucket exists, and it holds no committed result unless ``overwrite`` (or unless
      ``own_job(manifest_job_id)``: a result this caller committed itself, e.g. before a retry).

    :raises InputError: (``InputNotFoundError``) naming the argument.
    :raises OutputExistsError: for a committed output.
    """
    named = normalize_inputs(input)
    check_output_outside_inputs(output, named)
    for name, uris in named.items():
        for uri in uris:
            if not dynamodb.is_dynamodb_uri(uri):
                label = f"input {uri!r}" if list(named) == ["default"] else f"input {name!r} ({uri})"
                _check_input_uri(s3, label, uri)
    describe_tables(dynamodb_client, named)  # its error names the input URI
    if dynamodb.is_dynamodb_uri(output):
        loc = dynamodb.parse_uri(output)
        if not (create_table or loc["create_table"]):
            try:
                dynamodb.ensure_table(dynamodb_client, loc["table"], loc["key_attribute"], loc["key_type"])
            except dynamodb.DynamoDBLocationError as exc:
                raise InputNotFoundError(f"output {output!r}: {exc}") from None
        return
    check_output_free(s3, output, overwrite, own_job)


def _first_key(s3: Any, label: str, bucket: str, prefix: str) -> str | None:
    """The first key under ``prefix``, None when there is none; an error starting with ``label``
    (``input 's3://b/x/'``) for a missing bucket."""
    from botocore.exceptions import ClientError

    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("Contents", ())
    except ClientError as exc:
        if is_not_found(exc):
            raise InputNotFoundError(f"{label}: bucket {bucket!r} does not exist") from None
        if error_code(exc) in ("AccessDenied", "403"):
            raise InputError(f"{label}: access denied listing s3://{bucket}/{prefix}: check the "
                             "connection's credentials") from None
        raise
    return listed[0]["Key"] if listed else None


def _check_input_uri(s3: Any, label: str, uri: str) -> None:
    location = S3Uri.parse(uri)
    prefix = location.key
    if is_glob(prefix):  # the literal part before the first wildcard, up to its folder
        cut = min(prefix.index(c) for c in "*?[" if c in prefix)
        prefix = prefix[: prefix.rfind("/", 0, cut) + 1]
    if _first_key(s3, label, location.bucket, prefix) is None:
        raise InputNotFoundError(f"{label} matched no objects")


def check_output_free(s3: Any, output: str, overwrite: bool = False,
                      own_job: Callable[[str], bool] | None = None) -> None:
    """Refuse an S3 output that holds a committed result (``_SUCCESS``) unless ``overwrite``, or
    unless ``own_job`` accepts the job id its manifest names; a missing bucket is an error too.

    :raises OutputExistsError: naming the output and the fix.
    """
    from airflow_provider_smr.engine.runner import OutputExistsError

    marker = output_location(output).join(protocol.SUCCESS_MARKER)
    found = _first_key(s3, f"output {output!r}", marker.bucket, marker.key)
    if found != marker.key or overwrite:
        return
    if own_job is not None:
        try:
            manifest = json.loads(s3.get_object(Bucket=marker.bucket, Key=marker.key)["Body"].read())
        except ValueError:
            manifest = {}
        if isinstance(manifest, dict) and own_job(str(manifest.get("job_id") or "")):
            return
    raise OutputExistsError(f"output {output!r} already holds a committed result (_SUCCESS); pass "
                               "overwrite=True to replace it")
