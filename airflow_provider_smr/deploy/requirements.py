"""Build a Lambda layer from ``requirements=[...]`` out of wheels for Lambda's platform.

Packages with native code (``numpy``, ``pyarrow``, ``lxml``, ...) are welcome: the layer is built
from the wheels Lambda's platform takes, never from what is installed on the worker.

How the wheels are chosen. ``pip download --only-binary=:all: --platform manylinux2014_<arch>
--python-version X.Y --implementation cp`` resolves the requirements (and their dependencies) as if
pip ran on Lambda: ``<arch>`` is ``x86_64`` or ``aarch64`` after the stack's ``architecture``, ``X.Y``
the stack's runtime (the worker's Python, see ``deploy.template.worker_runtime``). Lambda's
``python3.11`` runs on Amazon Linux 2 (glibc 2.26), so ``manylinux2014`` (glibc 2.17) wheels load
there. Only wheels: a source distribution would have to be compiled, and compiling here would make
code for this machine, not for Lambda. A requirement without such a wheel (only an sdist, no build
for the platform or Python, or no such package) is refused by :class:`NoLambdaWheelError` naming it
and the platform. Every wheel pip picked is checked again (:func:`check_platform`).

Why ``pip download`` and not ``aws-lambda-builders`` (the builder behind ``sam build``). Its
``python_pip`` workflow (a port of Chalice's packager) first resolves for the host, then swaps
incompatible wheels for ``manylinux`` ones and compiles sdists locally, keeping them only when they
turn out pure; it also wants a ``pythonX.Y`` of the target version on ``PATH`` and writes a folder,
not a layer. What we need is narrower and has to be reproducible: one resolution done for the
target platform from the start, wheels only, a clear refusal otherwise, a deterministic zip we can
hash. That is exactly ``pip download --only-binary=:all: --platform``, with no new dependency (pip
comes with every virtualenv) and the same behaviour on a laptop, a worker and CI.

Caches (under ``$SMR_CACHE_DIR`` or ``~/.cache/smr``): ``wheels/`` keeps every downloaded wheel and
is tried first offline (``--no-index --find-links``), so a repeated build does not download again;
``layers/<hash>.zip`` keeps each built layer by the hash of the sorted requirements, the Python
version and the platform. An unpinned requirement therefore stays at the version first fetched:
pin versions, or clear the cache, to move. A deploy first looks for a published layer version
whose description carries that hash, and builds nothing when there is one.

The layer. The wheels are unpacked under ``python/`` (Lambda puts ``/opt/python`` on ``sys.path``)
as ``pip install`` would place them (``*.data/purelib`` and ``platlib`` merged, scripts and headers
dropped), into a deterministic zip (sorted names, fixed times, modes kept).

Limits (Lambda quotas, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
the function's code and all its layers unzipped must stay within 250 MB (262,144,000 bytes), checked
here before anything is published (:func:`check_unzipped_size`), and a zip sent inline in the API
request may be at most 50 MB (52,428,800 bytes). So the layer travels through S3: it is put in the
artifacts bucket under ``smr/layers/<hash>.zip`` and published from there (``Content={"S3Bucket",
"S3Key"}``), which is how large layers go on AWS. The local stack enforces the same limits.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> the wheel tags' machine
#: Lambda's limit on a function's code and its layers together, unzipped (250 MB).
UNZIPPED_LIMIT = 262_144_000
#: Lambda's limit on a zip sent inline in a CreateFunction / PublishLayerVersion request (50 MB).
DIRECT_UPLOAD_LIMIT = 52_428_800
LAYER_KEY_PREFIX = "smr/layers/"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_DATA_DIR = re.compile(r"^[^/]+\.data/(purelib|platlib)/(.+)$")
_SKIPPED_DATA = re.compile(r"^[^/]+\.data/")


class RequirementsError(RuntimeError):
    """The requirements could not be turned into a layer."""


class NoLambdaWheelError(RequirementsError):
    """A requirement has no wheel for Lambda's platform (only an sdist, or not for this platform)."""


class LayerTooLargeError(RequirementsError):
    """The function code with its layers would unzip to more than Lambda allows."""


def _cache_root() -> Path:
    from airflow_provider_smr.engine.aws import cache_root

    return Path(cache_root())


def cache_dir() -> Path:
    """Where built layers are kept, by hash."""
    return _cache_root() / "layers"


def wheel_cache_dir() -> Path:
    """Where downloaded wheels are kept (shared by every platform: the tags tell them apart)."""
    return _cache_root() / "wheels"


def platform_tag(architecture: str = "x86_64") -> str:
    """The ``manylinux2014`` platform tag of a Lambda architecture (``x86_64`` or ``arm64``)."""
    try:
        return f"manylinux2014_{ARCHITECTURES[architecture]}"
    except KeyError:
        raise RequirementsError(f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                                f"got {architecture!r}") from None


def requirements_hash(requirements: Iterable[str], python: str, architecture: str = "x86_64") -> str:
    text = "\n".join(sorted(r.strip() for r in requirements)) + f"\n{python}\n{platform_tag(architecture)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def wheel_platforms(filename: str) -> list[str]:
    """The platform tags of a wheel file name (``name-ver[-build]-py-abi-plat1.plat2.whl``)."""
    return filename[: -len(".whl")].split("-")[-1].split(".")


def wheel_platform(filename: str) -> str:
    """The (possibly compressed, dot-joined) platform tag of a wheel file name."""
    return ".".join(wheel_platforms(filename))


def check_platform(wheels: Iterable[str], architecture: str = "x86_64") -> None:
    """Refuse a wheel Lambda's platform of ``architecture`` cannot load (pure ``any`` or manylinux)."""
    machine = ARCHITECTURES[architecture]
    wrong = sorted(w for w in wheels if not any(
        tag == "any" or (tag.startswith("manylinux") and tag.endswith("_" + machine))
        for tag in wheel_platforms(w)))
    if wrong:
        raise NoLambdaWheelError(f"wheels not built for Lambda's {platform_tag(architecture)}: "
                                 f"{', '.join(wrong)}")


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def _refusal(requirements: list[str], python: str, platform: str, stderr: str) -> RequirementsError:
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    missing = re.findall(r"No matching distribution found for (\S+)", stderr)
    if missing:
        names = ", ".join(sorted(set(missing)))
        return NoLambdaWheelError(
            f"requirements: pip could not download a wheel of {names} for Lambda's platform "
            f"({platform}, CPython {python}): the package publishes only a source distribution, "
            f"has no build for this platform or Python version, or does not exist. SMR builds "
            f"layers from wheels only (compiling here would target this machine, not Lambda): "
            f"pick a version with such a wheel, or build a layer yourself (e.g. in the Lambda "
            f"build image) and pass layers=[arn].\npip said:\n{tail}")
    return RequirementsError(f"requirements: pip could not download wheels of {requirements} for "
                             f"Lambda ({platform}, CPython {python}):\n{tail}")


def download_wheels(requirements: list[str], python: str, dest: str,
                    architecture: str = "x86_64") -> list[str]:
    """The wheel files (names in ``dest``) that make up ``requirements`` on Lambda's platform.

    Tried offline from the wheel cache first; on a miss the wheels are downloaded into the cache
    (pip skips files already there) and taken from it.
    """
    platform = platform_tag(architecture)
    cache = wheel_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = ["--only-binary=:all:", "--platform", platform, "--python-version", python,
              "--implementation", "cp"]
    offline = ["--quiet", *target, "--no-index", "--find-links", str(cache), "-d", dest, *requirements]
    if _pip(offline).returncode != 0:
        log.info("downloading wheels of %s for %s, Python %s", requirements, platform, python)
        online = _pip(["--quiet", *target, "-d", str(cache), *requirements])
        if online.returncode != 0:
            raise _refusal(requirements, python, platform, online.stderr)
        second = _pip(offline)
        if second.returncode != 0:
            raise _refusal(requirements, python, platform, second.stderr)
    return sorted(f for f in os.listdir(dest) if f.endswith(".whl"))


def _layer_members(wheel_dir: str, wheels: list[str]) -> dict[str, tuple[str, zipfile.ZipInfo]]:
    """Layer path -> (wheel, member), laid out as ``pip install`` would under ``python/``."""
    members: dict[str, tuple[str, zipfile.ZipInfo]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(os.path.join(wheel_dir, wheel)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                data_dir = _DATA_DIR.match(name)
                if data_dir:
                    name = data_dir.group(2)
                elif _SKIPPED_DATA.match(name):
                    continue  # scripts, headers, data: not importable, not needed by a handler
                members["python/" + name] = (wheel, info)
    return members


def layer_zip(wheel_dir: str, wheels: list[str], limit: int = UNZIPPED_LIMIT) -> bytes:
    """The wheels unpacked under ``python/``, deterministic (sorted names, fixed times).

    Refused with :class:`LayerTooLargeError` before anything is compressed when the files alone
    exceed ``limit``.
    """
    members = _layer_members(wheel_dir, wheels)
    sizes: Counter[str] = Counter()
    for path, (_wheel, info) in members.items():
        sizes[top_level(path)] += info.file_size
    check_unzipped_size(dict(sizes), limit, what="the requirements layer")
    buf = io.BytesIO()
    archives: dict[str, zipfile.ZipFile] = {}
    try:
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(members):
                wheel, info = members[path]
                if wheel not in archives:
                    archives[wheel] = zipfile.ZipFile(os.path.join(wheel_dir, wheel))
                entry = zipfile.ZipInfo(path, _FIXED_TIME)
                entry.create_system = 3  # Unix, so the mode below is read as one everywhere
                mode = (info.external_attr >> 16) & 0o777
                entry.external_attr = (0o100000 | (0o755 if mode & 0o111 else 0o644)) << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(entry, archives[wheel].read(info))
    finally:
        for archive in archives.values():
            archive.close()
    return buf.getvalue()


def top_level(path: str) -> str:
    """What a layer file belongs to, for size reports: ``python/numpy/core/x.so`` -> ``numpy``."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "python" else parts[0]


def unzipped_sizes(zip_bytes: bytes, prefix: str = "") -> dict[str, int]:
    """Unzipped bytes of a zip's files, by what they belong to (see :func:`top_level`)."""
    sizes: Counter[str] = Counter()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for info in archive.infolist():
            sizes[prefix + top_level(info.filename)] += info.file_size
    return dict(sizes)


def check_unzipped_size(parts: Mapping[str, int], limit: int = UNZIPPED_LIMIT, *,
                        what: str = "the function code with its layers") -> None:
    """Raise :class:`LayerTooLargeError` when ``parts`` (name -> unzipped bytes) exceed ``limit``.

    The message gives the total, the limit and the largest parts, so the user knows what to drop.
    """
    total = sum(parts.values())
    if total <= limit:
        return
    largest = sorted(parts.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
    listed = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in largest)
    raise LayerTooLargeError(
        f"requirements: {what} would unzip to {total:,} bytes, over Lambda's limit of {limit:,} "
        f"bytes (250 MB for a function's code and all its layers together). Largest: {listed}. "
        "Drop requirements the job does not import, or split the work across stacks.")


def build_layer(requirements: Iterable[str], python: str | None = None, *,
                architecture: str = "x86_64") -> tuple[str, bytes]:
    """``(hash, zip bytes)`` of a layer holding ``requirements`` for Lambda (cached by hash)."""
    reqs = sorted({r.strip() for r in requirements if r and r.strip()})
    if not reqs:
        raise RequirementsError("requirements is empty")
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    digest = requirements_hash(reqs, python, architecture)
    cached = cache_dir() / f"{digest}.zip"
    if cached.exists():
        return digest, cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="smr-wheels-") as tmp:
        wheels = download_wheels(reqs, python, tmp, architecture)
        check_platform(wheels, architecture)
        data = layer_zip(tmp, wheels)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(cached)
    return digest, data


def layer_wheels(requirements: Iterable[str], python: str | None = None, *,
                 architecture: str = "x86_64") -> list[str]:
    """The wheel file names a layer of ``requirements`` is built from (resolved, not cached)."""
    reqs = sorted({r.strip() for r in requirements if r and r.strip()})
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    with tempfile.TemporaryDirectory(prefix="smr-wheels-") as tmp:
        return download_wheels(reqs, python, tmp, architecture)


def publish_layer(lambda_client: Any, stack_name: str, requirements: Iterable[str],
                  python: str | None = None, *, architecture: str = "x86_64",
                  function_code: bytes = b"", s3: Any = None, bucket: str | None = None,
                  region: str = "us-east-1") -> str:
    """Build (or reuse) the requirements layer and publish it; return the layer version ARN.

    ``function_code`` (the function's zip) counts towards the 250 MB with the layer. With ``s3``
    and ``bucket`` the layer is uploaded to ``smr/layers/<hash>.zip`` there and published from S3
    (needed above 50 MB); otherwise it is sent inline, which Lambda refuses above 50 MB.
    """
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    reqs = sorted({r.strip() for r in requirements if r and r.strip()})
    name = f"{stack_name}-requirements"
    # Published already (by this worker or another): nothing to build, download or upload. The
    # hash names the requirements, Python and platform, so it is known before building.
    wanted = requirements_hash(reqs, python, architecture)
    try:
        for version in lambda_client.list_layer_versions(LayerName=name).get("LayerVersions", []):
            if wanted in (version.get("Description") or ""):
                return version["LayerVersionArn"]
    except Exception:  # noqa: BLE001 - a missing layer lists as an error on some endpoints
        pass
    digest, data = build_layer(reqs, python, architecture=architecture)
    sizes = unzipped_sizes(data)
    if function_code:
        sizes["SMR's function code"] = sum(unzipped_sizes(function_code).values())
    check_unzipped_size(sizes)
    content: dict[str, Any]
    if s3 is not None and bucket:
        from airflow_provider_smr.deploy import artifacts

        key = f"{LAYER_KEY_PREFIX}{digest}.zip"
        artifacts.ensure_bucket(s3, bucket, region)
        artifacts.upload_code(s3, bucket, key, data)
        content = {"S3Bucket": bucket, "S3Key": key}
    elif len(data) > DIRECT_UPLOAD_LIMIT:
        raise LayerTooLargeError(
            f"requirements: the layer zip is {len(data):,} bytes, over Lambda's {DIRECT_UPLOAD_LIMIT:,}"
            "-byte limit for a zip sent inline; publish it from S3 (give an artifacts bucket)")
    else:
        content = {"ZipFile": data}
    resp = lambda_client.publish_layer_version(
        LayerName=name, Description=f"smr requirements {digest}", Content=content,
        CompatibleRuntimes=[f"python{python}"], CompatibleArchitectures=[architecture])
    return resp["LayerVersionArn"]
