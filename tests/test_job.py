"""The job API: validation when a job is built, sizes, and pickling the job's code by value."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from airflow_provider_smr.job import (
    JobDefinitionError,
    JobPicklingError,
    JobRuntimeError,
    MapReduceJob,
    Step,
    check_pickle_runtime,
    load_job,
)
from lambda_handlers.jobspec import JobSpec, JobSpecError
from lambda_handlers.sizes import SizeError, parse_size

ROOT = Path(__file__).resolve().parents[1]


def tokenize(line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(values)


def by_first_letter(key, n):
    return ord(key[0]) % n


# -- validation ---------------------------------------------------------------------------------


def test_a_valid_job_builds_and_names_itself_after_the_mapper():
    job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total, partitioner=by_first_letter)
    assert job.name == "tokenize"
    assert len(job.steps) == 1 and job.steps[0].reducer is total


def test_mapper_that_is_not_callable_is_refused():
    with pytest.raises(JobDefinitionError, match="mapper must be a function"):
        MapReduceJob(mapper="tokenize", reducer=total)


def test_reducer_with_wrong_arity_names_the_function_and_the_expected_signature():
    def reducer(key):
        yield key

    with pytest.raises(JobDefinitionError,
                       match=r"reducer .*reducer\(key\) must accept 2 positional arguments"):
        MapReduceJob(mapper=tokenize, reducer=reducer)


def test_mapper_with_two_required_arguments_is_refused():
    with pytest.raises(JobDefinitionError, match="mapper .* must accept 1 positional argument"):
        MapReduceJob(mapper=total, reducer=total)


def test_functions_with_defaults_or_varargs_are_accepted():
    MapReduceJob(mapper=lambda line, extra=1: [], reducer=lambda *args: [])


def test_unknown_formats_and_serializer_are_refused_with_the_choices():
    with pytest.raises(JobDefinitionError, match="unknown input_format 'xml': use one of text, csv, jsonl"):
        MapReduceJob(mapper=tokenize, input_format="xml")
    with pytest.raises(JobDefinitionError, match="unknown output_format 'avro'"):
        MapReduceJob(mapper=tokenize, output_format="avro")
    with pytest.raises(JobDefinitionError, match="unknown serializer"):
        MapReduceJob(mapper=tokenize, serializer="yaml")


def test_map_only_step_must_be_last():
    with pytest.raises(JobDefinitionError, match="step 0: only the last step may be map-only"):
        MapReduceJob(steps=[Step(mapper=tokenize), Step(mapper=tokenize, reducer=total)])


def test_dict_mapper_is_only_allowed_on_step_zero():
    with pytest.raises(JobDefinitionError, match="step 1: a dict of mappers .* only allowed on step 0"):
        MapReduceJob(steps=[Step(mapper=tokenize, reducer=total),
                            Step(mapper={"a": tokenize}, reducer=total)])


def test_combiner_without_reducer_is_refused():
    with pytest.raises(JobDefinitionError, match="a combiner needs a reducer"):
        MapReduceJob(mapper=tokenize, combiner=total)


def test_steps_and_mapper_together_are_refused():
    with pytest.raises(JobDefinitionError, match="either mapper.* or steps"):
        MapReduceJob(mapper=tokenize, steps=[Step(mapper=tokenize)])


def test_named_inputs_must_match_the_dict_mapper():
    job = MapReduceJob(mapper={"users": tokenize, "orders": tokenize}, reducer=total,
                       input_format={"users": "csv", "orders": "jsonl"})
    job.check_inputs(["orders", "users"])
    with pytest.raises(JobDefinitionError, match=r"expect inputs \['orders', 'users'\], got \['users'\]"):
        job.check_inputs(["users"])
    with pytest.raises(JobDefinitionError, match="one mapper"):
        MapReduceJob(mapper=tokenize).check_inputs(["a", "b"])


def test_num_reducers_must_be_positive():
    with pytest.raises(JobDefinitionError, match="num_reducers must be a positive integer"):
        MapReduceJob(mapper=tokenize, reducer=total, num_reducers=0)


def test_to_spec_carries_steps_formats_and_params():
    job = MapReduceJob(mapper={"users": tokenize, "orders": tokenize}, reducer=total,
                       input_format={"users": "csv", "orders": "jsonl"}, output_format="tsv")
    spec = job.to_spec(params={"k": 3})
    assert isinstance(spec, JobSpec)
    assert spec.input_formats == {"users": "csv", "orders": "jsonl"}
    assert spec.output_format == "tsv" and spec.params == {"k": 3}
    assert spec.steps[0].mapper == {"users": tokenize, "orders": tokenize}


# -- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("64MiB", 64 * 2**20), ("512KiB", 512 * 2**10), ("1GiB", 2**30), ("64MB", 64 * 2**20),
    ("512kb", 512 * 2**10), ("1GB", 2**30), ("100", 100), (4096, 4096), ("1.5MiB", 3 * 2**19),
    (" 2 MiB ", 2 * 2**20), ("7B", 7),
])
def test_parse_size_reads_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["64XB", "MiB", "-1", "0", 0, "ten", True])
def test_parse_size_refuses_what_is_not_a_size(bad):
    with pytest.raises(SizeError):
        parse_size(bad, name="split_size")


def test_parse_size_passes_none_through():
    assert parse_size(None) is None


# -- pickling by value --------------------------------------------------------------------------

HELPER = '''
def normalize(word):
    return word.strip(".,").lower()
'''

JOB_MODULE = '''
import smrtest_helper_mod
from airflow_provider_smr import MapReduceJob

def tokenize(line):
    for word in line.split():
        yield smrtest_helper_mod.normalize(word), 1

def total(word, counts):
    yield word, sum(counts)

job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total)
'''


def _run_without_job_modules(pickled: bytes, tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """Unpickle in a fresh interpreter that can import lambda_handlers but not the job's modules."""
    blob = tmp_path / "job.pkl"
    blob.write_bytes(pickled)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = "import pickle, sys; spec = pickle.loads(open(sys.argv[1], 'rb').read())\n" + code
    return subprocess.run([sys.executable, "-c", script, str(blob)], env=env, cwd=str(tmp_path / ".."),
                          capture_output=True, text=True, timeout=60)


def test_job_from_a_file_and_its_helper_module_travel_by_value(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "smrtest_helper_mod.py").write_text(HELPER)
    (folder / "smrtest_job_mod.py").write_text(JOB_MODULE)
    job = load_job(f"{folder / 'smrtest_job_mod.py'}:job")
    pickled = job.dumps()
    proc = _run_without_job_modules(pickled, tmp_path, textwrap.dedent('''
        assert "smrtest_helper_mod" not in sys.modules
        print(list(spec.steps[0].mapper("Hello, World.")))
    '''))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[('hello', 1), ('world', 1)]"


def test_example_job_runs_where_dags_examples_is_not_importable(tmp_path):
    job = load_job("dags_examples/jobs/word_count.py:word_count")
    proc = _run_without_job_modules(job.dumps(), tmp_path, textwrap.dedent('''
        print(list(spec.steps[0].reducer("a", [1, 2, 3])))
    '''))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[('a', 6)]"


def test_pickling_leaves_no_module_registered_by_value(monkeypatch):
    import cloudpickle

    monkeypatch.syspath_prepend(str(ROOT))
    job = load_job("dags_examples.jobs.word_count:word_count")
    job.dumps()
    module = sys.modules["dags_examples.jobs.word_count"]
    assert not cloudpickle.cloudpickle._is_registered_pickle_by_value(module)


def test_closure_over_a_lock_is_a_clear_pickling_error():
    lock = threading.Lock()

    def locked_mapper(line):
        with lock:
            yield line, 1

    job = MapReduceJob(mapper=locked_mapper, reducer=total)
    with pytest.raises(JobPicklingError, match=r"cannot pickle function .*locked_mapper.*lock"):
        job.dumps()


def test_closure_over_an_open_file_is_a_clear_pickling_error(tmp_path):
    handle = open(tmp_path / "f.txt", "w")  # noqa: SIM115 - the point is an open file in a closure
    try:
        job = MapReduceJob(mapper=lambda line: [(handle.write(line), 1)], reducer=total)
        with pytest.raises(JobPicklingError, match="must not capture locks, open files"):
            job.dumps()
    finally:
        handle.close()


def test_pickled_job_records_python_version_and_refuses_another():
    spec = pickle.loads(MapReduceJob(mapper=tokenize, reducer=total).dumps())
    assert tuple(spec.python) == sys.version_info[:2]
    spec.check_compatible()
    spec.python = (3, 9)
    with pytest.raises(JobSpecError, match="pickled by Python 3.9"):
        spec.check_compatible()


def test_stack_runtime_mismatch_is_a_clear_error_before_anything_runs():
    here = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    check_pickle_runtime(here)
    with pytest.raises(JobRuntimeError, match=r"runtime is python3.9 but jobs are pickled by Python"):
        check_pickle_runtime("python3.9")


# -- loading ------------------------------------------------------------------------------------


def test_load_job_by_module_and_by_file_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    assert load_job("dags_examples.jobs.top_k:top_words").name == "top_words"
    assert load_job(str(ROOT / "dags_examples/jobs/amplab.py") + ":revenue_by_ip_prefix").name == "amplab_q2"


@pytest.mark.parametrize("ref,message", [
    ("no_colon", "looks like 'package.module:attr'"),
    ("dags_examples.jobs.word_count:nope", "has no attribute 'nope'"),
    ("dags_examples.jobs.word_count:tokenize", "is a function, not a MapReduceJob"),
    ("no_such_module_xyz:job", "cannot import job module"),
    ("/no/such/file.py:job", "does not exist"),
])
def test_load_job_errors_say_what_is_wrong(ref, message, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    with pytest.raises(JobDefinitionError, match=message):
        load_job(ref)


def test_input_formats_must_name_the_same_inputs_as_the_mappers():
    with pytest.raises(JobDefinitionError,
                       match=r"input_format names inputs \['users'\] but the mappers are for"):
        MapReduceJob(mapper={"users": tokenize, "orders": tokenize}, reducer=total,
                     input_format={"users": "csv"})


def lines(records):
    return [(r, 1) for r in records]


def test_batch_mapper_per_object_is_a_bool_kept_through_pickling():
    from airflow_provider_smr.job import batch_mapper

    per_object = batch_mapper(lines, per_object=True)
    assert per_object.per_object and not batch_mapper(lines).per_object
    assert per_object != batch_mapper(lines) and per_object == batch_mapper(lines, per_object=True)
    assert repr(per_object).endswith("lines, per_object=True)")
    assert pickle.loads(pickle.dumps(per_object)).per_object
    with pytest.raises(TypeError, match=r"per_object=\.\.\.\) takes True or False, got 'yes'"):
        batch_mapper(lines, per_object="yes")
