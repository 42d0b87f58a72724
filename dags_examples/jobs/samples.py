"""Seeded sample inputs for the example DAGs, uploaded only when the connection is the local stack.

Small and generated (no downloads): the same seed gives the same bytes on every machine, so the
examples' outputs are reproducible. On real AWS nothing is written: point the DAGs' Params at your
own data instead.
"""

from __future__ import annotations

import json
import random
from urllib.parse import urlparse

BUCKET = "smr-examples"
ROOT = f"s3://{BUCKET}"

WORDS_INPUT = f"{ROOT}/word_count/input/"
USERVISITS_INPUT = f"{ROOT}/amplab/uservisits/"
USERS_INPUT = f"{ROOT}/join/users/"
ORDERS_INPUT = f"{ROOT}/join/orders/"
SHARDS_INPUT = [f"{ROOT}/shards/{name}/" for name in ("a", "b", "c")]

# The pattern of the DAGs' s3:// URI Params: the UI form refuses anything else before a run starts.
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"

_SYLLABLES = ("ka", "lo", "mi", "ne", "ra", "su", "to", "vi", "ze", "do", "pa", "qu")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _vocabulary(rng: random.Random, size: int = 400) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def text_lines(seed: int, lines: int) -> bytes:
    """Zipf-distributed words, 3-14 per line: a few words are very common, most are rare."""
    rng = random.Random(seed)
    vocab = _vocabulary(random.Random(0))
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    out = [" ".join(rng.choices(vocab, weights, k=rng.randint(3, 14))) for _ in range(lines)]
    return ("\n".join(out) + "\n").encode()


def uservisits_csv(seed: int, rows: int) -> bytes:
    """AMPLab ``uservisits`` rows with a header line (the fields amplab.py reads)."""
    from jobs.amplab import USERVISITS_FIELDS

    rng = random.Random(seed)
    lines = [",".join(USERVISITS_FIELDS)]
    for _ in range(rows):
        ip = f"{rng.randint(1, 30)}.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        lines.append(",".join([
            ip, f"url{rng.randint(0, 999)}", f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"{rng.uniform(0, 1):.6f}", "Mozilla/5.0", rng.choice(["USA", "DEU", "FRA", "JPN"]),
            rng.choice(["en", "de", "fr", "ja"]), f"w{rng.randint(0, 99)}", str(rng.randint(1, 10)),
        ]))
    return ("\n".join(lines) + "\n").encode()


def users_csv(users: int) -> bytes:
    rng = random.Random(7)
    rows = ["user_id,name"] + [f"u{i:04d},{rng.choice(_SYLLABLES).title()}{i}" for i in range(users)]
    return ("\n".join(rows) + "\n").encode()


def orders_jsonl(users: int, orders: int) -> bytes:
    rng = random.Random(11)
    rows = [json.dumps({"user_id": f"u{rng.randrange(users):04d}", "amount": round(rng.uniform(1, 99), 2)})
            for _ in range(orders)]
    return ("\n".join(rows) + "\n").encode()


def sample_objects() -> dict[str, bytes]:
    """Every sample object, by ``s3://`` URI."""
    objects = {f"{WORDS_INPUT}part-{i}.txt": text_lines(seed=i, lines=1500) for i in range(3)}
    objects.update({f"{USERVISITS_INPUT}uservisits-{i}.csv": uservisits_csv(seed=i, rows=2000) for i in range(2)})
    objects[f"{USERS_INPUT}users.csv"] = users_csv(200)
    objects[f"{ORDERS_INPUT}orders.jsonl"] = orders_jsonl(200, 1500)
    for i, prefix in enumerate(SHARDS_INPUT):
        objects[f"{prefix}lines.txt"] = text_lines(seed=100 + i, lines=500)
    return objects


def local_endpoint(aws_conn_id: str | None) -> str | None:
    """The connection's endpoint if it is a loopback one (the local stack), else None."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    endpoint = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3").conn_config.endpoint_url
    if endpoint and urlparse(endpoint).hostname in _LOOPBACK:
        return endpoint
    return None


def seed_if_local(aws_conn_id: str | None = "aws_default") -> list[str]:
    """Upload the sample inputs when ``aws_conn_id`` points at the local stack; return what was written."""
    if local_endpoint(aws_conn_id) is None:
        return []
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    s3 = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3").conn
    region = s3.meta.region_name
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=BUCKET, **where)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass
    written = []
    for uri, body in sample_objects().items():
        key = uri[len(ROOT) + 1 :]
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        written.append(uri)
    return written
