"""``aws_timestamp`` is botocore's ``parse_timestamp``, value for value, only faster on S3's forms."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from lambda_handlers.clock import aws_timestamp, fast_timestamp_session


@pytest.mark.parametrize("value", [
    "2026-12-07T05:57:14.000Z", "2026-12-07T05:57:14Z", "2026-12-07T05:57:14.5Z",
    "2026-12-07T05:57:14.123456Z", "2024-02-29T23:59:59.999Z", "1970-01-01T00:00:00.000Z",
    "Mon, 07 Dec 2026 05:57:14 GMT", "Thu, 29 Feb 2024 00:00:00 GMT", "Sun, 01 Jan 2023 12:00:00 GMT",
    # other forms: botocore's own answer
    "2026-12-07T05:57:14.123456789Z", "2026-12-07T05:57:14+02:00", "2026-12-07 05:57:14",
    "Mon, 07 Dec 2026 05:57:14 +0100", "1733550000", 1733550000, 1733550000.5,
])
def test_the_same_datetime_as_botocore(value):
    ours, theirs = aws_timestamp(value), parse_timestamp(value)
    assert ours == theirs
    assert type(ours.tzinfo) is type(theirs.tzinfo)
    assert ours.utcoffset() == theirs.utcoffset()


@pytest.mark.parametrize("value", ["2026-02-30T00:00:00.000Z", "Mon, 30 Feb 2026 05:57:14 GMT",
                                   "Mon, 07 Dex 2026 05:57:14 GMT", "soon"])
def test_an_impossible_date_is_botocores_error(value):
    with pytest.raises(ValueError) as theirs:
        parse_timestamp(value)
    with pytest.raises(ValueError) as ours:
        aws_timestamp(value)
    assert str(ours.value) == str(theirs.value)


def test_a_session_parses_a_listing_with_it(local_stack):
    s3 = fast_timestamp_session().client("s3", **local_stack_kwargs(local_stack))
    plain = local_stack.client("s3")
    plain.create_bucket(Bucket="smr-clock-parse")
    plain.put_object(Bucket="smr-clock-parse", Key="k", Body=b"x")
    ours = s3.list_objects_v2(Bucket="smr-clock-parse")["Contents"][0]["LastModified"]
    assert ours == plain.list_objects_v2(Bucket="smr-clock-parse")["Contents"][0]["LastModified"]
    assert s3.head_object(Bucket="smr-clock-parse", Key="k")["LastModified"] == ours
    factory = s3._endpoint._response_parser_factory
    assert factory._defaults["timestamp_parser"] is aws_timestamp


def local_stack_kwargs(local_stack):
    return {"endpoint_url": local_stack.endpoint_url, "region_name": "us-east-1",
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
