"""Build a Lambda layer from ``requirements=[...]``: pure-Python wheels only, cached by content hash.

``pip download --only-binary=:all: --platform manylinux2014_x86_64 --python-version X.Y`` fetches
the wheels Lambda's platform would take; every wheel must be pure Python (platform tag ``any``):
a wheel with native code is refused with :class:`NativeRequirementError` naming it, because a
layer built here cannot be checked against Lambda's system libraries. The wheels are unpacked under
``python/`` (Lambda puts ``/opt/python`` on ``sys.path``) in a deterministic zip, cached under
``~/.cache/smr/layers/<hash>.zip`` by the hash of the sorted requirements and the target Python.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PLATFORM = "manylinux2014_x86_64"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class RequirementsError(RuntimeError):
    """The requirements could not be turned into a layer (pip failed)."""


class NativeRequirementError(RequirementsError):
    """A requirement only exists as a wheel with native code."""


def cache_dir() -> Path:
    return Path(os.environ.get("SMR_CACHE_DIR") or Path.home() / ".cache" / "smr") / "layers"


def requirements_hash(requirements: Iterable[str], python: str) -> str:
    text = "\n".join(sorted(r.strip() for r in requirements)) + f"\n{python}\n{PLATFORM}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def wheel_platform(filename: str) -> str:
    """The platform tag of a wheel file name (``name-ver[-build]-py-abi-plat.whl``)."""
    return filename[: -len(".whl")].split("-")[-1]


def check_pure(wheels: Iterable[str]) -> None:
    native = sorted(w for w in wheels if wheel_platform(w) != "any")
    if native:
        raise NativeRequirementError(
            f"requirements with native code cannot go into a layer built by SMR: {', '.join(native)} "
            f"(platform tag is not 'any'). Use pure-Python packages, or build a layer for Lambda's "
            "platform yourself (e.g. in the Lambda build image) and pass layers=[arn]")


def download_wheels(requirements: list[str], python: str, dest: str) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--platform", PLATFORM, "--python-version", python,
           "--implementation", "cp", "-d", dest, *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RequirementsError(f"pip could not download wheels of {requirements} for Lambda "
                                f"({PLATFORM}, Python {python}); packages without wheels are not "
                                f"supported:\n{tail}")
    return sorted(f for f in os.listdir(dest) if f.endswith(".whl"))


def layer_zip(wheel_dir: str, wheels: list[str]) -> bytes:
    """The wheels unpacked under ``python/``, deterministic (sorted names, fixed times)."""
    files: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(os.path.join(wheel_dir, wheel)) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    files["python/" + info.filename] = archive.read(info)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in sorted(files):
            out.writestr(zipfile.ZipInfo(name, _FIXED_TIME), files[name])
    return buf.getvalue()


def build_layer(requirements: Iterable[str], python: str | None = None) -> tuple[str, bytes]:
    """``(hash, zip bytes)`` of a layer holding ``requirements`` (cached by hash)."""
    reqs = sorted({r.strip() for r in requirements if r and r.strip()})
    if not reqs:
        raise RequirementsError("requirements is empty")
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    digest = requirements_hash(reqs, python)
    cached = cache_dir() / f"{digest}.zip"
    if cached.exists():
        return digest, cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="smr-wheels-") as tmp:
        wheels = download_wheels(reqs, python, tmp)
        check_pure(wheels)
        data = layer_zip(tmp, wheels)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".tmp")
    partial.write_bytes(data)
    partial.replace(cached)
    return digest, data


def publish_layer(lambda_client: Any, stack_name: str, requirements: Iterable[str],
                  python: str | None = None) -> str:
    """Build (or reuse) the requirements layer and publish it; return the layer version ARN."""
    digest, data = build_layer(requirements, python)
    name = f"{stack_name}-requirements"
    try:
        for version in lambda_client.list_layer_versions(LayerName=name).get("LayerVersions", []):
            if digest in (version.get("Description") or ""):
                return version["LayerVersionArn"]
    except Exception:  # noqa: BLE001 - a missing layer lists as an error on some endpoints
        pass
    runtime = f"python{python or f'{sys.version_info[0]}.{sys.version_info[1]}'}"
    resp = lambda_client.publish_layer_version(
        LayerName=name, Description=f"smr requirements {digest}", Content={"ZipFile": data},
        CompatibleRuntimes=[runtime])
    return resp["LayerVersionArn"]
