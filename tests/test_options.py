"""One declaration of every option: the operator, the CLI and plan.json all follow it."""

from __future__ import annotations

import inspect
import json

import pytest

from airflow_provider_smr.cli import build_parser
from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator
from lambda_handlers.options import (
    JobOptions,
    OptionError,
    StackSettings,
    TaskLimits,
    declared,
    declared_values,
)

DECLARED = [*declared(JobOptions), *declared(StackSettings)]


def _run_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return subparsers.choices["run"]


@pytest.mark.parametrize("option", DECLARED, ids=lambda o: o.name)
def test_every_option_is_an_operator_argument_with_the_declared_default(option):
    params = inspect.signature(ServerlessMapReduceOperator.__init__).parameters
    assert option.name in params, f"ServerlessMapReduceOperator has no argument {option.name}"
    assert params[option.name].default == option.default
    doc = " ".join((ServerlessMapReduceOperator.__doc__ or "").split())
    assert f":param {option.name}: {' '.join(option.help.split())}" in doc


@pytest.mark.parametrize("option", DECLARED, ids=lambda o: o.name)
def test_every_option_is_a_cli_flag_with_the_declared_default_and_help(option):
    actions = {a.dest: a for a in _run_parser()._actions}
    assert option.name in actions, f"smr run has no flag {option.flag}"
    action = actions[option.name]
    assert option.flag in action.option_strings
    assert (action.default or ()) == (option.default or ()) if option.kind is list else \
        action.default == option.default
    assert action.help.startswith(option.help)


def test_cli_flags_build_the_same_options_as_the_operator_arguments():
    args = _run_parser().parse_args(["job:x", "--input", "s3://b/in/", "--output", "s3://b/out/",
                                     "--num-reducers", "4", "--split-size", "64MiB", "--speculation",
                                     "--driver", "lambda", "--memory-mb", "512", "--layers", "a",
                                     "--layers", "b"])
    assert declared_values(JobOptions, args) == JobOptions(
        num_reducers=4, split_size=64 * 2**20, speculation=True, driver="lambda")
    assert declared_values(StackSettings, args) == StackSettings(memory_mb=512, layers=("a", "b"))
    op = ServerlessMapReduceOperator(task_id="t", job="jobs.x:y", input="s3://b/in/",
                                     output="s3://b/out/", num_reducers="4", split_size="64MiB",
                                     speculation=True, driver="lambda", memory_mb=512,
                                     layers=["a", "b"])
    assert op.job_options() == declared_values(JobOptions, args)
    assert op.stack_settings() == declared_values(StackSettings, args)


@pytest.mark.parametrize("argv, flag", [(["--max-attempts", "0"], "--max-attempts"),
                                        (["--split-size", "lots"], "--split-size"),
                                        (["--driver", "cluster"], "--driver")])
def test_a_bad_flag_value_is_an_error_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit):
        _run_parser().parse_args(["job:x", "--input", "s3://b/", "--output", "s3://c/", *argv])
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("values, named", [
    ({"max_attempts": 0}, "max_attempts"), ({"max_attempts": 101}, "max_attempts"),
    ({"num_reducers": "four"}, "num_reducers"), ({"split_size": "lots"}, "split_size"),
    ({"speculation_threshold": 1}, "speculation_threshold"), ({"deadline_grace_s": -1}, "deadline_grace_s"),
    ({"max_bad_records": -1}, "max_bad_records"), ({"driver": "cluster"}, "driver"),
    ({"invoke_tree_threshold": 0}, "invoke_tree_threshold"), ({"speculation": "maybe"}, "speculation"),
    ({"max_concurrency": 0}, "max_concurrency"),
])
def test_invalid_options_are_refused_on_construction_naming_the_option(values, named):
    with pytest.raises(OptionError, match=named):
        JobOptions(**values)


def test_templated_values_are_read_as_their_types():
    opts = JobOptions(num_reducers="4", split_size="1MiB", max_attempts="5", speculation="True")
    assert (opts.num_reducers, opts.split_size, opts.max_attempts, opts.speculation) == (4, 2**20, 5, True)
    assert JobOptions(num_reducers="").num_reducers is None


def test_options_round_trip_through_plan_json():
    opts = JobOptions(num_reducers=3, speculation=True, speculation_threshold=2.5, driver="lambda")
    doc = json.loads(json.dumps({"options": opts.to_dict(), "limits": TaskLimits(512, 60).to_dict()}))
    assert JobOptions.from_mapping(doc["options"]) == opts
    assert TaskLimits(**doc["limits"]) == TaskLimits(512, 60)
    assert TaskLimits(**doc["limits"]).memory_budget_bytes == 128 * 2**20


def test_an_unknown_option_in_a_plan_is_refused():
    with pytest.raises(OptionError, match="unknown job option 'max_atempts'"):
        JobOptions.from_mapping({"max_atempts": 3})


def test_the_readme_lists_every_option_in_the_operator_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [o.name for o in DECLARED if f"| `{o.name}` |" not in readme]
    assert missing == []


def test_an_operator_argument_left_none_takes_the_declared_default():
    op = ServerlessMapReduceOperator(task_id="t", job="jobs.x:y", input="s3://b/in/", output="s3://b/out/",
                                     memory_mb=None, timeout_s=None, max_attempts=None)
    assert op.stack_settings() == StackSettings()
    assert op.job_options().max_attempts == JobOptions().max_attempts


def test_smr_run_help_renders_every_option():
    # argparse %-formats help strings: a stray "%" in an option's doc breaks `smr run --help`.
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    text = run.format_help()
    assert all(option.flag in text for option in DECLARED)
