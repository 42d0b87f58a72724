"""Typed job parameters: what ``MapReduceJob(params={...})`` declares, and the check of what a run gives.

A declaration maps each name to its default, whose type is the parameter's type::

    MapReduceJob(..., params={"sample_size": 25, "stop_words": [], "model": str})

- a value (``25``, ``[]``, ``"en"``, ``0.5``, ``True``, ``{}``) is the default and fixes the type
  (an ``int`` default also accepts nothing but ints; a ``float`` one accepts ints too);
- a type (``int``, ``float``, ``bool``, ``str``, ``list``, ``dict``) declares a required parameter;
- ``None`` declares an optional parameter of any type, None by default;
- an Airflow ``Param`` (``Param(25, type="integer", minimum=1)``) is checked by its JSON schema;
  without a default it is required.

:func:`resolve` merges what a run gives (``job_params`` of the operator, ``--param`` of
``smr run``) over the defaults and checks it before anything runs, with an error naming the
parameter in the words of the interface used. A ``str`` given for a parameter of another type is
read as JSON (templated ``job_params`` render to strings; ``--param`` values are text), so
``"25"`` is 25. A job that declares no parameters takes any ``job_params`` unchecked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_smr.job import JobDefinitionError

JOB_PARAMS = "job_params"  # the operator's, the hook's and the runner's argument
CLI_PARAM = "--param"  # smr run's flag; its values are text

_KINDS: dict[type, str] = {bool: "a bool", int: "an int", float: "a float", str: "a str", list: "a list",
                           dict: "a dict"}
_SCHEMA_KINDS: dict[str, type] = {"integer": int, "number": float, "boolean": bool, "string": str,
                                  "array": list, "object": dict}


class JobParamError(JobDefinitionError):
    """A job parameter declared or given wrongly; the message names it as the interface spells it."""


@dataclass(frozen=True)
class ParamDecl:
    """One declared parameter: its type (None: any), default, whether required, and an Airflow
    ``Param`` that validates it when the declaration was one."""

    name: str
    kind: type | None
    default: Any = None
    required: bool = False
    param: Any = None  # an airflow.sdk Param (validated by its schema)

    def describe(self) -> str:
        what = _KINDS.get(self.kind, "any value") if self.kind else "any value"
        if self.required:
            return f"{what}, required"
        return f"{what}, default {json.dumps(self.default, default=repr)}"


def _is_airflow_param(value: object) -> bool:
    """An ``airflow.sdk.Param`` (or the models' older one), recognised without importing airflow."""
    cls = type(value)
    return (cls.__name__ == "Param" and cls.__module__.startswith("airflow.")
            and callable(getattr(value, "resolve", None)))


def declare(params: Mapping[str, Any] | None) -> dict[str, ParamDecl] | None:
    """Read ``MapReduceJob(params=...)``; None when the job declares no parameters."""
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise JobParamError(f"params must be a dict of name -> default, got {type(params).__name__}")
    decls: dict[str, ParamDecl] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:  # type: ignore[redundant-expr]  # for untyped callers
            raise JobParamError(f"params: names must be non-empty strings, got {name!r}")
        decls[name] = _declare_one(name, value)
    return decls


def _declare_one(name: str, value: Any) -> ParamDecl:
    if _is_airflow_param(value):
        schema_type = (getattr(value, "schema", None) or {}).get("type")
        kind = _SCHEMA_KINDS.get(schema_type) if isinstance(schema_type, str) else None
        if getattr(value, "has_value", False):
            return ParamDecl(name, kind, value.value, param=value)
        return ParamDecl(name, kind, required=True, param=value)
    if value is None:
        return ParamDecl(name, None)
    if isinstance(value, type):
        if value not in _KINDS:
            raise JobParamError(f"params[{name!r}]: a required parameter's type must be one of "
                                f"{', '.join(k.__name__ for k in _KINDS)}, got {value.__name__}")
        return ParamDecl(name, value, required=True)
    if isinstance(value, tuple):
        value = list(value)
    kind = type(value)
    if kind not in _KINDS:
        raise JobParamError(
            f"params[{name!r}]: a default must be a JSON value (int, float, bool, str, list, dict or "
            f"None), a type (int, str, ...) for a required parameter, or an airflow Param; got "
            f"{kind.__name__} {value!r}")
    return ParamDecl(name, kind, value)


def _where(interface: str, name: str, text: Any = None) -> str:
    if interface == CLI_PARAM:
        return f"--param {name}={text if isinstance(text, str) else '...'}"
    return f"{interface}[{name!r}]"


def resolve(decls: Mapping[str, ParamDecl] | None, given: Mapping[str, Any] | None,
            interface: str = JOB_PARAMS) -> dict[str, Any]:
    """The run's parameters: ``given`` over the declared defaults, each of its declared type.

    :param interface: how errors spell a parameter: ``"job_params"`` (``job_params['n']``) or
        ``"--param"`` (``--param n=...``; values given as text).
    :raises JobParamError: an unknown name, a value of the wrong type, a required one missing.
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise JobParamError(f"{interface} must be a dict of name -> value, got {type(given).__name__}")
    if decls is None:
        return dict(given)
    unknown = [n for n in given if n not in decls]
    if unknown:
        known = ", ".join(f"{d.name} ({d.describe()})" for d in decls.values()) or "none"
        raise JobParamError(f"{_where(interface, unknown[0], given[unknown[0]])}: the job has no "
                            f"parameter {unknown[0]!r}; its parameters: {known}")
    values: dict[str, Any] = {}
    for name, decl in decls.items():
        if name in given:
            values[name] = _check(decl, given[name], interface)
        elif decl.param is not None:
            values[name] = _validate_param(decl, None, interface, missing=True)
        elif decl.required:
            raise JobParamError(f"{_where(interface, name)}: parameter {name!r} is required "
                                f"({_KINDS.get(decl.kind, 'any value') if decl.kind else 'any value'}); "
                                "the job declares it without a default")
        else:
            values[name] = copy.deepcopy(decl.default)
    return values


def _check(decl: ParamDecl, value: Any, interface: str) -> Any:
    text = value
    kind = decl.kind
    if isinstance(value, str) and kind is not str and (kind is not None or interface == CLI_PARAM):
        try:
            value = json.loads(value)
        except ValueError:
            if kind is bool and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            elif kind is not None:
                raise JobParamError(_wrong(decl, interface, text)) from None
    if kind is not None:
        value = _of_kind(decl, value, interface, text)
    if decl.param is not None:
        return _validate_param(decl, value, interface)
    return value


def _of_kind(decl: ParamDecl, value: Any, interface: str, text: Any) -> Any:
    kind = decl.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list and isinstance(value, tuple):
        return list(value)
    if kind is int and isinstance(value, bool):
        raise JobParamError(_wrong(decl, interface, text))
    if kind is not None and not isinstance(value, kind):
        raise JobParamError(_wrong(decl, interface, text))
    return value


def _wrong(decl: ParamDecl, interface: str, text: Any) -> str:
    what = _KINDS.get(decl.kind, "any value") if decl.kind else "any value"
    like = "" if decl.required else f" like its default {json.dumps(decl.default, default=repr)}"
    return (f"{_where(interface, decl.name, text)}: parameter {decl.name!r} must be {what}{like}, "
            f"got {type(text).__name__} {text!r}")


def _validate_param(decl: ParamDecl, value: Any, interface: str, missing: bool = False) -> Any:
    """Check ``value`` (or the default, when ``missing``) against an Airflow ``Param``'s schema; the
    declaration's Param is copied, as ``resolve`` stores the value it checks."""
    param = copy.deepcopy(decl.param)
    try:
        return param.resolve() if missing else param.resolve(value)
    except ValueError as exc:  # airflow's ParamValidationError is a ValueError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if missing and not decl.param.has_value:
            reason = "it is required (the Param has no default)"
        raise JobParamError(f"{_where(interface, decl.name, value)}: parameter {decl.name!r}: "
                            f"{reason}") from None
