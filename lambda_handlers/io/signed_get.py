"""Whole small objects by signed GETs on a plain HTTP pool: a third of botocore's CPU per call.

A map task reading thousands of small objects spends most of its time in botocore's per-call
machinery (parameter validation, endpoint rules, event hooks, response parsing: ~1.5-2.5 ms of
CPU a GET), not waiting for S3. :func:`get_whole` asks botocore once per bucket how it reaches
the bucket (the first GET goes through the client as usual and a ``before-sign`` hook notes its
URL, signing name, region and signer), then sends the next GETs itself: the same URL with the
key swapped, signed by the client's own signer (``S3SigV4Auth``: its credentials, refreshed as
botocore refreshes them), on one urllib3 pool. That is right wherever botocore is (AWS's virtual
hosts and regions, the local stack's path-style endpoint) because botocore made the first URL.

:func:`route` hands the learnt route to :class:`lambda_handlers.io.multiget.Batch`, which sends a
split's small objects to the same URLs from one thread, signed by hand
(:mod:`lambda_handlers.io.sigv4`); :func:`get_whole` is the one-object form.

Anything but a 200 (412 changed, 404 deleted, 403, a redirect, a 5xx) goes through the client
again, and so does every GET of a bucket botocore does not reach with plain SigV4 (S3 Express,
SigV4a, presigned or query URLs) or whose signed GET met a transport error (a proxy or CA bundle
only botocore is configured with, a refused connection): the client's retries and
``splits.open_whole``'s error mapping (the URI and both ETags) stay the one path for errors.
Every GET still carries ``If-Match``.
Response checksums are not validated here (botocore checks them when S3 sends one); TLS (or the
loopback, locally) protects the body in transit.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lambda_handlers.io import splits

GET_OBJECT = "GetObject"
_HOOK = "before-sign.s3.GetObject"
_SEND = "before-send.s3.GetObject"
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 120.0


@dataclass(frozen=True)
class Route:
    """How botocore reached one bucket: the URL up to the key, and how it signed."""

    base_url: str  # the URL of the key "" (ends with "/")
    signing_name: str
    region: str
    signer: Any  # botocore's RequestSigner of the client

    def url(self, key: str) -> str:
        return self.base_url + quote(key, safe="/~")


_lock = threading.Lock()
# client -> bucket -> its route (None: not eligible); a client here carries the before-sign hook
_routes: weakref.WeakKeyDictionary[Any, dict[str, Route | None]] = weakref.WeakKeyDictionary()
_seen = threading.local()  # what the hook saw for this thread's last botocore GET
_pool: Any = None


def _remember_route(request: Any, signing_name: str, region_name: str, signature_version: Any,
                    request_signer: Any, **_: Any) -> None:
    """botocore's ``before-sign`` hook: note how this thread's GetObject is sent and signed."""
    signing = request.context.get("signing", {})
    plain = (signature_version == "s3v4" and not signing.get("request_credentials")
             and signing.get("identity_cache") is None and "?" not in request.url)
    _seen.route = (request.url, signing.get("signing_name") or signing_name,
                   signing.get("region") or region_name, request_signer) if plain else None


_UNSEEN = object()  # no GetObject went out (the body came from memory): nothing learnt


def _learn(client: Any, bucket: str, key: str, etag: str | None) -> bytes:
    """One GET through the client, noting the bucket's route for the next ones."""
    _seen.route = _UNSEEN
    data = _client_get(bucket, key, etag)
    seen, _seen.route = _seen.route, None
    if seen is _UNSEEN:
        return data
    route = None
    if seen is not None and not answered_in_process(client.meta.events, _SEND):
        url, signing_name, region, signer = seen
        tail = quote(key, safe="/~")
        if url.endswith("/" + tail):
            route = Route(url[: len(url) - len(tail)], signing_name, region, signer)
    with _lock:
        _routes[client][bucket] = route
    return data


def answered_in_process(events: Any, event: str, own: Any = None) -> bool:
    """Whether a ``before-send`` handler of ``event`` other than ``own`` may answer a client's
    requests (moto's in-process mock, a test's stub): then each request must go through the
    client, never to the URL botocore would have used. True when that cannot be told."""
    try:
        handlers = events._emitter._handlers.prefix_search(event)
    except AttributeError:  # botocore's emitter changed: leave every request to the client
        return True
    # moto's stubber says "enabled" while a mock is active
    return any((own is None or getattr(h, "func", None) is not own) and getattr(h, "enabled", True)
               for h in handlers)


def _client_get(bucket: str, key: str, etag: str | None) -> bytes:
    body = splits.open_whole(bucket, key, etag)  # the botocore path, with its error mapping
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data


def _http() -> Any:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                import urllib3
                from botocore.httpsession import get_cert_path

                from lambda_handlers.runtime import MAX_POOL_CONNECTIONS

                _pool = urllib3.PoolManager(
                    maxsize=MAX_POOL_CONNECTIONS, cert_reqs="CERT_REQUIRED",
                    ca_certs=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True),
                    timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S))
    return _pool


def _signed_get(route: Route, key: str, etag: str | None) -> bytes | None:
    """The object's bytes by one signed GET, or None when anything but a 200 came back."""
    from botocore.awsrequest import AWSRequest

    url = route.url(key)
    request = AWSRequest(method="GET", url=url, headers={"If-Match": etag} if etag else {})
    route.signer.get_auth_instance(route.signing_name, route.region, "s3v4").add_auth(request)
    response = _http().request("GET", url, headers=dict(request.headers.items()), retries=False,
                               redirect=False, preload_content=True)
    if response.status != 200:
        return None
    data: bytes = response.data
    return data


def _routes_of(client: Any) -> dict[str, Route | None]:
    routes = _routes.get(client)
    if routes is None:
        with _lock:
            routes = _routes.get(client)
            if routes is None:
                client.meta.events.register(_HOOK, _remember_route, unique_id="smr-signed-get-route")
                routes = _routes[client] = {}
    return routes


UNKNOWN = object()  # :func:`route`: no GET of the bucket went through this client yet


def route(client: Any, bucket: str) -> Route | None | object:
    """How ``client`` reaches ``bucket`` for a signed GET: its :class:`Route`, None (only through
    the client), or :data:`UNKNOWN` until :func:`get_whole` has sent the bucket's first GET."""
    if getattr(client, "meta", None) is None:
        return None
    return _routes_of(client).get(bucket, UNKNOWN)


def forget(client: Any, bucket: str) -> None:
    """Send ``bucket``'s GETs through ``client`` from now on (its route did not work from here)."""
    routes = _routes_of(client)
    with _lock:
        routes[bucket] = None


def get_whole(bucket: str, key: str, etag: str | None) -> bytes:
    """A whole object's bytes, pinned to ``etag`` (the first GET of each bucket and every failed
    one go through the client: errors are the client's, mapped by ``splits.open_whole``)."""
    from lambda_handlers import runtime

    client = runtime.s3()
    if getattr(client, "meta", None) is None:  # not botocore (the in-process runner's store)
        return _client_get(bucket, key, etag)
    routes = _routes_of(client)
    if bucket not in routes:
        return _learn(client, bucket, key, etag)
    route = routes[bucket]
    data = None
    if route is not None:
        try:
            data = _signed_get(route, key, etag)
        except Exception:  # noqa: BLE001 - a transport error (a proxy or CA bundle only botocore
            # knows, a network that refuses us): the client for this bucket from now on
            with _lock:
                routes[bucket] = None
    if data is None:
        return _client_get(bucket, key, etag)
    metrics = runtime.current_metrics()
    with metrics.lock:
        metrics.requests[GET_OBJECT] += 1
    return data


def reset() -> None:
    """Forget the routes learnt so far (the hooks stay on their clients)."""
    with _lock:
        for routes in _routes.values():
            routes.clear()
