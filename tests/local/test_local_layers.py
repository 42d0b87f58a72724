"""Lambda layers: each layer's ``python/`` folder is importable by the handler, as under /opt."""

from __future__ import annotations

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
    import json

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
