"""Published versions on the local stack: a qualified invoke runs the version's own configuration."""

from __future__ import annotations

import pytest

from tests.local.conftest import read_payload, zip_source

REPORTS = """
import os

VERSION = "{version}"

def handler(event, context):
    return {{"memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "code": VERSION,
             "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"], "flag": os.environ.get("FLAG")}}
"""


def _seen(lam, name: str, qualifier: str | None = None) -> dict:
    extra = {"Qualifier": qualifier} if qualifier else {}
    return read_payload(lam.invoke(FunctionName=name, Payload=b"{}", **extra))


def test_a_qualified_invoke_runs_the_versions_code_memory_and_environment(lam, deploy):
    name = deploy(REPORTS.format(version="one"), MemorySize=256, Environment={"Variables": {"FLAG": "a"}})
    first = lam.publish_version(FunctionName=name)["Version"]
    lam.update_function_configuration(FunctionName=name, MemorySize=512,
                                      Environment={"Variables": {"FLAG": "b"}})
    lam.update_function_code(FunctionName=name, ZipFile=zip_source({"app.py": REPORTS.format(version="two")}))

    assert _seen(lam, name, first) == {"memory": "256", "code": "one", "version": first, "flag": "a"}
    assert _seen(lam, f"{name}:{first}") == _seen(lam, name, first)  # the qualifier in the name
    executed = lam.invoke(FunctionName=f"{name}:{first}", Payload=b"{}")["ExecutedVersion"]
    assert executed == first
    assert lam.invoke(FunctionName=name, Payload=b"{}")["ExecutedVersion"] == "$LATEST"
    latest = _seen(lam, name)
    assert (latest["memory"], latest["code"], latest["flag"]) == ("512", "two", "b")
    second = lam.publish_version(FunctionName=name)["Version"]
    assert second != first
    assert _seen(lam, name, second)["memory"] == "512"
    assert _seen(lam, name, first)["memory"] == "256"  # publishing again changes no old version


def test_a_versions_event_invoke_config_is_its_own(lam, deploy):
    name = deploy(REPORTS.format(version="one"))
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    version = lam.publish_version(FunctionName=name)["Version"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=f"{name}:{version}")
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier=version, MaximumRetryAttempts=1)
    assert lam.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0


def test_a_deleted_version_is_gone_and_the_others_stay(lam, deploy):
    name = deploy(REPORTS.format(version="one"), MemorySize=256)
    first = lam.publish_version(FunctionName=name)["Version"]
    lam.update_function_configuration(FunctionName=name, MemorySize=384)
    second = lam.publish_version(FunctionName=name)["Version"]
    lam.delete_function(FunctionName=name, Qualifier=first)
    listed = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert listed == ["$LATEST", second]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=name, Qualifier=first, Payload=b"{}")
    assert _seen(lam, name, second)["memory"] == "384"


def test_a_deleted_versions_number_is_never_reused(lam, deploy):
    name = deploy(REPORTS.format(version="one"), MemorySize=256)
    numbers = []
    for memory in (320, 384, 448):
        lam.update_function_configuration(FunctionName=name, MemorySize=memory)
        numbers.append(lam.publish_version(FunctionName=name)["Version"])
    lam.delete_function(FunctionName=name, Qualifier=numbers[0])
    lam.delete_function(FunctionName=name, Qualifier=numbers[2])
    lam.update_function_configuration(FunctionName=name, MemorySize=512)
    newest = lam.publish_version(FunctionName=name)["Version"]
    assert int(newest) > int(numbers[2])
    assert _seen(lam, name, numbers[1])["memory"] == "384"
    assert _seen(lam, name, newest)["memory"] == "512"
