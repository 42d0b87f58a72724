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


def evaluate(documents: Iterable[Mapping[str, Any]], action: str, resource: str,
             context: Mapping[str, Any] | None = None, caller: Principal | None = None) -> str:
    """:data:`ALLOW`, :data:`DENY` (an explicit deny) or :data:`IMPLICIT` (nothing allows it)."""
    context = context or {}
    allowed = False
    for document in documents:
        for st in _listed(document.get("Statement", [])):
            effect = st.get("Effect")
            if "Principal" in st and not _principal_matches(st["Principal"], caller):
                continue
            if "Action" in st:
                if not any(matches(a, action, ignore_case=True) for a in _listed(st["Action"])):
                    continue
            elif "NotAction" in st:
                if any(matches(a, action, ignore_case=True) for a in _listed(st["NotAction"])):
                    continue
            else:
                continue
            if "Resource" in st:
                if not any(matches(r, resource) for r in _listed(st["Resource"])):
                    continue
            elif "NotResource" in st:
                if any(matches(r, resource) for r in _listed(st["NotResource"])):
                    continue
            elif "Principal" not in st:
                continue
            if not _conditions_hold(st.get("Condition") or {}, context, effect):
                continue
            if effect == "Deny":
                return DENY
            if effect == "Allow":
                allowed = True
    return ALLOW if allowed else IMPLICIT


def parse(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """A policy document from its JSON text (or as it is)."""
    if isinstance(document, str):
        parsed: Mapping[str, Any] = json.loads(document)
        return parsed
    return document
