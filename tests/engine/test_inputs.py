"""Input specs: prefixes, exact keys, globs, lists and named inputs, listed with pagination."""

from __future__ import annotations

import pytest

from lambda_handlers.planning import (
    InputNotFoundError,
    check_output_outside_inputs,
    glob_matches,
    list_input,
    normalize_inputs,
    output_location,
    resolve_inputs,
)
from lambda_handlers.s3uri import InputError, S3Uri


@pytest.fixture(scope="module")
def s3(aws_clients, aws_endpoint):
    """Bucket smr-in on the local stack with the objects every listing test reads (none writes them)."""
    client = aws_clients(aws_endpoint).s3
    client.create_bucket(Bucket="smr-in")
    for key in ["logs/2024-01/a.gz", "logs/2024-01/b.txt", "logs/2024-02/c.gz", "logs/2023-12/d.gz",
                "logs/2024-01/sub/e.gz", "data/x.csv", "data/y.csv", "data/_SUCCESS", "data/.hidden",
                "data/folder/", "data.csv", "data2/z.csv"]:
        client.put_object(Bucket="smr-in", Key=key, Body=b"1,2\n")
    return client


def keys(objects):
    return [o.key for o in objects]


def test_prefix_lists_everything_below_it_except_hidden_files_and_folder_markers(s3):
    assert keys(list_input(s3, "default", "s3://smr-in/data/")) == ["data/x.csv", "data/y.csv"]


def test_key_without_slash_is_the_exact_object_when_it_exists(s3):
    assert keys(list_input(s3, "default", "s3://smr-in/data.csv")) == ["data.csv"]


def test_key_without_slash_that_is_a_folder_lists_the_folder_not_its_siblings(s3):
    assert keys(list_input(s3, "default", "s3://smr-in/data")) == ["data/x.csv", "data/y.csv"]


def test_glob_matches_one_segment_per_star(s3):
    assert keys(list_input(s3, "default", "s3://smr-in/logs/2024-*/*.gz")) == [
        "logs/2024-01/a.gz", "logs/2024-02/c.gz"]


def test_double_star_crosses_folders():
    assert glob_matches("logs/**/*.gz", "logs/2024-01/sub/e.gz")
    assert glob_matches("logs/**/*.gz", "logs/a.gz")
    assert not glob_matches("logs/*/*.gz", "logs/2024-01/sub/e.gz")


def test_listing_is_paginated_past_one_thousand_keys(s3):
    for i in range(1105):
        s3.put_object(Bucket="smr-in", Key=f"many/{i:05d}.txt", Body=b"x")
    objects = list_input(s3, "default", "s3://smr-in/many/")
    assert len(objects) == 1105 and objects[-1].key == "many/01104.txt"
    assert objects[0].size == 1 and objects[0].etag and '"' not in objects[0].etag


def test_prefix_matching_nothing_is_input_not_found(s3):
    with pytest.raises(InputNotFoundError, match="'s3://smr-in/nothing/' matched no objects"):
        list_input(s3, "default", "s3://smr-in/nothing/")


def test_missing_bucket_is_named(s3):
    with pytest.raises(InputNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        list_input(s3, "default", "s3://no-such-bucket/x/")


def test_named_inputs_and_lists_resolve_once_per_object(s3):
    named = normalize_inputs({"a": ["s3://smr-in/data/", "s3://smr-in/data/x.csv"], "b": "s3://smr-in/data.csv"})
    objects = resolve_inputs(s3, named)
    assert [(o.input, o.key) for o in objects] == [("a", "data/x.csv"), ("a", "data/y.csv"),
                                                   ("b", "data.csv")]


@pytest.mark.parametrize("spec,expected", [
    ("s3://b/p/", {"default": ["s3://b/p/"]}),
    (["s3://b/1", "s3://b/2"], {"default": ["s3://b/1", "s3://b/2"]}),
    ({"x": "s3://b/1"}, {"x": ["s3://b/1"]}),
])
def test_normalize_inputs_shapes(spec, expected):
    assert normalize_inputs(spec) == expected


@pytest.mark.parametrize("bad", ["/local/path", "", [], {}, {"x": []}, 3, "s3:///key"])
def test_bad_input_specs_are_refused(bad):
    with pytest.raises(InputError):
        normalize_inputs(bad)


def test_output_is_always_a_folder():
    assert output_location("s3://out/res") == S3Uri("out", "res/")
    assert output_location("s3://out") == S3Uri("out", "")
    assert S3Uri.parse("s3://b/a/b.txt") == S3Uri("b", "a/b.txt")
    with pytest.raises(InputError, match="plain S3 prefix"):
        output_location("s3://out/*/")


@pytest.mark.parametrize("output,inputs", [
    ("s3://smr-in/data/out/", {"default": ["s3://smr-in/data/"]}),
    ("s3://smr-in/data/out/", {"default": ["s3://smr-in/data"]}),
    ("s3://smr-in/logs/x/", {"default": ["s3://smr-in/logs/*/*"]}),
    ("s3://smr-in/", {"default": ["s3://smr-in/"]}),
])
def test_output_inside_an_input_is_refused(output, inputs):
    with pytest.raises(InputError, match="lies inside input"):
        check_output_outside_inputs(output, inputs)


def test_output_beside_an_input_is_fine(s3):
    named = {"default": ["s3://smr-in/data"]}
    check_output_outside_inputs("s3://smr-in/data-out/", named, resolve_inputs(s3, named))
    check_output_outside_inputs("s3://other/data/", named)


def test_input_object_inside_the_output_is_refused(s3):
    named = {"default": ["s3://smr-in/data/x.csv"]}
    with pytest.raises(InputError, match="lies inside output"):
        check_output_outside_inputs("s3://smr-in/data/", named, resolve_inputs(s3, named))
