"""ListObjectsV2 without botocore's response parser: each page's keys, sizes and ETags for ~2 ms.

botocore turns a 1,000-key page into 1,000 dicts of typed fields; its XML walks and above all its
``LastModified`` timestamps (dateutil) cost ~100 ms of CPU a page, most of the time of planning a
job over tens of thousands of small objects. :func:`list_objects` still makes every request through
the client, so the endpoint (virtual-hosted or path-style, region, FIPS), signing, session tokens,
retries, redirects and errors are botocore's, on AWS as locally; a ``before-send`` hook sends the
signed request on the client's own HTTP session (its proxies, CA bundle, timeouts) and reads a 200
page's ``Key``, ``Size`` and ``ETag`` with one strict pattern (:func:`parse_page`), handing botocore
an empty page to parse instead. Any other answer goes back to botocore as if it had sent the request
itself: an error status (a missing bucket, a denied listing, a redirect, a 5xx to retry), a body
that is not a whole ``ListBucketResult`` (a 200 carrying an error, a response cut short: botocore
retries both) or one the pattern does not recognise whole (another element order, CDATA). So the
client raises the same errors as the paginator did.

The hook acts only on the calls :func:`list_pages` makes, in the thread that makes them; any other
``ListObjectsV2`` of the same client is sent and parsed by botocore as usual. A client that hands a
page's body over itself (``list_objects_v2_body``: the engine's botocore-free client) is read the
same way. Any other client (the in-process runner's store), or one whose requests another
``before-send`` handler answers (moto's in-process mock), is listed through its paginator.
"""

from __future__ import annotations

import contextvars
import functools
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple
from urllib.parse import unquote_plus
from xml.sax.saxutils import unescape

from lambda_handlers.io import signed_get

_EVENT = "before-send.s3.ListObjectsV2"
_HOOK_ID = "smr-listing-page"
_EMPTY_PAGE = b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></ListBucketResult>'

# One object of a page, fields in the order S3 writes them (Key, LastModified, ETag, the optional
# checksum elements, Size); what follows Size (Owner, StorageClass, RestoreStatus) is not read.
_CONTENTS = re.compile(
    r"<Contents>\s*<Key>([^<]*)</Key>\s*(?:<LastModified>[^<]*</LastModified>\s*)?"
    r"<ETag>([^<]*)</ETag>\s*(?:<(Checksum[A-Za-z]*)>[^<]*</\3>\s*)*<Size>([0-9]+)</Size>")
_TRUNCATED = re.compile(r"<IsTruncated>\s*(true|false)\s*</IsTruncated>")
_NEXT_TOKEN = re.compile(r"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_ENCODING = re.compile(r"<EncodingType>([^<]*)</EncodingType>")
_ENTITIES = {"&quot;": '"', "&apos;": "'"}  # with &amp; &lt; &gt;: XML's own (character references
# go to botocore: S3 sends them for no key when the keys are URL-encoded)

# per thread: .armed while one of list_pages' requests is in the client, .page the page the hook
# read for it, .on_next what to tell the next page's token, .sending what to set as it leaves
_call = threading.local()


class Listed(NamedTuple):
    """One listed object: its key, size in bytes and ETag (without the quotes)."""

    key: str
    size: int
    etag: str


class Page(NamedTuple):
    """One ListObjectsV2 page: its objects in listing order, and where the next page starts."""

    objects: list[Listed]
    truncated: bool
    next_token: str | None


def parse_page(body: bytes, on_next: Callable[[str], object] | None = None) -> Page | None:
    """A ``ListBucketResult`` page's objects, or None when the body is not one this reads whole
    (then botocore reads it). Keys sent ``encoding-type=url`` are decoded as botocore decodes them
    (``unquote_plus``). ``on_next`` is told the next page's token before the objects are read."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "<ListBucketResult" not in text[:512] or not text.rstrip().endswith("</ListBucketResult>"):
        return None
    truncated = _TRUNCATED.search(text)
    encoding = _ENCODING.search(text)
    url_encoded = encoding is not None and encoding.group(1).strip() == "url"
    if truncated is None or (encoding is not None and not url_encoded):
        return None
    found_token = _NEXT_TOKEN.search(text)
    raw_token = found_token.group(1) if found_token else ""
    token = unescape(raw_token, _ENTITIES) if found_token else None
    if on_next is not None and token and truncated.group(1) == "true" and "&" not in raw_token:
        on_next(token)  # a plain token, the same in botocore's reading: told before the page's checks
    entities = "&" in text  # (one character: found at memchr's speed, unlike "&#")
    if "<![CDATA[" in text or (entities and "&#" in text) or "<CommonPrefixes>" in text:
        return None
    found = _CONTENTS.findall(text)
    if len(found) != text.count("<Contents>"):
        return None
    if not entities and not (url_encoded and ("%" in text or "+" in text)):  # no key to decode
        return Page([Listed(key, int(size), etag.strip('"')) for key, etag, _, size in found],
                    truncated.group(1) == "true", token)
    objects = []
    for key, etag, _, size in found:
        if "&" in key:
            key = unescape(key, _ENTITIES)
        if url_encoded and ("%" in key or "+" in key):
            key = unquote_plus(key)
        if "&" in etag:
            etag = unescape(etag, _ENTITIES)
        objects.append(Listed(key, int(size), etag.strip('"')))
    return Page(objects, truncated.group(1) == "true", token)


class _Body:
    """The raw stream of the empty page botocore parses in place of a page read here."""

    @staticmethod
    def stream() -> Iterator[bytes]:
        yield _EMPTY_PAGE


def _send_page(http_session: Any, request: Any, **_: Any) -> Any:
    """botocore's ``before-send`` hook: send this thread's :func:`list_pages` request as botocore
    would, keep a 200 page read here, and give botocore every other answer as it came."""
    if not getattr(_call, "armed", False):
        return None  # not ours: botocore sends it
    _call.sending.set()
    response = http_session.send(request)
    if response.status_code == 200:
        page = parse_page(response.content, getattr(_call, "on_next", None))
        if page is not None:
            from botocore.awsrequest import AWSResponse

            _call.page = page
            return AWSResponse(response.url, 200, response.headers, _Body())
    return response


def _page_of(response: dict[str, Any]) -> Page:
    """botocore's parse of a page as a :class:`Page`."""
    objects = [Listed(o["Key"], int(o["Size"]), str(o.get("ETag", "")).strip('"'))
               for o in response.get("Contents", ())]
    return Page(objects, bool(response.get("IsTruncated")), response.get("NextContinuationToken"))


def _hooked(s3: Any) -> bool:
    """Whether ``s3`` is a botocore client whose listings the hook may send and read (registering
    the hook once): not when another ``before-send`` handler may answer them (moto's in-process
    mock, a test's stub), which must see every request, nor when that cannot be told."""
    events = getattr(getattr(s3, "meta", None), "events", None)
    http_session = getattr(getattr(s3, "_endpoint", None), "http_session", None)
    if events is None or http_session is None:
        return False
    if signed_get.answered_in_process(events, _EVENT, own=_send_page):
        return False
    events.register(_EVENT, functools.partial(_send_page, http_session), unique_id=_HOOK_ID)
    return True


#: how long a page's objects wait for the next page's request to leave (it normally takes ~1 ms)
SEND_WAIT_S = 0.05


class _Pages:
    """One listing's requests, each next page asked for as soon as a page names its token, so S3
    prepares it while this process reads the page before (at most two requests in flight).

    A page's objects are read once the next page's request has left (:meth:`ask_sent`): botocore
    makes a request with ~1 ms of CPU, which would otherwise wait for the GIL while the page is
    read, and S3 would start on the next page that much later, every page."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="smr-list")
        self.lock = threading.Lock()
        self.asked: dict[str | None, Future[Page] | None] = {}  # token -> its page (None: taken)
        self.sent: dict[str | None, threading.Event] = {}  # token -> set once its request left

    def ask(self, token: str | None) -> threading.Event:
        """Ask for the page of ``token`` (once); the event is set when its request has left."""
        with self.lock:
            if token not in self.asked:
                self.sent[token] = threading.Event()
                try:
                    # in the caller's context: a task's request counts include the LISTs
                    self.asked[token] = self.pool.submit(contextvars.copy_context().run, self._get, token)
                except RuntimeError:  # closed: the listing was abandoned
                    self.sent[token].set()
            return self.sent[token]

    def ask_sent(self, token: str) -> None:
        """:meth:`ask`, returning once that request has left (or after :data:`SEND_WAIT_S`)."""
        self.ask(token).wait(SEND_WAIT_S)

    def take(self, token: str | None) -> Page:
        self.ask(token)
        with self.lock:
            future = self.asked[token]
            self.asked[token] = None
        if future is None:
            raise RuntimeError(f"page of continuation token {token!r} taken twice")
        return future.result()

    def _get(self, token: str | None) -> Page:
        params = {"Bucket": self.bucket, "Prefix": self.prefix}
        if token is not None:
            params["ContinuationToken"] = token
        sending = self.sent[token]
        if _reads_bodies(self.s3):
            try:
                return self._read_body(params)
            finally:
                sending.set()
        _call.armed, _call.page, _call.on_next, _call.sending = True, None, self.ask_sent, sending
        try:
            response = self.s3.list_objects_v2(**params)
            page: Page = _call.page if _call.page is not None else _page_of(response)
        finally:
            sending.set()  # (a request that failed before it left: nobody waits for it)
            _call.armed, _call.page, _call.on_next, _call.sending = False, None, None, None
        return page

    def _read_body(self, params: dict[str, str]) -> Page:
        """A page from a client that hands over its body (its request is cheap: no waiting)."""
        body = self.s3.list_objects_v2_body(**params)
        read = parse_page(body, self.ask) if body is not None else None
        return read if read is not None else _page_of(self.s3.list_objects_v2(**params))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _reads_bodies(s3: Any) -> bool:
    """Whether ``s3`` hands over a page's body itself (``list_objects_v2_body``: the engine's
    botocore-free S3 client), which :func:`parse_page` then reads."""
    return callable(getattr(type(s3), "list_objects_v2_body", None))


def list_pages(s3: Any, bucket: str, prefix: str) -> Iterator[Page]:
    """Every page of ``ListObjectsV2`` under ``prefix`` in order (raises the client's
    ``ClientError``)."""
    if not _reads_bodies(s3) and not _hooked(s3):
        for response in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield _page_of(response)
        return
    pages = _Pages(s3, bucket, prefix)
    token: str | None = None
    try:
        while True:
            page = pages.take(token)
            yield page
            if not page.truncated or not page.next_token:
                return
            if page.next_token == token:
                from botocore.exceptions import PaginationError

                raise PaginationError(message=f"the same next token was received twice: {token}")
            token = page.next_token
    finally:
        pages.close()


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[Listed]:
    """Every object under ``prefix``, in listing order (paginated)."""
    for page in list_pages(s3, bucket, prefix):
        yield from page.objects
