"""ServerlessMapReduceOperator: template fields, job ids, resume decisions, the XCom result."""

from __future__ import annotations

from unittest import mock

import pytest
from airflow.sdk import Asset

from airflow_provider_smr.engine.runner import JobNotFoundError
from airflow_provider_smr.hooks.smr import SMRHook
from airflow_provider_smr.operators.smr import (
    RECONNECT,
    RESUBMIT,
    RETURN,
    SUBMIT,
    ServerlessMapReduceOperator,
    asset_uri,
    deterministic_job_id,
    generation_job_id,
    resume_decision,
)
from lambda_handlers import protocol
from lambda_handlers.options import StackSettings

RESULT = {"job_id": "j", "status": "SUCCEEDED", "output": "s3://out/wc/", "parts": ["part-00000.jsonl"]}


def make_operator(**kwargs):
    args = {"task_id": "count", "job": "jobs.word_count:word_count", "input": "s3://in/words/",
            "output": "s3://out/wc/"}
    args.update(kwargs)
    return ServerlessMapReduceOperator(**args)


class FakeTI:
    dag_id, run_id, task_id, map_index = "dag", "manual__2026-01-01T00:00:00+00:00", "count", -1
    stats_tags: dict = {}

    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


class FakeStore(dict):
    def set(self, key, value, **_):
        self[key] = value


def fake_hook(states=None):
    """An autospec of SMRHook, so a call the real hook's signature refuses fails here too.

    It remembers the jobs that exist (``states``: id -> state) and what was deployed (``settings``,
    ``locations``), submitted, waited for, retried and cancelled.
    """
    hook = mock.create_autospec(SMRHook, instance=True)
    hook.states = dict(states or {})
    hook.submitted, hook.waited, hook.retried, hook.cancelled = [], [], [], []
    hook.conn_region_name, hook.conn_partition = "us-east-1", "aws"
    hook.conn_config = mock.Mock(endpoint_url="http://127.0.0.1:4566")

    def deploy_stack(stack_name="smr", settings=None, **locations):
        hook.settings, hook.locations = settings, locations
        return get_stack_info(stack_name)

    def get_stack_info(stack_name="smr"):
        return {"stack_name": stack_name, "work_bucket": "smr-work", "functions": {}}

    def job_exists(job_id, stack_name="smr"):
        return job_id in hook.states

    def get_job_status(job_id, stack_name="smr"):
        if job_id not in hook.states:
            raise JobNotFoundError(job_id)
        return {"job_id": job_id, "state": hook.states[job_id], "error": "boom"}

    def submit_job(job, *, input, output, job_id, **kw):
        hook.submitted.append((job_id, kw))
        hook.states[job_id] = protocol.RUNNING
        return job_id

    def wait_for_job(job_id, stack_name="smr", **waiter):
        hook.waited.append(job_id)
        hook.states[job_id] = protocol.SUCCEEDED
        return {**RESULT, "job_id": job_id}

    def get_job_result(job_id, stack_name="smr"):
        assert hook.states[job_id] == protocol.SUCCEEDED
        return {**RESULT, "job_id": job_id}

    for effect in (deploy_stack, get_stack_info, job_exists, get_job_status, submit_job, wait_for_job,
                   get_job_result):
        getattr(hook, effect.__name__).side_effect = effect
    hook.retry_overdue_tasks.side_effect = lambda job_id, stack_name="smr": hook.retried.append(job_id)
    hook.cancel_job.side_effect = lambda job_id, stack_name="smr": hook.cancelled.append(job_id)
    return hook


def run(operator, hook, store=None):
    ti = FakeTI()
    context = {"ti": ti, "task_state_store": store if store is not None else FakeStore()}
    with mock.patch.object(ServerlessMapReduceOperator, "hook", new_callable=mock.PropertyMock) as prop:
        prop.return_value = hook
        result = operator.execute(context)
    return result, ti, context


def base_id():
    ti = FakeTI()
    return deterministic_job_id(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)


class TestArguments:
    def test_every_template_field_is_an_attribute(self):
        operator = make_operator(job_params={"k": 1})
        for name in operator.template_fields:
            assert hasattr(operator, name), name
        assert {"input", "output_uri", "job_params", "aws_conn_id", "region_name", "verify"} <= set(
            operator.template_fields)

    def test_arguments_are_stored_under_their_own_names(self):
        operator = make_operator(num_reducers=4, split_size="64MiB", max_attempts=5, stack_name="s2",
                                 deploy=False, overwrite=True, waiter_delay=2, aws_conn_id="c",
                                 region_name="eu-west-1", botocore_config={"retries": {"max_attempts": 2}})
        assert (operator.num_reducers, operator.split_size, operator.max_attempts) == (4, "64MiB", 5)
        assert (operator.stack_name, operator.deploy, operator.overwrite) == ("s2", False, True)
        assert (operator.aws_conn_id, operator.region_name) == ("c", "eu-west-1")
        assert operator.botocore_config == {"retries": {"max_attempts": 2}}

    def test_positional_arguments_are_refused(self):
        with pytest.raises(TypeError):
            ServerlessMapReduceOperator("count", "jobs.word_count:word_count")  # noqa

    def test_deferrable_defaults_to_the_airflow_setting(self):
        assert make_operator().deferrable is False
        assert make_operator(deferrable=True).deferrable is True

    def test_output_is_announced_as_an_asset(self):
        assert make_operator().outlets == [Asset("s3://out/wc/")]

    def test_templated_output_is_announced_by_its_static_folder(self):
        assert asset_uri("s3://b/revenue/{{ ds }}/") == "s3://b/revenue/"
        assert asset_uri("s3://{{ var.value.bucket }}/x/") is None

    def test_templated_reducer_count_becomes_an_int(self):
        assert make_operator(num_reducers="4").job_options().num_reducers == 4
        assert make_operator(num_reducers=None).job_options().num_reducers is None
        with pytest.raises(ValueError, match="whole number"):
            make_operator(num_reducers="four").job_options()


class TestJobId:
    def test_same_task_instance_gives_the_same_valid_id(self):
        a = deterministic_job_id("dag", "manual__2026-01-01T00:00:00+00:00", "count", -1)
        assert a == deterministic_job_id("dag", "manual__2026-01-01T00:00:00+00:00", "count", -1)
        assert protocol.validate_job_id(a) == a
        assert a.startswith("dag.count.manual__2026-01-01T00-00-00-00-00.")

    @pytest.mark.parametrize("other", [
        ("dag", "manual__2026-01-01T00:00:00+00:00", "count", 0),
        ("dag", "manual__2026-01-01T00:00:00+00:00", "count2", -1),
        ("dag", "manual__2026-01-01T00:00:00-00:00", "count", -1),  # sanitizes alike, hash differs
        ("dag2", "manual__2026-01-01T00:00:00+00:00", "count", -1),
    ])
    def test_other_task_instances_get_other_ids(self, other):
        assert deterministic_job_id(*other) != base_id()

    def test_long_ids_are_cut_but_stay_valid_and_distinct(self):
        a = deterministic_job_id("d" * 300, "r" * 300, "t", 1)
        b = deterministic_job_id("d" * 300, "r" * 301, "t", 1)
        assert len(a) <= 200 and a != b
        assert protocol.validate_job_id(generation_job_id(a, 99))

    def test_unsafe_characters_never_reach_the_key(self):
        job_id = deterministic_job_id("_dag..x", "run/with spaces&?", "grp.task", -1)
        assert protocol.validate_job_id(job_id) and ".." not in job_id and "/" not in job_id


class TestResumeDecision:
    @pytest.mark.parametrize(("state", "decision"), [
        (None, SUBMIT), (protocol.PENDING, RECONNECT), (protocol.RUNNING, RECONNECT),
        (protocol.SUCCEEDED, RETURN), (protocol.FAILED, RESUBMIT), (protocol.CANCELLED, RESUBMIT),
    ])
    def test_decision_from_prior_state(self, state, decision):
        assert resume_decision(state) == decision


class TestExecute:
    def test_fresh_run_submits_once_waits_and_returns_the_result_dict(self):
        hook = fake_hook()
        result, ti, context = run(make_operator(num_reducers="3"), hook)
        assert result == {**RESULT, "job_id": base_id()}
        assert [job_id for job_id, _ in hook.submitted] == [base_id()]
        assert hook.submitted[0][1]["options"].num_reducers == 3
        assert context["task_state_store"]["smr_job_id"] == base_id()
        persisted = ti.xcom["smr_job"]  # what the extra links and the UI plugin find the job by
        assert persisted["job_id"] == base_id() and persisted["output"] == "s3://out/wc/"
        assert persisted["endpoint_url"] == "http://127.0.0.1:4566" and persisted["aws_conn_id"] == "aws_default"
        assert persisted["work_bucket"] == "smr-work" and persisted["task_id"] == "count"

    def test_deploys_the_stack_for_the_input_and_output_prefixes_not_their_buckets(self):
        hook = fake_hook()
        run(make_operator(input={"a": "s3://in-a/x", "b": ["s3://in-b/y"]}, memory_mb=512), hook)
        assert hook.locations["input_buckets"] == ["s3://in-a/x", "s3://in-b/y"]
        assert hook.locations["output_buckets"] == [make_operator().output_uri]
        assert hook.settings.memory_mb == 512 and hook.settings.timeout_s == StackSettings().timeout_s

    @pytest.mark.parametrize("remembered", [True, False], ids=["task-state-store", "s3-markers-only"])
    def test_retry_reconnects_to_the_running_job(self, remembered):
        hook = fake_hook({base_id(): protocol.RUNNING})
        store = FakeStore({"smr_job_id": base_id()} if remembered else {})
        result, _, _ = run(make_operator(), hook, store)
        assert hook.submitted == [] and hook.waited == [base_id()]
        assert result["job_id"] == base_id()

    @pytest.mark.parametrize("remembered", [True, False], ids=["task-state-store", "s3-markers-only"])
    def test_retry_returns_the_finished_job_without_running_it_again(self, remembered):
        hook = fake_hook({base_id(): protocol.SUCCEEDED})
        store = FakeStore({"smr_job_id": base_id()} if remembered else {})
        result, ti, _ = run(make_operator(), hook, store)
        assert hook.submitted == []
        assert result == {**RESULT, "job_id": base_id()}
        assert ti.xcom["smr_job"]["job_id"] == base_id()  # the links of this try open that job

    @pytest.mark.parametrize("state", [protocol.FAILED, protocol.CANCELLED])
    def test_retry_after_a_failed_job_runs_the_next_generation(self, state):
        hook = fake_hook({base_id(): state})
        result, _, context = run(make_operator(), hook, FakeStore({"smr_job_id": base_id()}))
        assert [job_id for job_id, _ in hook.submitted] == [f"{base_id()}.2"]
        assert result["job_id"] == f"{base_id()}.2"
        assert context["task_state_store"]["smr_job_id"] == f"{base_id()}.2"

    def test_on_kill_cancels_the_running_job(self):
        hook = fake_hook()
        operator = make_operator()
        run(operator, hook)
        with mock.patch.object(ServerlessMapReduceOperator, "hook", new_callable=mock.PropertyMock) as prop:
            prop.return_value = hook
            operator.on_kill()
        assert hook.cancelled == [base_id()]


class TestDeferrable:
    def defer(self, hook):
        from airflow.providers.common.compat.sdk import TaskDeferred

        operator = make_operator(deferrable=True, waiter_delay=1)
        with pytest.raises(TaskDeferred) as deferred:
            run(operator, hook)
        return operator, deferred.value

    def complete(self, operator, hook, event):
        context = {"ti": FakeTI(), "task_state_store": FakeStore()}
        with mock.patch.object(ServerlessMapReduceOperator, "hook", new_callable=mock.PropertyMock) as prop:
            prop.return_value = hook
            return operator.execute_complete(context, event)

    def test_defers_to_the_trigger_after_submitting(self):
        hook = fake_hook()
        _, deferred = self.defer(hook)
        assert [job_id for job_id, _ in hook.submitted] == [base_id()]
        assert deferred.method_name == "execute_complete"
        assert deferred.trigger.job_id == base_id() and deferred.trigger.work_bucket == "smr-work"
        assert hook.waited == []  # no worker-side waiting

    def test_success_event_returns_the_result_dict(self):
        hook = fake_hook()
        operator, _ = self.defer(hook)
        hook.states[base_id()] = protocol.SUCCEEDED
        result = self.complete(operator, hook, {"status": "success", "job_id": base_id()})
        assert result == {**RESULT, "job_id": base_id()}

    def test_failure_event_raises_with_the_remote_error(self):
        from airflow.providers.common.compat.sdk import AirflowException

        hook = fake_hook()
        operator, _ = self.defer(hook)
        with pytest.raises(AirflowException, match="ZeroDivisionError"):
            self.complete(operator, hook, {"status": "failed", "job_id": base_id(),
                                           "message": "ZeroDivisionError: division by zero"})

    @pytest.mark.parametrize("event", [None, {}, {"status": "weird", "job_id": "j"}, {"status": "success"}])
    def test_malformed_event_is_refused_before_anything_else(self, event):
        from airflow.providers.common.compat.sdk import AirflowException

        hook = fake_hook()
        with pytest.raises(AirflowException, match="SMR trigger sent|Trigger error: event is None"):
            self.complete(make_operator(deferrable=True), hook, event)

    def test_needs_attention_has_overdue_tasks_retried_and_defers_again(self):
        from airflow.providers.common.compat.sdk import TaskDeferred

        hook = fake_hook()
        self.defer(hook)
        resumed = make_operator(deferrable=True)  # the task resumes on a fresh operator instance
        with pytest.raises(TaskDeferred) as again:
            self.complete(resumed, hook, {"status": "needs_attention", "job_id": base_id(),
                                           "message": "1 task(s) silent", "overdue": [[0, "map", 1, 0]]})
        assert hook.retried == [base_id()]
        assert again.value.trigger.work_bucket == "smr-work"

    def test_a_job_submitted_now_is_left_to_the_trigger_even_if_it_has_already_finished(self):
        hook = fake_hook()
        submit = hook.submit_job.side_effect

        def submit_and_finish(job, *, input, output, job_id, **kw):
            submit(job, input=input, output=output, job_id=job_id, **kw)
            hook.states[job_id] = protocol.SUCCEEDED  # a tiny job done before the first check
            return job_id

        hook.submit_job.side_effect = submit_and_finish
        _, deferred = self.defer(hook)
        assert deferred.trigger.job_id == base_id() and len(hook.submitted) == 1

    def test_retry_of_a_deferred_task_finds_the_finished_job(self):
        hook = fake_hook({base_id(): protocol.SUCCEEDED})
        result, _, _ = run(make_operator(deferrable=True), hook)
        assert result["job_id"] == base_id() and hook.submitted == []


def test_lineage_names_every_input_and_the_output_as_s3_datasets():
    from airflow_provider_smr.operators.smr import lineage_datasets

    assert lineage_datasets({"users": "s3://b/users/", "orders": ["s3://c/o/1", "s3://c/o/2"]}) == [
        ("s3://b", "users/"), ("s3://c", "o/1"), ("s3://c", "o/2")]
    assert lineage_datasets("s3://out") == [("s3://out", "/")]


class TestFinish:
    def test_worker_path_reads_the_result_once_and_logs_it_once(self):
        hook = fake_hook()
        logger = mock.Mock()
        with mock.patch.object(ServerlessMapReduceOperator, "log", new_callable=mock.PropertyMock) as log:
            log.return_value = logger
            result, _, _ = run(make_operator(), hook)
        assert result == {**RESULT, "job_id": base_id()}
        assert hook.waited == [base_id()]  # wait_for_job returns the result ...
        hook.get_job_result.assert_not_called()  # ... so it is not read again
        finals = [c for c in logger.info.call_args_list if "records in" in c.args[0]]
        assert len(finals) == 1

    def test_asset_event_extra_holds_the_exact_output_even_when_no_event_was_touched_yet(self):
        from airflow.sdk.execution_time.context import OutletEventAccessors

        hook = fake_hook()
        operator = make_operator()
        events = OutletEventAccessors()
        assert not events  # empty until an accessor is asked for: the check that skipped this
        context = {"ti": FakeTI(), "task_state_store": FakeStore(), "outlet_events": events}
        with mock.patch.object(ServerlessMapReduceOperator, "hook", new_callable=mock.PropertyMock) as prop:
            prop.return_value = hook
            operator.execute(context)
        assert events[Asset("s3://out/wc/")].extra == {"output": RESULT["output"], "job_id": base_id()}


class TestValidationOrder:
    def test_locations_are_checked_before_the_stack_is_deployed(self):
        hook = fake_hook()
        run(make_operator(), hook)
        names = [c[0] for c in hook.mock_calls]
        assert names.index("check_job_locations") < names.index("deploy_stack") < names.index("submit_job")
        kwargs = hook.check_job_locations.call_args.kwargs
        assert (kwargs["input"], kwargs["output"]) == ("s3://in/words/", "s3://out/wc/")
        assert kwargs["own_job"](base_id()) and kwargs["own_job"](f"{base_id()}.2")
        assert not kwargs["own_job"]("another.job")

    def test_a_refused_location_deploys_and_submits_nothing(self):
        from lambda_handlers.planning import InputNotFoundError

        hook = fake_hook()
        hook.check_job_locations.side_effect = InputNotFoundError("input 's3://nope/': bucket 'nope' does not exist")
        with pytest.raises(InputNotFoundError, match="^input"):
            run(make_operator(input="s3://nope/"), hook)
        hook.deploy_stack.assert_not_called()
        assert hook.submitted == []

    def test_a_bad_option_is_refused_before_anything_runs(self):
        hook = fake_hook()
        with pytest.raises(ValueError, match="max_attempts"):
            run(make_operator(max_attempts=0), hook)
        hook.deploy_stack.assert_not_called()
        hook.check_job_locations.assert_not_called()


def test_a_bad_job_param_fails_the_task_before_anything_is_deployed():
    from airflow_provider_smr.job import MapReduceJob
    from airflow_provider_smr.params import JobParamError

    job = MapReduceJob(mapper=lambda line: [(line, 1)], params={"sample_size": 25})
    hook = fake_hook()
    with pytest.raises(JobParamError, match=r"^job_params\['sample_size'\]: parameter 'sample_size' must be an "
                                            r"int like its default 25, got str 'many'"):
        run(make_operator(job=job, job_params={"sample_size": "many"}), hook)
    assert not hook.deploy_stack.called and hook.submitted == []
