"""The data plane runs inside Lambda: it may import only what Lambda's Python runtime has."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What Lambda's Python runtime ships besides the standard library, plus what our zip vendors.
ALLOWED_THIRD_PARTY = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                       "cloudpickle", "lambda_handlers"}
# Libraries a job gets from a layer (requirements=[...]): imported by one module each, lazily.
FROM_A_LAYER = {"lambda_handlers/io/parquet.py": {"pyarrow"}}


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
        layer = FROM_A_LAYER.get(str(path.relative_to(ROOT)), set())
        bad = {r for r in _imported_roots(path)
               if r not in sys.stdlib_module_names and r not in ALLOWED_THIRD_PARTY | layer}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_layer_libraries_are_imported_only_inside_functions():
    for name, roots in FROM_A_LAYER.items():
        tree = ast.parse((ROOT / name).read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        eager = {alias.name.split(".")[0] for n in top for alias in n.names} if top else set()
        eager |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
        assert not eager & roots, f"{name} imports {sorted(eager & roots)} at module level"


def test_importing_the_provider_is_cheap():
    import subprocess

    code = ("import sys, airflow_provider_smr; airflow_provider_smr.get_provider_info();"
            "heavy = [m for m in ('airflow', 'boto3', 'moto', 'cloudpickle') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
