"""``extra_modules``: a helper package travels inside job.pkl and is importable where the job runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

from airflow_provider_smr.job import JobDefinitionError, MapReduceJob


@pytest.fixture
def helper_package(tmp_path, monkeypatch):
    name = f"smr_helper_{uuid.uuid4().hex[:6]}"
    pkg = tmp_path / name
    (pkg / "text").mkdir(parents=True)
    (pkg / "__init__.py").write_text("VERSION = 3\n")
    (pkg / "text" / "__init__.py").write_text("")
    (pkg / "text" / "words.py").write_text(textwrap.dedent(f"""
        from {name} import VERSION

        def tokens(line):
            return [w.lower() + str(VERSION) for w in line.split()]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name




def make_job(name: str, extra=True) -> MapReduceJob:
    ns: dict = {}
    exec(textwrap.dedent(f"""
        def mapper(line):
            import {name}.text.words as words  # imported lazily: not visible to the pickler
            return [(t, 1) for t in words.tokens(line)]
    """), ns)
    return MapReduceJob(mapper=ns["mapper"], reducer=lambda k, vs: [(k, sum(vs))],
                        extra_modules=[name] if extra else (), name="helper")


def test_a_shipped_package_is_importable_in_a_process_that_lacks_it(helper_package, tmp_path):
    data = make_job(helper_package).dumps()
    (tmp_path / "job.pkl").write_bytes(data)
    code = textwrap.dedent(f"""
        import pickle, sys
        sys.path = [p for p in sys.path if p != {str(tmp_path)!r}]
        spec = pickle.loads(open({str(tmp_path / 'job.pkl')!r}, 'rb').read())
        print(spec.steps[0].mapper("Hello World hello"))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('hello3', 1), ('world3', 1), ('hello3', 1)]"


def test_without_extra_modules_the_lazy_import_fails_there(helper_package, tmp_path):
    (tmp_path / "job.pkl").write_bytes(make_job(helper_package, extra=False).dumps())
    code = textwrap.dedent(f"""
        import pickle
        spec = pickle.loads(open({str(tmp_path / 'job.pkl')!r}, 'rb').read())
        spec.steps[0].mapper("x")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2])})
    assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr


def test_a_module_without_python_source_is_refused_with_a_clear_error():
    with pytest.raises(JobDefinitionError, match="no Python source"):
        MapReduceJob(mapper=lambda r: [(r, 1)], extra_modules=["_json"]).dumps()
