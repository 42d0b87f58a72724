"""A short soak (bench/soak.py): concurrent jobs on one stack with every kind of fault at once.

Five jobs on the 6 s stack: S3 and DynamoDB outputs, map-only and two-step jobs, crashes injected
by a job parameter in a fifth of the attempts, one map attempt hanging past the timeout, one
reduce attempt out of memory, speculation on, a worker-side driver (``smr run``) killed mid-job
and resumed, and one job cancelled mid-way. ``run_soak`` checks every output against its
reference, that the cancelled job committed nothing, that nothing appeared outside the work bucket
but the outputs, and (two waves: the first warms the stack up) that the local stack's descriptors
and memory came back near their baseline.
"""

from __future__ import annotations

import pytest

from bench.soak import SoakConfig, run_soak
from tests.reliability.conftest import DATA

pytestmark = pytest.mark.timeout(600)


def test_a_short_soak_keeps_every_output_exact(tight, local_stack, aws_endpoint):
    cfg = SoakConfig(jobs=5, lines=60, objects=2, crash_rate=0.2, hangs=1, ooms=1, timeout_s=300)
    figures = run_soak(cfg, tight.clients, tight.stack, aws_endpoint, DATA, stack_pid=local_stack.pid)
    print("soak figures:", figures)  # shown with -s or on failure
    assert (figures["jobs"], figures["succeeded"], figures["cancelled"]) == (10, 8, 2)  # 2 waves
    assert (figures["planned_hangs"], figures["planned_ooms"]) == (2, 2)
    assert figures["retried_attempts"] >= 2  # the hang and the out-of-memory attempt, at least
    assert figures["failed_attempts"] >= 2
