"""moto internals the local stack relies on: the versions it was tested with, and a lean start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from airflow_provider_smr.local import moto_internals
from airflow_provider_smr.local.moto_internals import SUPPORTED_MOTO, UnsupportedMotoError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", ["5.3.0", "5.1.9", "6.0.0", None])
def test_an_unsupported_moto_is_refused_naming_the_version_to_install(monkeypatch, version):
    monkeypatch.setattr(moto_internals, "installed_moto_version", lambda: version)
    with pytest.raises(UnsupportedMotoError) as err:
        moto_internals.check_version()
    message = str(err.value)
    assert f"found {version or 'no moto'}" in message
    assert "pip install 'moto[server," in message and f"]{SUPPORTED_MOTO}'" in message


@pytest.mark.parametrize("version", ["5.2.6", "5.2.9"])
def test_a_supported_moto_passes(monkeypatch, version):
    monkeypatch.setattr(moto_internals, "installed_moto_version", lambda: version)
    moto_internals.check_version()


def test_the_installed_moto_is_supported():
    moto_internals.check_version()


def test_the_local_stack_does_not_start_with_an_unsupported_moto(monkeypatch):
    from airflow_provider_smr.local import LocalStack, LocalStackError

    monkeypatch.setattr(moto_internals, "installed_moto_version", lambda: "5.3.1")
    stack = LocalStack(port=0)
    with pytest.raises(LocalStackError, match=re.escape(f"needs moto{SUPPORTED_MOTO}")):
        stack.start()
    assert stack.pid is None  # refused before a server process was started


def test_the_server_process_exits_naming_the_version_to_install(monkeypatch, capsys):
    from airflow_provider_smr.local import server

    monkeypatch.setattr(moto_internals, "installed_moto_version", lambda: "5.1.0")
    assert server.main(["--port", "0"]) == 2
    assert f"needs moto{SUPPORTED_MOTO}" in capsys.readouterr().err


def test_the_pin_in_pyproject_is_the_supported_range():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (moto,) = [req for req in extras["local"] if req.startswith("moto[")]
    assert moto.endswith("]" + SUPPORTED_MOTO)


def test_moto_private_attributes_are_read_only_in_moto_internals():
    local = ROOT / "airflow_provider_smr" / "local"
    private = re.compile(r"\._(value_buffer|rolled|file|max_size|get_layers_data)\b")
    offenders = [str(path.relative_to(ROOT)) for path in local.rglob("*.py")
                 if path.name != "moto_internals.py" and private.search(path.read_text())]
    assert offenders == []


def test_cloudformation_starts_without_the_models_of_services_no_template_uses():
    code = (
        "import sys\n"
        "from airflow_provider_smr.local import cfn, moto_internals\n"
        "moto_internals.install_patches(cfn.unsupported_resource_message)\n"
        "print([s for s in moto_internals.CFN_UNUSED_SERVICES if 'moto.' + s in sys.modules])\n"
        "from moto.cloudformation import parsing\n"
        "print(parsing.resource_class_from_type('AWS::Lambda::Function') is not None,\n"
        "      parsing.resource_class_from_type('AWS::EC2::VPC') is None)\n"
        "import moto.ec2.models\n"  # a request to EC2 still gets the real models
        "print(hasattr(moto.ec2.models, 'ec2_backends'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == ["[]", "True True", "True"]


def test_moto_reads_the_same_models_and_regions_through_the_direct_loader(tmp_path):
    code = (
        "import boto3, moto.core.loaders as ml\n"
        "services = ['s3', 'lambda', 'iam', 'cloudformation', 'logs', 'sts', 'dynamodb', 'sqs', 'ec2', 'ses']\n"
        "own, session = ml.create_loader(), boto3.session.Session()\n"
        "def regions(s, session):\n"
        "    return [r for p in session.get_available_partitions()\n"
        "            for r in session.get_available_regions(s, partition_name=p)]\n"
        "before = {(s, t): own.load_service_model(s, t) for s in services\n"
        "          for t in ('service-2', 'paginators-1')}\n"
        "before_regions = {s: regions(s, session) for s in services}\n"
        "from airflow_provider_smr.local import cfn, moto_internals\n"
        "moto_internals.install_patches(cfn.unsupported_resource_message)\n"
        "import moto.core.utils as mu\n"
        "from moto.core.base_backend import AccountSpecificBackend\n"
        "for _ in range(2):  # the second time from the parsed copies in the cache\n"
        "    direct = mu.create_loader()\n"
        "    assert type(direct) is not ml.Loader\n"
        "    for (s, t), model in before.items():\n"
        "        assert direct.load_service_model(s, t) == model, (s, t)\n"
        "    for s, expected in before_regions.items():\n"
        "        assert regions(s, AccountSpecificBackend.get_session()) == expected, s\n"
        "    direct._cache.clear()\n"
        "print('same')\n")
    env = {**os.environ, "SMR_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "same"
    assert list((tmp_path / "botocore").glob("*.pickle"))  # the large ones came from parsed copies


def test_cloudformation_reads_a_json_template_as_json_and_yaml_as_before():
    code = (
        "import json, yaml\n"
        "from airflow_provider_smr.local import cfn, moto_internals\n"
        "from airflow_provider_smr.deploy.template import TemplateSettings, build_template, render\n"
        "moto_internals.install_patches(cfn.unsupported_resource_message)\n"
        "from moto.cloudformation.models import Stack\n"
        "body = render(build_template(TemplateSettings(stack_name='s', artifacts_bucket='a',\n"
        "    code_key='k', code_sha256='0' * 64, runtime='python3.11')))\n"
        "as_yaml = Stack.parse_template('Resources:\\n  B: {Type: AWS::S3::Bucket}\\n')\n"
        "def no_yaml(*args, **kwargs):\n"
        "    raise AssertionError('read as YAML')\n"
        "yaml.load = no_yaml\n"
        "print(Stack.parse_template(body) == json.loads(body),\n"
        "      as_yaml == {'Resources': {'B': {'Type': 'AWS::S3::Bucket'}}})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


@pytest.mark.parametrize(("prefix", "after", "count"), [
    ("k/", None, 1000), ("k/", None, 7), ("k/", "k/0005", 4), ("k/", "k/9", 3), ("", None, 100),
    ("", "k/0018", 5), ("k", None, 50), ("z", None, 5), ("k/001", None, 4)])
def test_a_page_without_delimiter_is_the_next_live_keys_under_the_prefix(prefix, after, count):
    from moto.s3.models import FakeDeleteMarker, FakeKey

    from airflow_provider_smr.local.moto_internals import sorted_key_store_class

    store = sorted_key_store_class()()
    names = [f"k/{i:04d}" for i in range(20)] + ["a", "j", "k", "k0", "l/1", "z"]
    for name in names:
        store[name] = FakeKey(name, b"x", account_id="123456789012", region_name="us-east-1")
    for name in ("k/0003", "k/0004", "k/0019"):  # deleted: a marker is their latest version
        versions = dict.__getitem__(store, name)
        versions.append(FakeDeleteMarker(versions[-1]))
    live = sorted(n for n in names if n.startswith(prefix) and n not in ("k/0003", "k/0004", "k/0019")
                  and (after is None or n > after))
    assert [key.name for key in store.page(prefix, "", after, count)] == live[:count]
