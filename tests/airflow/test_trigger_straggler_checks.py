"""SMRJobTrigger's straggler checks: one Lambda client per trigger run, not one per check."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from airflow_provider_smr.triggers.smr import SMRJobTrigger
from lambda_handlers.plan import OutputPlan, Plan, StepPlan


def test_straggler_checks_reuse_one_lambda_client(aws_endpoint, airflow_conn, monkeypatch, capfd):
    monkeypatch.setenv("AIRFLOW_CONN_SMR_TEST", airflow_conn(aws_endpoint))
    built = []
    real_get_conn = AwsBaseHook.get_conn

    def counting_get_conn(hook):
        client = real_get_conn(hook)
        built.append(client)
        return client

    monkeypatch.setattr(AwsBaseHook, "get_conn", counting_get_conn)
    trigger = SMRJobTrigger(job_id="j-stragglers", work_bucket="trigger-work", aws_conn_id="smr_test",
                            stack_name="no-such-stack")
    plan = Plan(job_id="j-stragglers", steps=(StepPlan(0, 1, 0),),
                output=OutputPlan("s3://out/x/", "out", "x/", "jsonl"), versions={"coordinator": "4"})
    for _ in range(3):
        trigger._check_for_stragglers(plan)

    assert len(built) == 1
    assert built[0].meta.service_model.service_name == "lambda"
    # every check reached the (local) Lambda API: the stack is not deployed, so each one is refused
    out = capfd.readouterr()
    assert (out.out + out.err).count("Function not found") == 3
    assert "no-such-stack-coordinator:4" in out.out + out.err  # the job's pinned version
