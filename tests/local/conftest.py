"""Fixtures for the local stack's tests: deploy a handler from source in one call."""

from __future__ import annotations

import io
import itertools
import json
import textwrap
import zipfile

import pytest

_names = itertools.count()


def zip_source(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, textwrap.dedent(text))
    return buffer.getvalue()


@pytest.fixture(scope="session")
def role_arn(local_stack):
    iam = local_stack.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "lambda.amazonaws.com"}}]}
    arn = iam.create_role(RoleName="smr-local-tests", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    # The local stack enforces a function's role as AWS does: these test functions may do anything.
    anything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName="smr-local-tests", PolicyName="anything", PolicyDocument=json.dumps(anything))
    return arn


@pytest.fixture(scope="session")
def lam(local_stack):
    from botocore.config import Config

    return local_stack.client("lambda", config=Config(retries={"max_attempts": 0},
                                                      read_timeout=120))


@pytest.fixture(scope="session")
def s3(local_stack):
    return local_stack.client("s3")


@pytest.fixture(scope="session")
def bucket(s3):
    s3.create_bucket(Bucket="smr-local-tests")
    return "smr-local-tests"


@pytest.fixture
def deploy(lam, role_arn):
    """``deploy(source, **config) -> name``: create a function whose app.handler is ``source``."""

    def _deploy(source: str, handler: str = "app.handler", **config) -> str:
        name = f"fn-{next(_names)}"
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=role_arn,
                            Handler=handler, Code={"ZipFile": zip_source({"app.py": source})},
                            **config)
        return name

    return _deploy


def read_payload(response) -> dict:
    return json.loads(response["Payload"].read())
