"""ListObjectsV2 answered by the local stack's fast path matches moto's own answer."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from boto3.s3.transfer import TransferConfig

KEYS = ["a/1", "a/2", "a/b/3", "a/b/4", "a/c d/5", "a/ü+%/6", "a/z", "b/1", "top", "a/b/7~x", "a/q&r<s>/8"]


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


@pytest.mark.parametrize("params", [
    {"Delimiter": "/", "StartAfter": "a/b/3"}, {"Prefix": "a/", "Delimiter": "/", "StartAfter": "a/b"},
    {"Prefix": "a/", "Delimiter": "/", "StartAfter": "a/b/"}, {"Delimiter": "b"},
    {"Prefix": "a/b", "Delimiter": "/"}, {"StartAfter": "zzz"}, {"StartAfter": ""},
    {"Prefix": "a/", "Delimiter": "/", "MaxKeys": 2}, {"Prefix": "a/", "EncodingType": "url"},
    {"Delimiter": "/", "EncodingType": "url", "Prefix": "a/"},
], ids=str)
def test_start_after_and_delimiters_match_moto(s3, listed_bucket, params):
    fast, moto = _fast_and_moto(s3, Bucket=listed_bucket, **params)
    assert fast == moto


def _pages(s3, fetch_owner_every_other=False, **params):
    """Every page of a listing; with ``fetch_owner_every_other`` moto answers every other page,
    continuing from the fast path's token and the fast path from moto's."""
    pages, token = [], None
    while True:
        kwargs = dict(params, **({"ContinuationToken": token} if token else {}))
        if fetch_owner_every_other and len(pages) % 2:
            kwargs["FetchOwner"] = True
        page = s3.list_objects_v2(**kwargs)
        page.pop("ResponseMetadata")
        for item in page.get("Contents", []):
            item.pop("Owner", None)
        pages.append(page)
        if not page["IsTruncated"]:
            return pages
        token = page["NextContinuationToken"]


def test_folders_page_with_continuation_tokens_as_moto_does(s3, listed_bucket):
    params = {"Bucket": listed_bucket, "Delimiter": "/", "Prefix": "a/", "MaxKeys": 2}
    fast = _pages(s3, **params)
    mixed = _pages(s3, fetch_owner_every_other=True, **params)
    assert fast == mixed
    listed = [(c.get("Key") or c.get("Prefix")) for p in fast
              for c in p.get("Contents", []) + p.get("CommonPrefixes", [])]
    assert sorted(listed) == ["a/1", "a/2", "a/b/", "a/c d/", "a/q&r<s>/", "a/sum", "a/z", "a/ü+%/"]


def test_a_listing_follows_puts_overwrites_copies_and_deletes(s3):
    bucket = "smr-list-changes"
    s3.create_bucket(Bucket=bucket)
    for key in ("k/1", "k/2", "k/3", "k/4"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key="k/2", Body=b"again")  # an overwrite is listed once
    s3.copy_object(Bucket=bucket, Key="k/5", CopySource={"Bucket": bucket, "Key": "k/1"})
    s3.copy_object(Bucket=bucket, Key="k/6", CopySource={"Bucket": bucket, "Key": "k/1"},
                   MetadataDirective="REPLACE", Metadata={"a": "b"})  # moto's copy
    s3.delete_object(Bucket=bucket, Key="k/3")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k/4"}, {"Key": "k/6"}]})
    s3.upload_fileobj(io.BytesIO(b"y" * (6 << 20)), bucket, "k/0",  # moto's multipart upload
                      Config=TransferConfig(multipart_threshold=5 << 20))
    fast, moto = _fast_and_moto(s3, Bucket=bucket)
    assert fast == moto
    assert [c["Key"] for c in fast["Contents"]] == ["k/0", "k/1", "k/2", "k/5"]
    assert [c["Size"] for c in fast["Contents"]] == [6 << 20, 1, 5, 1]


def test_thousands_of_keys_page_by_a_thousand_as_moto_does(s3):
    bucket = "smr-list-many"
    s3.create_bucket(Bucket=bucket)
    keys = [f"logs/dt=2026-12-0{i % 3}/{i:05d}.log" for i in range(2500)] + ["logs/_SUCCESS", "other"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    fast = _pages(s3, Bucket=bucket, Prefix="logs/")
    assert [p["KeyCount"] for p in fast] == [1000, 1000, 501]
    assert [c["Key"] for p in fast for c in p["Contents"]] == sorted(k for k in keys if k != "other")
    assert fast == _pages(s3, fetch_owner_every_other=True, Bucket=bucket, Prefix="logs/")
    folders = _pages(s3, Bucket=bucket, Prefix="logs/", Delimiter="/", MaxKeys=2)
    assert [[c["Prefix"] for c in p.get("CommonPrefixes", [])] for p in folders] == [
        ["logs/dt=2026-12-00/"], ["logs/dt=2026-12-01/", "logs/dt=2026-12-02/"]]
    assert [[c["Key"] for c in p.get("Contents", [])] for p in folders] == [["logs/_SUCCESS"], []]
    assert folders == _pages(s3, fetch_owner_every_other=True, Bucket=bucket, Prefix="logs/",
                             Delimiter="/", MaxKeys=2)


def test_a_pages_times_are_each_keys_own_across_second_boundaries():
    """Keys written in one second share one formatted time; every key still lists its own."""
    import datetime as dt
    import re

    from moto.core.utils import iso_8601_datetime_without_milliseconds_s3
    from moto.s3.models import FakeKey

    from airflow_provider_smr.local.s3_fast import _list_xml

    base = dt.datetime(2026, 12, 8, 1, 2, 3)
    times = [base.replace(microsecond=999_999), base + dt.timedelta(seconds=1),
             base + dt.timedelta(seconds=1, microseconds=500_000), base.replace(microsecond=200_000),
             dt.datetime(999, 1, 2, 3, 4, 5, 6), base + dt.timedelta(days=1),
             base.replace(tzinfo=dt.timezone.utc), base + dt.timedelta(days=1, microseconds=1)]
    keys = []
    for i, when in enumerate(times):
        key = FakeKey(f"k/{i}", b"x", account_id="123456789012", region_name="us-east-1")
        key.last_modified = when
        keys.append(key)
    body = _list_xml("b", "k/", None, "url", 1000, keys, False, None, None).decode()
    assert re.findall(r"<LastModified>([^<]*)</LastModified>", body) == [
        iso_8601_datetime_without_milliseconds_s3(when) for when in times]
