"""What a handler's process may see: its unzipped code and a site folder like Lambda's runtime."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import platform
import shutil
import threading
import zipfile
from pathlib import Path

# What AWS Lambda's Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


class BrokenZipError(Exception):
    """The function's deployment package is not a readable zip file."""


def build_site_dir(root: Path) -> Path:
    """Make ``root/site`` hold links to the runtime packages installed in this interpreter."""
    site = root / "site"
    site.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"the local stack needs {name} installed to offer Lambda's runtime")
        source = Path(spec.origin)
        if spec.submodule_search_locations:
            source = source.parent
        link = site / source.name
        if not link.exists():
            link.symlink_to(source)
    return site


class CodeCache:
    """Unzip each distinct deployment package once, keyed by its content hash."""

    def __init__(self, root: Path):
        self.root = root / "code"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def task_root(self, zip_bytes: bytes, sha256: str = "") -> str:
        """The folder ``zip_bytes`` is unzipped in; ``sha256`` (Lambda's ``CodeSha256`` of the
        zip, when known) saves hashing a large layer again at every cold start."""
        source = sha256.encode() if sha256 else zip_bytes
        digest = hashlib.sha256(source).hexdigest()[:32]
        target = self.root / digest
        with self._lock:
            if not target.exists():
                self._unzip(zip_bytes, target)
        return str(target)

    def _unzip(self, zip_bytes: bytes, target: Path) -> None:
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
                archive.extractall(staging)
                for info in archive.infolist():  # keep executable bits like Lambda does
                    mode = info.external_attr >> 16
                    if mode & 0o111 and not info.is_dir():
                        os.chmod(staging / info.filename, mode & 0o777)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokenZipError(f"could not unzip the deployment package: {exc}") from None
        staging.rename(target)


def host_architecture() -> str:
    """This machine's CPU in Lambda's words: ``x86_64`` or ``arm64``."""
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else machine


def native_files(zip_bytes: bytes, limit: int = 3) -> list[str]:
    """Up to ``limit`` compiled extension / shared library files (``*.so``) in a zip."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            for name in archive.namelist():
                base = name.rsplit("/", 1)[-1]
                if base.endswith(".so") or ".so." in base:
                    found.append(name)
                    if len(found) >= limit:
                        break
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        return []
    return found


def is_valid_zip(zip_bytes: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        return False
