"""The planner sizes a job for the functions that can run at once: the caller's cap, else the
account's unreserved concurrency (the local stack reports what it runs at once per function)."""

from __future__ import annotations

import logging

from airflow_provider_smr.engine.runner import JobRunner


class _Stack:
    work_bucket = "unused"
    functions: dict = {}
    memory_mb, timeout_s, stack_name = 1024, 300, "smr-test"


class _Clients:
    def __init__(self, lambda_client):
        self.lambda_ = lambda_client
        self.s3 = None


def test_local_stack_reports_its_per_function_concurrency_as_the_accounts(aws_endpoint, aws_clients):
    client = aws_clients(aws_endpoint).lambda_
    limit = client.get_account_settings()["AccountLimit"]
    assert 1 <= limit["UnreservedConcurrentExecutions"] <= limit["ConcurrentExecutions"]
    runner = JobRunner(_Clients(client), _Stack())
    assert runner.concurrency() == limit["UnreservedConcurrentExecutions"]
    assert runner.concurrency(max_concurrency=7) == 7  # the caller's cap wins


class _Denied:
    calls = 0

    def get_account_settings(self):
        _Denied.calls += 1
        raise RuntimeError("AccessDenied: lambda:GetAccountSettings")


def test_unreadable_account_settings_leave_the_planner_default_and_are_asked_once():
    runner = JobRunner(_Clients(_Denied()), _Stack(), logger=logging.getLogger("t"))
    assert runner.concurrency() is None and runner.concurrency() is None
    assert _Denied.calls == 1
