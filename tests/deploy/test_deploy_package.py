"""The Lambda zip is deterministic, contains only sources, and vendors cloudpickle."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile

from airflow_provider_smr.deploy.package import (
    build_zip,
    cloudpickle_source_dir,
    handlers_source_dir,
    lambda_package,
)


def _dirs():
    return (handlers_source_dir(), cloudpickle_source_dir())


def test_two_builds_give_identical_bytes_and_hash():
    first, second = build_zip(_dirs()), build_zip(_dirs())
    assert first.data == second.data
    assert first.sha256 == second.sha256
    assert len(first.sha256) == 64


def test_package_is_built_once_per_process():
    assert lambda_package() is lambda_package()
    assert lambda_package().data == build_zip(_dirs()).data


def test_changing_a_handler_file_changes_the_hash(tmp_path):
    handlers = tmp_path / "lambda_handlers"
    shutil.copytree(handlers_source_dir(), handlers)
    before = lambda_package(handlers_dir=handlers)
    (handlers / "protocol.py").write_text((handlers / "protocol.py").read_text() + "\n# changed\n")
    after = lambda_package(handlers_dir=handlers)
    assert after.sha256 != before.sha256


def test_zip_holds_only_python_sources_with_fixed_times_and_modes(tmp_path):
    handlers = tmp_path / "lambda_handlers"
    shutil.copytree(handlers_source_dir(), handlers)
    (handlers / "__pycache__").mkdir(exist_ok=True)
    (handlers / "__pycache__" / "protocol.cpython-311.pyc").write_bytes(b"junk")
    (handlers / "notes.txt").write_text("not code")
    archive = zipfile.ZipFile(io.BytesIO(build_zip((handlers, cloudpickle_source_dir())).data))
    names = archive.namelist()
    assert names == sorted(names)
    assert "lambda_handlers/protocol.py" in names
    assert "lambda_handlers/__init__.py" in names
    assert "cloudpickle/__init__.py" in names
    assert all(name.endswith(".py") and "__pycache__" not in name for name in names)
    for info in archive.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644


def test_vendored_cloudpickle_imports_from_the_unzipped_package(tmp_path):
    zipfile.ZipFile(io.BytesIO(lambda_package().data)).extractall(tmp_path)
    # -S: no site-packages, so only the unzipped package can provide these modules.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import cloudpickle, lambda_handlers.protocol;"
            "print(cloudpickle.__file__); print(lambda_handlers.protocol.__file__)")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert all(line.startswith(str(tmp_path)) for line in out.stdout.split())


def test_every_handler_the_template_names_is_packed_and_defines_it():
    import ast

    from airflow_provider_smr.deploy.template import FUNCTION_ROLES

    archive = zipfile.ZipFile(io.BytesIO(lambda_package().data))
    for role in FUNCTION_ROLES:
        source = archive.read(f"lambda_handlers/{role}.py").decode()
        functions = {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
        assert "handler" in functions, role
