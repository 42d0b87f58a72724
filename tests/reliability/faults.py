"""Fault injection from inside a job's own functions, for the reliability tests.

The functions here run inside the local stack's Lambda sandbox (pickled by value with the job).
They reach S3 with boto3, which the sandbox provides with ``AWS_ENDPOINT_URL`` pointing at the
local stack, and use put-if-absent flag objects to fail, hang or blow their memory only the first
time a given record is seen (or every time).
"""

from __future__ import annotations

import collections
import json
import random
import time

FLAGS = "smr-rel-flags"  # bucket of the flag objects (created by the fixtures)


def first_time(flag: str) -> bool:
    """True exactly once per ``flag`` across every attempt and container (S3 put-if-absent)."""
    import boto3

    s3 = boto3.client("s3")
    try:
        s3.put_object(Bucket=FLAGS, Key=flag, Body=b"1", IfNoneMatch="*")
        return True
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("PreconditionFailed", "412"):
            return False
        raise


def record_call(prefix: str, name: str) -> None:
    """Leave one uniquely named object per call (to count how often a function really ran)."""
    import uuid

    import boto3

    boto3.client("s3").put_object(Bucket=FLAGS, Key=f"{prefix}/{name}/{uuid.uuid4().hex}", Body=b"")


def count_calls(s3, prefix: str) -> collections.Counter:
    got = collections.Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=FLAGS, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            got[o["Key"][len(prefix) + 1:].split("/")[0]] += 1
    return got


# -- plain word count ------------------------------------------------------------------------------


def tokenize(line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(values)


def words_text(seed: int, lines: int, vocab: int = 40) -> str:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) + "\n"
                   for _ in range(lines))


def word_count(*texts: str) -> dict:
    return dict(collections.Counter(w for t in texts for w in t.split()))


# -- faulty functions (factories: the closure carries the test's unique flag prefix) ---------------


def mapper_failing_once_on(trigger: str, flag: str):
    """A word-count mapper that raises the first time it sees the line ``trigger``."""

    def mapper(line):
        if line == trigger and first_time(flag):
            raise RuntimeError(f"injected failure on {trigger!r}")
        for word in line.split():
            yield word, 1

    return mapper


def mapper_hanging_once_on(trigger: str, flag: str, seconds: float = 600):
    """Sleeps past any small function timeout the first time it sees ``trigger`` (killed, no marker)."""

    def mapper(line):
        if line == trigger and first_time(flag):
            time.sleep(seconds)
        for word in line.split():
            yield word, 1

    return mapper


def reducer_hanging_once_on(trigger: str, flag: str, seconds: float = 600):
    def reducer(key, values):
        if key == trigger and first_time(flag):
            time.sleep(seconds)
        yield key, sum(values)

    return reducer


def mapper_eating_memory_on(trigger: str, mb: int):
    """Touches ``mb`` MiB every time it sees ``trigger`` (the function is killed out of memory)."""

    def mapper(line):
        if line == trigger:
            hog = [b"x" * (1024 * 1024) for _ in range(mb)]
            time.sleep(5)
            del hog
        for word in line.split():
            yield word, 1

    return mapper


def counting_reducer(prefix: str):
    """A sum reducer that leaves one object per call, named by the key."""

    def reducer(key, values):
        record_call(prefix, key)
        yield key, sum(values)

    return reducer


def poison_mapper(line):
    if line.startswith("POISON"):
        raise ValueError("cannot parse this record")
    for word in line.split():
        yield word, 1


def failing_mapper(line):
    raise RuntimeError("this job always fails")


def slow_mapper(seconds: float):
    def mapper(line):
        time.sleep(seconds)
        for word in line.split():
            yield word, 1

    return mapper


def straggling_mapper(trigger: str, flag: str, seconds: float):
    """The attempt that first sees ``trigger`` straggles until :func:`release_straggler` (at most
    ``seconds``); any other attempt is fast. A test releases it once the backup has won, so the
    straggler finishes last however slow the box, and nobody waits out a fixed sleep."""

    def mapper(line):
        if line == trigger and first_time(flag):
            import boto3

            s3, deadline = boto3.client("s3"), time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    s3.head_object(Bucket=FLAGS, Key=f"{flag}-release")
                    break
                except s3.exceptions.ClientError:
                    time.sleep(0.1)
        for word in line.split():
            yield word, 1

    return mapper


def release_straggler(s3, flag: str) -> None:
    """Let the straggling attempt of :func:`straggling_mapper` (same ``flag``) finish now."""
    s3.put_object(Bucket=FLAGS, Key=f"{flag}-release", Body=b"1")


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
