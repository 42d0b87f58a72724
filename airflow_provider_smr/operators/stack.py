"""SMRDeployStackOperator and SMRDeleteStackOperator: the stack's lifecycle as tasks of their own.

The production pattern: one deploy task, run with the deploy role's rights (CloudFormation, IAM,
Lambda, S3, CloudWatch Logs), upstream of job tasks that run with ``deploy=False`` and need only
the runtime rights (the README lists both roles' IAM actions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from airflow_provider_smr.hooks.smr import DEFAULT_STACK, SMRHook
from lambda_handlers.io import dynamodb
from lambda_handlers.options import StackSettings, declared, declared_values

if TYPE_CHECKING:
    from airflow.sdk import Context

_STACK = StackSettings()

LocationSpec = str | Sequence[str] | dict[str, Any] | None


class SMRDeployStackOperator(AwsBaseOperator[SMRHook]):
    """
    Create or update an SMR stack; return its description (work bucket, functions, settings).

    Idempotent: a stack already deployed with this code and these settings is left alone (read
    calls only). Locations are granted in addition to those the stack already grants, unless
    ``replace_locations``. Job tasks downstream run on it with ``deploy=False``.

    :param stack_name: the CloudFormation stack (and function name prefix) to deploy. (templated)
    :param input_locations: what the functions may read: ``s3://bucket/prefix`` URIs or bucket
        names, as a string, a list, or a job's ``{name: URI}`` input; ``dynamodb://`` URIs are
        granted as tables. (templated)
    :param output_locations: what the functions may write (commit targets), the same way. (templated)
    :param tables: DynamoDB table names (or ``dynamodb://`` URIs) the functions may scan and write.
        (templated)
    :param replace_locations: grant exactly these locations instead of adding them to the ones the
        stack already grants.
{settings}
    :param aws_conn_id: the Airflow ``aws`` connection (``endpoint_url`` in its extra points it at
        another endpoint, e.g. the local stack).
    :param region_name: AWS region; the connection's when None.
    :param verify: whether to verify SSL certificates.
    :param botocore_config: botocore client configuration dict.
    """

    aws_hook_class = SMRHook
    template_fields: Sequence[str] = aws_template_fields(
        "stack_name", "input_locations", "output_locations", "tables")
    template_fields_renderers = {"input_locations": "json", "output_locations": "json"}
    ui_color = "#f9c915"

    def __init__(
        self,
        *,
        stack_name: str = DEFAULT_STACK,
        input_locations: LocationSpec = None,
        output_locations: LocationSpec = None,
        tables: Sequence[str] | None = None,
        replace_locations: bool = False,
        memory_mb: int = _STACK.memory_mb,
        timeout_s: int = _STACK.timeout_s,
        layers: Sequence[str] = _STACK.layers,
        requirements: Sequence[str] = _STACK.requirements,
        log_retention_days: int = _STACK.log_retention_days,
        jobs_expire_days: int = _STACK.jobs_expire_days,
        architecture: str = _STACK.architecture,
        mapper_memory_mb: int | None = _STACK.mapper_memory_mb,
        reducer_memory_mb: int | None = _STACK.reducer_memory_mb,
        reserved_concurrency: int = _STACK.reserved_concurrency,
        stack_max_running_tasks: int = _STACK.stack_max_running_tasks,
        kms_key_arn: str | None = _STACK.kms_key_arn,
        subnet_ids: Sequence[str] = _STACK.subnet_ids,
        security_group_ids: Sequence[str] = _STACK.security_group_ids,
        on_failure_destination: str | None = _STACK.on_failure_destination,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stack_name = stack_name
        self.input_locations = input_locations
        self.output_locations = output_locations
        self.tables = tables
        self.replace_locations = replace_locations
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.layers = layers
        self.requirements = requirements
        self.log_retention_days = log_retention_days
        self.jobs_expire_days = jobs_expire_days
        self.architecture = architecture
        self.mapper_memory_mb = mapper_memory_mb
        self.reducer_memory_mb = reducer_memory_mb
        self.reserved_concurrency = reserved_concurrency
        self.stack_max_running_tasks = stack_max_running_tasks
        self.kms_key_arn = kms_key_arn
        self.subnet_ids = subnet_ids
        self.security_group_ids = security_group_ids
        self.on_failure_destination = on_failure_destination

    def stack_settings(self) -> StackSettings:
        """This task's :class:`StackSettings`, from its arguments of the same names."""
        return declared_values(StackSettings, self)

    def grants(self) -> dict[str, list[str]]:
        """``input_buckets`` / ``output_buckets`` / ``tables`` for the hook, checked; a bad location
        is an error naming its argument, raised before any AWS call."""
        from airflow_provider_smr.deploy.errors import StackSettingsError
        from airflow_provider_smr.deploy.template import parse_location

        tables = _leaves("tables", self.tables)
        found: dict[str, list[str]] = {}
        for argument in ("input_locations", "output_locations"):
            found[argument] = []
            for uri in _leaves(argument, getattr(self, argument)):
                if dynamodb.is_dynamodb_uri(uri):
                    tables.append(uri)
                    continue
                try:
                    found[argument].append(parse_location(uri, folder=argument == "output_locations").uri)
                except StackSettingsError as exc:
                    raise ValueError(f"{argument}: {exc}") from None
        names = []
        for table in tables:
            try:
                names.append(dynamodb.parse_uri(table)["table"] if dynamodb.is_dynamodb_uri(table) else table)
            except ValueError as exc:
                raise ValueError(f"tables: {exc}") from None
        return {"input_buckets": found["input_locations"], "output_buckets": found["output_locations"],
                "tables": list(dict.fromkeys(names))}

    def execute(self, context: Context) -> dict[str, Any]:
        settings, grants = self.stack_settings(), self.grants()
        self.log.info("Deploying SMR stack %s (%d MB, %d s); granting inputs %s, outputs %s, tables %s",
                      self.stack_name, settings.memory_mb, settings.timeout_s, grants["input_buckets"],
                      grants["output_buckets"], grants["tables"])
        info = self.hook.deploy_stack(self.stack_name, settings, replace_locations=self.replace_locations,
                                      **grants)
        self.log.info("SMR stack %s is ready: work bucket %s, functions %s", self.stack_name,
                      info["work_bucket"], ", ".join(sorted(info["functions"].values())))
        return info


class SMRDeleteStackOperator(AwsBaseOperator[SMRHook]):
    """
    Delete an SMR stack: empty its work bucket (job state, reports), then delete the CloudFormation
    stack and wait. Job outputs, which live outside the stack, are kept.

    :param stack_name: the stack to delete. (templated)
    :param missing_ok: succeed when there is no such stack (else the task fails).
    :param aws_conn_id: the Airflow ``aws`` connection.
    :param region_name: AWS region; the connection's when None.
    :param verify: whether to verify SSL certificates.
    :param botocore_config: botocore client configuration dict.
    """

    aws_hook_class = SMRHook
    template_fields: Sequence[str] = aws_template_fields("stack_name")
    ui_color = "#f9c915"

    def __init__(self, *, stack_name: str = DEFAULT_STACK, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stack_name = stack_name
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> None:
        self.log.info("Deleting SMR stack %s", self.stack_name)
        self.hook.delete_stack(self.stack_name, missing_ok=self.missing_ok)
        self.log.info("SMR stack %s deleted", self.stack_name)


def _leaves(argument: str, value: Any) -> list[str]:
    """The strings of a location argument: a string, a list, or a ``{name: URI or list}`` dict."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(argument, v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(argument, v)]
    if isinstance(value, str) and value:
        return [value]
    raise ValueError(f"{argument} must be S3 URIs or bucket names (a string, a list or a dict of them), "
                     f"got {value!r}")


def _settings_docs() -> str:
    return "\n".join(f"    :param {o.name}: {o.help} (deployment setting)." for o in declared(StackSettings))


SMRDeployStackOperator.__doc__ = (SMRDeployStackOperator.__doc__ or "").replace("{settings}", _settings_docs())
