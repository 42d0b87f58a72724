"""The soak test's jobs, with faults injected by a job parameter (shipped by value like any job).

``job_params()["faults"]`` says what goes wrong, decided per task attempt from a hash (the same
plan gives the same faults on every run):

- ``crash_rate``: the share of attempts (below ``crash_attempts``) that raise :class:`InjectedCrash`
  at their first record;
- ``hang``: ``[step, phase, task]`` spots whose attempt 0 sleeps past any timeout (Lambda kills it;
  no marker: the coordinator's deadline retries it);
- ``oom``: spots whose attempt 0 touches ``oom_mb`` MiB (killed out of memory, retried likewise);
- ``delay_s``: a pause per record (a job slow enough to be cancelled mid-way);
- ``tag``: the job's own label, so two jobs with the same plan still get different faults.
"""

from __future__ import annotations

import hashlib
import json
import time

from airflow_provider_smr import MapReduceJob, Step
from lambda_handlers.context import job_params, task

_decided: set[tuple] = set()  # attempts this process has already decided for


class InjectedCrash(RuntimeError):
    """A fault the soak test injected (its job parameter asked for it)."""


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def faults_due() -> None:
    """Inject the faults the job's ``faults`` parameter plans for the running attempt (once each)."""
    plan = job_params().get("faults")
    now = task()
    if not plan or now is None:
        return
    if plan.get("delay_s"):
        time.sleep(float(plan["delay_s"]))
    here = (plan.get("tag"), now.step, now.phase, now.task, now.attempt)
    if here in _decided:
        return
    _decided.add(here)
    spot = [now.step, now.phase, now.task]
    if now.attempt == 0 and spot in plan.get("hang", []):
        time.sleep(3600)
    if now.attempt == 0 and spot in plan.get("oom", []):
        hog = [b"x" * (1 << 20) for _ in range(int(plan.get("oom_mb", 1024)))]
        time.sleep(5)
        del hog
    if (now.attempt < int(plan.get("crash_attempts", 2))
            and _unit(plan.get("tag"), spot, now.attempt) < float(plan.get("crash_rate", 0))):
        raise InjectedCrash(f"injected crash in {now.phase} task {now.task} of step {now.step}, "
                            f"attempt {now.attempt}")


def tokenize(line):
    faults_due()
    for word in line.split():
        yield word, 1


def total(key, counts):
    faults_due()
    yield key, sum(counts)


def first_word_length(line):
    faults_due()
    words = line.split()
    if words:
        yield words[0], len(words)


def by_count(pair):
    faults_due()
    word, count = pair
    yield count, word


def words_of_count(count, words):
    faults_due()
    yield count, sorted(words)


word_count = MapReduceJob(mapper=tokenize, combiner=total, reducer=total, name="soak-wc")
first_words = MapReduceJob(mapper=first_word_length, name="soak-maponly")
count_groups = MapReduceJob(steps=[Step(mapper=tokenize, combiner=total, reducer=total),
                                   Step(mapper=by_count, reducer=words_of_count)],
                            name="soak-two-step")
