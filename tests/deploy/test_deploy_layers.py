"""Layers: a user layer and ``requirements`` layers (native code included) on the local stack."""

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


def test_a_requirement_with_native_code_becomes_a_layer_of_lambda_platform_wheels(monkeypatch):
    wheels = reqs.layer_wheels(["markupsafe==3.0.2"], "3.11")
    assert len(wheels) == 1 and wheels[0].startswith("MarkupSafe-3.0.2-cp311-cp311-")
    assert "manylinux2014_x86_64" in reqs.wheel_platforms(wheels[0])
    assert (reqs.wheel_cache_dir() / wheels[0]).exists()
    with monkeypatch.context() as offline:  # the next build takes it from the cache, no index
        for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
                            "PIP_RETRIES": "0", "PIP_TIMEOUT": "1"}.items():
            offline.setenv(name, value)
        assert reqs.layer_wheels(["markupsafe==3.0.2"], "3.11") == wheels
    _digest, data = reqs.build_layer(["markupsafe==3.0.2"], "3.11")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "python/markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so" in names


def test_arm64_picks_aarch64_wheels():
    wheels = reqs.layer_wheels(["markupsafe==3.0.2", "six==1.17.0"], "3.11", architecture="arm64")
    platforms = {w.split("-")[0]: reqs.wheel_platforms(w) for w in wheels}
    assert "manylinux2014_aarch64" in platforms["MarkupSafe"]
    assert not any("x86_64" in tag for tag in platforms["MarkupSafe"])
    assert platforms["six"] == ["any"]
    reqs.check_platform(wheels, "arm64")
    with pytest.raises(reqs.NoLambdaWheelError, match="manylinux2014_x86_64"):
        reqs.check_platform(wheels, "x86_64")
    x86 = reqs.requirements_hash(["markupsafe==3.0.2"], "3.11")
    assert reqs.requirements_hash(["markupsafe==3.0.2"], "3.11", "arm64") != x86  # cached apart


def test_a_package_without_a_lambda_wheel_is_refused_naming_it_and_the_platform():
    # docopt 0.6.2 is published only as a source distribution.
    with pytest.raises(reqs.NoLambdaWheelError) as err:
        reqs.build_layer(["docopt==0.6.2"], "3.11", architecture="arm64")
    message = str(err.value)
    assert "docopt==0.6.2" in message and "manylinux2014_aarch64" in message
    assert "CPython 3.11" in message and "layers=[arn]" in message


def test_a_layer_over_lambdas_unzipped_limit_is_refused_naming_its_largest_parts(tmp_path):
    wheel = tmp_path / "big-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("big/__init__.py", "")
        z.writestr("big/blob.bin", b"\0" * 300_000)
        z.writestr("big-1.0.dist-info/METADATA", "Name: big\n")
    with pytest.raises(reqs.LayerTooLargeError) as err:
        reqs.layer_zip(str(tmp_path), [wheel.name], limit=250_000)
    assert "over Lambda's limit of 250,000 bytes" in str(err.value) and "big 0.3 MB" in str(err.value)
    data = reqs.layer_zip(str(tmp_path), [wheel.name], limit=400_000)
    assert reqs.unzipped_sizes(data)["big"] == 300_000
    # The function's code counts too (what deploy checks before publishing anything).
    with pytest.raises(reqs.LayerTooLargeError, match="SMR's function code"):
        reqs.check_unzipped_size({**reqs.unzipped_sizes(data), "SMR's function code": 200_000},
                                 limit=400_000)
    assert reqs.UNZIPPED_LIMIT == 262_144_000 and reqs.DIRECT_UPLOAD_LIMIT == 52_428_800


def test_a_pure_python_layer_holds_the_package_under_python_and_is_cached():
    digest, data = reqs.build_layer(["six==1.17.0"], "3.11")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "python/six.py" in names
    assert reqs.build_layer(["six==1.17.0 "], "3.11") == (digest, data)  # from the cache
    assert (reqs.cache_dir() / f"{digest}.zip").exists()


def test_an_unknown_requirement_is_refused_naming_it():
    name = f"smr-no-such-package-{uuid.uuid4().hex[:6]}"
    with pytest.raises(reqs.RequirementsError, match=f"{name}==0.0.1"):
        reqs.build_layer([f"{name}==0.0.1"], "3.11")


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


def test_a_job_imports_numpy_from_requirements_on_the_local_stack(aws_endpoint, aws_clients, monkeypatch):
    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.engine.runner import JobRunner

    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    settings = StackSettings(memory_mb=512, timeout_s=60, requirements=["numpy==2.2.6"])
    stack = deploy_stack(clients, "smr-numpy", settings, input_buckets=[DATA], output_buckets=[DATA])

    def no_build(*args, **kwargs):
        raise AssertionError("the published layer should have been reused")

    with monkeypatch.context() as fresh_worker:  # another worker, no cache: reuses, builds nothing
        fresh_worker.setattr(reqs, "build_layer", no_build)
        again = deploy_stack(clients, "smr-numpy", settings, input_buckets=[DATA], output_buckets=[DATA])
    assert again.content_hash == stack.content_hash
    from airflow_provider_smr.deploy.artifacts import artifacts_bucket_name

    bucket = artifacts_bucket_name(clients.sts.get_caller_identity()["Account"], clients.region_name)
    layer = clients.s3.list_objects_v2(Bucket=bucket, Prefix=reqs.LAYER_KEY_PREFIX)
    assert layer.get("KeyCount"), "the layer goes through the artifacts bucket"

    def mapper(line):
        import numpy as np  # from the layer: the handler's sandbox has no numpy of its own

        values = np.array([float(v) for v in line.split()])
        yield "stats", (float(values.sum()), int(values.size), np.__version__, np.__file__)

    def reducer(key, values):
        values = list(values)
        total, count = sum(v[0] for v in values), sum(v[1] for v in values)
        yield key, {"mean": total / count, "numpy": sorted({v[2] for v in values}),
                    "paths": sorted({v[3] for v in values})}

    clients.s3.put_object(Bucket=DATA, Key="numpy/in.txt", Body=b"1 2 3\n4 5\n6\n")
    result = JobRunner(clients, stack).run(
        MapReduceJob(mapper=mapper, reducer=reducer, name="numpy-mean"),
        input=f"s3://{DATA}/numpy/in.txt", output=f"s3://{DATA}/numpy-out/{uuid.uuid4().hex[:8]}/",
        poll_interval=0.25, timeout=300)
    bucket, key = result["parts"][0][5:].split("/", 1)
    got = json.loads(clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read())["value"]
    assert got["mean"] == 3.5 and got["numpy"] == ["2.2.6"]
    assert all(p.endswith("/python/numpy/__init__.py") and "site-packages" not in p
               for p in got["paths"])


def test_architecture_is_checked_where_it_is_given():
    from lambda_handlers.options import OptionError

    with pytest.raises(OptionError, match="architecture must be 'x86_64' or 'arm64', got 'aarch64'"):
        StackSettings(architecture="aarch64")
    with pytest.raises(reqs.RequirementsError, match="architecture"):
        reqs.platform_tag("sparc")


def test_an_arm64_stack_runs_pure_python_jobs_locally_and_prices_them_as_arm64(aws_endpoint, aws_clients):
    from airflow_provider_smr.cost import ARM64_PRICES, estimate_cost_usd
    from airflow_provider_smr.deploy import deploy_stack, describe_stack
    from airflow_provider_smr.engine.runner import JobRunner

    clients = aws_clients(aws_endpoint)
    clients.s3.create_bucket(Bucket=DATA)
    stack = deploy_stack(clients, "smr-arm64", StackSettings(memory_mb=512, timeout_s=60, architecture="arm64"),
                         input_buckets=[DATA], output_buckets=[DATA])
    assert stack.architecture == "arm64" == describe_stack(clients, "smr-arm64").architecture
    for function in stack.functions.values():
        assert clients.lambda_.get_function_configuration(FunctionName=function)["Architectures"] == ["arm64"]

    clients.s3.put_object(Bucket=DATA, Key="arm64/in.txt", Body=b"a b a\nc a\n")
    job = MapReduceJob(mapper=lambda line: [(w, 1) for w in line.split()],
                       reducer=lambda k, vs: [(k, sum(vs))], name="arm64-count")
    result = JobRunner(clients, stack).run(job, input=f"s3://{DATA}/arm64/in.txt",
                                           output=f"s3://{DATA}/arm64-out/{uuid.uuid4().hex[:8]}/",
                                           poll_interval=0.25, timeout=300)
    lines = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        lines += clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    assert {json.loads(line)["key"]: json.loads(line)["value"] for line in lines} == {"a": 3, "b": 1, "c": 1}
    arm = estimate_cost_usd(result["lambda_gb_seconds"], result["requests"]["lambda_invokes"],
                            result["requests"]["s3"], ARM64_PRICES)
    assert result["estimated_cost_usd"] == pytest.approx(arm, abs=1e-7)


def test_five_layers_leave_no_room_for_requirements_and_say_so_before_building(aws_endpoint, aws_clients):
    from airflow_provider_smr.deploy import deploy_stack
    from airflow_provider_smr.deploy.errors import StackSettingsError

    layers = [f"arn:aws:lambda:us-east-1:123456789012:layer:l{i}:1" for i in range(5)]
    with pytest.raises(StackSettingsError, match="at most 5 per function and requirements adds one"):
        deploy_stack(aws_clients(aws_endpoint), "smr-six-layers",
                     StackSettings(layers=layers, requirements=["smr-never-downloaded==1.0"]))
