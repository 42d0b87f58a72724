"""What an AWS error means, read from its code: not found, precondition failed, throttled, ...

Both planes classify botocore (and aiobotocore) ``ClientError``\\s here, by duck typing on their
``response`` so nothing imports botocore to ask.
"""

from __future__ import annotations

#: S3 keys and buckets, generic HEAD 404s, and DynamoDB tables that do not exist
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404", "ResourceNotFoundException"})
PRECONDITION_FAILED_CODES = frozenset({"PreconditionFailed", "412"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (``"NoSuchKey"``, ``"404"``, ...); ``""`` when it has none."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` says the key, bucket or table asked for does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


def is_precondition_failed(exc: BaseException) -> bool:
    """True when a conditional request (``IfMatch``, ``IfNoneMatch``) was refused."""
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in PRECONDITION_FAILED_CODES or status == 412
