"""SigV4 for an S3 GetObject by string formatting: what botocore's ``S3SigV4Auth`` signs, at a
tenth of its CPU.

botocore builds the canonical request from a header map, derives the signing key with four HMACs
and hashes again for every request. A GET of a whole object pinned by ``If-Match`` always signs the
same five headers (``host``, ``if-match``, ``x-amz-content-sha256``, ``x-amz-date`` and, with
temporary credentials, ``x-amz-security-token``) over the URL path as sent (S3 paths are not
normalized), with the payload hash of an empty body. :class:`GetRequests` writes such requests
whole for one host and region, as :mod:`lambda_handlers.io.multiget` sends thousands of them: what
every request of the same credentials and second shares (the host, token and date lines, the
scope, the signing key, derived once per secret key, day, region and service) is formatted once,
so a request costs its path, ETag and two hashes. ``tests/lambda_handlers/io/test_sigv4.py`` holds
its requests equal to botocore's headers for the same request and time. :func:`authorization`
signs any canonical request the same way (the CLI's botocore-free calls,
:mod:`airflow_provider_smr.engine.lite_aws`, build theirs).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_keys: dict[tuple[str, str, str, str], bytes] = {}  # (secret, day, region, service) -> key
_stamp: tuple[int, str] = (-1, "")  # (epoch second, its X-Amz-Date)


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """The derived SigV4 key of ``secret`` for ``day`` (``YYYYMMDD``), cached."""
    cache_key = (secret, day, region, service)
    key = _keys.get(cache_key)
    if key is None:
        key = ("AWS4" + secret).encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        if len(_keys) > 64:  # old days and rotated secrets
            _keys.clear()
        _keys[cache_key] = key
    return key


def amz_date(now: float | None = None) -> str:
    """``X-Amz-Date`` of ``now`` (default: the current second), e.g. ``20261207T104620Z``."""
    global _stamp
    second = int(time.time() if now is None else now)
    if _stamp[0] != second:
        _stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return _stamp[1]


def host_of(url: str) -> str:
    """The ``Host`` header botocore signs for ``url``: lower case, the port unless it is the
    scheme's default, IPv6 in brackets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def authorization(canonical: str, names: str, stamp: str, credentials: Any, region: str,
                  service: str) -> str:
    """The ``Authorization`` header of the canonical request ``canonical`` (whose signed header
    names are ``names``, ``;``-joined) signed at ``stamp`` (``X-Amz-Date``)."""
    day = stamp[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(signing_key(credentials.secret_key, day, region, service), to_sign.encode(),
                         hashlib.sha256).hexdigest()
    return (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={names}, "
            f"Signature={signature}")


class GetRequests:
    """Signed ``GET`` requests of one ``host`` and ``region``: the bytes of each, its headers
    ``host``, ``if-match`` (when pinned), ``x-amz-content-sha256``, ``x-amz-date``,
    ``x-amz-security-token`` (with temporary credentials), ``authorization``, then
    ``accept-encoding: identity``.

    :param credentials: what :meth:`request` signs with, fresh each call (botocore's
        ``Credentials``, refreshed in place); its frozen credentials are compared by value.
    """

    def __init__(self, host: str, region: str, credentials: Any, service: str = "s3"):
        self.host, self.region, self.service, self.credentials = host, region, service, credentials
        self._shared: tuple[Any, str] | None = None  # (frozen credentials, stamp) the parts are for
        self._parts: tuple[str, str, str, str, str, bytes] = ("", "", "", "", "", b"")

    def _prepare(self, frozen: Any, stamp: str) -> tuple[str, str, str, str, str, bytes]:
        """The parts of the canonical request, string to sign and request that do not depend on
        the path or ETag, for ``frozen`` credentials at ``stamp``."""
        day = stamp[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        token = " ".join(frozen.token.split()) if frozen.token else ""
        names = "host;if-match;x-amz-content-sha256;x-amz-date" + (";x-amz-security-token" if token else "")
        # canonical request: between the ETag and the end; the ETag-less form signs no if-match
        tail = (f"\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{stamp}\n"
                + (f"x-amz-security-token:{token}\n" if token else ""))
        head = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
        credential = f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, SignedHeaders="
        lines = (f"x-amz-content-sha256: {EMPTY_SHA256}\r\nx-amz-date: {stamp}\r\n"
                 + (f"x-amz-security-token: {token}\r\n" if token else ""))
        key = signing_key(frozen.secret_key, day, self.region, self.service)
        self._shared = (frozen, stamp)
        self._parts = (tail, names, head, credential, lines, key)
        return self._parts

    def request(self, path: str, etag: str | None, stamp: str | None = None) -> bytes:
        """The request of ``path`` (as sent, percent-encoded), pinned to ``etag`` when given,
        signed at ``stamp`` (``X-Amz-Date``; default: now)."""
        stamp = stamp or amz_date()
        frozen = self.credentials.get_frozen_credentials()
        shared = self._shared
        if shared is not None and shared[1] == stamp and shared[0] == frozen:
            tail, names, head, credential, lines, key = self._parts
        else:
            tail, names, head, credential, lines, key = self._prepare(frozen, stamp)
        host = self.host
        if etag:
            etag = " ".join(etag.split())
            canonical = f"GET\n{path}\n\nhost:{host}\nif-match:{etag}{tail}\n{names}\n{EMPTY_SHA256}"
            pinned = f"if-match: {etag}\r\n"
        else:
            names = names.replace("host;if-match;", "host;", 1)
            canonical = f"GET\n{path}\n\nhost:{host}{tail}\n{names}\n{EMPTY_SHA256}"
            pinned = ""
        to_sign = head + hashlib.sha256(canonical.encode()).hexdigest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return (f"GET {path} HTTP/1.1\r\nhost: {host}\r\n{pinned}{lines}authorization: {credential}"
                f"{names}, Signature={signature}\r\naccept-encoding: identity\r\n\r\n").encode()
