"""What a handler's process may see: its unzipped code and a site folder like Lambda's runtime."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import platform
import shutil
import sys
import tempfile
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
    """Unzip each distinct deployment package once, keyed by its content hash.

    :param root: the stack's folder (packages go to ``root/code``).
    :param bytecode: where a function's compiled package is kept between stacks (None: its
        workers compile what they import, as before).
    """

    def __init__(self, root: Path, bytecode: Bytecode | None = None):
        self.root = root / "code"
        self.root.mkdir(parents=True, exist_ok=True)
        self.bytecode = bytecode
        self._lock = threading.Lock()

    def task_root(self, zip_bytes: bytes, sha256: str = "", compiled: bool = False) -> str:
        """The folder ``zip_bytes`` is unzipped in; ``sha256`` (Lambda's ``CodeSha256`` of the
        zip, when known) saves hashing a large layer again at every cold start. ``compiled``:
        with the bytecode of its modules (:class:`Bytecode`), before any worker imports them."""
        source = sha256.encode() if sha256 else zip_bytes
        digest = hashlib.sha256(source).hexdigest()[:32]
        target = self.root / digest
        with self._lock:
            if not target.exists():
                self._unzip(zip_bytes, target, digest if compiled else None)
        return str(target)

    def _unzip(self, zip_bytes: bytes, target: Path, bytecode_key: str | None) -> None:
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
        if self.bytecode is not None and bytecode_key is not None:
            self.bytecode.install(staging, bytecode_key)
        staging.rename(target)


class Bytecode:
    """The compiled modules of functions' packages, kept between local stacks.

    Every new local stack unzips a function's package afresh, and its first workers compiled
    every module they imported (the SMR handlers' ~40: ~0.15 s of CPU of a mapper's cold start
    here, in each ``smr run --local``). The bytecode depends only on the package's bytes and
    this Python, so it is compiled once per package (named by the zip's hash) and copied into
    each new unzipped package. The ``.pyc`` files are checked-hash ones (PEP 552): Python uses
    one only while the source beside it has the hash it was compiled from, so they never stand
    for other code. A module that does not compile is left to its worker, which raises as it
    would have (``Runtime.UserCodeSyntaxError``). At most :attr:`MAX_PACKAGES` are kept (the
    least recently used go first).

    :param folder: where to keep them (one subfolder per Python and package).
    """

    MAX_PACKAGES = 16

    def __init__(self, folder: str | Path):
        self.folder = Path(folder) / (sys.implementation.cache_tag or "python")

    def install(self, tree: Path, key: str) -> None:
        """Give the unzipped package at ``tree`` its bytecode: the kept copy, else compiled
        now and kept. Best effort: on any error the workers compile as usual."""
        kept = self.folder / key
        try:
            if kept.is_dir():
                shutil.copytree(kept, tree, dirs_exist_ok=True)
                os.utime(kept)
                return
        except OSError:  # e.g. evicted meanwhile: what was copied is valid, the rest is compiled
            pass
        import compileall
        import py_compile

        compileall.compile_dir(str(tree), quiet=2, workers=1,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        self._keep(tree, kept)

    def _keep(self, tree: Path, kept: Path) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.folder, prefix=".new-"))
            for cache in tree.rglob("__pycache__"):
                shutil.copytree(cache, staging / cache.relative_to(tree))
            try:
                staging.rename(kept)
            except OSError:  # another stack kept the same package meanwhile
                shutil.rmtree(staging, ignore_errors=True)
            self._evict()
        except OSError:
            pass

    def _evict(self) -> None:
        entries = sorted((p for p in self.folder.iterdir() if not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[self.MAX_PACKAGES:]:
            shutil.rmtree(old, ignore_errors=True)


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
