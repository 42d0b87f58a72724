"""Errors raised while deploying, describing or deleting an SMR stack."""

from __future__ import annotations


class SMRStackError(Exception):
    """Base class of the stack errors."""


class StackSettingsError(SMRStackError, ValueError):
    """An argument of ``deploy_stack`` that cannot make a valid stack (raised before any AWS write)."""


class DeployError(SMRStackError):
    """A create, update or delete of the stack failed.

    :param message: what failed and what to do about it.
    :param stack_name: the stack.
    :param status: the stack status when the error was found (e.g. ``ROLLBACK_COMPLETE``).
    :param resource: logical id of the resource that failed first, when known.
    :param reason: that resource's status reason (from the stack events), when known.
    """

    def __init__(self, message: str, *, stack_name: str, status: str | None = None,
                 resource: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.stack_name = stack_name
        self.status = status
        self.resource = resource
        self.reason = reason


class StackNotFoundError(SMRStackError, LookupError):
    """The stack does not exist (or is not a usable SMR stack)."""

    def __init__(self, stack_name: str, region: str, detail: str = "") -> None:
        message = (f"SMR stack {stack_name!r} not found in region {region}"
                   f"{': ' + detail if detail else ''}. Deploy it first: SMRHook.deploy_stack("
                   f"stack_name={stack_name!r}) (or deploy=True on the operator), or check "
                   "stack_name, region and endpoint_url.")
        super().__init__(message)
        self.stack_name = stack_name
        self.region = region


class RuntimeMismatchError(SMRStackError):
    """The stack's Lambda runtime is not the worker's Python, so pickled job code would not load."""


class GrantsMissingError(SMRStackError, PermissionError):
    """The stack's role does not grant a job's input, output or table (deploy the stack with them)."""
