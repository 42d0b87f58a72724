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


def test_a_control_session_s3_client_transfers_files_as_boto3s_does(local_stack, cache_home, tmp_path):
    session = aws.control_session(region_name="us-east-1", aws_access_key_id="testing",
                                  aws_secret_access_key="testing")
    s3 = session.client("s3", endpoint_url=local_stack.endpoint_url)
    s3.create_bucket(Bucket="aws-session-transfer")
    (tmp_path / "up.txt").write_bytes(b"x" * 1000)
    s3.upload_file(str(tmp_path / "up.txt"), "aws-session-transfer", "up.txt")
    s3.download_file("aws-session-transfer", "up.txt", str(tmp_path / "down.txt"))
    s3.copy({"Bucket": "aws-session-transfer", "Key": "up.txt"}, "aws-session-transfer", "copied.txt")
    assert (tmp_path / "down.txt").read_bytes() == b"x" * 1000
    assert s3.get_object(Bucket="aws-session-transfer", Key="copied.txt")["Body"].read() == b"x" * 1000


def _signed_key_ids(client) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-send", lambda request, **_: seen.append(
        request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0]))
    return seen


@pytest.mark.parametrize("how", ["AWS_PROFILE", "profile_name"])
def test_a_control_session_takes_keys_and_region_from_a_profile_as_boto3_does(how, local_stack, monkeypatch,
                                                                             tmp_path, cache_home):
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-west-1\n\n[profile smr-test]\nregion = eu-west-2\n"
                      "aws_access_key_id = AKIDSMRPROFILE\naws_secret_access_key = profile-secret\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                 "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    if how == "AWS_PROFILE":
        monkeypatch.setenv("AWS_PROFILE", "smr-test")
        session = aws.control_session()
    else:
        session = aws.control_session(profile_name="smr-test")
    import boto3

    theirs = boto3.session.Session(profile_name="smr-test")
    assert session.region_name == theirs.region_name == "eu-west-2"
    assert session.profile_name == "smr-test"
    assert session.get_credentials().access_key == theirs.get_credentials().access_key == "AKIDSMRPROFILE"
    clients = aws.AwsClients(session, endpoint_url=local_stack.endpoint_url)
    assert clients.region_name == "eu-west-2"
    seen = _signed_key_ids(clients.s3)
    clients.s3.list_buckets()
    assert seen == ["AKIDSMRPROFILE"]  # the profile's keys sign the requests


def test_keys_given_to_a_control_session_win_over_the_environment(monkeypatch, cache_home):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert aws.control_session().get_credentials().access_key == "AKIDFROMENV"
    given = aws.control_session(aws_access_key_id="AKIDGIVEN", aws_secret_access_key="s", aws_session_token="t")
    credentials = given.get_credentials()
    assert (credentials.access_key, credentials.token) == ("AKIDGIVEN", "t")


def test_the_smr_process_exits_with_its_code_after_flushing_and_the_atexit_callbacks():
    code = ("import atexit, sys\n"
            "from airflow_provider_smr.cli import exit_now\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "print('result', end=' ')\n"
            "exit_now(3)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert (done.returncode, done.stdout) == (3, "result atexit ran\n")


def test_the_clis_clients_do_not_import_boto3(cache_home):
    code = ("import sys\n"
            "from airflow_provider_smr.engine.aws import AwsClients\n"
            "clients = AwsClients(endpoint_url='http://127.0.0.1:9', region_name='us-east-1')\n"
            "clients.s3, clients.lambda_, clients.cloudformation\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 's3transfer')))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SMR_CACHE_DIR": str(cache_home.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout == "[]\n"


@pytest.mark.parametrize("command", [["run", "dags_examples/jobs/word_count.py:word_count", "--inline",
                                      "--input", "README.md", "--output", "OUT", "--json"],
                                     ["status", "no-such-job", "--endpoint-url", "ENDPOINT", "--stack-name",
                                      "smr-no-such-stack"]])
def test_the_smr_process_collects_garbage_again_once_its_command_has_started(command, tmp_path, cache_home,
                                                                             aws_endpoint, aws_env):
    """``entry()`` pauses the collector for the startup; every command ends the pause (a server or a
    long wait must not run without it)."""
    code = ("import gc, sys\n"
            "from airflow_provider_smr import cli\n"
            "cli.pause_gc()\n"
            "assert not gc.isenabled()\n"
            "cli.main(sys.argv[1:])\n"
            "print(gc.isenabled(), gc.get_freeze_count() > 10000)\n")
    args = [{"OUT": str(tmp_path / "out"), "ENDPOINT": aws_endpoint}.get(a, a) for a in command]
    env = {**os.environ, **aws_env, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False, timeout=120)
    assert done.stdout.splitlines()[-1] == "True True", done.stderr


def test_a_prepared_client_is_made_once_in_the_background_and_used_as_made(cache_home, aws_endpoint, aws_env,
                                                                           monkeypatch):
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    clients = aws.AwsClients(endpoint_url=aws_endpoint, region_name="us-east-1")
    s3 = clients.s3
    clients.prepare("lambda")
    clients.prepare("s3")  # made already: nothing to do
    made = clients.lambda_
    assert made is clients.lambda_ and clients.s3 is s3
    assert made.meta.service_model.service_name == "lambda" and made.meta.endpoint_url == aws_endpoint
    made.list_functions()  # a working client


def test_a_client_that_fails_in_the_background_fails_again_where_it_is_used(cache_home):
    clients = aws.AwsClients(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    clients.prepare("no-such-service")
    with pytest.raises(UnknownServiceError):
        clients.client("no-such-service")
