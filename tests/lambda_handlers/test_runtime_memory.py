"""``runtime.max_rss_mb``: the peak since the previous reading, with a fallback off Linux."""

from __future__ import annotations

import resource

from lambda_handlers import runtime


def test_a_reading_after_a_large_allocation_is_not_repeated_by_the_next_one():
    runtime.max_rss_mb()
    block = b"\x01" * (120 * 2**20)
    del block
    after_large = runtime.max_rss_mb()
    after_small = runtime.max_rss_mb()
    assert after_small <= after_large - 100


def test_without_proc_the_reading_is_the_process_peak(monkeypatch):
    monkeypatch.setattr(runtime, "_vm_hwm_kb", lambda: None)
    expected = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    assert runtime.max_rss_mb() == expected
