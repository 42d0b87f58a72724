"""The few S3 and Lambda calls of a warm ``smr run``, signed and sent without importing botocore.

A warm ``smr run`` makes ~15 requests of four kinds (``ListObjectsV2``, ``GetObject``,
``PutObject``, Lambda ``Invoke``), yet importing botocore and making its session and clients was
~0.2 s of the process's ~0.5 s of CPU. :func:`lite_session` gives the CLI a session whose S3 and
Lambda clients send those calls themselves over ``http.client``, signed with SigV4
(:mod:`lambda_handlers.io.sigv4`'s key derivation), and hand everything else to the botocore client
the CLI would have made (created on first need, same region, endpoint and config):

- only where the answer is certain: credentials from ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), which botocore's chain takes first; a
  region from ``--region`` or ``AWS_DEFAULT_REGION``; either an endpoint URL whose host is an IP
  address (the local stack: S3 path-style, as botocore addresses it) or AWS's own endpoints in
  the ``aws`` partition (HTTPS; ``BUCKET.s3.REGION.amazonaws.com``, ``s3.amazonaws.com`` in
  us-east-1, as botocore's rules resolve them); no other ``AWS_*`` setting, proxy variable or
  setting in the profile's config file that could change where or how botocore sends a request.
  Anything else (a profile, SSO, a role, an unusual region or bucket name) is botocore's session
  as before (:func:`lite_session` returns None);
- only the parameters those calls use here; another parameter, another method or attribute
  (``upload_file``, ``meta``, ``exceptions``, another paginator) is the botocore client's;
- an answer that is not a plain success (an error status: a missing key or bucket, a refused
  precondition, a redirect, a throttle, a 5xx), a body not read whole, or a connection error
  sends the call again through the botocore client, which raises its own ``ClientError`` (or
  retries and succeeds) with its own messages: the same errors as before, at the cost of
  importing botocore only then.

The responses are botocore's dicts for these calls (``Contents`` entries with ``Key``,
``LastModified`` as botocore parses it, ``ETag``, ``Size``, ``StorageClass``; ``Body`` and
``Payload`` as readable bodies; ``ResponseMetadata``). ``tests/engine/test_lite_aws.py`` holds the
URLs equal to botocore's and the signatures equal to botocore's signer's for the same request and
time, and the responses equal to botocore's against the local stack.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import re
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import quote, unquote_plus, urlsplit

from lambda_handlers.io import sigv4

#: AWS_* variables that change nothing the lite clients do (credentials, region and endpoint are
#: read, the files checked; botocore reads ``AWS_REGION`` only in the ``auto`` defaults mode,
#: which ``AWS_DEFAULTS_MODE`` would set); any other makes the session botocore's
SAFE_AWS_VARIABLES = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_PAGER",
    "AWS_DEFAULT_OUTPUT", "AWS_EC2_METADATA_DISABLED",
})
#: settings of a config file's profile that change nothing here
SAFE_PROFILE_SETTINGS = frozenset({"region", "output", "cli_pager", "cli_history", "cli_auto_prompt",
                                   "cli_timestamp_format", "cli_binary_format"})
_AWS_REGION = re.compile(r"(?:us|eu|ap|ca|sa|me|af|il|mx)-(?:north|south|east|west|central|northeast|"
                         r"southeast|northwest|southwest)-[1-9]\Z")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")  # DNS-compatible, no dots
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
#: a GET's body read into memory at most this large; a larger one is read from the connection
#: (any other answer is read whole: a 2xx PUT or Invoke is never sent again)
WHOLE_BODY_BYTES = 8 * 1024 * 1024


class Credentials(NamedTuple):
    """Frozen credentials, as botocore's ``get_frozen_credentials()`` gives them."""

    access_key: str
    secret_key: str
    token: str | None
    method: str = "env"


class Fallback(Exception):
    """This call goes to the botocore client."""


def _environment_credentials(environ: Any) -> Credentials | None:
    """botocore's ``EnvProvider``: both keys set, a token from ``AWS_SECURITY_TOKEN`` or
    ``AWS_SESSION_TOKEN``; None when that is not all (an expiry makes them refreshable)."""
    access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID", ""), environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key or environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    token = environ.get("AWS_SECURITY_TOKEN") or environ.get("AWS_SESSION_TOKEN") or None
    return Credentials(access_key, secret_key, token)


def _profile_is_plain(environ: Any) -> bool:
    """No profile is named (a named profile's absence is botocore's ``ProfileNotFound``), and the
    config and credentials files hold nothing for the default profile (or any service section)
    that could change a request: at most a region, an output format and the CLI's own settings."""
    if any(environ.get(name, "default") != "default" for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")):
        return False
    config_file = os.path.expanduser(environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
    credentials_file = os.path.expanduser(environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
    for path, sections in ((config_file, ("default", "profile default")), (credentials_file, ("default",))):
        try:
            parser = _parsed_file(path)
        except ValueError:
            return False
        if parser is None:
            continue
        if any(name.startswith(("services ", "sso-session ")) for name in parser.sections()):
            return False
        for section in sections:
            if not parser.has_section(section):
                continue
            if path == credentials_file:
                return False  # the environment's keys win, but keep it botocore's to be sure
            if set(parser.options(section)) - SAFE_PROFILE_SETTINGS:
                return False
    return True


def _parsed_file(path: str) -> Any:
    """An AWS config or credentials file as a ``RawConfigParser``; None when there is no such
    file; ``ValueError`` when it cannot be read or parsed (the caller leaves it to botocore)."""
    try:
        with open(path, encoding="utf-8") as fp:
            text = fp.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}") from exc
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(f"cannot parse {path}") from exc
    return parser


def _config_region(environ: Any) -> str | None:
    """The default profile's ``region`` in the config file (botocore's when ``AWS_DEFAULT_REGION``
    is unset); None when there is none, or ``[default]`` and ``[profile default]`` disagree."""
    try:
        parser = _parsed_file(os.path.expanduser(environ.get("AWS_CONFIG_FILE") or "~/.aws/config"))
    except ValueError:
        return None
    if parser is None:
        return None
    regions = {parser.get(section, "region", fallback=None) for section in ("profile default", "default")
               if parser.has_section(section)}
    return regions.pop() or None if len(regions) == 1 else None


def lite_session(endpoint_url: str | None = None, region_name: str | None = None,
                 environ: Any = None) -> LiteSession | None:
    """A :class:`LiteSession` when this environment's requests can be sent without botocore
    exactly as botocore would send them (see the module's doc); else None (use botocore's)."""
    environ = os.environ if environ is None else environ
    if environ.get("SMR_LITE_AWS") == "0":  # botocore for every request
        return None
    if any(name.startswith("AWS_") and name not in SAFE_AWS_VARIABLES for name in environ):
        return None
    if any(environ.get(name) or environ.get(name.upper()) for name in _PROXY_VARIABLES):
        return None
    credentials = _environment_credentials(environ)
    if credentials is None or not _profile_is_plain(environ):
        return None
    region = region_name or environ.get("AWS_DEFAULT_REGION") or _config_region(environ)
    if not region:
        return None
    endpoint = endpoint_url or environ.get("AWS_ENDPOINT_URL") or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        try:
            ipaddress.ip_address(parts.hostname or "")
            port = parts.port
        except ValueError:
            return None  # a host name: botocore addresses S3 virtual-hosted there; keep it botocore's
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query or (
                parts.username or parts.password) or port == 0:
            return None
    elif not _AWS_REGION.match(region):
        return None
    return LiteSession(credentials, region, endpoint_url, endpoint, environ.get("AWS_CA_BUNDLE"))


class LiteSession:
    """What :class:`~airflow_provider_smr.engine.aws.AwsClients` asks of a session, with lite S3
    and Lambda clients; any other client, and whatever else is asked, is a botocore
    :func:`~airflow_provider_smr.engine.aws.control_session`'s (made on first need)."""

    lite = True

    def __init__(self, credentials: Credentials, region: str, given_endpoint: str | None,
                 endpoint: str | None, ca_bundle: str | None) -> None:
        self._credentials = credentials
        self.region_name = region
        self._given_endpoint = given_endpoint
        self._endpoint = endpoint
        self._ca_bundle = ca_bundle
        self._full: Any = None
        self._lock = threading.RLock()  # one botocore session, one client made at a time (not thread-safe)
        self._http = _Connections(ca_bundle)

    def __repr__(self) -> str:
        return f"LiteSession(region_name={self.region_name!r})"

    def get_credentials(self) -> Credentials:
        return self._credentials

    def full_session(self) -> Any:
        """The botocore session the CLI would have used (same region, same credentials)."""
        with self._lock:
            if self._full is None:
                from airflow_provider_smr.engine.aws import control_session

                credentials = self._credentials  # the environment's, which botocore's chain takes first
                self._full = control_session(region_name=self.region_name, aws_access_key_id=credentials.access_key,
                                             aws_secret_access_key=credentials.secret_key,
                                             aws_session_token=credentials.token)
            return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.full_session(), name)

    def full_client(self, service: str) -> Any:
        """The botocore client :class:`AwsClients` would have made for ``service``."""
        from airflow_provider_smr.engine.aws import client_config

        with self._lock:
            return self.full_session().client(service, region_name=self.region_name,
                                              endpoint_url=self._given_endpoint, config=client_config())

    def client(self, service_name: str, **_: Any) -> Any:
        """A lite client for S3 and Lambda, else botocore's (as :class:`AwsClients` makes it)."""
        if service_name == "s3":
            return LiteS3(self)
        if service_name == "lambda":
            return LiteLambda(self)
        return self.full_client(service_name)

    # -- sending ---------------------------------------------------------------------------------

    def send(self, service: str, method: str, base: str, path: str, query: list[tuple[str, str]],
             headers: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], Any]:
        """Sign and send one request; (status, lower-cased headers, body bytes or a stream).
        Raises :class:`Fallback` for any connection error."""
        parts = urlsplit(base)
        host = sigv4.host_of(base)
        query_string = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
        signed = sign(method, host, path, query_string, headers, body, self._credentials, self.region_name,
                      service)
        target = path + ("?" + query_string if query_string else "")
        return self._http.request(parts.scheme, parts.hostname or "", parts.port, method, target, signed, body)


def sign(method: str, host: str, path: str, query_string: str, headers: dict[str, str], body: bytes,
         credentials: Any, region: str, service: str, stamp: str | None = None) -> dict[str, str]:
    """``headers`` with ``host``, ``x-amz-date``, the session token and (S3) the payload's hash,
    signed with SigV4 as botocore's ``S3SigV4Auth`` (``service="s3"``: the path as sent) or
    ``SigV4Auth`` (else: the path's segments encoded once more) signs them."""
    stamp = stamp or sigv4.amz_date()
    payload_hash = hashlib.sha256(body).hexdigest() if body else sigv4.EMPTY_SHA256
    signed = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    signed["host"] = host
    signed["x-amz-date"] = stamp
    if service == "s3":
        signed["x-amz-content-sha256"] = payload_hash
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical_path = path if service == "s3" else quote(path, safe="/~")
    canonical = "\n".join([method, canonical_path, query_string, *(f"{n}:{signed[n]}" for n in names), "",
                           ";".join(names), payload_hash])
    signed["authorization"] = sigv4.authorization(canonical, ";".join(names), stamp, credentials, region, service)
    return signed


class _Connections:
    """Kept-alive ``http.client`` connections per (scheme, host, port), one request at a time each
    (the submit's parallel PUTs take one each)."""

    def __init__(self, ca_bundle: str | None) -> None:
        self._idle: dict[tuple[str, str, int | None], list[Any]] = {}
        self._lock = threading.Lock()
        self._ca_bundle = ca_bundle

    def _connect(self, scheme: str, host: str, port: int | None) -> Any:
        import http.client

        if scheme == "https":
            import ssl

            context = ssl.create_default_context(cafile=self._ca_bundle or _default_ca_bundle())
            return http.client.HTTPSConnection(host, port, timeout=60, context=context)
        return http.client.HTTPConnection(host, port, timeout=60)

    def request(self, scheme: str, host: str, port: int | None, method: str, target: str,
                headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        import http.client

        key = (scheme, host, port)
        for reused in (True, False):
            with self._lock:
                idle = self._idle.setdefault(key, [])
                conn = idle.pop() if reused and idle else None
            if conn is None:
                reused = False
                conn = self._connect(scheme, host, port)
            try:
                conn.request(method, target, body=body or None, headers=headers)
                response = conn.getresponse()
                status = response.status
                got = {k.lower(): v for k, v in response.getheaders()}
                length = got.get("content-length")
                if method != "GET" or length is None or int(length) <= WHOLE_BODY_BYTES:
                    data: Any = response.read()  # whole (http.client raises IncompleteRead when cut short)
                    if not response.will_close:
                        with self._lock:
                            self._idle[key].append(conn)
                    else:
                        conn.close()
                else:
                    data = _StreamedBody(response, conn)
                return status, got, data
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                if reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                               BrokenPipeError)):
                    continue  # a kept-alive connection the server had closed: once more, on a new one
                raise Fallback(str(exc)) from None
        raise Fallback("no connection")


def _default_ca_bundle() -> str:
    """botocore's certificates without ``AWS_CA_BUNDLE``: certifi's, else botocore's own file."""
    try:
        from certifi import where
    except ImportError:
        import importlib.util

        spec = importlib.util.find_spec("botocore")
        return os.path.join(os.path.dirname(spec.origin or ""), "cacert.pem") if spec else ""
    path: str = where()
    return path


class Body(io.BytesIO):
    """A response body read whole: botocore's ``StreamingBody`` reading methods."""

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def iter_lines(self, chunk_size: int = 1024, keepends: bool = False) -> Iterator[bytes]:
        yield from self.read().splitlines(keepends)

    def set_socket_timeout(self, timeout: float) -> None:
        pass


class _StreamedBody(io.RawIOBase):
    """A large response body, read from its connection (closed at the end)."""

    def __init__(self, response: Any, conn: Any) -> None:
        self._response, self._conn = response, conn

    def readable(self) -> bool:
        return True

    def read(self, amt: int | None = -1) -> bytes:
        data: bytes = self._response.read(None if amt is None or amt < 0 else amt)
        return data

    def readinto(self, buffer: Any) -> int:
        count: int = self._response.readinto(buffer)
        return count

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._conn.close()
        super().close()


def _timestamp(value: str) -> Any:
    """botocore's parse of a response timestamp (:func:`lambda_handlers.clock.aws_timestamp`)
    without importing botocore: the time zones its fast path asks botocore for once are set here
    as botocore's ``parse_timestamp`` gets them from dateutil's parser (``tzinfos={"GMT":
    tzutc()}``): ``...Z`` is read as the zone named ``UTC``, which is ``tzlocal()`` where the
    local zone is called UTC (``time.tzname``) and ``tzutc()`` elsewhere; ``... GMT`` is the
    ``tzutc()`` given. ``tests/engine/test_lite_aws.py`` holds them equal to botocore's."""
    from lambda_handlers import clock

    if _ISO_SAMPLE not in clock._ZONES or _HTTP_SAMPLE not in clock._ZONES:
        clock._ZONES.update(_zones())
    return clock.aws_timestamp(value)


_ISO_SAMPLE, _HTTP_SAMPLE = "2000-01-01T00:00:00Z", "Sat, 01 Jan 2000 00:00:00 GMT"  # clock's samples


def _zones() -> dict[str, Any]:
    import time

    from dateutil import tz  # type: ignore[import-untyped]

    return {_ISO_SAMPLE: tz.tzlocal() if "UTC" in time.tzname else tz.UTC, _HTTP_SAMPLE: tz.tzutc()}


def _metadata(status: int, headers: dict[str, str]) -> dict[str, Any]:
    return {"RequestId": headers.get("x-amz-request-id") or headers.get("x-amzn-requestid", ""),
            "HostId": headers.get("x-amz-id-2", ""), "HTTPStatusCode": status, "HTTPHeaders": headers,
            "RetryAttempts": 0}


class _LiteClient:
    """Shared by :class:`LiteS3` and :class:`LiteLambda`: the botocore client for everything else."""

    SERVICE = ""
    #: no botocore events to hook (``lambda_handlers.io.listing`` pages through the paginator;
    #: ``engine.requests`` counts the lite calls as they are made)
    meta = None

    def __init__(self, session: LiteSession) -> None:
        self._session = session
        self._full: Any = None

    def _botocore(self) -> Any:
        if self._full is None:
            from airflow_provider_smr.engine import requests

            with self._session._lock:  # made once, whichever thread asks first
                if self._full is None:
                    # its calls count for the job as every S3 client's do (the lite calls count themselves)
                    self._full = requests.attach(self._session.full_client(self.SERVICE))
        return self._full

    @staticmethod
    def _count(operation: str) -> None:
        """Count one S3 call sent here for the current job, as ``requests.attach``'s handler
        counts a botocore client's (a call that falls back is counted by that handler)."""
        from airflow_provider_smr.engine import requests

        job = requests._CURRENT_JOB.get()
        if job is not None:
            requests.add(job, requests.S3_TYPES.get(operation, operation.upper()))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # botocore's internals (``_endpoint``...): not this client's
            raise AttributeError(name)
        return getattr(self._botocore(), name)

    def _fallback(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return getattr(self._botocore(), operation)(**kwargs)


class LiteS3(_LiteClient):
    """``list_objects_v2``, ``get_object``, ``put_object`` and the ``list_objects_v2`` paginator
    without botocore (see the module's doc); anything else is botocore's client's."""

    SERVICE = "s3"

    def _base(self, bucket: str) -> tuple[str, str]:
        """(the endpoint, the path prefix of ``bucket``'s keys) as botocore addresses them."""
        if not _BUCKET.match(bucket):
            raise Fallback(bucket)
        session = self._session
        if session._endpoint is not None:
            return session._endpoint.rstrip("/"), f"/{bucket}"
        if session.region_name == "us-east-1":
            return f"https://{bucket}.s3.amazonaws.com", ""
        return f"https://{bucket}.s3.{session.region_name}.amazonaws.com", ""

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        if set(kwargs) - {"Bucket", "Prefix", "MaxKeys", "ContinuationToken", "StartAfter", "Delimiter"}:
            return self._fallback("list_objects_v2", kwargs)
        try:
            query = [("list-type", "2"), ("encoding-type", "url")]
            for name, field in (("prefix", "Prefix"), ("max-keys", "MaxKeys"), ("delimiter", "Delimiter"),
                                ("continuation-token", "ContinuationToken"), ("start-after", "StartAfter")):
                if kwargs.get(field) is not None:
                    query.append((name, str(kwargs[field])))
            base, prefix = self._base(kwargs["Bucket"])
            status, got, data = self._session.send("s3", "GET", base, prefix or "/", query, {})
            if status != 200 or not isinstance(data, bytes):
                raise Fallback(status)
            listed = _parse_listing(data, status, got)
        except (Fallback, ValueError):  # (a number that is none: botocore's to read, and to refuse)
            return self._fallback("list_objects_v2", kwargs)
        self._count("ListObjectsV2")
        return listed

    def list_objects_v2_body(self, *, Bucket: str, Prefix: str = "",
                             ContinuationToken: str | None = None) -> bytes | None:
        """A ``ListObjectsV2`` page (``encoding-type=url``) as S3 sent it, for
        :mod:`lambda_handlers.io.listing` to read itself; None for anything but a 200 (the caller
        then asks :meth:`list_objects_v2`, which falls back to botocore for its errors)."""
        query = [("list-type", "2"), ("encoding-type", "url"), ("prefix", Prefix)]
        if ContinuationToken is not None:
            query.append(("continuation-token", ContinuationToken))
        try:
            base, prefix = self._base(Bucket)
            status, _, data = self._session.send("s3", "GET", base, prefix or "/", query, {})
        except Fallback:
            return None
        if status != 200 or not isinstance(data, bytes):
            if not isinstance(data, bytes):
                data.close()
            return None
        self._count("ListObjectsV2")
        return data

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        if set(kwargs) - {"Bucket", "Key"}:
            return self._fallback("get_object", kwargs)
        try:
            base, prefix = self._base(kwargs["Bucket"])
            path = prefix + "/" + quote(kwargs["Key"], safe="/~")
            status, got, data = self._session.send("s3", "GET", base, path, [], {})
            if status != 200:
                if not isinstance(data, bytes):
                    data.close()
                raise Fallback(status)
            got_object = _object_fields(got, status, Body(data) if isinstance(data, bytes) else data)
        except (Fallback, ValueError):
            return self._fallback("get_object", kwargs)
        self._count("GetObject")
        return got_object

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        body = kwargs.get("Body", b"")
        if set(kwargs) - {"Bucket", "Key", "Body", "IfNoneMatch", "ContentType"} or not isinstance(
                body, (bytes, str)):
            return self._fallback("put_object", kwargs)
        data = body.encode() if isinstance(body, str) else body
        headers = {}
        if kwargs.get("IfNoneMatch") is not None:
            headers["If-None-Match"] = str(kwargs["IfNoneMatch"])
        if kwargs.get("ContentType") is not None:
            headers["Content-Type"] = str(kwargs["ContentType"])
        try:
            base, prefix = self._base(kwargs["Bucket"])
            path = prefix + "/" + quote(kwargs["Key"], safe="/~")
            status, got, _ = self._session.send("s3", "PUT", base, path, [], headers, data)
            if status != 200:
                raise Fallback(status)
        except Fallback:
            return self._fallback("put_object", kwargs)
        self._count("PutObject")
        out: dict[str, Any] = {"ResponseMetadata": _metadata(status, got)}
        for field, header in (("ETag", "etag"), ("VersionId", "x-amz-version-id"),
                              ("ServerSideEncryption", "x-amz-server-side-encryption")):
            if header in got:
                out[field] = got[header]
        return out

    def get_paginator(self, operation_name: str) -> Any:
        if operation_name != "list_objects_v2":
            return self._botocore().get_paginator(operation_name)
        return _ListPaginator(self)


class _ListPaginator:
    """``get_paginator("list_objects_v2")``: ``paginate(**kwargs)`` yields each page's response."""

    def __init__(self, s3: LiteS3) -> None:
        self._s3 = s3

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        if set(kwargs) - {"Bucket", "Prefix", "Delimiter", "StartAfter"}:
            yield from self._s3._botocore().get_paginator("list_objects_v2").paginate(**kwargs)
            return
        token = None
        while True:
            page = self._s3.list_objects_v2(**kwargs, **({"ContinuationToken": token} if token else {}))
            yield page
            following = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not following:
                return
            if following == token:
                from botocore.exceptions import PaginationError

                raise PaginationError(message=f"The same next token was received twice: {token}")
            token = following


_LIST_TEXT = {"Name", "Prefix", "Delimiter", "EncodingType", "ContinuationToken", "NextContinuationToken",
              "StartAfter"}
_LIST_INT = {"MaxKeys", "KeyCount"}
_DECODED = {"Prefix", "Delimiter", "StartAfter"}  # botocore url-decodes these (and Key) with encoding-type=url


def _parse_listing(body: bytes, status: int, headers: dict[str, str]) -> dict[str, Any]:
    """botocore's ``ListObjectsV2`` response for a 200 page; :class:`Fallback` for anything this
    does not read whole (botocore then sends and reads it)."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise Fallback("not XML") from None
    if root.tag != _S3_NS + "ListBucketResult":
        raise Fallback(root.tag)
    out: dict[str, Any] = {}
    contents: list[dict[str, Any]] = []
    prefixes: list[dict[str, Any]] = []
    decode = False
    for child in root:
        name = child.tag[len(_S3_NS):] if child.tag.startswith(_S3_NS) else None
        text = child.text or ""
        if name == "Contents":
            contents.append(_parse_contents(child))
        elif name == "CommonPrefixes":
            entry = {}
            for part in child:
                if part.tag != _S3_NS + "Prefix" or len(part):
                    raise Fallback(part.tag)
                entry["Prefix"] = part.text or ""
            prefixes.append(entry)
        elif name == "IsTruncated" and text in ("true", "false"):
            out["IsTruncated"] = text == "true"
        elif name in _LIST_TEXT and not len(child):
            out[name] = text
            decode = decode or (name == "EncodingType" and text == "url")
        elif name in _LIST_INT and not len(child):
            out[name] = int(text)
        else:
            raise Fallback(child.tag)
    if decode:
        for field in _DECODED:
            if field in out:
                out[field] = unquote_plus(out[field])
        for entry in contents:
            entry["Key"] = unquote_plus(entry["Key"])
        for entry in prefixes:
            entry["Prefix"] = unquote_plus(entry["Prefix"])
    if contents:
        out["Contents"] = contents
    if prefixes:
        out["CommonPrefixes"] = prefixes
    if "x-amz-request-charged" in headers:
        out["RequestCharged"] = headers["x-amz-request-charged"]
    return {"ResponseMetadata": _metadata(status, headers), **out}


def _parse_contents(element: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for part in element:
        name = part.tag[len(_S3_NS):] if part.tag.startswith(_S3_NS) else None
        text = part.text or ""
        if len(part) and name != "Owner":
            raise Fallback(part.tag)
        if name in ("Key", "ETag", "StorageClass", "ChecksumType"):
            entry[name] = text
        elif name == "Size":
            entry[name] = int(text)
        elif name == "LastModified":
            entry[name] = _timestamp(text)
        elif name == "ChecksumAlgorithm":
            entry.setdefault(name, []).append(text)
        elif name == "Owner":
            owner = {}
            for field in part:
                field_name = field.tag[len(_S3_NS):]
                if field_name not in ("DisplayName", "ID") or len(field):
                    raise Fallback(field.tag)
                owner[field_name] = field.text or ""
            entry[name] = owner
        else:
            raise Fallback(part.tag)
    if "Key" not in entry:
        raise Fallback("no Key")
    return entry


_OBJECT_HEADERS = (("AcceptRanges", "accept-ranges"), ("ContentType", "content-type"),
                   ("ETag", "etag"), ("VersionId", "x-amz-version-id"),
                   ("ServerSideEncryption", "x-amz-server-side-encryption"),
                   ("CacheControl", "cache-control"), ("ContentEncoding", "content-encoding"),
                   ("ContentDisposition", "content-disposition"), ("ContentLanguage", "content-language"),
                   ("StorageClass", "x-amz-storage-class"))


def _object_fields(headers: dict[str, str], status: int, body: Any) -> dict[str, Any]:
    """A ``GetObject`` response's fields from its headers, as botocore maps them."""
    out: dict[str, Any] = {"ResponseMetadata": _metadata(status, headers)}
    if "last-modified" in headers:
        out["LastModified"] = _timestamp(headers["last-modified"])
    if "content-length" in headers:
        out["ContentLength"] = int(headers["content-length"])
    for field, header in _OBJECT_HEADERS:
        if header in headers:
            out[field] = headers[header]
    out["Metadata"] = {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}
    out["Body"] = body
    return out


class LiteLambda(_LiteClient):
    """Lambda's ``invoke`` without botocore (see the module's doc); anything else is botocore's."""

    SERVICE = "lambda"

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        payload = kwargs.get("Payload", b"")
        if set(kwargs) - {"FunctionName", "InvocationType", "Payload", "Qualifier"} or not isinstance(
                payload, (bytes, str)):
            return self._fallback("invoke", kwargs)
        data = payload.encode() if isinstance(payload, str) else payload
        session = self._session
        base = (session._endpoint.rstrip("/") if session._endpoint is not None
                else f"https://lambda.{session.region_name}.amazonaws.com")
        path = f"/2015-03-31/functions/{quote(kwargs['FunctionName'], safe='')}/invocations"
        query = [("Qualifier", str(kwargs["Qualifier"]))] if kwargs.get("Qualifier") is not None else []
        headers = {"X-Amz-Invocation-Type": str(kwargs["InvocationType"])} if kwargs.get("InvocationType") else {}
        try:
            status, got, body = session.send("lambda", "POST", base, path, query, headers, data)
            if not 200 <= status < 300 or not isinstance(body, bytes):
                raise Fallback(status)
        except Fallback:
            return self._fallback("invoke", kwargs)
        out: dict[str, Any] = {"ResponseMetadata": _metadata(status, got), "StatusCode": status}
        for field, header in (("FunctionError", "x-amz-function-error"), ("LogResult", "x-amz-log-result"),
                              ("ExecutedVersion", "x-amz-executed-version")):
            if header in got:
                out[field] = got[header]
        out["Payload"] = Body(body)
        return out
