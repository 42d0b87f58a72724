"""An S3 client held in memory: the calls both planes make, with S3's answers and errors.

``smr run --inline`` runs the planner and the Lambda handlers in one process against this client
instead of an endpoint. It serves the boto3 S3 client methods the project calls (GET with ``Range``
and ``IfMatch``, PUT with ``IfNoneMatch``, HEAD, ListObjectsV2 and its paginator, copy, delete,
``upload_file``/``download_file``) and answers as S3 does: the same response fields, ranges clipped
the same way, and botocore ``ClientError`` s with S3's codes (``NoSuchKey``, ``404`` for a HEAD,
``PreconditionFailed``, ``InvalidRange``, ``NoSuchBucket``), which is what the code under test
classifies. Thread-safe: the reducer fetches slices on a thread pool.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_KEYS = 1000


@dataclass(frozen=True)
class _Object:
    body: bytes
    etag: str
    modified: dt.datetime


def _error(code: str, message: str, status: int, operation: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def _bytes(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return bytes(body.read())  # a file-like object


class _Body(io.BytesIO):
    """A response body: the methods of botocore's ``StreamingBody`` that callers use (importing
    that class costs more than a small job's run)."""

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def iter_lines(self, chunk_size: int = 1024, keepends: bool = False) -> Iterator[bytes]:
        yield from (line if keepends else line.rstrip(b"\r\n") for line in self.readlines())


def _streaming(data: bytes) -> _Body:
    return _Body(data)


class MemoryS3:
    """The S3 client of a run inside this process (see the module docstring)."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[str, _Object]] = {}
        self._lock = threading.Lock()

    # -- buckets ----------------------------------------------------------------------------------

    def create_bucket(self, *, Bucket: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            self._buckets.setdefault(Bucket, {})
        return {"Location": f"/{Bucket}"}

    def head_bucket(self, *, Bucket: str, **_: Any) -> dict[str, Any]:
        self._bucket(Bucket, "HeadBucket", head=True)
        return {}

    def _bucket(self, name: str, operation: str, head: bool = False) -> dict[str, _Object]:
        bucket = self._buckets.get(name)
        if bucket is None:
            if head:
                raise _error("404", "Not Found", 404, operation)
            raise _error("NoSuchBucket", f"The specified bucket does not exist: {name}", 404, operation)
        return bucket

    def _object(self, bucket: str, key: str, operation: str, head: bool = False) -> _Object:
        with self._lock:
            obj = self._bucket(bucket, operation, head).get(key)
        if obj is None:
            if head:
                raise _error("404", "Not Found", 404, operation)
            raise _error("NoSuchKey", f"The specified key does not exist: {key}", 404, operation)
        return obj

    # -- objects ----------------------------------------------------------------------------------

    def put_object(self, *, Bucket: str, Key: str, Body: Any = b"", IfNoneMatch: str | None = None,
                   **_: Any) -> dict[str, Any]:
        data = _bytes(Body)
        obj = _Object(data, '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"',
                      dt.datetime.now(dt.timezone.utc))
        with self._lock:
            bucket = self._bucket(Bucket, "PutObject")
            if IfNoneMatch == "*" and Key in bucket:
                raise _error("PreconditionFailed", "At least one of the pre-conditions you specified "
                             "did not hold", 412, "PutObject")
            bucket[Key] = obj
        return {"ETag": obj.etag}

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None,
                   IfMatch: str | None = None, **_: Any) -> dict[str, Any]:
        obj = self._object(Bucket, Key, "GetObject")
        if IfMatch is not None and IfMatch.strip('"') != obj.etag.strip('"'):
            raise _error("PreconditionFailed", "At least one of the pre-conditions you specified did "
                         "not hold", 412, "GetObject")
        data, extra = obj.body, {}
        if Range is not None:
            first, last = _byte_range(Range, len(obj.body))
            data = obj.body[first:last + 1]
            extra = {"ContentRange": f"bytes {first}-{last}/{len(obj.body)}"}
        return {"Body": _streaming(data), "ContentLength": len(data), "ETag": obj.etag,
                "LastModified": obj.modified, **extra}

    def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        obj = self._object(Bucket, Key, "HeadObject", head=True)
        return {"ContentLength": len(obj.body), "ETag": obj.etag, "LastModified": obj.modified}

    def copy_object(self, *, Bucket: str, Key: str, CopySource: dict[str, str] | str,
                    **_: Any) -> dict[str, Any]:
        if isinstance(CopySource, str):
            source_bucket, _sep, source_key = CopySource.lstrip("/").partition("/")
        else:
            source_bucket, source_key = CopySource["Bucket"], CopySource["Key"]
        obj = self._object(source_bucket, source_key, "CopyObject")
        with self._lock:
            self._bucket(Bucket, "CopyObject")[Key] = obj
        return {"CopyObjectResult": {"ETag": obj.etag, "LastModified": obj.modified}}

    def delete_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            self._bucket(Bucket, "DeleteObject").pop(Key, None)
        return {}

    def delete_objects(self, *, Bucket: str, Delete: dict[str, Any], **_: Any) -> dict[str, Any]:
        keys = [o["Key"] for o in Delete.get("Objects", [])]
        with self._lock:
            bucket = self._bucket(Bucket, "DeleteObjects")
            for key in keys:
                bucket.pop(key, None)
        return {} if Delete.get("Quiet") else {"Deleted": [{"Key": k} for k in keys]}

    # -- listing ----------------------------------------------------------------------------------

    def list_objects_v2(self, *, Bucket: str, Prefix: str = "", MaxKeys: int = MAX_KEYS,
                        ContinuationToken: str | None = None, StartAfter: str = "",
                        **_: Any) -> dict[str, Any]:
        after = ContinuationToken or StartAfter
        with self._lock:
            bucket = self._bucket(Bucket, "ListObjectsV2")
            keys = sorted(k for k in bucket if k.startswith(Prefix) and k > after)
            page = [(k, bucket[k]) for k in keys[:MaxKeys]]
        out: dict[str, Any] = {
            "Name": Bucket, "Prefix": Prefix, "MaxKeys": MaxKeys, "KeyCount": len(page),
            "IsTruncated": len(keys) > MaxKeys}
        if page:
            out["Contents"] = [{"Key": k, "Size": len(o.body), "ETag": o.etag, "LastModified": o.modified,
                                "StorageClass": "STANDARD"} for k, o in page]
        if out["IsTruncated"]:
            out["NextContinuationToken"] = page[-1][0]
        return out

    def get_paginator(self, operation: str) -> _ListPaginator:
        if operation != "list_objects_v2":
            raise NotImplementedError(f"the in-memory S3 pages list_objects_v2 only, not {operation}")
        return _ListPaginator(self)

    # -- files ------------------------------------------------------------------------------------

    def upload_file(self, Filename: str, Bucket: str, Key: str, **_: Any) -> None:
        self.put_object(Bucket=Bucket, Key=Key, Body=Path(Filename).read_bytes())

    def download_file(self, Bucket: str, Key: str, Filename: str, **_: Any) -> None:
        Path(Filename).write_bytes(self._object(Bucket, Key, "GetObject").body)


class _ListPaginator:
    def __init__(self, s3: MemoryS3) -> None:
        self.s3 = s3

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs.pop("PaginationConfig", None)
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            yield page
            if not page["IsTruncated"]:
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive ``(first, last)`` byte of ``Range: bytes=a-b`` as S3 serves it: the end
    clipped to the object, a suffix range ``bytes=-n`` the last n bytes; a start past the end
    (or any range of an empty object) is ``InvalidRange``."""
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise _error("InvalidArgument", f"unsupported Range header {header!r}", 400, "GetObject")
    last = size - 1
    if m.group(1):
        first = int(m.group(1))
        end = min(int(m.group(2)), last) if m.group(2) else last
        if m.group(2) and int(m.group(2)) < first:  # not a range S3 serves: the whole object
            return 0, last
    else:
        first, end = max(0, size - int(m.group(2))), last
    if first > last or (not m.group(1) and int(m.group(2)) == 0):
        raise _error("InvalidRange", "The requested range is not satisfiable", 416, "GetObject")
    return first, end
