"""A split's small objects by one thread's keep-alive GETs on the local stack: the same bytes as
the client's, the client only for the bucket's first GET and for what goes wrong (a changed or
deleted object keeps its clear error), every GET counted, and a job's exact answer."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections import Counter

import pytest

from lambda_handlers import runtime
from lambda_handlers.io import multiget, packed, signed_get
from lambda_handlers.jobspec import JobSpec, StepSpec
from lambda_handlers.planning import list_input, make_splits

DATA_BUCKET = "smr-data-test"  # the data bucket of tests/lambda_handlers/conftest.py


def _split(s3, n: int, odd_keys: bool = True) -> tuple[dict, dict[str, bytes]]:
    """One packed split of ``n`` small objects: (split, key -> body)."""
    prefix = f"multiget/{uuid.uuid4().hex[:8]}"
    contents = {}
    for i in range(n):
        name = f"{i:03d} a+b=c ü~%.log" if odd_keys else f"{i:03d}.log"  # signed as botocore does
        contents[f"{prefix}/{name}"] = "".join(f"word{j % 7} line {i}\n" for j in range(i % 9 + 1)).encode()
        s3.put_object(Bucket=DATA_BUCKET, Key=f"{prefix}/{name}", Body=contents[f"{prefix}/{name}"])
    (split,) = make_splits(list_input(s3, "logs", f"s3://{DATA_BUCKET}/{prefix}/"), 1 << 20, {"logs": "text"})
    return split, contents


def _lines(split: dict, **kw) -> list[str]:
    return [rec for block in packed.PackedInput(split, **kw).blocks() for rec in block]


def _expected(contents: dict[str, bytes]) -> list[str]:
    return [ln for body in contents.values() for ln in body.decode().splitlines()]


def test_a_splits_small_objects_come_from_the_batch_and_every_get_counts(s3, client_gets):
    split, contents = _split(s3, 40)
    metrics = runtime.start_metrics()
    served = multiget.stats["served"]
    assert _lines(split) == _expected(contents)
    assert client_gets == [next(iter(contents))]  # the first GET teaches botocore's route
    assert multiget.stats["served"] - served == 39
    assert metrics.requests["GetObject"] == 40
    assert _lines(split) == _expected(contents)  # the next task: the route and connections are known
    assert client_gets == [next(iter(contents))]


def test_a_small_read_ahead_budget_still_reads_every_object_in_order(s3, client_gets):
    split, contents = _split(s3, 30, odd_keys=False)
    _lines(split)  # the route is known
    items = [multiget.Item(i, p["key"], p["etag"], p["size"]) for i, p in enumerate(split["pieces"])]
    route = signed_get.route(s3, DATA_BUCKET)
    for pieces, nbytes in ((1, 1 << 20), (3, 1), (300, 200)):
        batch = multiget.Batch(route, items, runtime.start_metrics(), nbytes, pieces, connections=2)
        try:
            assert [batch.take(i) for i in range(len(items))] == list(contents.values())
        finally:
            batch.close()


def test_a_changed_object_mid_read_fails_naming_it_and_both_etags(s3, client_gets):
    split, contents = _split(s3, 12)
    key = list(contents)[7]
    planned = split["pieces"][7]["etag"]
    now = s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=b"rewritten\n")["ETag"].strip('"')
    fallback = multiget.stats["fallback"]
    read = []
    with pytest.raises(runtime.ObjectChangedError) as err:
        for block in packed.PackedInput(split).blocks():
            read += block
    assert f"s3://{DATA_BUCKET}/{key} changed during the job" in str(err.value)
    assert planned in str(err.value) and now in str(err.value)
    assert read == _expected(dict(list(contents.items())[:7]))  # the objects before it, once
    assert multiget.stats["fallback"] > fallback  # the 412 went back to botocore for its message


def test_a_deleted_object_mid_read_fails_naming_it(s3, client_gets):
    split, contents = _split(s3, 12)
    key = list(contents)[5]
    s3.delete_object(Bucket=DATA_BUCKET, Key=key)
    with pytest.raises(runtime.ObjectChangedError, match=re.escape(f"s3://{DATA_BUCKET}/{key} disappeared during")):
        _lines(split)


def test_a_kept_alive_connection_the_server_closed_is_retried_on_a_new_one(s3, client_gets):
    split, contents = _split(s3, 6, odd_keys=False)
    _lines(split)
    route = signed_get.route(s3, DATA_BUCKET)
    ours, theirs = socket.socketpair()
    theirs.close()  # what the server did while the connection was idle
    ours.setblocking(False)
    port = int(route.base_url.split(":")[2].split("/")[0])
    with multiget._idle_lock:
        multiget._idle.setdefault(("http", "127.0.0.1", port), []).append(ours)  # the next one taken
    assert _lines(split) == _expected(contents)
    assert ours.fileno() == -1  # taken, failed, closed
    assert client_gets == [next(iter(contents))]  # no object left to botocore


def test_a_route_that_does_not_connect_sends_the_split_through_the_client(s3, client_gets):
    split, contents = _split(s3, 20)
    _lines(split)
    route = signed_get.route(s3, DATA_BUCKET)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there
    signed_get._routes[s3][DATA_BUCKET] = signed_get.Route(
        f"http://127.0.0.1:{port}/{DATA_BUCKET}/", route.signing_name, route.region, route.signer)
    client_gets.clear()
    assert _lines(split) == _expected(contents)
    assert client_gets == list(contents)
    assert signed_get.route(s3, DATA_BUCKET) is None  # and the next splits too


def test_an_address_that_refuses_is_left_for_the_next_one(s3, client_gets, monkeypatch):
    split, contents = _split(s3, 10, odd_keys=False)
    _lines(split)
    route = signed_get.route(s3, DATA_BUCKET)
    port = int(route.base_url.split(":")[2].split("/")[0])
    _drop_idle(("http", "127.0.0.1", port))
    resolved = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port)) for host in ("127.0.0.2", "127.0.0.1")]
    monkeypatch.setattr(multiget.socket, "getaddrinfo", lambda *a, **kw: list(resolved))  # DNS: two hosts
    items = [multiget.Item(i, p["key"], p["etag"], p["size"]) for i, p in enumerate(split["pieces"])]
    batch = multiget.Batch(route, items, runtime.start_metrics(), 1 << 20, 8, connections=3)
    try:
        assert [batch.take(i) for i in range(len(items))] == list(contents.values())
    finally:
        batch.close()
    assert not batch.broken and batch._addrs == resolved[1:]


def words(line):
    for word in line.split():
        yield word, 1


def total(word, counts):
    yield word, sum(counts)


def test_a_job_over_300_small_objects_counts_exactly_with_the_fast_gets(harness, chain, client_gets):
    prefix = f"multiget-job/{uuid.uuid4().hex[:8]}"
    expected: Counter[str] = Counter()
    for i in range(300):
        text = "".join(f"w{(i * j) % 11} w{j % 5}\n" for j in range(i % 6 + 1))
        harness.put(f"{prefix}/{i:04d}.log", text.encode())
        expected.update(text.split())
    splits = make_splits(list_input(harness.s3, "default", f"s3://{DATA_BUCKET}/{prefix}/"), 3000,
                         {"default": "text"})
    assert 2 <= len(splits) <= 6
    served = multiget.stats["served"]
    plan = harness.submit(JobSpec(steps=[StepSpec(mapper=words, combiner=total, reducer=total)]),
                          [dict(s) for s in splits], [2])
    chain().run(plan["events"])
    lines, _ = harness.output(plan)
    assert {r["key"]: r["value"] for r in map(json.loads, lines)} == dict(expected)
    data_gets = [k for k in client_gets if k.startswith(prefix)]
    assert len(data_gets) <= len(splits)  # a task's first GET at most, through botocore
    assert multiget.stats["served"] - served >= 300 - len(splits)


@pytest.fixture
def tls_front(s3_endpoint, tmp_path):
    """An HTTPS endpoint (a self-signed certificate for localhost) in front of the local stack:
    (its base URL, the certificate's path)."""
    import datetime
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    backend = ("127.0.0.1", int(s3_endpoint.rsplit(":", 1)[1].strip("/")))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
                tls = ctx.wrap_socket(raw, server_side=True)
            except OSError:
                continue
            back = socket.create_connection(backend)
            for a, b in ((tls, back), (back, tls)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]
    yield f"https://localhost:{port}/{DATA_BUCKET}/", str(cert_path)
    stop.set()
    listener.close()
    _drop_idle(("https", "localhost", port))


def _drop_idle(endpoint: tuple[str, str, int]) -> None:
    with multiget._idle_lock:
        for sock in multiget._idle.pop(endpoint, []):
            sock.close()


def test_an_https_endpoint_is_read_over_tls_and_an_untrusted_one_goes_to_the_client(
        s3, client_gets, tls_front, monkeypatch):
    base_url, cert = tls_front
    split, contents = _split(s3, 25)
    _lines(split)
    route = signed_get.route(s3, DATA_BUCKET)
    items = [multiget.Item(i, p["key"], p["etag"], p["size"]) for i, p in enumerate(split["pieces"])]
    tls_route = signed_get.Route(base_url, route.signing_name, route.region, route.signer)
    monkeypatch.setattr(multiget, "_ssl_context", None)
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)
    served = multiget.stats["served"]
    batch = multiget.Batch(tls_route, items, runtime.start_metrics(), 1 << 20, 8, connections=4)
    try:
        assert [batch.take(i) for i in range(len(items))] == list(contents.values())
    finally:
        batch.close()
    assert multiget.stats["served"] - served == len(items) and not batch.broken
    monkeypatch.setattr(multiget, "_ssl_context", None)
    monkeypatch.delenv("AWS_CA_BUNDLE")  # the default bundle does not trust it: botocore's turn
    _drop_idle(("https", "localhost", int(base_url.split(":")[2].split("/")[0])))
    batch = multiget.Batch(tls_route, items, runtime.start_metrics(), 1 << 20, 8, connections=4)
    try:
        assert [batch.take(i) for i in range(len(items))] == [None] * len(items)
    finally:
        batch.close()
    assert batch.broken


def test_a_reader_dropped_mid_split_leaves_the_next_one_its_connections(s3, client_gets):
    import gc

    split, contents = _split(s3, 30, odd_keys=False)

    def failing_mapper():
        for i, _ in enumerate(packed.PackedInput(split).blocks()):
            if i == len(contents) - 1:  # the connections are idle by now
                raise ValueError("the mapper failed")

    with pytest.raises(ValueError) as err:  # the traceback keeps the reader in a cycle ...
        failing_mapper()
    del err
    gc.collect()  # ... collected with its sockets: the next reader still gets connections
    fallback = multiget.stats["fallback"]
    assert _lines(split) == _expected(contents)
    assert client_gets == [next(iter(contents))] and multiget.stats["fallback"] == fallback


def test_a_client_under_motos_in_process_mock_never_sends_gets_itself(monkeypatch):
    """moto's ``mock_aws`` answers botocore's requests in a ``before-send`` handler: the route
    botocore would have used is AWS's own endpoint, so no GET may leave the client."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "SMR_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):
        looked_up.append(host)
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    runtime.reset()
    try:
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="smr-multiget-moto")
            contents = {f"in/{i:02d}.log": f"line {i}\n".encode() for i in range(12)}
            for key, body in contents.items():
                client.put_object(Bucket="smr-multiget-moto", Key=key, Body=body)
            (split,) = make_splits(list_input(client, "logs", "s3://smr-multiget-moto/in/"), 1 << 20,
                                   {"logs": "text"})
            served = multiget.stats["served"]
            assert _lines(split) == _expected(contents)
            assert multiget.stats["served"] == served
            assert signed_get.route(runtime.s3(), "smr-multiget-moto") is None
            assert not [h for h in looked_up if "amazonaws" in str(h)]  # never AWS itself
    finally:
        runtime.reset()
