"""Published function versions: the ones a deploy made, the ones jobs pin, and deleting the rest.

A deploy publishes one immutable version per function and configuration (see ``template.py``); a
job records the versions it runs on in its plan and, until it ends, in a pin object
(``pins/<job_id>.json`` in the work bucket, written before its first invoke). Garbage collection
runs after a deploy that changed the stack: it keeps the versions the stack publishes now, the
newest :data:`KEEP_NEWEST` of each function (a job between its deploy and its pin is safe behind
them), and every version an unfinished job pins; it deletes the other numbered versions. A pin
whose job has ended (a terminal state under ``status/job/``) is deleted on the way; one whose job
died without an end expires with the job's state (the bucket's lifecycle rule).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_smr.deploy.errors import DeployError
from airflow_provider_smr.deploy.template import (
    FUNCTION_ROLES,
    VERSION_DESCRIPTION,
    TemplateSettings,
    function_config_hash,
    function_name,
)
from lambda_handlers import protocol
from lambda_handlers.aws_errors import is_not_found

if TYPE_CHECKING:
    from airflow_provider_smr.engine.aws import AwsClients

log = logging.getLogger(__name__)

#: the newest versions of each function kept whether pinned or not
KEEP_NEWEST = 3


def _numbered_versions(lambda_client: Any, name: str) -> list[dict]:
    """The function's published versions (not ``$LATEST``), oldest first."""
    found: list[dict] = []
    for page in lambda_client.get_paginator("list_versions_by_function").paginate(FunctionName=name):
        found += [v for v in page.get("Versions", []) if str(v.get("Version", "")).isdigit()]
    return sorted(found, key=lambda v: int(v["Version"]))


def published_versions(lambda_client: Any, settings: TemplateSettings) -> dict[str, str]:
    """The versions published for exactly these settings, by role: the newest version of each
    function whose description carries the hash of its configuration.

    A deploy reads its versions here when another deploy changed the stack right after it, so it
    pins what it published rather than what the stack describes now.
    """
    versions: dict[str, str] = {}
    for role in FUNCTION_ROLES:
        name = function_name(settings.stack_name, role)
        wanted = VERSION_DESCRIPTION.format(function_config_hash(settings, role))
        matching = [v for v in _numbered_versions(lambda_client, name) if v.get("Description") == wanted]
        if not matching:
            raise DeployError(f"no published version of {name} matches this deploy's configuration "
                              f"({wanted!r}); deploy again", stack_name=settings.stack_name)
        versions[role] = str(matching[-1]["Version"])
    return versions


def pinned_versions(s3: Any, bucket: str) -> dict[str, set[str]]:
    """The versions unfinished jobs pin, by role; pins of ended jobs are deleted on the way."""
    pinned: dict[str, set[str]] = {role: set() for role in FUNCTION_ROLES}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=protocol.PINS_PREFIX):
        for obj in page.get("Contents", []):
            job_id = protocol.job_id_of_pin(obj["Key"])
            if job_id is None:
                continue
            ended = s3.list_objects_v2(Bucket=bucket, Prefix=protocol.job_states_prefix(job_id),
                                       MaxKeys=1).get("KeyCount", 0)
            if ended:
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
                continue
            try:
                pin = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            except Exception as exc:
                if is_not_found(exc):  # its job ended and another collector removed it
                    continue
                raise
            for role, version in (pin.get("versions") or {}).items():
                pinned.setdefault(role, set()).add(str(version))
    return pinned


def versions_to_delete(published: Iterable[str], keep: Iterable[str],
                       keep_newest: int = KEEP_NEWEST) -> list[str]:
    """Of one function's published version numbers, those neither kept nor among the newest."""
    numbers = sorted({str(v) for v in published if str(v).isdigit()}, key=int)
    newest = set(numbers[-keep_newest:]) if keep_newest > 0 else set()
    kept = newest | {str(v) for v in keep}
    return [v for v in numbers if v not in kept]


def collect_versions(clients: AwsClients, stack_name: str, work_bucket: str,
                     keep: Mapping[str, str] = {},  # noqa: B006 - read only
                     keep_newest: int = KEEP_NEWEST) -> dict[str, list[str]]:
    """Delete the function versions no unfinished job pins; return the deleted ones by role.

    :param keep: versions to keep whatever the pins say (the ones the stack publishes now).
    :param keep_newest: how many of each function's newest versions to keep in any case.
    """
    pinned = pinned_versions(clients.s3, work_bucket)
    deleted: dict[str, list[str]] = {}
    for role in FUNCTION_ROLES:
        name = function_name(stack_name, role)
        published = [str(v["Version"]) for v in _numbered_versions(clients.lambda_, name)]
        kept = pinned.get(role, set()) | ({keep[role]} if role in keep else set())
        for version in versions_to_delete(published, kept, keep_newest):
            # The version's own invoke config (retained by CloudFormation with it) goes first.
            for delete in (clients.lambda_.delete_function_event_invoke_config,
                           clients.lambda_.delete_function):
                try:
                    delete(FunctionName=name, Qualifier=version)
                except Exception as exc:
                    if not is_not_found(exc):  # a concurrent collector deleted it first
                        raise
            deleted.setdefault(role, []).append(version)
    if deleted:
        log.info("stack %s: deleted function versions no job pins: %s", stack_name,
                 ", ".join(f"{role} {','.join(v)}" for role, v in deleted.items()))
    return deleted
