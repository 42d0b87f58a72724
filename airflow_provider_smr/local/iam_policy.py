"""IAM policy evaluation for the local stack: the part of AWS's logic the functions' policies use.

Statements with ``Action``/``NotAction``, ``Resource``/``NotResource``, ``Principal`` (trust
policies) and the condition operators ``String*``, ``Arn*``, ``Bool`` and ``Null`` (with
``...IfExists``); wildcards ``*`` and ``?``; the policy variables ``${*}``, ``${?}``, ``${$}``
(literal characters). An explicit deny wins; otherwise a request is allowed when a statement allows
it. An operator not listed here never matches an ``Allow`` and always matches a ``Deny``: unknown
means refused, not granted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ALLOW, DENY, IMPLICIT = "allow", "deny", "implicit"
_VARIABLE = re.compile(r"\$\{(\*|\?|\$)\}")


@lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _VARIABLE.finditer(text):
        out.append(_wild(text[pos:m.start()]))
        out.append(re.escape(m.group(1)))
        pos = m.end()
    out.append(_wild(text[pos:]))
    return re.compile("".join(out), re.S | (re.I if ignore_case else 0))


def _wild(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool | None:
    """Whether one condition holds; None for an operator this module does not know."""
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    present = key in context and context[key] is not None
    wanted_values = [str(w) for w in _listed(wanted)]
    if op == "Null":
        return (not present) == (wanted_values[0].lower() == "true")
    if not present:
        if if_exists:
            return True
        return op.startswith(("StringNot", "ArnNot"))
    actual = [str(v) for v in _listed(context[key])]
    tests: dict[str, Callable[[str, str], bool]] = {
        "StringEquals": lambda w, a: w == a, "StringNotEquals": lambda w, a: w == a,
        "StringEqualsIgnoreCase": lambda w, a: w.lower() == a.lower(),
        "StringNotEqualsIgnoreCase": lambda w, a: w.lower() == a.lower(),
        "StringLike": lambda w, a: matches(w, a), "StringNotLike": lambda w, a: matches(w, a),
        "ArnEquals": lambda w, a: w == a, "ArnNotEquals": lambda w, a: w == a,
        "ArnLike": lambda w, a: matches(w, a), "ArnNotLike": lambda w, a: matches(w, a),
        "Bool": lambda w, a: w.lower() == a.lower(),
    }
    test = tests.get(op)
    if test is None:
        return None
    hit = any(test(w, a) for w in wanted_values for a in actual)
    return not hit if "Not" in op else hit


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any],
                     effect: str) -> bool:
    for operator, pairs in conditions.items():
        for key, wanted in pairs.items():
            holds = _condition_holds(operator, key, wanted, context)
            if holds is None:
                return effect == "Deny"
            if not holds:
                return False
    return True


def _principal_matches(principal: Any, caller: Principal | None) -> bool:
    if principal is None:
        return True  # an identity policy: no principal element
    if caller is None:
        return False
    if principal == "*":
        return True
    for kind, values in principal.items():
        if kind != "AWS":
            continue
        for value in _listed(values):
            if value in ("*", caller.account, f"arn:{caller.partition}:iam::{caller.account}:root",
                         caller.role_arn):
                return True
    return False


@dataclass(frozen=True)
class Principal:
    """Who asks, as a trust policy sees it: a role in an account."""

    role_arn: str
    account: str
    partition: str = "aws"


@dataclass(frozen=True)
class _Statement:
    effect: str
    actions: re.Pattern[str] | None  # None: no Action element (NotAction, or neither)
    not_actions: re.Pattern[str] | None
    resources: re.Pattern[str] | None
    not_resources: re.Pattern[str] | None
    principal: Any
    has_principal: bool
    conditions: Mapping[str, Mapping[str, Any]]


def _alternatives(patterns: Any, ignore_case: bool) -> re.Pattern[str]:
    joined = "|".join(f"(?:{_pattern(p, ignore_case).pattern})" for p in _listed(patterns))
    return re.compile(joined, re.S | (re.I if ignore_case else 0))


@lru_cache(maxsize=1024)
def _compiled(document_json: str) -> tuple[_Statement, ...]:
    document = json.loads(document_json)
    out = []
    for st in _listed(document.get("Statement", [])):
        out.append(_Statement(
            effect=st.get("Effect", ""),
            actions=_alternatives(st["Action"], True) if "Action" in st else None,
            not_actions=_alternatives(st["NotAction"], True) if "NotAction" in st else None,
            resources=_alternatives(st["Resource"], False) if "Resource" in st else None,
            not_resources=_alternatives(st["NotResource"], False) if "NotResource" in st else None,
            principal=st.get("Principal"), has_principal="Principal" in st,
            conditions=st.get("Condition") or {}))
    return tuple(out)


def _action_applies(st: _Statement, action: str) -> bool:
    if st.actions is not None:
        return st.actions.fullmatch(action) is not None
    return st.not_actions is not None and st.not_actions.fullmatch(action) is None


@lru_cache(maxsize=4096)
def _for_action(document_json: str, action: str) -> tuple[_Statement, ...]:
    """The document's statements whose ``Action``/``NotAction`` cover ``action``: every request
    of a function is checked against its role's policies, and only these can apply to it."""
    return tuple(st for st in _compiled(document_json) if _action_applies(st, action))


@dataclass(frozen=True)
class _ActionPlan:
    """How a document decides one action: the ``Resource`` patterns of its plain statements (no
    ``Principal``, no ``Condition``: most of an identity policy) joined into one pattern per
    effect, and the other statements, checked one by one. A function's every GET is checked
    against its role's and its session's policies, so one match per effect instead of one per
    statement is most of that check's time."""

    denies: re.Pattern[str] | None
    allows: re.Pattern[str] | None
    others: tuple[_Statement, ...]


def _is_plain(st: _Statement) -> bool:
    return (st.effect in ("Allow", "Deny") and not st.has_principal and not st.conditions
            and st.resources is not None)


@lru_cache(maxsize=4096)
def _plan_for(document_json: str, action: str) -> _ActionPlan:
    statements = _for_action(document_json, action)

    def joined(effect: str) -> re.Pattern[str] | None:
        patterns = [st.resources.pattern for st in statements
                    if st.effect == effect and _is_plain(st) and st.resources is not None]
        return re.compile("|".join(f"(?:{p})" for p in patterns), re.S) if patterns else None

    return _ActionPlan(joined("Deny"), joined("Allow"), tuple(st for st in statements if not _is_plain(st)))


def _statement_applies(st: _Statement, action: str, resource: str, context: Mapping[str, Any],
                       caller: Principal | None) -> bool:
    if st.has_principal and not _principal_matches(st.principal, caller):
        return False
    if not _action_applies(st, action):
        return False
    if st.resources is not None:
        if st.resources.fullmatch(resource) is None:
            return False
    elif st.not_resources is not None:
        if st.not_resources.fullmatch(resource) is not None:
            return False
    elif not st.has_principal:
        return False
    return _conditions_hold(st.conditions, context, st.effect)


def evaluate(documents: Iterable[Mapping[str, Any] | str], action: str, resource: str,
             context: Mapping[str, Any] | None = None, caller: Principal | None = None) -> str:
    """:data:`ALLOW`, :data:`DENY` (an explicit deny) or :data:`IMPLICIT` (nothing allows it).

    A document is a dict or its JSON text (compiled once per text)."""
    context = context or {}
    allowed = False
    for document in documents:
        text = document if isinstance(document, str) else json.dumps(document, sort_keys=True)
        plan = _plan_for(text, action)
        if plan.denies is not None and plan.denies.fullmatch(resource) is not None:
            return DENY
        for st in plan.others:
            if not _statement_applies(st, action, resource, context, caller):
                continue
            if st.effect == "Deny":
                return DENY
            if st.effect == "Allow":
                allowed = True
        if not allowed and plan.allows is not None and plan.allows.fullmatch(resource) is not None:
            allowed = True
    return ALLOW if allowed else IMPLICIT
