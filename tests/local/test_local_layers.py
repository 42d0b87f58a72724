"""Lambda layers: each layer's ``python/`` folder is importable by the handler, as under /opt."""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import read_payload, zip_source

USES_LAYER = """
import greeting

def handler(event, context):
    return greeting.hello()
"""


def test_handler_imports_a_module_from_its_layer(lam, role_arn):
    layer = lam.publish_layer_version(
        LayerName="greeting", CompatibleRuntimes=["python3.11"],
        Content={"ZipFile": zip_source({"python/greeting.py": "def hello():\n    return 'hi from layer'\n"})})
    lam.create_function(FunctionName="uses-layer", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler", Code={"ZipFile": zip_source({"app.py": USES_LAYER})},
                        Layers=[layer["LayerVersionArn"]])
    response = lam.invoke(FunctionName="uses-layer", Payload=b"{}")
    assert "FunctionError" not in response, read_payload(response)
    assert read_payload(response) == "hi from layer"


def test_function_from_a_stack_gets_its_layers(local_stack, lam, role_arn):
    layer = lam.publish_layer_version(
        LayerName="greeting-cfn", CompatibleRuntimes=["python3.11"],
        Content={"ZipFile": zip_source({"python/greeting.py": "def hello():\n    return 'cfn layer'\n"})})
    template = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": "cfn-uses-layer", "Runtime": "python3.11", "Handler": "index.handler",
        "Role": role_arn, "Code": {"ZipFile": USES_LAYER},
        "Layers": [layer["LayerVersionArn"]]}}}}
    local_stack.client("cloudformation").create_stack(StackName="smr-local-layers",
                                                      TemplateBody=json.dumps(template))
    response = lam.invoke(FunctionName="cfn-uses-layer", Payload=b"{}")
    assert "FunctionError" not in response, read_payload(response)
    assert read_payload(response) == "cfn layer"


def zeros_zip(name: str, size: int) -> bytes:
    """A small zip holding one file of ``size`` zero bytes (deflated: the unzipped size counts)."""
    buffer = io.BytesIO()
    with (zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
          archive.open(name, "w") as out):
        chunk = bytes(1 << 20)
        for start in range(0, size, len(chunk)):
            out.write(chunk[: min(len(chunk), size - start)])
    return buffer.getvalue()


def test_a_layer_over_250_mb_unzipped_is_refused_as_on_aws(lam):
    with pytest.raises(ClientError) as err:
        lam.publish_layer_version(LayerName="too-big", CompatibleRuntimes=["python3.11"],
                                  Content={"ZipFile": zeros_zip("python/blob.bin", 262_144_001)})
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Unzipped size must be smaller than 262144000 bytes" in str(err.value)


def test_code_and_layers_over_250_mb_together_are_refused_as_on_aws(lam, role_arn):
    half = [lam.publish_layer_version(
        LayerName=f"half-{i}", CompatibleRuntimes=["python3.11"],
        Content={"ZipFile": zeros_zip(f"python/half{i}.bin", 131_072_000)})["LayerVersionArn"]
        for i in range(2)]
    code = {"ZipFile": zip_source({"app.py": USES_LAYER})}
    with pytest.raises(ClientError) as err:
        lam.create_function(FunctionName="too-big-together", Runtime="python3.11", Role=role_arn,
                            Handler="app.handler", Code=code, Layers=half)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Function code combined with layers exceeds the maximum allowed size of 262144000" in str(err.value)
    with pytest.raises(ClientError):
        lam.get_function(FunctionName="too-big-together")  # nothing was created
    lam.create_function(FunctionName="fits", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler", Code=code, Layers=half[:1])
    with pytest.raises(ClientError, match="combined with layers"):
        lam.update_function_configuration(FunctionName="fits", Layers=half)
    assert [layer["Arn"] for layer in lam.get_function_configuration(FunctionName="fits")["Layers"]] == half[:1]


def test_an_inline_zip_over_50_mb_is_refused_as_on_aws(lam):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("python/noise.bin", random.Random(7).randbytes(52_500_000))
    with pytest.raises(ClientError) as err:
        lam.publish_layer_version(LayerName="too-big-inline", Content={"ZipFile": buffer.getvalue()})
    assert err.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert "for the PublishLayerVersion operation" in str(err.value)


def native_layer_zip() -> bytes:
    return zip_source({"python/fastthing/__init__.py": "VALUE = 42\n",
                       "python/fastthing/_speedups.cpython-311-aarch64-linux-gnu.so": "not really ELF"})


def test_an_arm64_function_runs_pure_python_but_refuses_foreign_native_code(lam, role_arn):
    from airflow_provider_smr.local.runtime.sandbox import host_architecture

    other = "arm64" if host_architecture() == "x86_64" else "x86_64"
    lam.create_function(FunctionName="pure-other-arch", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler", Architectures=[other],
                        Code={"ZipFile": zip_source({"app.py": "def handler(e, c):\n    return 'pure'\n"})})
    response = lam.invoke(FunctionName="pure-other-arch", Payload=b"{}")
    assert "FunctionError" not in response and read_payload(response) == "pure"

    layer = lam.publish_layer_version(LayerName="native-other-arch", Content={"ZipFile": native_layer_zip()})
    lam.create_function(FunctionName="native-other-arch", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler", Architectures=[other], Layers=[layer["LayerVersionArn"]],
                        Code={"ZipFile": zip_source({"app.py": "import fastthing\n\ndef handler(e, c):\n"
                                                               "    return fastthing.VALUE\n"})})
    response = lam.invoke(FunctionName="native-other-arch", Payload=b"{}")
    assert response.get("FunctionError") == "Unhandled"
    error = read_payload(response)
    assert f"{other} function" in error["errorMessage"] and "_speedups" in error["errorMessage"]
    assert f"architecture='{host_architecture()}'" in error["errorMessage"]


def test_a_stack_function_gets_its_architectures(local_stack, lam, role_arn):
    template = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": "cfn-arm64", "Runtime": "python3.11", "Handler": "index.handler",
        "Role": role_arn, "Code": {"ZipFile": USES_LAYER}, "Architectures": ["arm64"]}}}}
    local_stack.client("cloudformation").create_stack(StackName="smr-local-arch",
                                                      TemplateBody=json.dumps(template))
    assert lam.get_function_configuration(FunctionName="cfn-arm64")["Architectures"] == ["arm64"]
