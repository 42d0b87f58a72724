"""S3 locations: the one parser of ``s3://bucket/key`` URIs, shared by both planes.

An input, an output, a part or a manifest is named by an ``s3://`` URI; :class:`S3Uri` is that
URI parsed once, so no module slices strings after ``s3://`` by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEME = "s3://"


class InputError(ValueError):
    """An input or output location that cannot be used as given."""


def as_folder(key: str) -> str:
    """``key`` ending with ``/``, so names can be appended to it (``""``, the bucket's root, stays)."""
    return key if not key or key.endswith("/") else key + "/"


def is_s3_uri(value: object) -> bool:
    """True when ``value`` is a string in the ``s3://`` scheme (it may still name no bucket)."""
    return isinstance(value, str) and value.startswith(SCHEME)


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``: a bucket and a key, or a key prefix (empty for the whole bucket)."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: object, *, what: str = "input") -> S3Uri:
        """Parse ``s3://bucket[/key]``; :class:`InputError` naming ``what`` the URI is for otherwise."""
        if not is_s3_uri(uri):
            raise InputError(f"{what} {uri!r} is not an S3 URI (s3://bucket/prefix)")
        bucket, _, key = str(uri)[len(SCHEME):].partition("/")
        if not bucket:
            raise InputError(f"{what} {uri!r} names no bucket")
        return cls(bucket, key)

    @classmethod
    def parse_or_none(cls, value: object) -> S3Uri | None:
        """The location ``value`` names, or None when it is not an S3 URI with a bucket (another
        scheme, a local path, a template not rendered yet)."""
        try:
            return cls.parse(value)
        except InputError:
            return None

    def folder(self) -> S3Uri:
        """This location as a folder: its key ends with ``/`` (the bucket's root stays ``""``)."""
        return S3Uri(self.bucket, as_folder(self.key))

    def join(self, *parts: str) -> S3Uri:
        """The location ``parts`` below this one taken as a folder
        (``s3://b/out`` + ``_report.html`` -> ``s3://b/out/_report.html``)."""
        return S3Uri(self.bucket, as_folder(self.key) + "/".join(parts))

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"
