"""The data plane runs inside Lambda: it may import only what Lambda's Python runtime has."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What Lambda's Python runtime ships besides the standard library, plus what our zip vendors.
ALLOWED_THIRD_PARTY = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                       "cloudpickle", "lambda_handlers"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_lambda_handlers_import_only_what_lambda_has():
    offenders = {}
    for path in sorted((ROOT / "lambda_handlers").rglob("*.py")):
        bad = {r for r in _imported_roots(path)
               if r not in sys.stdlib_module_names and r not in ALLOWED_THIRD_PARTY}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_importing_the_provider_is_cheap():
    import subprocess

    code = ("import sys, airflow_provider_smr; airflow_provider_smr.get_provider_info();"
            "heavy = [m for m in ('airflow', 'boto3', 'moto', 'cloudpickle') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
