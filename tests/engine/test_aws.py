"""The control plane's botocore loader (same models, read for less) and the CLI's quick exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import botocore.loaders
import pytest
from botocore.exceptions import DataNotFoundError, UnknownServiceError

from airflow_provider_smr.engine import aws

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SMR_CACHE_DIR", str(tmp_path))
    return tmp_path / "botocore"


@pytest.mark.parametrize("service", ["s3", "lambda", "cloudformation", "dynamodb"])
def test_the_direct_loader_reads_the_same_models_as_botocore(service, cache_home):
    ours, theirs = aws.direct_loader(), botocore.loaders.create_loader()
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        # same data, same key order (json.dumps keeps it), extras merged the same way
        ours_model, their_model = ours.load_service_model(service, kind), theirs.load_service_model(service, kind)
        assert json.dumps(ours_model) == json.dumps(their_model)
    assert json.dumps(aws.direct_loader().load_data("endpoints")) == json.dumps(theirs.load_data("endpoints"))


@pytest.mark.parametrize("args, error", [(("no-such-service", "service-2"), UnknownServiceError),
                                         (("../s3", "service-2"), UnknownServiceError),
                                         (("s3", "no-such-kind"), UnknownServiceError),
                                         (("s3", "service-2", "1999-01-01"), DataNotFoundError)])
def test_the_direct_loader_refuses_what_botocore_refuses_with_its_error(args, error, cache_home):
    with pytest.raises(error) as theirs:
        botocore.loaders.create_loader().load_service_model(*args)
    with pytest.raises(error) as ours:
        aws.direct_loader().load_service_model(*args)
    assert str(ours.value) == str(theirs.value)


def test_large_files_are_read_from_a_parsed_copy_and_a_bad_copy_is_replaced(cache_home):
    first = aws.direct_loader().load_data("endpoints")
    copies = list(cache_home.glob("*.pickle"))
    assert len(copies) == 1 and oct(cache_home.stat().st_mode & 0o777) == "0o700"
    assert aws.direct_loader().load_data("endpoints") == first  # from the copy
    for bad in (b"not a pickle", b"\x80\x04cos\nsystem\n."):  # a class lookup is refused too
        copies[0].write_bytes(bad)
        assert aws.direct_loader().load_data("endpoints") == first
        assert copies[0].read_bytes() != bad  # parsed again and kept


def test_an_unwritable_cache_only_means_parsing_again(tmp_path, monkeypatch):
    (tmp_path / "botocore").write_text("a file where the folder would be")
    monkeypatch.setenv("SMR_CACHE_DIR", str(tmp_path))
    assert "partitions" in aws.direct_loader().load_data("endpoints")


def test_a_control_session_makes_working_clients(local_stack, cache_home):
    session = aws.control_session(preload=("s3",), region_name="us-east-1", aws_access_key_id="testing",
                                  aws_secret_access_key="testing")
    s3 = session.client("s3", endpoint_url=local_stack.endpoint_url)
    s3.create_bucket(Bucket="aws-session-test")
    s3.put_object(Bucket="aws-session-test", Key="k", Body=b"v")
    listed = s3.list_objects_v2(Bucket="aws-session-test")["Contents"]
    assert [o["Key"] for o in listed] == ["k"] and listed[0]["LastModified"].tzinfo is not None
    assert hasattr(s3, "upload_file")  # boto3's transfer methods are there


def test_the_smr_process_exits_with_its_code_after_flushing_and_the_atexit_callbacks():
    code = ("import atexit, sys\n"
            "from airflow_provider_smr.cli import exit_now\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "print('result', end=' ')\n"
            "exit_now(3)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert (done.returncode, done.stdout) == (3, "result atexit ran\n")
