"""The Lambda deployment package: a deterministic zip of ``lambda_handlers`` plus vendored cloudpickle.

Same sources give the same bytes and so the same sha256, which is what makes deploys idempotent
(the code hash is part of the stack's content hash and of the artifact's S3 key). Entries are
sorted, timestamps fixed at 1980-01-01, permissions fixed at 0644, and only ``.py`` files are
packed (no ``__pycache__``, no editor droppings).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

# The earliest timestamp a zip entry can hold; fixed so the bytes do not depend on mtimes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
_UNIX = 3  # zip "create_system" for Unix, so external_attr is read as a mode everywhere


@dataclass(frozen=True)
class LambdaPackage:
    """The zip bytes and their hash.

    :param data: the zip file.
    :param sha256: hex sha256 of ``data`` (used in the artifact key and the stack's content hash).
    """

    data: bytes
    sha256: str

    @property
    def code_sha256_b64(self) -> str:
        """The hash as Lambda reports it (``CodeSha256``: base64 of the raw digest)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def size(self) -> int:
        return len(self.data)


def handlers_source_dir() -> Path:
    """Where the installed ``lambda_handlers`` package lives."""
    import lambda_handlers

    return Path(lambda_handlers.__file__).resolve().parent


def cloudpickle_source_dir() -> Path:
    """Where the installed ``cloudpickle`` package lives (vendored into the zip)."""
    import cloudpickle

    return Path(cloudpickle.__file__).resolve().parent


def _python_sources(package_dir: Path) -> list[tuple[str, Path]]:
    """``(archive name, path)`` of every ``.py`` file under ``package_dir``, sorted by name."""
    root = package_dir.parent
    found = []
    for path in package_dir.rglob("*.py"):
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts or not path.is_file():
            continue
        found.append((relative.as_posix(), path))
    return sorted(found)


def _fingerprint(package_dirs: tuple[Path, ...]) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes: cheap to compute, changes whenever a source file does."""
    entries = []
    for package_dir in package_dirs:
        for name, path in _python_sources(package_dir):
            stat = path.stat()
            entries.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def build_zip(package_dirs: tuple[Path, ...]) -> LambdaPackage:
    """Zip the ``.py`` files of ``package_dirs`` (each packed under its own name) deterministically."""
    sources = sorted(entry for package_dir in package_dirs for entry in _python_sources(package_dir))
    names = [name for name, _ in sources]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate entries in the Lambda package: {sorted(names)}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in sources:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    data = buffer.getvalue()
    return LambdaPackage(data=data, sha256=hashlib.sha256(data).hexdigest())


@functools.lru_cache(maxsize=8)
def _cached_build(package_dirs: tuple[Path, ...], fingerprint: tuple) -> LambdaPackage:
    # ``fingerprint`` is only part of the cache key: an edited source file makes a new entry.
    return build_zip(package_dirs)


def lambda_package(handlers_dir: Path | None = None, cloudpickle_dir: Path | None = None) -> LambdaPackage:
    """The Lambda zip for this installation, built once per process (rebuilt if a source changes).

    :param handlers_dir: the ``lambda_handlers`` package directory (default: the installed one).
    :param cloudpickle_dir: the ``cloudpickle`` package directory to vendor (default: installed).
    """
    dirs = (Path(handlers_dir or handlers_source_dir()).resolve(),
            Path(cloudpickle_dir or cloudpickle_source_dir()).resolve())
    return _cached_build(dirs, _fingerprint(dirs))
