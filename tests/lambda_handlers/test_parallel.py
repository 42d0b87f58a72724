"""The data plane's ordered thread-pool maps (lambda_handlers/parallel.py)."""

from __future__ import annotations

import contextvars
import threading

import pytest

from lambda_handlers.parallel import ordered_parallel

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("smr_test_parallel", default="unset")


def where(item: int) -> tuple[int, str, str]:
    seen = VAR.get()
    VAR.set("changed by the call")  # a call's context changes stay in its copy
    return item, threading.current_thread().name, seen


def test_many_items_run_on_the_pool_in_the_callers_context_with_results_in_order():
    VAR.set("caller")
    out = list(ordered_parallel(where, list(range(40)), workers=4))
    assert [item for item, _, _ in out] == list(range(40))
    assert {seen for _, _, seen in out} == {"caller"} and VAR.get() == "caller"
    assert threading.current_thread().name not in {name for _, name, _ in out}


def test_a_single_item_runs_in_the_callers_thread_in_a_copy_of_its_context():
    VAR.set("caller")
    assert list(ordered_parallel(where, [7])) == [(7, threading.current_thread().name, "caller")]
    assert VAR.get() == "caller"
    assert list(ordered_parallel(where, [])) == []


def test_a_single_items_error_reaches_the_caller_as_the_pools_would():
    def fail(item: int) -> int:
        raise ValueError(f"item {item}")

    for items in ([1], [1, 2]):
        with pytest.raises(ValueError, match="item 1"):
            list(ordered_parallel(fail, items))
