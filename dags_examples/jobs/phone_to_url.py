"""Map North American phone numbers to the most plausible URL of their web page (mrjob's
``mr_phone_to_url``), from Common Crawl WET files (``s3://commoncrawl/crawl-data/.../*.wet.gz``).

Each WET file is one record (``input_format="whole"``: ``(uri, bytes)``, ``.gz`` decompressed),
parsed here without a WARC library. Step 1 groups phone numbers by host and drops hosts with more
than ``MAX_PHONES_PER_HOST`` (directories); step 2 picks, per number, the URL on the host with the
fewest numbers, then the shortest, then the first in sort order.
"""

from __future__ import annotations

import re
from itertools import islice
from urllib.parse import urlparse

from airflow_provider_smr import MapReduceJob, Step

PHONE_RE = re.compile(rb"(?<![\d])1?[-. (]*([2-9]\d{2})[-. ()]+(\d{3})[-. ]+(\d{4})(?![\d])")
MAX_PHONES_PER_HOST = 1000


def wet_records(body):
    """``(headers, payload)`` of each WARC record of a WET file."""
    pos = 0
    while (head_end := body.find(b"\r\n\r\n", pos)) != -1:
        lines = body[pos:head_end].split(b"\r\n")[1:]  # after the "WARC/1.0" line
        headers = dict(line.split(b": ", 1) for line in lines if b": " in line)
        start = head_end + 4
        end = start + int(headers.get(b"Content-Length", 0))
        yield headers, body[start:end]
        pos = end + 4  # the record's trailing blank line


def phones_by_host(record):
    _, body = record
    for headers, text in wet_records(body):
        url = headers.get(b"WARC-Target-URI", b"").decode()
        if url and headers.get(b"WARC-Type") == b"conversion":
            for area, exchange, line in PHONE_RE.findall(text):
                yield urlparse(url).netloc, [f"+1{(area + exchange + line).decode()}", url]


def phone_urls_of_small_hosts(_host, phone_urls):
    phone_urls = list(islice(phone_urls, MAX_PHONES_PER_HOST + 1))
    if len(phone_urls) <= MAX_PHONES_PER_HOST:
        for phone, url in phone_urls:
            yield phone, [len(phone_urls), url]



def best_url(phone, counted_urls):
    yield phone, min(counted_urls, key=lambda cu: (cu[0], len(cu[1]), cu[1]))[1]


phone_to_url = MapReduceJob(
    steps=[Step(mapper=phones_by_host, reducer=phone_urls_of_small_hosts),
           Step(reducer=best_url)],
    input_format="whole", name="phone_to_url")
