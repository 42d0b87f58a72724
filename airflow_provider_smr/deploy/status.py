"""Reading a CloudFormation stack's state: describe, wait for an operation, explain a failure.

A failed operation is explained by the resource that failed first and its reason, taken from the
stack events (not just "ROLLBACK_COMPLETE"). Errors the API returns synchronously are reduced to
the service's own ``Code: message``, including moto's JSON bodies botocore cannot parse.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, overload

from airflow_provider_smr.deploy.errors import DeployError

COMPLETE_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
# A create that failed and rolled back leaves an empty stack that can only be deleted.
DEAD_STATES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED")
# States an update can start from (a rolled-back update left the previous, working version).
UPDATABLE_STATES = COMPLETE_STATES + ("UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")
STACK_TYPE = "AWS::CloudFormation::Stack"


def api_errors() -> tuple[type[Exception], ...]:
    """What a botocore call can raise for a service-side problem."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError)


def error_detail(error: Exception) -> str:
    """The service's own message: ``Code: message`` for API errors, also for unparsable bodies."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        return f"{response['Error'].get('Code', '')}: {response['Error'].get('Message', '')}"
    # moto answers some CloudFormation failures with a JSON body botocore cannot parse as XML.
    match = re.search(r"b'(\{.*\})'", str(error), re.S)
    if match:
        try:
            body = json.loads(match.group(1))
            return f"{body.get('__type', '')}: {body.get('message', body.get('Message', ''))}"
        except ValueError:
            pass
    return str(error)


def find_stack(cf: Any, stack_name: str) -> dict | None:
    """The stack's DescribeStacks entry, or None when there is none (deleted stacks are none)."""
    from botocore.exceptions import ClientError

    try:
        stacks = cf.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ValidationError" and "does not exist" in str(error):
            return None
        raise
    live = [s for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


def stack_outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def failure_from_events(events: Iterable[dict]) -> tuple[str, str, str] | None:
    """``(logical id, resource type, reason)`` of the first failure of the latest operation.

    ``events`` come newest first, as DescribeStackEvents returns them. The latest operation
    starts at the newest stack-level ``*_IN_PROGRESS`` event with reason "User Initiated". The
    first failure (not the "Resource creation cancelled" echoes that follow it) is the cause.
    """
    current: list[dict] = []
    for event in events:
        current.append(event)
        if (event.get("ResourceType") == STACK_TYPE
                and event.get("ResourceStatus", "").endswith("_IN_PROGRESS")
                and event.get("ResourceStatusReason") == "User Initiated"):
            break
    failed = [e for e in reversed(current) if e.get("ResourceStatus", "").endswith("_FAILED")]
    failures = [e for e in failed if e.get("ResourceType") != STACK_TYPE] or failed
    causes = [e for e in failures if "cancelled" not in (e.get("ResourceStatusReason") or "").lower()]
    first = (causes or failures or [None])[0]
    if first is None:
        return None
    return first["LogicalResourceId"], first.get("ResourceType", ""), first.get("ResourceStatusReason") or ""


def _stack_events(cf: Any, stack_id: str, limit: int = 300) -> list[dict]:
    events: list[dict] = []
    for page in cf.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        events.extend(page["StackEvents"])
        if len(events) >= limit:
            break
    return events


def failure_error(cf: Any, stack: dict, action: str) -> DeployError:
    """A :class:`DeployError` naming the resource that made ``action`` fail, from the events."""
    name, status = stack["StackName"], stack["StackStatus"]
    failure = failure_from_events(_stack_events(cf, stack.get("StackId", name)))
    if failure is None:
        reason = stack.get("StackStatusReason") or "no failure event recorded"
        return DeployError(f"{action} of stack {name!r} failed ({status}): {reason}",
                           stack_name=name, status=status, reason=reason)
    resource, resource_type, reason = failure
    return DeployError(f"{action} of stack {name!r} failed ({status}): resource {resource} "
                       f"({resource_type}) failed: {reason}",
                       stack_name=name, status=status, resource=resource, reason=reason)


# A delete ends with the stack gone (None); every other action with the stack's description.
@overload
def wait_for_stack(cf: Any, stack_name: str, action: Literal["delete"], *, timeout_s: float = ...,
                   poll_s: float = ..., sleep: Callable[[float], None] = ...) -> None: ...
@overload
def wait_for_stack(cf: Any, stack_name: str, action: Literal["create", "update", "wait"], *,
                   timeout_s: float = ..., poll_s: float = ..., sleep: Callable[[float], None] = ...) -> dict: ...
def wait_for_stack(cf: Any, stack_name: str, action: str, *, timeout_s: float = 1800,
                   poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> dict | None:
    """Poll until ``action`` ("create", "update", "delete" or "wait") ends; return the stack.

    Returns None once a deleted stack is gone. Raises :class:`DeployError` naming the failing
    resource when the stack ends anywhere but complete (``DELETE_FAILED`` for a delete).
    """
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        stack = find_stack(cf, stack_name)
        if stack is None:
            if action == "delete":
                return None
            raise DeployError(f"stack {stack_name!r} disappeared during {action}", stack_name=stack_name)
        status = stack["StackStatus"]
        if action == "delete":
            if status == "DELETE_FAILED":
                raise failure_error(cf, stack, action)
        elif status in COMPLETE_STATES:
            return stack
        elif not status.endswith("_IN_PROGRESS"):
            raise failure_error(cf, stack, action)
        if time.monotonic() > deadline:
            raise DeployError(f"{action} of stack {stack_name!r} still {status} after {timeout_s:.0f} s; "
                              "check the CloudFormation console", stack_name=stack_name, status=status)
        sleep(delay)
        delay = min(delay * 1.5, 10.0)
