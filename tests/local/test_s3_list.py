"""ListObjectsV2 answered by the local stack's fast path matches moto's own answer."""

from __future__ import annotations

import pytest

KEYS = ["a/1", "a/2", "a/b/3", "a/b/4", "a/c d/5", "a/ü+%/6", "a/z", "b/1", "top", "a/b/7~x"]


@pytest.fixture(scope="module")
def listed_bucket(s3):
    s3.create_bucket(Bucket="smr-list-parity")
    for key in KEYS:
        s3.put_object(Bucket="smr-list-parity", Key=key, Body=key.encode())
    s3.put_object(Bucket="smr-list-parity", Key="a/sum", Body=b"x", ChecksumAlgorithm="SHA256")
    return "smr-list-parity"


def _fast_and_moto(s3, **params):
    """The same call twice: plain (fast path) and with FetchOwner (moto answers it)."""
    fast = s3.list_objects_v2(**params)
    moto = s3.list_objects_v2(FetchOwner=True, **params)
    for page in (fast, moto):
        page.pop("ResponseMetadata")
        for item in page.get("Contents", []):
            item.pop("Owner", None)
    return fast, moto


@pytest.mark.parametrize("params", [
    {}, {"Prefix": "a/"}, {"Prefix": "a/", "Delimiter": "/"}, {"Delimiter": "/"},
    {"Prefix": "a/", "MaxKeys": 3}, {"Prefix": "a/", "StartAfter": "a/b/4"},
    {"Prefix": "a/ü"}, {"Prefix": "nothing/"}, {"MaxKeys": 0},
], ids=str)
def test_a_page_is_the_same_as_motos(s3, listed_bucket, params):
    fast, moto = _fast_and_moto(s3, Bucket=listed_bucket, **params)
    assert fast == moto


def test_continuation_tokens_page_through_every_key_once(s3, listed_bucket):
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        fast, moto = _fast_and_moto(s3, Bucket=listed_bucket, MaxKeys=4, **kwargs)
        assert fast == moto
        seen += [item["Key"] for item in fast.get("Contents", [])]
        pages += 1
        if not fast["IsTruncated"]:
            break
        token = fast["NextContinuationToken"]
    assert seen == sorted(KEYS + ["a/sum"])
    assert pages == 3
