"""The job API's construction-time checks (issue 17), the counters' arithmetic and how they are
shown, and the CLI's errors in the CLI's words. Pure: no stack."""

from __future__ import annotations

import contextvars

import pytest

from airflow_provider_smr import MapReduceJob, Step, identity
from airflow_provider_smr.engine.commands import CommandError, cli_words, parse_inputs
from airflow_provider_smr.engine.watch import format_user_counters, user_counters
from airflow_provider_smr.job import JobDefinitionError
from lambda_handlers import context


def tokenize(line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(values)


def setup():
    return {}


# -- Step ---------------------------------------------------------------------------------------


def test_step_takes_keyword_arguments_only_and_says_how_to_write_it():
    with pytest.raises(JobDefinitionError, match=r"keyword arguments only.*Step\(mapper=\.\.\., "):
        Step(tokenize, total)


def test_a_misspelled_step_argument_names_the_right_one():
    with pytest.raises(JobDefinitionError, match="Step has no argument 'reduce'; did you mean reducer="):
        Step(mapper=tokenize, reduce=total)


@pytest.mark.parametrize("mapper", [None, identity], ids=["no-mapper", "identity"])
def test_a_later_step_may_leave_the_mapper_out(mapper):
    job = MapReduceJob(steps=[Step(mapper=tokenize, reducer=total), Step(mapper=mapper, reducer=total)])
    assert job.steps[1].passes_pairs
    assert job.to_spec().steps[1].mapper is None  # the data plane passes the pairs on


def test_the_first_step_needs_a_mapper_and_the_error_says_why():
    with pytest.raises(JobDefinitionError, match="step 0 needs a mapper: the first step's records are input"):
        MapReduceJob(steps=[Step(reducer=total)])
    with pytest.raises(JobDefinitionError, match="step 0 needs a mapper"):
        MapReduceJob(reducer=total)


def test_a_step_needs_a_mapper_or_a_reducer():
    with pytest.raises(JobDefinitionError, match="step 1: give a mapper, a reducer or both"):
        MapReduceJob(steps=[Step(mapper=tokenize, reducer=total), Step()])


def test_task_hooks_are_checked_when_the_job_is_built():
    with pytest.raises(JobDefinitionError, match=r"step 0 mapper_setup .*must be callable with no arguments"):
        MapReduceJob(mapper=tokenize, reducer=total, mapper_setup=total)
    with pytest.raises(JobDefinitionError, match="reducer_teardown needs a reducer"):
        MapReduceJob(mapper=tokenize, reducer_teardown=setup)
    with pytest.raises(JobDefinitionError, match="or steps="):
        MapReduceJob(mapper_setup=setup, steps=[Step(mapper=tokenize)])
    job = MapReduceJob(mapper=tokenize, reducer=total, mapper_setup=setup, reducer_teardown=setup)
    spec = job.to_spec().steps[0]
    assert spec.mapper_setup is setup and spec.reducer_teardown is setup and spec.reducer_setup is None
    assert setup in job.functions()  # pickled by value with the rest of the job's code


# -- counters ---------------------------------------------------------------------------------------


def test_counters_of_a_task_are_kept_per_attempt_and_reset_for_the_next():
    contextvars.copy_context().run(_count_in_two_attempts)  # the test's own context stays outside a task
    assert context.task() is None and context.task_counters() == {}


def _count_in_two_attempts():
    context.begin_task(0, "map", 3, 0)
    context.increment_counter("words", "seen", 2)
    context.increment_counter("words", "seen")
    context.increment_counter("lines", "empty", 0.5)
    assert context.task_counters() == {"lines": {"empty": 0.5}, "words": {"seen": 3}}
    mark = context.counters_mark()
    context.increment_counter("words", "seen", 10)
    context.restore_counters(mark)  # a record mapped again to name its error counts once
    assert context.task_counters()["words"] == {"seen": 3}
    context.begin_task(0, "map", 3, 1)
    assert context.task_counters() == {}
    with pytest.raises(TypeError, match="amount must be an int or a float"):
        context.increment_counter("a", "b", "1")


def test_user_counters_sum_the_done_markers_and_fit_on_one_line():
    bodies = [{"counters": {"words": {"seen": 3}}}, {}, {"counters": {"words": {"seen": 4, "odd": 1},
                                                                     "lines": {"all": 2}}}]
    totals = user_counters(bodies)
    assert totals == {"lines": {"all": 2}, "words": {"odd": 1, "seen": 7}}
    assert format_user_counters(totals) == "lines.all=2, words.odd=1, words.seen=7"
    assert format_user_counters(totals, most=1) == "lines.all=2 (+2 more)"


# -- the CLI's words --------------------------------------------------------------------------------


def test_an_input_name_with_a_dot_says_names_may_not_contain_one():
    with pytest.raises(CommandError, match=r"input names may not contain a dot, got 'argparse.py'; "
                                           r"write --input argparse_py=path/to/x"):
        parse_inputs(["argparse.py=path/to/x"])
    assert parse_inputs(["lib=path/a.py"]) == {"lib": "path/a.py"}
    assert parse_inputs(["s3://b/k=v.txt"]) == "s3://b/k=v.txt"


def test_errors_for_the_cli_name_its_flags_not_python_arguments():
    assert cli_words("already committed; pass overwrite=True to replace it") == \
        "already committed; pass --overwrite to replace it"
    assert cli_words("create it or pass create_table=True") == "create it or pass --create-table"
    assert cli_words("retry_on_user_errors=False") == "--no-retry-on-user-errors"
    assert cli_words("keep x=True as it is") == "keep x=True as it is"
    # an error that starts with the argument at fault names the flag
    assert cli_words("input 's3://b/x/' matched no objects") == "--input 's3://b/x/' matched no objects"
    assert cli_words("input 'more' (s3://b/x/) matched no objects") == \
        "--input 'more' (s3://b/x/) matched no objects"
    assert cli_words("output 's3://b/o/': bucket 'b' does not exist") == \
        "--output 's3://b/o/': bucket 'b' does not exist"
    assert cli_words("input names may not contain a dot") == "input names may not contain a dot"


def test_smr_run_has_create_table_and_retry_on_user_errors_flags():
    from airflow_provider_smr.cli import build_parser

    args = build_parser().parse_args(["run", "j.py:job", "--input", "in", "--output", "out",
                                      "--create-table", "--no-retry-on-user-errors"])
    assert args.create_table is True and args.retry_on_user_errors is False


# -- where the counters are shown -------------------------------------------------------------------


def test_the_report_and_the_cli_summary_show_the_user_counters(capsys):
    from airflow_provider_smr import report as rp
    from airflow_provider_smr.engine.commands import _print_result
    from tests.test_report import scenario

    plan, listed, done, errors = scenario()
    first = next(iter(done))
    done[first] = {**done[first], "counters": {"words": {"long": 12, "short": 30}}, "setup_s": 0.25,
                   "teardown_s": 0.5}
    report = rp.build_report(plan, listed, done, errors)
    assert report.user_counters == {"words": {"long": 12, "short": 30}}
    page = rp.render_html(report)
    assert "<h2>Counters</h2>" in page and "<td>words</td><td>long</td><td>12</td>" in page
    assert "<h2>Counters</h2>" not in rp.render_html(rp.build_report(*scenario()))
    assert "(setup 0.25s, teardown 0.50s)</title>" in page  # the hooks' time in the attempt's bar

    result = {"job_id": "j", "status": "SUCCEEDED", "output": "s3://b/o/", "parts": [],
              "estimated_cost_usd": 0.0, "timings": {"total_s": 1.0},
              "counters": {"output_records": 0, "records_read": 0, "bytes_read": 0, "shuffle_bytes": 0,
                           "attempts": 1, "user": {"words": {"long": 12, "short": 30}}}}
    _print_result(result, as_json=False)
    assert "counters words: long=12, short=30" in capsys.readouterr().out


def test_the_progress_line_ends_with_the_counters_so_far():
    from airflow_provider_smr.engine.watch import ProgressTracker, status_from_listing
    from lambda_handlers import protocol
    from tests.engine.test_progress import T0, listed, map_body, plan_for

    plan = plan_for("j-ctr")
    key = protocol.done_marker_key("j-ctr", 0, "map", 0)
    tracker = ProgressTracker(plan)
    tracker.ingest({key: {**map_body(0), "counters": {"words": {"long": 1200, "short": 30}}}})
    line = tracker.line(status_from_listing(plan, listed(key), now=T0), now=T0 + 5)
    assert line.endswith("| elapsed 0:00:05 | words.long=1,200, words.short=30")
