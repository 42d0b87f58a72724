"""The one endpoint: Lambda ``Invoke`` goes to our runtime, everything else to moto.

Also guards the few Lambda control-plane calls where moto accepts what AWS refuses (a deployment
package that is not a zip), so a mistake shows up at deploy time locally as it would on AWS.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from airflow_provider_smr.local.iam import Enforcer
from airflow_provider_smr.local.runtime.invoker import Invoker, LambdaApiError
from airflow_provider_smr.local.runtime.sandbox import is_valid_zip
from airflow_provider_smr.local.s3_fast import S3FastPath

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_CREATE = re.compile(r"^/2015-03-31/functions/?$")
_UPDATE_CODE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/code/?$")

ACCOUNT_SETTINGS = "/2016-08-19/account-settings"


# Set SMR_LOCAL_S3_FALLBACK_LOG to a file path to list the requests the S3 fast path leaves to moto
# (method, path, query, headers): moto spends milliseconds on each, so a hot one there is a bug.
FALLBACK_LOG = os.environ.get("SMR_LOCAL_S3_FALLBACK_LOG")


def _log_fallback(path: str, environ: WSGIEnvironment) -> None:
    headers = sorted(k for k in environ if k.startswith(("HTTP_", "CONTENT_")))
    with open(path, "a") as f:
        f.write(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}?"
                f"{environ.get('QUERY_STRING', '')} {' '.join(headers)}\n")


class Gateway:
    """WSGI app that serves Lambda invocations itself and forwards the rest to ``backend``; a
    request signed with a function's credentials must first pass ``iam`` (see :mod:`.iam`)."""

    def __init__(self, backend: WSGIApplication, invoker: Invoker, s3: S3FastPath | None = None,
                 iam: Enforcer | None = None):
        self.backend = backend
        self.invoker = invoker
        self.s3 = s3
        self.iam = iam

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if self.iam is not None:
            denied = self.iam.handle(environ)
            if denied is not None:
                status, headers, body = denied
                start_response(status, headers)
                return [body]
        if self.s3 is not None and not path.startswith("/2015-03-31/"):
            answer = self.s3.handle(environ)
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
            if FALLBACK_LOG:
                _log_fallback(FALLBACK_LOG, environ)
        if method == "GET" and path.rstrip("/") == ACCOUNT_SETTINGS:
            return self._account_settings(start_response)
        if method == "POST" and path.startswith("/2015-03-31/functions"):
            match = _INVOKE.match(path)
            if match:
                return self._invoke(environ, start_response, unquote(match["name"]))
            if _CREATE.match(path):
                refused = _refuse_bad_zip(environ, start_response)
                if refused is not None:
                    return refused
        elif method == "PUT" and _UPDATE_CODE.match(path):
            refused = _refuse_bad_zip(environ, start_response)
            if refused is not None:
                return refused
        return self.backend(environ, start_response)

    def _account_settings(self, start_response: StartResponse) -> list[bytes]:
        """``GetAccountSettings``: the stack's concurrency as an account's. A function's events run
        on at most ``workers_per_function`` workers at once, so that is the concurrency left to one
        job's tasks (``UnreservedConcurrentExecutions``, what the planner sizes splits for)."""
        s = self.invoker.settings
        body = json.dumps({
            "AccountLimit": {"TotalCodeSize": 80 * 1024**3, "CodeSizeUnzipped": 250 * 1024**2,
                             "CodeSizeZipped": 50 * 1024**2, "ConcurrentExecutions": s.max_concurrency,
                             "UnreservedConcurrentExecutions": min(s.max_concurrency, s.workers_per_function)},
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _invoke(self, environ: WSGIEnvironment, start_response: StartResponse, name: str) -> list[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        qualifier = query.get("Qualifier", [None])[0]
        body = _read_body(environ)
        try:
            result = self.invoker.invoke(
                name, qualifier, body,
                environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse"),
                environ.get("HTTP_X_AMZ_LOG_TYPE"), environ.get("HTTP_X_AMZ_CLIENT_CONTEXT"))
        except LambdaApiError as exc:
            return _error(start_response, exc)
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", result.request_id),
                   ("X-Amz-Executed-Version", result.version),
                   ("Content-Length", str(len(result.payload)))]
        if result.function_error:
            headers.append(("X-Amz-Function-Error", result.function_error))
        if result.log_tail is not None:
            headers.append(("X-Amz-Log-Result", result.log_tail))
        start_response(_status(result.status), headers)
        return [result.payload]


def _refuse_bad_zip(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes] | None:
    body = _read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        code = json.loads(body).get("Code", {})
    except (ValueError, AttributeError):
        return None
    zip_b64 = code.get("ZipFile") if isinstance(code, dict) else None
    if not zip_b64:
        return None
    try:
        ok = is_valid_zip(base64.b64decode(zip_b64))
    except ValueError:
        ok = False
    if ok:
        return None
    return _error(start_response, LambdaApiError(
        400, "InvalidParameterValueException",
        "Could not unzip uploaded file. Please check your file, then try to upload again."))


def _read_body(environ: WSGIEnvironment) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _error(start_response: StartResponse, exc: LambdaApiError) -> list[bytes]:
    body = {"Type": "User", "message": exc.message}
    if exc.reason:
        body["Reason"] = exc.reason
    data = json.dumps(body).encode()
    start_response(_status(exc.status), [("Content-Type", "application/json"),
                                         ("x-amzn-ErrorType", exc.code),
                                         ("Content-Length", str(len(data)))])
    return [data]


def _status(code: int) -> str:
    reasons = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request",
               404: "Not Found", 413: "Request Entity Too Large", 429: "Too Many Requests",
               502: "Bad Gateway"}
    return f"{code} {reasons.get(code, 'Error')}"
