"""Typed job parameters: declared with ``MapReduceJob(params=...)``, merged and checked at submit."""

from __future__ import annotations

import pytest

from airflow_provider_smr.job import JobDefinitionError, MapReduceJob
from airflow_provider_smr.params import CLI_PARAM, JobParamError


def sample(line):
    yield None, line


def job(**params):
    return MapReduceJob(mapper=sample, params=params)


def test_defaults_are_merged_under_what_a_run_gives():
    j = job(sample_size=25, stop_words=[], ratio=0.5, verbose=False, model=None)
    assert j.resolve_params({"sample_size": 3}) == {
        "sample_size": 3, "stop_words": [], "ratio": 0.5, "verbose": False, "model": None}
    assert j.to_spec({"stop_words": ["a"]}).params["stop_words"] == ["a"]


def test_a_mutable_default_is_not_shared_between_runs():
    j = job(stop_words=[])
    j.resolve_params({})["stop_words"].append("x")
    assert j.resolve_params({}) == {"stop_words": []}


def test_templated_strings_are_read_as_the_declared_type():
    j = job(sample_size=25, ratio=0.5, verbose=False, stop_words=[], name="x")
    got = j.resolve_params({"sample_size": "7", "ratio": "2", "verbose": "true", "stop_words": '["a"]',
                            "name": "42"})
    assert got == {"sample_size": 7, "ratio": 2.0, "verbose": True, "stop_words": ["a"], "name": "42"}
    assert isinstance(got["ratio"], float)


@pytest.mark.parametrize("given, words", [
    ({"sample_size": "ten"}, ["job_params['sample_size']", "must be an int like its default 25",
                              "'ten'"]),
    ({"sample_size": True}, ["job_params['sample_size']", "an int"]),
    ({"sample_size": 2.5}, ["an int"]),
    ({"stop_words": "the"}, ["job_params['stop_words']", "must be a list"]),
    ({"smaple_size": 3}, ["job_params['smaple_size']", "no parameter 'smaple_size'",
                          "sample_size (an int, default 25)"]),
])
def test_a_wrong_parameter_is_named_as_the_operator_spells_it(given, words):
    with pytest.raises(JobParamError) as err:
        job(sample_size=25, stop_words=[]).resolve_params(given)
    for w in words:
        assert w in str(err.value)


def test_the_cli_spells_a_wrong_parameter_as_its_flag():
    j = job(sample_size=25)
    with pytest.raises(JobParamError, match=r"^--param sample_size=ten: parameter 'sample_size' must "
                                            r"be an int"):
        j.resolve_params({"sample_size": "ten"}, interface=CLI_PARAM)
    with pytest.raises(JobParamError, match=r"^--param size=3: the job has no parameter 'size'"):
        j.resolve_params({"size": "3"}, interface=CLI_PARAM)


def test_a_type_declares_a_required_parameter():
    j = job(model=str, sample_size=25)
    with pytest.raises(JobParamError, match=r"^job_params\['model'\]: parameter 'model' is required \(a str\)"):
        j.resolve_params({"sample_size": 1})
    with pytest.raises(JobParamError, match=r"^--param model=\.\.\.: parameter 'model' is required"):
        j.resolve_params({}, interface=CLI_PARAM)
    assert j.resolve_params({"model": "m"}) == {"model": "m", "sample_size": 25}


def test_an_undeclared_parameter_of_any_type_takes_cli_text_as_json_or_string():
    j = job(extra=None)
    assert j.resolve_params({"extra": "[1, 2]"}, interface=CLI_PARAM) == {"extra": [1, 2]}
    assert j.resolve_params({"extra": "abc"}, interface=CLI_PARAM) == {"extra": "abc"}
    assert j.resolve_params({"extra": "[1, 2]"}) == {"extra": "[1, 2]"}  # a Python str stays one


def test_a_job_without_declared_parameters_takes_any():
    j = MapReduceJob(mapper=sample)
    assert j.resolve_params({"anything": [1]}) == {"anything": [1]}
    assert j.to_spec(None).params == {}


def test_bad_declarations_are_refused_when_the_job_is_built():
    with pytest.raises(JobDefinitionError, match=r"params\['when'\]: a default must be a JSON value"):
        job(when=object())
    with pytest.raises(JobDefinitionError, match=r"params\['n'\]: a required parameter's type must be"):
        job(n=set)
    with pytest.raises(JobDefinitionError, match="params must be a dict"):
        MapReduceJob(mapper=sample, params=["n"])  # type: ignore[arg-type]


def test_airflow_params_are_checked_by_their_schema():
    from airflow.sdk import Param

    j = job(sample_size=Param(25, type="integer", minimum=1), label=Param(type="string"))
    assert j.resolve_params({"label": "x"}) == {"sample_size": 25, "label": "x"}
    assert j.resolve_params({"label": "x", "sample_size": "5"}, interface=CLI_PARAM)["sample_size"] == 5
    with pytest.raises(JobParamError, match=r"^job_params\['sample_size'\]: parameter 'sample_size': "
                                            r"0 is less than the minimum of 1"):
        j.resolve_params({"label": "x", "sample_size": 0})
    with pytest.raises(JobParamError, match=r"^job_params\['label'\]: parameter 'label': it is required"):
        j.resolve_params({})
    assert j.param_decls["sample_size"].param.value == 25  # the declaration's Param is not changed
