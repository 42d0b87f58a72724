"""Regular expressions compiled once per Python build, not once per ``smr`` process.

Starting ``smr run`` compiles ~150 regular expressions (urllib3's URL grammar, botocore's,
the standard library's), 0.04-0.1 s of a warm run's CPU, the same work in every process.
:func:`install` keeps what ``re`` makes of each pattern (the regex engine's program, its flags
and group names: plain numbers, strings, lists and dicts) in a file in SMR's cache, named by the
exact Python build, and hands it to the engine when the pattern is compiled again; anything not
in the file, or any surprise, compiles as before. The engine checks every program it is given
(as it checks one read from a ``.pyc``), and the file is the user's own, like the bytecode
Python keeps.

A pattern joins the file once a second process has compiled it (the first only notes its digest
in a small ``.seen`` file beside it): some patterns are new in every process (``tokenize``'s,
which ``inspect.signature`` of a builtin compiles, joins string prefixes in the order of a set of
strings, which differs with each process's hash seed), and kept at once, each run rewrote the whole
file (~25 ms of a warm ``smr run``'s CPU) and grew it towards :data:`MAX_ENTRIES` (3.2 MB after
~300 runs, read by every process).
"""

from __future__ import annotations

import atexit
import hashlib
import marshal
import os
import re
import sys
from typing import Any

#: at most this many patterns are kept (a job that makes patterns on the fly adds no more)
MAX_ENTRIES = 2000
#: a pattern longer than this is compiled every time
MAX_PATTERN_CHARS = 10_000
#: digests of patterns compiled by one process only, kept for the next (oldest dropped first)
MAX_SEEN = 1024
#: the file's format (a new one starts a new file: the old one's once-only patterns are left behind)
FORMAT = 2

_Key = tuple[bool, Any, int]  # (bytes pattern, pattern, flags)
_entries: dict[_Key, tuple[Any, ...]] = {}
_added: list[_Key] = []  # compiled here, not in the file
_path: str | None = None


def cache_file(root: str | None = None) -> str | None:
    """Where this Python build's compiled patterns are kept (``regex/`` in SMR's cache); None
    without an absolute cache folder."""
    from airflow_provider_smr.engine.aws import cache_root

    base = root or cache_root()
    if not os.path.isabs(base):
        return None
    build = f"{sys.version}\0{sys.implementation.cache_tag}\0{_engine_magic()}\0{FORMAT}"
    return os.path.join(base, "regex", hashlib.sha256(build.encode()).hexdigest()[:32] + ".marshal")


def _engine_magic() -> Any:
    engine = getattr(getattr(re, "_compiler", None), "_sre", None)
    return getattr(engine, "MAGIC", None), getattr(engine, "CODESIZE", None)


def _supported() -> bool:
    """CPython whose ``re`` compiles through ``re._compiler.compile`` with the parts
    :func:`_compile` repeats (3.11 on)."""
    compiler = getattr(re, "_compiler", None)
    return (sys.implementation.name == "cpython" and compiler is not None
            and all(hasattr(compiler, name) for name in ("compile", "_code", "_parser", "_sre", "isstring")))


def install(root: str | None = None) -> bool:
    """Compile patterns from this build's cache file from now on in this process, and add the
    ones it lacks to it when the process exits; False (nothing changed) when this Python's
    ``re`` is not one this knows, or there is no cache folder."""
    global _path
    if _path is not None:
        return True
    if not _supported():
        return False
    path = cache_file(root)
    if path is None:
        return False
    _path = path
    _entries.update(_read(path))
    original = re._compiler.compile  # type: ignore[attr-defined]

    def compile_pattern(p: Any, flags: int = 0) -> Any:
        if isinstance(p, (str, bytes)) and not flags & re.DEBUG and len(p) <= MAX_PATTERN_CHARS:
            try:
                return _compile(p, flags)
            except Exception:  # noqa: BLE001 - anything unexpected: re's own way, its own errors
                pass
        return original(p, flags)

    re._compiler.compile = compile_pattern  # type: ignore[attr-defined]
    atexit.register(_save)
    return True


def _compile(pattern: str | bytes, flags: int) -> Any:
    """``re._compiler.compile(pattern, flags)``, the program from the cache when it has it."""
    compiler = re._compiler  # type: ignore[attr-defined]
    key: _Key = (isinstance(pattern, bytes), pattern, flags)
    entry = _entries.get(key)
    if entry is None:
        parsed = compiler._parser.parse(pattern, flags)  # a bad pattern raises re.error here
        code = compiler._code(parsed, flags)
        groupindex = dict(parsed.state.groupdict)
        indexgroup: list[str | None] = [None] * parsed.state.groups
        for name, i in groupindex.items():
            indexgroup[i] = name
        entry = (int(flags | parsed.state.flags), [int(c) for c in code], parsed.state.groups - 1, groupindex,
                 tuple(indexgroup))
        if len(_entries) < MAX_ENTRIES:
            _entries[key] = entry
            _added.append(key)
    final_flags, code, groups, groupindex, indexgroup = entry
    return compiler._sre.compile(pattern, final_flags, code, groups, dict(groupindex), indexgroup)


def _read(path: str) -> dict[_Key, tuple[Any, ...]]:
    try:
        with open(path, "rb") as fp:
            data = marshal.loads(fp.read())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _digest(key: _Key) -> bytes:
    return hashlib.sha256(marshal.dumps(key)).digest()[:16]


def _read_seen(path: str) -> list[bytes]:
    try:
        with open(path, "rb") as fp:
            data = marshal.loads(fp.read())
    except (OSError, EOFError, ValueError, TypeError):
        return []
    return [d for d in data if isinstance(d, bytes)] if isinstance(data, list) else []


def _save() -> None:
    """Keep what this process compiled and the file lacks: the patterns a process before it
    compiled too go into the file, the others' digests into the ``.seen`` file (each written
    whole, then renamed: readers see all or none); best effort."""
    global _added
    if not _added or _path is None:
        return
    added, _added = _added, []
    from airflow_provider_smr.engine.aws import write_whole

    seen_path = os.path.splitext(_path)[0] + ".seen"
    try:
        seen = _read_seen(seen_path)
        known = set(seen)
        digests = {key: _digest(key) for key in added}
        again = {key: _entries[key] for key in added if digests[key] in known}
        if again:
            merged = {**_read(_path), **again}
            if len(merged) <= MAX_ENTRIES:
                write_whole(_path, marshal.dumps(merged))
        kept = {digests[key] for key in again}
        first = [digests[key] for key in added if digests[key] not in known]
        write_whole(seen_path, marshal.dumps(([d for d in seen if d not in kept] + first)[-MAX_SEEN:]))
    except (OSError, ValueError):
        pass
