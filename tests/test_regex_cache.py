"""Compiled regular expressions kept between processes: the same patterns, matches and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in fresh interpreters: install() changes the process's ``re``.
PROBE = r'''
import json, re, sys
from airflow_provider_smr import regex_cache

installed = regex_cache.install(sys.argv[1])
cases = [
    (r"(?P<scheme>[a-z]+)://(?P<host>[^/:]+)(?::(?P<port>\d+))?", 0, "http://example.com:8080/x"),
    (r"(?i)straße|\bfoo\b", 0, "a FOO b STRASSE Straße"),
    (r"^\s*(\w+)\s*=\s*(.*?)\s*$", re.MULTILINE, "a = 1\n b=two  \nc ="),
    (r"(?<=\$)\d+(?:\.\d\d)?", re.ASCII, "cost $12.50 or $3"),
    (rb"[\x00-\x1f]+", 0, b"ok\x01\x02ok"),
    (r"(a)|(b)", re.VERBOSE, "b"),
]
out = {"installed": installed, "cases": []}
for pattern, flags, text in cases:
    p = re.compile(pattern, flags)
    found = [(m.span(), m.groups(), m.groupdict()) for m in p.finditer(text)]
    out["cases"].append([repr(p), int(p.flags), p.groups, dict(p.groupindex), repr(found)])
try:
    re.compile(r"(unclosed")
except re.error as exc:
    out["error"] = str(exc)
print(json.dumps(out))
'''


def probe(root: Path, cache: bool = True) -> dict:
    code = PROBE if cache else PROBE.replace("regex_cache.install(sys.argv[1])", "False")
    done = subprocess.run([sys.executable, "-c", code, str(root)], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def test_patterns_compiled_from_the_cache_match_as_re_compiles_them(tmp_path):
    plain = probe(tmp_path, cache=False)
    first = probe(tmp_path)  # compiles them and notes them
    assert probe(tmp_path) == first  # compiles them again and keeps them
    files = list((tmp_path / "regex").glob("*.marshal"))
    second = probe(tmp_path)  # compiles them from the file
    assert first["installed"] and second["installed"] and len(files) == 1
    assert first["cases"] == plain["cases"] == second["cases"]
    assert first["error"] == plain["error"] == second["error"] == "missing ), unterminated subpattern at position 0"


def test_a_damaged_cache_file_only_means_compiling_again(tmp_path):
    probe(tmp_path)
    probe(tmp_path)
    (path,) = (tmp_path / "regex").glob("*.marshal")
    path.write_bytes(b"\x00not marshal data")
    assert probe(tmp_path)["cases"] == probe(tmp_path, cache=False)["cases"]


def test_a_pattern_joins_the_file_once_a_second_process_compiles_it(tmp_path):
    code = ("import re, sys\nfrom airflow_provider_smr import regex_cache\nregex_cache.install(sys.argv[1])\n"
            "re.compile(sys.argv[2])\nregex_cache._save()\nprint(sorted(k[1] for k in regex_cache._read("
            "regex_cache._path)))")

    def run(pattern: str) -> list:
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path), pattern], cwd=ROOT, check=True,
                              capture_output=True, text=True)
        return json.loads(done.stdout.replace("'", '"'))

    assert "once-[a-z]+" not in run("once-[a-z]+")  # new in every process (a set's order): only noted
    assert "twice-[a-z]+" not in run("twice-[a-z]+")
    assert "twice-[a-z]+" in run("twice-[a-z]+")  # seen before: kept
    assert "once-[a-z]+" not in run("once-[0-9]+")
