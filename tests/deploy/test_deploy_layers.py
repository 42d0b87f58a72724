"""Layers: a user layer and a ``requirements`` layer on the local stack; native code refused."""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile

import pytest

from airflow_provider_smr.deploy import requirements as reqs
from airflow_provider_smr.job import MapReduceJob
from lambda_handlers.options import StackSettings

DATA = "smr-layers-data"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def layer_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SMR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "smr-cache"))


def test_a_requirement_with_native_code_is_refused_with_a_clear_message():
    with pytest.raises(reqs.NativeRequirementError) as err:
        reqs.build_layer(["markupsafe==3.0.2"], "3.11")
    message = str(err.value)
    assert "markupsafe" in message.lower() and "native code" in message and "layers=[arn]" in message


def test_a_pure_python_layer_holds_the_package_under_python_and_is_cached():
    digest, data = reqs.build_layer(["six==1.17.0"], "3.11")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "python/six.py" in names
    assert reqs.build_layer(["six==1.17.0 "], "3.11") == (digest, data)  # from the cache
    assert (reqs.cache_dir() / f"{digest}.zip").exists()


def test_an_unknown_requirement_names_pip_failure():
    with pytest.raises(reqs.RequirementsError, match="could not download"):
        reqs.build_layer([f"smr-no-such-package-{uuid.uuid4().hex[:6]}==0.0.1"], "3.11")


def user_layer_zip(module: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"python/{module}/__init__.py", "def shout(s):\n    return s.upper() + '!'\n")
    return buf.getvalue()


def test_a_job_uses_a_user_layer_a_requirements_layer_and_a_shipped_helper_package(
        aws_endpoint, aws_clients, tmp_path, monkeypatch):
    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.engine.runner import JobRunner

    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    layer_module = f"smr_layer_{uuid.uuid4().hex[:6]}"
    user_arn = clients.lambda_.publish_layer_version(
        LayerName="smr-test-user-layer", Content={"ZipFile": user_layer_zip(layer_module)},
        CompatibleRuntimes=["python3.11"])["LayerVersionArn"]
    stack = deploy_stack(clients, "smr-layers",
        StackSettings(memory_mb=512, timeout_s=60, layers=[user_arn], requirements=["six==1.17.0"]),
        input_buckets=[DATA], output_buckets=[DATA])

    helper = f"smr_helper_{uuid.uuid4().hex[:6]}"
    (tmp_path / helper).mkdir()
    (tmp_path / helper / "__init__.py").write_text("def key(word):\n    return word[:1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ns: dict = {}
    exec(textwrap.dedent(f"""
        def mapper(line):
            import six, {layer_module}, {helper}
            return [({helper}.key(w), {layer_module}.shout(six.ensure_str(w))) for w in line.split()]
    """), ns)
    job = MapReduceJob(mapper=ns["mapper"], reducer=lambda k, vs: [(k, sorted(vs))],
                       extra_modules=[helper], name="layers")
    clients.s3.put_object(Bucket=DATA, Key="in/words.txt", Body=b"apple avocado\nbanana\n")
    result = JobRunner(clients, stack).run(job, input=f"s3://{DATA}/in/words.txt",
                                           output=f"s3://{DATA}/out/{uuid.uuid4().hex[:8]}/",
                                           poll_interval=0.25, timeout=300)
    lines = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        lines += clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    got = {json.loads(line)["key"]: json.loads(line)["value"] for line in lines}
    assert got == {"a": ["APPLE!", "AVOCADO!"], "b": ["BANANA!"]}
