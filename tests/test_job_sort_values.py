"""``sort_values`` / ``value_key`` on a job and its steps: checked when built, carried in the spec."""

from __future__ import annotations

import pytest

from airflow_provider_smr.job import JobDefinitionError, MapReduceJob, Step


def pairs(line):
    yield line, 1


def total(key, values):
    yield key, sum(values)


def first(value):
    return value[0]


def test_job_level_sort_values_is_the_default_of_steps_with_a_reducer():
    job = MapReduceJob(steps=[Step(mapper=pairs, reducer=total), Step(mapper=pairs, reducer=total, sort_values=False),
                              Step(mapper=pairs)], sort_values=True)
    assert [(s.sort_values, s.value_key) for s in job.to_spec().steps] == [(True, None), (False, None),
                                                                         (False, None)]
    assert job.steps[0].sort_values is None  # the user's Step is not changed


def test_a_value_key_implies_sort_values_and_travels_with_the_job():
    spec = MapReduceJob(mapper=pairs, reducer=total, value_key=first).to_spec()
    assert (spec.steps[0].sort_values, spec.steps[0].value_key) == (True, first)
    assert first in MapReduceJob(mapper=pairs, reducer=total, value_key=first).functions()


@pytest.mark.parametrize("kwargs, message", [
    ({"sort_values": "yes"}, r"step 0: sort_values must be True or False, got 'yes'"),
    ({"value_key": 3}, r"step 0 value_key must be a function"),
    ({"value_key": total}, r"step 0 value_key .* must accept 1 positional argument: fn\(value\) -> sort key"),
])
def test_bad_sort_settings_are_refused_when_the_job_is_built(kwargs, message):
    with pytest.raises(JobDefinitionError, match=message):
        MapReduceJob(mapper=pairs, reducer=total, **kwargs)


def test_sorting_values_of_a_map_only_step_is_refused():
    with pytest.raises(JobDefinitionError, match=r"step 0: sort_values/value_key order the values a reducer "
                                                 r"gets; a map-only step \(reducer=None\) has none"):
        MapReduceJob(mapper=pairs, sort_values=True)
    with pytest.raises(JobDefinitionError, match=r"step 1: sort_values"):
        MapReduceJob(steps=[Step(mapper=pairs, reducer=total), Step(mapper=pairs, value_key=first)])


def test_a_job_that_sorts_values_needs_a_data_plane_that_knows_how():
    from lambda_handlers.jobspec import SORT_VALUES_VERSION, SPEC_VERSION, JobSpecError

    plain = MapReduceJob(mapper=pairs, reducer=total).to_spec()
    sorting = MapReduceJob(mapper=pairs, reducer=total, sort_values=True).to_spec()
    assert (plain.version, sorting.version) == (SPEC_VERSION, SORT_VALUES_VERSION)  # older stacks run plain jobs
    sorting.check_compatible()
    sorting.version = 99
    with pytest.raises(JobSpecError, match="job spec version 99 is not supported"):
        sorting.check_compatible()
