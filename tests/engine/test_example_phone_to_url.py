"""The port of mrjob's phone_to_url on synthetic Common Crawl WET files, checked against an answer
computed from what the test wrote into them."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pytest

from airflow_provider_smr.job import load_job

ROOT = Path(__file__).resolve().parents[2]
DATA = "smr-params-data"  # the bucket (and stack) of tests/engine/test_job_params.py
pytestmark = pytest.mark.timeout(600)


def wet(records: list[tuple[str, str, str]]) -> bytes:
    """A WET file of ``(warc_type, url, text)`` records."""
    out = [b"WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n\r\n\r\n\r\n"]
    for kind, url, text in records:
        payload = text.encode()
        out.append(f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {url}\r\nContent-Type: text/plain\r\n"
                   f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload + b"\r\n\r\n")
    return b"".join(out)


def test_phone_to_url_picks_the_page_on_the_host_with_fewest_numbers(deploy_engine):
    engine = deploy_engine("smr-params", input_buckets=[DATA], memory_mb=256, timeout_s=30)
    directory = " ".join(f"(212) {300 + i // 100:03d}-{i % 100:04d}" for i in range(1001))
    pages = [  # (host, url, numbers on the page as written, as standardized)
        ("shop.example", "http://shop.example/contact", "Call (415) 555-0100 or 415.555.0199 today",
         ["+14155550100", "+14155550199"]),
        ("shop.example", "http://shop.example/a/long/about-us", "Office: 1 415 555 0100",
         ["+14155550100"]),
        ("cafe.example", "http://cafe.example/", "Reservations 415-555-0100; fax 650 555 0123",
         ["+14155550100", "+16505550123"]),
        ("yellow.example", "http://yellow.example/list", directory + " 415-555-0100", None),
    ]
    records = [("conversion", url, text) for _, url, text, _ in pages]
    records.append(("response", "http://ignored.example/", "(999) 555-0100 is not a conversion"))
    prefix = f"wet/{uuid.uuid4().hex[:8]}/"
    engine.s3.put_object(Bucket=DATA, Key=prefix + "in/a.wet.gz", Body=gzip.compress(wet(records[:2])))
    engine.s3.put_object(Bucket=DATA, Key=prefix + "in/b.wet.gz", Body=gzip.compress(wet(records[2:])))

    per_host: dict[str, list[tuple[str, str]]] = {}
    for host, url, _, phones in pages:
        if phones is not None:  # the directory host has over 1000 numbers: dropped
            per_host.setdefault(host, []).extend((p, url) for p in phones)
    candidates: dict[str, list[tuple[int, int, str]]] = {}
    for found in per_host.values():
        for phone, url in found:
            candidates.setdefault(phone, []).append((len(found), len(url), url))
    expected = {phone: min(c)[2] for phone, c in candidates.items()}
    assert expected["+14155550100"] == "http://cafe.example/"  # the test data means something

    job = load_job(f"{ROOT}/dags_examples/jobs/phone_to_url.py:phone_to_url")
    result = engine.runner.run(job, input=f"s3://{DATA}/{prefix}in/", output=f"s3://{DATA}/{prefix}out/",
                               poll_interval=0.25, timeout=300)
    got = {}
    for uri in result["parts"]:
        for line in engine.s3.get_object(Bucket=DATA, Key=uri[len(f"s3://{DATA}/"):])["Body"].read().splitlines():
            rec = json.loads(line)
            got[rec["key"]] = rec["value"]
    assert got == expected
