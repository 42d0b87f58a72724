"""S3Uri: the one parser of s3:// URIs, and the folder/join rules every location follows."""

from __future__ import annotations

import pytest

from lambda_handlers.s3uri import InputError, S3Uri, as_folder, is_s3_uri


def test_parse_splits_bucket_and_key():
    assert S3Uri.parse("s3://b/a/b.txt") == S3Uri("b", "a/b.txt")
    assert S3Uri.parse("s3://b/logs/") == S3Uri("b", "logs/")
    assert S3Uri.parse("s3://b") == S3Uri("b", "")


@pytest.mark.parametrize("bad,message", [
    ("/local/path", "output '/local/path' is not an S3 URI"),
    ("dynamodb://T", "is not an S3 URI"),
    (3, "output 3 is not an S3 URI"),
    ("s3:///key", "output 's3:///key' names no bucket"),
    ("s3://", "names no bucket"),
])
def test_parse_refuses_what_is_not_an_s3_location_naming_what_it_is_for(bad, message):
    with pytest.raises(InputError, match=message):
        S3Uri.parse(bad, what="output")


def test_parse_or_none_skips_other_schemes_and_bucketless_uris():
    assert S3Uri.parse_or_none("s3://b/k") == S3Uri("b", "k")
    assert [S3Uri.parse_or_none(v) for v in ("dynamodb://T", "out/", None, "s3://", "s3://{{")] == [
        None, None, None, None, S3Uri("{{", "")]


def test_str_round_trips_a_parsed_uri():
    for uri in ("s3://b/a/b.txt", "s3://b/logs/", "s3://b/"):
        assert str(S3Uri.parse(uri)) == uri
    assert str(S3Uri("b")) == "s3://b/"


def test_folder_and_join_treat_the_key_as_a_folder():
    assert S3Uri("b", "out").folder() == S3Uri("b", "out/")
    assert S3Uri("b", "out/").folder() == S3Uri("b", "out/")
    assert S3Uri("b").folder() == S3Uri("b", "")
    assert S3Uri("b", "out").join("_report.html") == S3Uri("b", "out/_report.html")
    assert S3Uri("b", "out/").join("a", "b.txt") == S3Uri("b", "out/a/b.txt")
    assert S3Uri("b").join("_SUCCESS") == S3Uri("b", "_SUCCESS")
    assert [as_folder(k) for k in ("", "a", "a/")] == ["", "a/", "a/"]


def test_is_s3_uri_only_checks_the_scheme():
    assert is_s3_uri("s3://b/k") and is_s3_uri("s3://")
    assert not is_s3_uri("S3://b") and not is_s3_uri(None) and not is_s3_uri("b/k")
