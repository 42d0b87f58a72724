"""Listing without botocore's parser: the same objects, pages and errors as botocore's paginator."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lambda_handlers.io import listing
from lambda_handlers.io.listing import Listed, Page, parse_page
from lambda_handlers.planning import InputNotFoundError, list_input
from lambda_handlers.s3uri import InputError

BUCKET = "smr-listing"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
AWKWARD = ["in/a b.txt", "in/ünï cødé/ß.txt", "in/x&y<z>.txt", "in/q\"'.txt", "in/plus+sign.txt",
           "in/percent%41.txt", "in/tab\tand\rcr.txt", "in/_hidden.txt", "in/.dot", "in/sub/_x/y.txt",
           "in/sub/ok.gz", "in/folder/", "exact", "exact/child.txt", "exact+1"]


def contents(key: str, etag: str = '&quot;0cc175b9c0f1b6a831c399e269772661&quot;', size: int = 42,
             extra: str = "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT"
                          "</ChecksumType>") -> str:
    return (f"<Contents><Key>{key}</Key><LastModified>2026-12-07T10:00:00.000Z</LastModified>"
            f"<ETag>{etag}</ETag>{extra}<Size>{size}</Size><Owner><ID>abc</ID><DisplayName>me"
            "</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>")


def page_xml(*items: str, truncated: bool = False, token: str | None = None) -> bytes:
    """A page as S3 writes it (``encoding-type=url``, what botocore asks for)."""
    nxt = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult {NS}><Name>b</Name>'
            f"<Prefix>in%2F</Prefix>{nxt}<KeyCount>{len(items)}</KeyCount><MaxKeys>1000</MaxKeys>"
            f"<EncodingType>url</EncodingType><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            + "".join(items) + "</ListBucketResult>").encode()


def test_a_page_as_s3_writes_it_gives_keys_sizes_and_etags():
    body = page_xml(contents("in/a+b%26c%3C%E2%82%AC.txt"), contents("in/m.gz", "&quot;ab-2&quot;", 7, ""),
                    truncated=True, token="1ueGcxLP+Rx1Tr/XY=")
    assert parse_page(body) == Page([Listed("in/a b&c<€.txt", 42, "0cc175b9c0f1b6a831c399e269772661"),
                                     Listed("in/m.gz", 7, "ab-2")], True, "1ueGcxLP+Rx1Tr/XY=")
    assert parse_page(page_xml()) == Page([], False, None)


def test_a_plain_token_is_told_before_the_page_is_read_whole():
    """The next page is asked for as soon as its token is known, even when botocore reads this
    page; a token with an entity waits for the page's own reading."""
    told: list[str] = []
    assert parse_page(page_xml(contents("<![CDATA[a]]>"), truncated=True, token="t+/="), told.append) is None
    assert told == ["t+/="]
    told.clear()
    page = parse_page(page_xml(contents("a"), truncated=True, token="t&amp;u"), told.append)
    assert page is not None and page.next_token == "t&u" and told == []


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><Error><Code>InternalError</Code><Message>x</Message></Error>',  # 200 error
    page_xml(contents("a"), contents("b"))[:-40],  # cut short
    page_xml(contents("<![CDATA[a]]>")),
    page_xml(contents("a&#13;b")),
    page_xml(contents("a", extra="<Unexpected>1</Unexpected>")),
    page_xml("<Contents><Key>a</Key><Size>1</Size><ETag>e</ETag></Contents>"),  # another order
    page_xml(contents("a")).replace(b"<EncodingType>url", b"<EncodingType>other"),
    page_xml(contents("a")).replace(b"<IsTruncated>false</IsTruncated>", b""),
    page_xml(contents("a")).replace(b"<Key>a<", b"<Key>\xff<"),  # not UTF-8
])
def test_a_body_not_read_whole_is_left_to_botocore(body):
    assert parse_page(body) is None


@pytest.fixture(scope="module")
def s3(aws_clients, aws_endpoint):
    client = aws_clients(aws_endpoint).s3
    client.create_bucket(Bucket=BUCKET)
    for key in AWKWARD:
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    return client


def botocore_listing(client, prefix: str) -> list[Listed]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [Listed(o["Key"], o["Size"], o["ETag"].strip('"')) for p in pages for o in p.get("Contents", ())]


def parsed_by_botocore(client) -> list[bool]:
    """Records, per ListObjectsV2 response, whether botocore parsed objects from it."""
    seen: list[bool] = []
    client.meta.events.register("after-call.s3.ListObjectsV2",
                                lambda parsed, **_: seen.append("Contents" in parsed))
    return seen


def test_awkward_keys_list_as_botocore_lists_them_without_its_parser(s3, aws_clients, aws_endpoint):
    client = aws_clients(aws_endpoint).s3  # a fresh client: the hook and the observer on it alone
    seen = parsed_by_botocore(client)
    got = list(listing.list_objects(client, BUCKET, ""))
    assert got == botocore_listing(s3, "") and [o.key for o in got] == sorted(AWKWARD)
    assert seen == [False]  # the page was read here, not by botocore
    assert [o.key for o in listing.list_objects(client, BUCKET, "in/x&y<")] == ["in/x&y<z>.txt"]


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://smr-listing/in/", ["in/a b.txt", "in/percent%41.txt", "in/plus+sign.txt", "in/q\"'.txt",
                              "in/sub/ok.gz", "in/tab\tand\rcr.txt", "in/x&y<z>.txt", "in/ünï cødé/ß.txt"]),
    ("s3://smr-listing/in/*.txt", ["in/a b.txt", "in/percent%41.txt", "in/plus+sign.txt", "in/q\"'.txt",
                                   "in/tab\tand\rcr.txt", "in/x&y<z>.txt"]),
    ("s3://smr-listing/in/**/*.gz", ["in/sub/ok.gz"]),
    ("s3://smr-listing/in/ünï cødé/*", ["in/ünï cødé/ß.txt"]),
    ("s3://smr-listing/exact", ["exact"]),
    ("s3://smr-listing/exact/", ["exact/child.txt"]),
    ("s3://smr-listing/in/x&y<z>.txt", ["in/x&y<z>.txt"]),
])
def test_inputs_list_globs_hidden_files_and_exact_keys(s3, uri, expected):
    objects = list_input(s3, "default", uri)
    assert [o.key for o in objects] == expected
    assert all(o.size == len(o.key.encode()) and o.etag and '"' not in o.etag for o in objects)


def test_pagination_past_one_thousand_keys_reads_every_page_itself(s3, aws_clients, aws_endpoint):
    keys = [f"many/{i:05d}-ü&.txt" for i in range(1234)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"x"), keys))
    client = aws_clients(aws_endpoint).s3
    seen = parsed_by_botocore(client)
    assert [o.key for o in list_input(client, "default", f"s3://{BUCKET}/many/")] == keys
    assert seen == [False, False]  # two LISTs, of 1,000 and 234 keys, both read here


def test_a_missing_bucket_is_named_as_before(s3):
    with pytest.raises(InputNotFoundError, match="bucket 'smr-listing-missing' does not exist"):
        list_input(s3, "default", "s3://smr-listing-missing/in/")


# -- answers the local stack never gives: a stub endpoint serves them, in order ---------------------

class StubS3:
    """An HTTP endpoint answering each request with the next ``(status, body)`` of a script."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes]] = []
        self.paths: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                stub.paths.append(self.path)
                status, body = stub.script.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stub():
    server = StubS3()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def stub_client(stub, aws_clients):
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3})
    return aws_clients(stub.url, config=config).s3


def error_xml(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}'
            "</Message><RequestId>1</RequestId></Error>").encode()


def test_access_denied_is_the_same_error_as_before(stub, stub_client):
    stub.script = [(403, error_xml("AccessDenied", "Access Denied"))]
    with pytest.raises(InputError, match=r"access denied listing s3://b/in/: check the connection's"):
        list_input(stub_client, "default", "s3://b/in/")


def test_a_missing_bucket_behind_another_endpoint_is_named(stub, stub_client):
    stub.script = [(404, error_xml("NoSuchBucket", "The specified bucket does not exist"))]
    with pytest.raises(InputNotFoundError, match="bucket 'b' does not exist"):
        list_input(stub_client, "default", "s3://b/in/")


def test_an_error_in_a_200_and_a_page_cut_short_are_retried_by_botocore(stub, stub_client):
    whole = page_xml(contents("in/a"), contents("in/b"), truncated=True, token="t+1/=")
    stub.script = [(200, error_xml("InternalError", "try again")), (200, whole[:-30]), (200, whole),
                   (500, error_xml("InternalError", "try again")), (200, page_xml(contents("in/c")))]
    assert [o.key for o in listing.list_objects(stub_client, "b", "in/")] == ["in/a", "in/b", "in/c"]
    assert len(stub.paths) == 5 and "continuation-token=t%2B1%2F%3D" in stub.paths[-1]


def test_a_page_in_another_shape_is_read_by_botocore(stub, stub_client):
    odd = page_xml("<Contents><Key>in/a%20b</Key><Size>3</Size><ETag>&quot;e&quot;</ETag></Contents>")
    stub.script = [(200, odd)]
    seen = parsed_by_botocore(stub_client)
    assert list(listing.list_objects(stub_client, "b", "in/")) == [Listed("in/a b", 3, "e")]
    assert seen == [True]


def test_a_client_under_motos_in_process_mock_lists_through_it():
    """moto's ``mock_aws`` answers botocore's requests in a ``before-send`` handler: the listing
    must leave the sending to it (never the network), and read what it answers."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        client.create_bucket(Bucket="smr-listing-moto")
        client.put_object(Bucket="smr-listing-moto", Key="in/a b&c.txt", Body=b"abc")
        assert [(o.key, o.size) for o in list_input(client, "default", "s3://smr-listing-moto/in/")] == [
            ("in/a b&c.txt", 3)]
