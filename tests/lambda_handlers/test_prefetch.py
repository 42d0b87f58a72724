"""Read-ahead of a split's body: the same bytes and offsets, ranged GETs only, bounded, and errors
and early stops handled (splits.prefetched, LineReader(read_ahead=...), SplitInput)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import runtime
from lambda_handlers.io import readers, splits

BUCKET = "smr-data-test"


def _wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class Source:
    """A chunk iterator that counts what was pulled and whether it was closed."""

    def __init__(self, n: int, fail_after: int | None = None):
        self.n, self.fail_after, self.pulled, self.closed = n, fail_after, 0, False
        self.threads: set[str] = set()

    def __iter__(self):
        try:
            for i in range(self.n):
                if self.fail_after is not None and i == self.fail_after:
                    raise OSError("connection reset")
                self.pulled += 1
                self.threads.add(threading.current_thread().name)
                yield bytes([i % 256]) * 10
        finally:
            self.closed = True


def test_read_ahead_yields_every_chunk_in_order_from_another_thread():
    src = Source(50)
    assert list(splits.prefetched(iter(src), 2)) == [bytes([i]) * 10 for i in range(50)]
    assert src.threads == {"smr-read-ahead"}


def test_read_ahead_stays_at_most_depth_chunks_ahead_of_the_reader():
    src = Source(100)
    it = splits.prefetched(iter(src), 2)
    next(it)
    # one chunk taken, two held in the queue, one pulled and waiting for room: never more
    assert _wait_for(lambda: src.pulled == 4)
    time.sleep(0.2)
    assert src.pulled == 4
    next(it)
    assert _wait_for(lambda: src.pulled == 5)
    it.close()


def test_an_error_while_reading_ahead_is_raised_where_its_chunk_would_have_been():
    it = splits.prefetched(iter(Source(10, fail_after=3)), 2)
    assert [next(it) for _ in range(3)] == [bytes([i]) * 10 for i in range(3)]
    with pytest.raises(OSError, match="connection reset"):
        next(it)


def test_a_reader_stopping_early_stops_the_thread_and_closes_the_source():
    src = Source(1000)
    it = splits.prefetched(iter(src), 2)
    next(it)
    it.close()
    assert _wait_for(lambda: src.closed)
    assert src.pulled < 10
    assert _wait_for(lambda: not any(t.name == "smr-read-ahead" for t in threading.enumerate()))


# -- LineReader: the same blocks and calls with and without read-ahead ------------------------------


def _recording_fetch(data: bytes, chunk: int, calls: list):
    def fetch(first: int, last: int):
        calls.append((first, last))
        for i in range(first, last + 1, chunk):
            yield data[i:min(last + 1, i + chunk)]
    return fetch


def _blocks(data: bytes, start: int, end: int, chunk: int, read_ahead: int, min_bytes: int = 0):
    calls: list = []
    reader = splits.LineReader(_recording_fetch(data, chunk, calls), start, end, len(data), read_ahead)
    blocks = list(readers.joined_blocks(reader.blocks(), min_bytes))
    offsets = [reader.offset_in(off, b, i) for off, b in blocks for i in range(len(splits.records_of(b)))]
    records = [r for _, b in blocks for r in splits.records_of(b)]
    return records, offsets, calls


piece = st.sampled_from([b"a", b"bb", b" ", b"\r", b"\n", b"\r\n", "é".encode(), b"\xff"])


@settings(max_examples=150, deadline=None)
@given(body=st.lists(piece, max_size=60).map(b"".join), bom=st.booleans(),
       split_size=st.integers(1, 70), chunk=st.sampled_from([1, 2, 5, 1 << 20]),
       depth=st.sampled_from([1, 2]), min_bytes=st.sampled_from([0, 1, 7, 1 << 20]))
def test_read_ahead_and_joined_blocks_give_the_same_records_offsets_and_ranges(body, bom, split_size, chunk,
                                                                               depth, min_bytes):
    data = (splits.BOM if bom else b"") + body
    for start in range(0, max(1, len(data)), split_size):
        plain = _blocks(data, start, start + split_size, chunk, 0)
        ahead = _blocks(data, start, start + split_size, chunk, depth, min_bytes)
        assert ahead == plain
    whole = []
    for start in range(0, max(1, len(data)), split_size):
        whole += _blocks(data, start, start + split_size, chunk, depth, min_bytes)[0]
    assert whole == splits.reference_lines(data)


def test_extension_gets_are_not_read_ahead():
    data = b"x" * 100 + b"\n" + b"y" * 10_000 + b"\n"
    calls: list = []
    reader = splits.LineReader(_recording_fetch(data, 7, calls), 0, 50, len(data), 2)
    assert [len(b) for _, b in reader.blocks()] == [101]
    # the body, then one 64 KiB extension that holds the newline: nothing fetched past it
    assert calls == [(0, 49), (50, len(data) - 1)]


# -- SplitInput on the local stack's S3 -----------------------------------------------------------------


def _split(s3, key: str, body: bytes, start: int, end: int, fmt: str = "text") -> dict:
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"]
    return {"bucket": BUCKET, "key": key, "etag": etag, "start": start, "end": end,
            "size": len(body), "format": fmt}


def _read(split: dict, **kw) -> tuple[list, list]:
    src = readers.SplitInput(split, **kw)
    recs, offs = [], []
    for block in src.blocks():
        recs += block
        offs += [src.locate(i) for i in range(len(block))]
    return recs, offs


@pytest.fixture
def get_ranges(s3):
    """The Range header of every GetObject the data plane's S3 client sends during the test."""
    seen: list = []

    def record(params, **_):
        seen.append(params.get("Range"))

    events = runtime.s3().meta.events
    events.register("provide-client-params.s3.GetObject", record)
    yield seen
    events.unregister("provide-client-params.s3.GetObject", record)


def test_a_split_read_ahead_in_big_blocks_has_the_same_records_and_offsets_and_only_ranged_gets(
        s3, get_ranges):
    lines = [("é" * (i % 5) + f"line {i}" + ("\r" if i % 3 == 0 else "")) for i in range(40_000)]
    body = "\n".join(lines).encode() + b"\n"
    size = len(body)
    for start, end in ((0, size // 3), (size // 3, 2 * size // 3), (2 * size // 3, size)):
        split = _split(s3, "ahead/a.txt", body, start, end)
        plain = _read(split, read_ahead=0)
        get_ranges.clear()
        ahead = _read(split, block_records=None, block_bytes=readers.BATCH_BLOCK_BYTES, read_ahead=2)
        assert ahead == plain
        assert get_ranges and all(r and r.startswith("bytes=") for r in get_ranges)
        first = int(get_ranges[0][6:].split("-")[0])
        assert first == max(0, start - 1)
    got = []
    for start in range(0, size, size // 3 + 1):
        got += _read(_split(s3, "ahead/a.txt", body, start, start + size // 3 + 1), read_ahead=2)[0]
    assert got == [ln.rstrip("\r") for ln in lines]


def test_read_ahead_counts_bytes_and_requests_into_the_task(s3):
    body = b"abc\n" * 300_000
    split = _split(s3, "ahead/count.txt", body, 0, len(body))
    metrics = runtime.start_metrics()
    src = readers.SplitInput(split, metrics.add_in, read_ahead=2)
    assert sum(len(b) for b in src.blocks()) == 300_000
    assert metrics.bytes_in == len(body)
    assert metrics.requests["GetObject"] == 1


def test_an_object_changed_under_a_read_ahead_fails_with_the_clear_error(s3):
    split = _split(s3, "ahead/chg.txt", b"one\ntwo\n", 0, 8)
    s3.put_object(Bucket=BUCKET, Key="ahead/chg.txt", Body=b"three\n")
    with pytest.raises(runtime.ObjectChangedError, match="changed during the job"):
        _read(split, read_ahead=2)
