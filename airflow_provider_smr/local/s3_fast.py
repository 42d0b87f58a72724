"""A fast path for the S3 calls every job makes most: plain GET, HEAD, PUT and CopyObject of one
object, and ListObjectsV2.

moto spends about 2 ms of CPU on each S3 request (Flask, its request parsing, CORS, request ids);
shuffle files and markers make these calls the bulk of a local job. Requests that are *plain* -
path-style, no query string, only the headers boto3 sends by default (checksums, Range,
``If-None-Match: *`` on PUT, ``If-Match`` on GET: map tasks pin their input's ETag) on a bucket
without versioning, object lock, KMS default encryption or event notifications (SSE-S3, the work
bucket's default, is fine: moto's backend applies it) - are answered here
from moto's own S3 backend, with the same objects and the same headers moto would send. A plain
ListObjectsV2 (no ``fetch-owner``) takes its page from the bucket's key names kept in order
(:func:`~airflow_provider_smr.local.moto_internals.sorted_key_store_class`: moto would sort the
whole bucket for every page), with moto's own continuation tokens, and renders the XML here:
moto's generic serializer costs about 1 ms per listed key.
A PUT keeps the request's bytes as the object's value and a copy shares its source's bytes (see
:func:`~airflow_provider_smr.local.moto_internals.adopt_value`): no copy of the data in the server,
as on S3, where a copy is a server-side operation. Everything else (and every error except a
missing key or a failed precondition) goes to moto.

The server's one process answers every request of a job under one GIL, so the CPU spent per
small GET is a floor under a many-small-objects job's wall: a plain key's headers are built here
(:meth:`S3FastPath._key_headers`, equal to moto's ``response_dict``, which looks the account's
backend up and formats its date the slow way on every call), request ids come from a counter
behind a random prefix, and a LIST page formats its keys' fields directly.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote
from xml.sax.saxutils import escape

from airflow_provider_smr.local.moto_internals import (
    Replaced,
    adopt_value,
    read_value_range,
    sorted_key_store_class,
    whole_value,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_COMMON = {"HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT_ENCODING", "HTTP_AUTHORIZATION",
           "HTTP_X_AMZ_DATE", "HTTP_X_AMZ_CONTENT_SHA256", "HTTP_AMZ_SDK_INVOCATION_ID",
           "HTTP_AMZ_SDK_REQUEST", "HTTP_X_AMZ_SECURITY_TOKEN", "HTTP_CONNECTION", "HTTP_ACCEPT",
           "CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_EXPECT", "HTTP_X_AMZ_USER_AGENT",
           "HTTP_X_AMZN_TRACE_ID"}  # boto3 inside Lambda sends the invocation's trace id
_READ = _COMMON | {"HTTP_RANGE", "HTTP_X_AMZ_CHECKSUM_MODE"}
_WRITE = _COMMON | {"HTTP_CONTENT_MD5", "HTTP_IF_NONE_MATCH", "HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM",
                    "HTTP_X_AMZ_CHECKSUM_CRC32", "HTTP_X_AMZ_CHECKSUM_CRC32C",
                    "HTTP_X_AMZ_CHECKSUM_SHA1", "HTTP_X_AMZ_CHECKSUM_SHA256",
                    "HTTP_X_AMZ_CHECKSUM_CRC64NVME"}
_ALLOWED = {"GET": _READ | {"HTTP_IF_MATCH"}, "HEAD": _READ, "PUT": _WRITE}  # map tasks pin their input
_COPY = _COMMON | {"HTTP_X_AMZ_COPY_SOURCE"}  # a plain CopyObject (the commit's): no directives
_XML = "application/xml"
# The environ keys of a request that are not its headers (what our server and moto's set): a
# request is plain when its keys, less these and the allowed headers, leave no header.
_NOT_HEADERS = frozenset({
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "RAW_URI", "REQUEST_URI", "QUERY_STRING",
    "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "wsgi.version",
    "wsgi.url_scheme", "wsgi.input", "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess",
    "wsgi.run_once"})
_PLAIN_KEYS = {method: allowed | _NOT_HEADERS for method, allowed in _ALLOWED.items()}
_COPY_KEYS = _COPY | _NOT_HEADERS
_READ_KEYS = _READ | _NOT_HEADERS
_LIST_PARAMS = {"list-type", "prefix", "delimiter", "max-keys", "continuation-token",
                "start-after", "encoding-type"}

Response = tuple[str, list[tuple[str, str]], bytes]


class S3FastPath:
    """``handle(environ)`` returns a WSGI response triple, or None to let moto answer."""

    def __init__(self, account_id: str):
        self.account_id = account_id
        self._backend: Any = None
        self._put_lock = threading.Lock()  # makes If-None-Match: * atomic, as on S3

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from moto.s3.models import s3_backends

            self._backend = s3_backends[self.account_id]["global"]
        return self._backend

    def handle(self, environ: WSGIEnvironment) -> Response | None:
        method = environ["REQUEST_METHOD"]
        copying = method == "PUT" and "HTTP_X_AMZ_COPY_SOURCE" in environ
        allowed = _COPY_KEYS if copying else _PLAIN_KEYS.get(method)
        if allowed is None:
            return None
        if environ.get("QUERY_STRING"):
            return self._list(environ) if method == "GET" else None
        if "/s3/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return None
        if _other_headers(environ, allowed):
            return None
        path = environ["PATH_INFO"]
        if not path.isascii():
            path = path.encode("latin-1").decode("utf-8", "surrogateescape")
        bucket_name, _, key_name = path.lstrip("/").partition("/")
        if not key_name:
            return None
        bucket = self.backend.buckets.get(bucket_name)
        if bucket is None or not _plain(bucket) or _policy_denies(bucket, method, path):
            return None
        if copying:
            return self._copy(environ, bucket, key_name)
        if method == "PUT":
            return self._put(environ, bucket_name, key_name)
        return self._get(environ, method, bucket, key_name)

    def _list(self, environ: WSGIEnvironment) -> Response | None:
        """ListObjectsV2 of a plain bucket: moto's page, rendered here; None leaves it to moto."""
        query = parse_qs(environ["QUERY_STRING"].replace("+", "%2B"), keep_blank_values=True)
        if query.get("list-type") != ["2"] or not set(query) <= _LIST_PARAMS \
                or any(len(v) != 1 for v in query.values()):
            return None
        if "/s3/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return None
        if _other_headers(environ, _READ_KEYS):
            return None
        path = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "surrogateescape")
        bucket_name = path.strip("/")
        bucket = self.backend.buckets.get(bucket_name) if bucket_name else None
        if bucket is None or "/" in bucket_name or not _plain(bucket) \
                or _denies(bucket, "s3:ListBucket", f"arn:{bucket.partition}:s3:::{bucket_name}"):
            return None
        q = {k: v[0] for k, v in query.items()}
        token, encoding = q.get("continuation-token"), q.get("encoding-type")
        if token == "" or encoding not in (None, "url"):
            return None  # moto's error, or an encoding moto does not offer either
        try:
            from moto import settings

            max_keys = int(q.get("max-keys", settings.get_s3_default_max_keys()))
        except ValueError:
            return None
        prefix, delimiter, start_after = q.get("prefix"), q.get("delimiter"), q.get("start-after")
        listed = self._page(bucket, prefix, delimiter, token, start_after, max_keys)
        if listed is None:
            return None
        page, truncated, next_token = listed
        body = _list_xml(bucket_name, prefix, delimiter, encoding, max_keys, page, truncated,
                         next_token, None if token else start_after)
        return "200 OK", _ids([("Content-Type", _XML), ("Content-Length", str(len(body)))]), body

    def _page(self, bucket: Any, prefix: str | None, delimiter: str | None, token: str | None,
              start_after: str | None, max_keys: int) -> tuple[list[Any], bool, str | None] | None:
        """moto's ``list_objects_v2`` answer (the page, IsTruncated, NextContinuationToken, the
        token remembered as moto does, so either can continue the other's listing), from the
        bucket's sorted key names; None leaves the request to moto (a token moto never issued)."""
        from moto.s3.models import FakeTableStorageBucket

        if isinstance(bucket, FakeTableStorageBucket):
            return None
        if not isinstance(bucket.keys, sorted_key_store_class()) or max_keys < 0:
            return self.backend.list_objects_v2(
                bucket=bucket, prefix=prefix, delimiter=delimiter, continuation_token=token,
                start_after=start_after, max_keys=max_keys)
        tokens = self.backend._pagination_tokens
        after = tokens.get(token) if token else start_after or None
        if token and after is None:
            return None
        if max_keys == 0:
            return [], False, None
        page = bucket.keys.page(prefix or "", delimiter or "", after, max_keys + 1)
        if len(page) <= max_keys:
            return page, False, None
        page = page[:max_keys]
        last = page[-1] if isinstance(page[-1], str) else page[-1].name
        next_token = hashlib.md5(last.encode("utf-8"), usedforsecurity=False).hexdigest()
        tokens[next_token] = last
        return page, True, next_token

    def _get(self, environ: WSGIEnvironment, method: str, bucket: Any, key_name: str) -> Response | None:
        for _ in range(8):
            try:
                return self._get_once(environ, method, bucket, key_name)
            except Replaced:  # a PUT replaced the key while it was read: read the new one
                continue
        try:  # a key rewritten faster than it is read: read it between two of the fast path's PUTs
            with self._put_lock:
                return self._get_once(environ, method, bucket, key_name)
        except Replaced:  # replaced through moto (not the fast path): moto answers
            return None

    def _get_once(self, environ: WSGIEnvironment, method: str, bucket: Any, key_name: str) -> Response | None:
        versions = dict.get(bucket.keys, key_name)  # what ``bucket.keys.get`` answers, sooner
        key = versions[-1] if versions else None
        if key is None:
            if method == "HEAD":
                return "404 Not Found", _ids([("Content-Type", _XML)]), b""
            return _error("404 Not Found", "NoSuchKey", "The specified key does not exist.",
                          key_name)
        if key.storage_class not in ("STANDARD", None) or getattr(key, "multipart", None):
            return None
        if_match = environ.get("HTTP_IF_MATCH")
        if if_match and key.etag not in (if_match, f'"{if_match}"'):  # as moto's GET decides
            return _error("412 Precondition Failed", "PreconditionFailed",
                          "At least one of the pre-conditions you specified did not hold",
                          key_name, condition="If-Match")
        headers = self._key_headers(key)
        if environ.get("HTTP_X_AMZ_CHECKSUM_MODE") == "ENABLED" and key.checksum_algorithm:
            headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = key.checksum_value
            if key.checksum_type:
                headers["x-amz-checksum-type"] = key.checksum_type
        metadata = key.metadata
        store = getattr(metadata, "store", None)  # moto's LowercaseDict: its lower-case items
        headers.update(store if type(store) is dict else metadata)
        headers["Accept-Ranges"] = "bytes"
        size = key.size
        status = "200 OK"
        begin, end = 0, size - 1
        spec = environ.get("HTTP_RANGE")
        if spec:
            ranged = _byte_range(spec, size)
            if ranged is None:
                return None
            begin, end = ranged
            if begin or end < size - 1:
                headers = {k: v for k, v in headers.items() if not k.startswith("x-amz-checksum-")}
            headers["content-range"] = f"bytes {begin}-{end}/{size}"
            status = "206 Partial Content"
        headers["content-length"] = str(end + 1 - begin)
        value = b"" if method == "HEAD" else read_value_range(key, begin, end + 1 - begin)
        return status, _ids(list(headers.items())), value

    def _key_headers(self, key: Any) -> dict[str, str]:
        """``key.response_dict`` (a new dict), built here for a plain key: moto's property looks
        the account's backend up, formats the key's ARN for its tags and the date through three
        string replacements on every call. Anything less plain is moto's."""
        if (key._expiry is not None or key._is_versioned or key.website_redirect_location
                or key.lock_legal_status or key.lock_until or key.lock_mode
                or key._storage_class != "STANDARD" or key.encryption not in (None, "AES256")
                or key.account_id != self.account_id or key.partition != "aws"):
            return dict(key.response_dict)
        headers = {"ETag": key.etag, "last-modified": _rfc_1123(key.last_modified),
                   "content-length": str(key.contentsize)}
        if key.encryption is not None:
            headers["x-amz-server-side-encryption"] = key.encryption
        if key.checksum_algorithm is not None:
            headers["x-amz-sdk-checksum-algorithm"] = key.checksum_algorithm
        tags = self.backend.tagger.tags
        if tags:  # moto keys an object's tags by this ARN
            count = len(tags.get(f"arn:aws:s3:::{key.bucket_name}/{key.name}/{key.version_id}") or ())
            if count:
                headers["x-amz-tagging-count"] = str(count)
        return headers

    def _put(self, environ: WSGIEnvironment, bucket_name: str, key_name: str) -> Response | None:
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match not in (None, "*"):
            return None
        algorithm = environ.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", "")
        checksum = environ.get(f"HTTP_X_AMZ_CHECKSUM_{algorithm.upper()}") if algorithm else None
        if algorithm and not checksum:
            return None  # moto computes it; rare enough to leave to moto
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        content_type = environ.get("CONTENT_TYPE")
        bucket = self.backend.get_bucket(bucket_name)

        def prepare(key: Any) -> None:
            key.set_metadata({"Content-Type": content_type} if content_type else {})
            key.set_acl(bucket.acl)
            if algorithm:
                key.checksum_algorithm = algorithm

        with self._put_lock:
            if if_none_match == "*" and self.backend.get_object(bucket_name, key_name) is not None:
                return _error("412 Precondition Failed", "PreconditionFailed",
                              "At least one of the pre-conditions you specified did not hold",
                              key_name, condition="If-None-Match")
            key = self._store(bucket, key_name, body, etag, prepare, checksum_value=checksum)
        headers = self._key_headers(key)
        headers.pop("content-length", None)
        if checksum:
            headers[f"x-amz-checksum-{algorithm.lower()}"] = checksum
        headers["Content-Length"] = "0"
        return "200 OK", _ids(list(headers.items())), b""


    def _copy(self, environ: WSGIEnvironment, bucket: Any, key_name: str) -> Response | None:
        """CopyObject of a whole plain object, as moto's would do it, but with the source's ETag
        (the bytes are the same) instead of an MD5 of them again: a part copy at commit."""
        if int(environ.get("CONTENT_LENGTH") or 0):
            return None
        source = unquote(environ["HTTP_X_AMZ_COPY_SOURCE"].encode("latin-1").decode("utf-8"))
        if "?" in source:  # a versionId: moto's
            return None
        src_bucket_name, _, src_key_name = source.lstrip("/").partition("/")
        src_bucket = self.backend.buckets.get(src_bucket_name)
        if (src_bucket is None or not _plain(src_bucket)
                or _policy_denies(src_bucket, "GET", f"/{src_bucket_name}/{src_key_name}")):
            return None
        src = src_bucket.keys.get(src_key_name)
        if (src is None or (src_bucket_name, src_key_name) == (bucket.name, key_name)
                or src.storage_class not in ("STANDARD", None) or getattr(src, "multipart", None)):
            return None  # errors and special cases: moto's
        def prepare(key: Any) -> None:
            self.backend.tagger.copy_tags(src.arn, key.arn)
            key.set_metadata(src.metadata)
            key.set_acl(bucket.acl)
            if src.checksum_value:
                key.checksum_value, key.checksum_algorithm = src.checksum_value, src.checksum_algorithm

        key = self._store(bucket, key_name, whole_value(src), src.etag.strip('"'), prepare)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult xmlns="'
                'http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>'
                f"{key.last_modified_ISO8601}</LastModified><ETag>{escape(key.etag)}</ETag>"
                "</CopyObjectResult>").encode()
        headers = dict(key.response_dict)
        headers["Content-Type"] = _XML
        headers["content-length"] = str(len(body))
        return "200 OK", _ids(list(headers.items())), body


    def _store(self, bucket: Any, key_name: str, data: bytes, etag: str,
               prepare: Callable[[Any], None], checksum_value: str | None = None) -> Any:
        """moto's ``put_object`` for a plain bucket (no versions, no lock, no notifications, SSE-S3
        or no default encryption), except that the key is made whole - its bytes adopted
        (:func:`~airflow_provider_smr.local.moto_internals.adopt_value`), ETag, metadata and ACL
        set by ``prepare`` - before it replaces the old one in the bucket: as on S3, a reader sees
        the old object or the new one, never a key still being filled."""
        from moto.s3.models import FakeKey

        encryption = kms_key_id = bucket_key_enabled = None
        if bucket.encryption:
            rule = bucket.encryption["Rule"]
            default = rule["ApplyServerSideEncryptionByDefault"]
            bucket_key_enabled = rule.get("BucketKeyEnabled", False)
            kms_key_id, encryption = default.get("KMSMasterKeyID"), default["SSEAlgorithm"]
        key = FakeKey(name=key_name, bucket_name=bucket.name, value=b"",
                      account_id=self.backend.account_id, region_name=self.backend.region_name,
                      etag=etag, is_versioned=False, version_id="null", encryption=encryption,
                      kms_key_id=kms_key_id, bucket_key_enabled=bucket_key_enabled,
                      checksum_value=checksum_value)
        adopt_value(key, data)
        prepare(key)
        bucket.keys.setlist(key_name, [key])
        return key


def _plain(bucket: Any) -> bool:
    return (not getattr(bucket, "is_versioned", False)
            and getattr(bucket, "versioning_status", None) in (None, "", "Suspended")
            and not getattr(bucket, "object_lock_enabled", False)
            and _sse_s3_or_none(getattr(bucket, "encryption", None))
            and getattr(bucket, "notification_configuration", None) is None)


def _sse_s3_or_none(encryption: dict | None) -> bool:
    """No default encryption, or SSE-S3 (AES256, what the stack's work bucket has): moto's
    ``put_object`` applies that default itself and the key's headers carry it, as moto answers.
    KMS defaults stay with moto."""
    if not encryption:
        return True
    rule = encryption.get("Rule") or {}
    default = rule.get("ApplyServerSideEncryptionByDefault") or {}
    return default.get("SSEAlgorithm") == "AES256" and not default.get("KMSMasterKeyID")


def _policy_denies(bucket: Any, method: str, path: str) -> bool:
    """moto answers 403 when the bucket policy denies the object action; leave those to moto."""
    if not getattr(bucket, "policy", None):
        return False
    action = f"s3:{method[0]}{method[1:].lower()}Object"
    return _denies(bucket, action, f"arn:{bucket.partition}:s3:::{path.lstrip('/')}")


def _denies(bucket: Any, action: str, resource: str) -> bool:
    if not getattr(bucket, "policy", None):
        return False
    from moto.iam.access_control import PermissionResult

    return bucket.get_permission(action, resource) == PermissionResult.DENIED


def _list_xml(bucket: str, prefix: str | None, delimiter: str | None, encoding: str | None,
              max_keys: int, page: Any, truncated: bool, next_token: str | None,
              start_after: str | None) -> bytes:
    """The ListBucketResult moto would send for this page (same fields and values)."""
    enc = _url_quote if encoding == "url" else (lambda text: text)
    keys = [k for k in page if not isinstance(k, str)]
    folders = [k for k in page if isinstance(k, str)]
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n'
           '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
           f"<Name>{escape(bucket)}</Name><Prefix>{escape(enc(prefix) if prefix else '')}</Prefix>"
           f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(keys) + len(folders)}</KeyCount>"
           f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
    append = out.append
    tails: dict[tuple[Any, Any], str] = {}  # (storage class, checksum) -> what follows <Size>
    second = after = stamp = None  # the last stamp, of the naive times in [second, after)
    for key in keys:
        # the key's own fields, not moto's properties over them (a page has a thousand keys)
        name = key.name
        if encoding != "url" or not _QUOTE_SAFE(name):  # (what needs no quoting needs no escaping)
            name = _xml(enc(name))
        when = key.last_modified
        etag = key._etag
        etag = key.etag if etag is None else f'"{etag}"'
        if "&" in etag or "<" in etag or ">" in etag:
            etag = escape(etag)
        tail = tails.get((key._storage_class, key.checksum_algorithm))
        if tail is None:
            checksum = (f"<ChecksumAlgorithm>{_xml(key.checksum_algorithm)}</ChecksumAlgorithm>"
                        if key.checksum_algorithm else "")
            tail = tails[key._storage_class, key.checksum_algorithm] = (
                f"</Size><StorageClass>{_xml(key.storage_class)}</StorageClass>{checksum}</Contents>")
        if when.tzinfo is not None:
            stamp, second = _iso_8601(when), None
        elif second is None or not second <= when < after:  # keys written in one second share it
            second = when.replace(microsecond=0)
            after, stamp = second + _SECOND, _iso_8601(second)
        append(f"<Contents><Key>{name}</Key><LastModified>{stamp}</LastModified>"
               f"<ETag>{etag}</ETag><Size>{key.contentsize}{tail}")
    if delimiter:
        out.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        out += [f"<CommonPrefixes><Prefix>{escape(enc(f))}</Prefix></CommonPrefixes>"
                for f in folders]
    if encoding:
        out.append(f"<EncodingType>{encoding}</EncodingType>")
    if next_token:
        out.append(f"<NextContinuationToken>{escape(next_token)}</NextContinuationToken>")
    if start_after:
        out.append(f"<StartAfter>{escape(start_after)}</StartAfter>")
    out.append("</ListBucketResult>")
    return "".join(out).encode()


_SECOND = datetime.timedelta(seconds=1)
_ISO_8601_S3 = "%Y-%m-%dT%H:%M:%S.000Z"  # moto's iso_8601_datetime_without_milliseconds_s3


def _iso_8601(when: Any) -> str:
    """moto's ``iso_8601_datetime_without_milliseconds_s3``: ``isoformat`` says the same for the
    naive UTC times moto keeps, in a quarter of strftime's time (a LIST page formats 1,000)."""
    if when.tzinfo is None and when.year >= 1000:
        return f"{when.isoformat(timespec='seconds')}.000Z"
    return str(when.strftime(_ISO_8601_S3))
# what urllib's quote() leaves as it is (letters, digits, "_.-~" and its default safe "/")
_QUOTE_SAFE = re.compile(r"[A-Za-z0-9_.\-~/]*").fullmatch


def _url_quote(text: str) -> str:
    return text if _QUOTE_SAFE(text) else quote(text)


def _xml(text: str) -> str:
    """``escape(text)``, skipped for the usual text with nothing to escape."""
    return escape(text) if "&" in text or "<" in text or ">" in text else text


def _byte_range(spec: str, length: int) -> tuple[int, int] | None:
    """(first, last) byte for a single ``bytes=`` range; None when moto should decide."""
    unit, _, ranges = spec.partition("=")
    if unit.strip() != "bytes" or "," in ranges:
        return None
    first, _, last = ranges.strip().partition("-")
    try:
        if first:
            begin = int(first)
            end = min(int(last), length - 1) if last else length - 1
        else:
            begin, end = max(0, length - int(last)), length - 1
    except ValueError:
        return None
    if length == 0 or begin > end or begin >= length:
        return None
    return begin, end


def _other_headers(environ: WSGIEnvironment, allowed: frozenset[str] | set[str]) -> bool:
    """Whether the request has a header (an ``HTTP_*`` or ``CONTENT_*`` key) not in ``allowed``."""
    extra = environ.keys() - allowed
    return bool(extra) and any(name.startswith(("HTTP_", "CONTENT_")) for name in extra)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


_RFC_1123: dict[tuple[int, int, int, int], str] = {}  # (day, hour, minute, second) -> its text


def _rfc_1123(when: Any) -> str:
    """moto's ``rfc_1123_datetime`` (English names whatever the locale), formatted once per
    second: the objects a job reads were mostly written in the same few seconds."""
    second = (when.toordinal(), when.hour, when.minute, when.second)
    text = _RFC_1123.get(second)
    if text is None:
        text = (f"{_WEEKDAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
                f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} GMT")
        if len(_RFC_1123) >= 4096:
            _RFC_1123.clear()
        _RFC_1123[second] = text
    return text


# A request id as moto's S3 shapes it (16 upper-case hex digits), unique in this process: a random
# prefix and a counter, without drawing a uuid4 from os.urandom for every request.
_ID_PREFIX = secrets.token_hex(4).upper()
_id_counter = itertools.count(secrets.randbelow(1 << 32))


def _request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFF:08X}"


def _ids(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    request_id = _request_id()
    headers.append(("x-amz-request-id", request_id))
    headers.append(("x-amz-id-2", request_id))
    return headers


def _error(status: str, code: str, message: str, key: str, condition: str | None = None) -> Response:
    extra = f"<Condition>{condition}</Condition>" if condition else f"<Key>{escape(key)}</Key>"
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message>{extra}<RequestId>{uuid.uuid4().hex[:16]}</RequestId>"
            f"</Error>").encode()
    return status, _ids([("Content-Type", _XML), ("Content-Length", str(len(body)))]), body
