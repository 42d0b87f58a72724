"""The job API of issue 17 end to end on the local stack: reducer-only steps, task setup and
teardown, user counters (exact under a retried task), ``retry_on_user_errors`` and the errors
that say what to write. Jobs run through ``JobRunner`` on the stack ``test_e2e`` deploys (the
same name and buckets, so a session that ran it deploys nothing again)."""

from __future__ import annotations

import collections
import json
import uuid

import pytest

from airflow_provider_smr import MapReduceJob, Step
from airflow_provider_smr.engine.runner import JobFailedError
from lambda_handlers import protocol
from lambda_handlers.context import increment_counter, input_uri, state
from lambda_handlers.options import JobOptions

DATA = "smr-e2e-data"
POLL = 0.25

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def engine(deploy_engine):
    engine = deploy_engine("smr-e2e", input_buckets=[DATA])
    return engine.s3, engine.runner


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def put(s3, key: str, body: str) -> str:
    s3.put_object(Bucket=DATA, Key=key, Body=body.encode())
    return f"s3://{DATA}/{key}"


def run(engine, job, input, job_params=None, **options):
    s3, runner = engine
    result = runner.run(job, input=input, output=f"s3://{DATA}/out/{fresh('api')}/", poll_interval=POLL,
                        timeout=300, options=JobOptions(**options), job_params=job_params)
    records = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        records += [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines()]
    return result, [(r["key"], r["value"]) for r in records]


# -- job functions (pickled by value) -------------------------------------------------------------


def first_time(flag: str) -> bool:
    """True once per flag across every attempt and container (S3 put-if-absent)."""
    import boto3

    s3 = boto3.client("s3")
    try:
        s3.put_object(Bucket=DATA, Key=f"flags/{flag}", Body=b"1", IfNoneMatch="*")
        return True
    except s3.exceptions.ClientError:
        return False


def start_tally():
    increment_counter("tasks", "setups")
    return {"lines": 0}


def emit_tally():
    yield "tally", state()["lines"]


def count_lines_failing_once(line):
    """Counts each line; the first attempt that meets ``boom <flag>`` fails after counting."""
    increment_counter("lines", "seen")
    state()["lines"] += 1
    if line.startswith("boom "):
        increment_counter("lines", "boom")
        if first_time(line.split()[1]):
            raise RuntimeError("injected failure")
    yield "lines", 1


def explode(line):
    if line == "boom":
        raise ValueError(f"cannot map {line!r}")
    yield line, 1


def total(key, values):
    yield key, sum(values)


def bare_total(key, values):
    yield sum(values)  # the mistake: a value, not a (key, value) pair


def tokenize(line):
    for word in line.split():
        yield word, 1


def longest_first(_, pairs):  # one group holding every (word, count) of the step before
    yield from sorted(pairs, key=lambda wc: (-wc[1], wc[0]))


def to_one_group(pair):
    yield None, pair


def open_seen():
    return {"keys": 0}


def count_key(key, values):
    state()["keys"] += 1
    yield key, sum(values)


def keys_seen():
    yield "~keys", state()["keys"]


# -- tests ----------------------------------------------------------------------------------------


def test_user_counters_are_exact_under_a_retried_task(engine):
    s3, runner = engine
    prefix, flag = fresh("ctr"), fresh("flag")
    lines = [f"line {i}" for i in range(50)] + [f"boom {flag}"] + [f"line {i}" for i in range(30)]
    put(s3, f"{prefix}/a.txt", "\n".join(lines[:40]) + "\n")
    put(s3, f"{prefix}/b.txt", "\n".join(lines[40:]) + "\n")
    job = MapReduceJob(mapper=count_lines_failing_once, reducer=total, mapper_setup=start_tally,
                       mapper_teardown=emit_tally)
    result, records = run(engine, job, f"s3://{DATA}/{prefix}/", split_size=200)
    # the retry's setup starts a fresh tally; the failed attempt's counts and pairs are gone
    assert dict(records) == {"lines": len(lines), "tally": len(lines)}
    c = result["counters"]
    assert c["retried_attempts"] >= 1
    assert c["user"] == {"lines": {"boom": 1, "seen": len(lines)}, "tasks": {"setups": c["map_tasks"]}}


def test_retry_on_user_errors_off_fails_the_job_on_the_first_attempt_with_the_traceback(engine):
    s3, runner = engine
    uri = put(s3, f"{fresh('fast')}/in.txt", "a\nboom\nb\n")
    with pytest.raises(JobFailedError) as caught:
        run(engine, MapReduceJob(mapper=explode, reducer=total), uri, retry_on_user_errors=False,
            max_attempts=3)
    message = str(caught.value)
    assert "retry_on_user_errors is off" in message and "cannot map 'boom'" in message
    assert "in explode" in message  # the user's own frame in the remote traceback
    failed = caught.value.failed
    assert failed["attempt"] == 0 and failed["error"]["user_error"] is True
    listed = runner.s3.list_objects_v2(Bucket=runner.bucket, Prefix=protocol.status_prefix(failed["job_id"]))
    starts = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".start")]
    assert len(starts) == 1


def test_a_reducer_yielding_bare_values_is_told_to_yield_pairs(engine):
    s3, _ = engine
    uri = put(s3, f"{fresh('bare')}/in.txt", "a b a\n")
    with pytest.raises(JobFailedError, match=r"the reducer must yield \(key, value\) pairs; it yielded 2 "
                                             r"\(int\).*write `yield key, value`"):
        run(engine, MapReduceJob(mapper=tokenize, reducer=bare_total), uri, retry_on_user_errors=False)


def test_a_later_step_without_a_mapper_reduces_the_previous_steps_pairs(engine):
    s3, _ = engine
    uri = put(s3, f"{fresh('two')}/in.txt", "b a c a\nb a\n")
    ranked = MapReduceJob(steps=[Step(mapper=tokenize, reducer=total),
                                 Step(mapper=to_one_group, reducer=longest_first, num_reducers=1)])
    # the same through a reducer-only step: the pairs go to the shuffle unchanged, keyed by word
    passed = MapReduceJob(steps=[Step(mapper=tokenize, reducer=total), Step(reducer=total)])
    _, records = run(engine, ranked, uri)
    assert records == [("a", 3), ("b", 2), ("c", 1)]
    _, records = run(engine, passed, uri, num_reducers=2)
    assert dict(records) == {"a": 3, "b": 2, "c": 1}


def test_reducer_setup_and_teardown_run_once_per_reduce_task(engine):
    s3, runner = engine
    uri = put(s3, f"{fresh('hooks')}/in.txt", " ".join(f"w{i % 17}" for i in range(200)) + "\n")
    job = MapReduceJob(mapper=tokenize, reducer=count_key, reducer_setup=open_seen, reducer_teardown=keys_seen)
    result, records = run(engine, job, uri, num_reducers=3)
    per_task = [v for k, v in records if k == "~keys"]
    assert len(per_task) == 3 and sum(per_task) == 17
    assert {k: v for k, v in records if k != "~keys"} == {f"w{i}": len(range(i, 200, 17)) for i in range(17)}
    bodies = runner.tracker(result["job_id"]).markers()[(0, protocol.REDUCE)]
    assert all("setup_s" in b and "teardown_s" in b for b in bodies)


# -- the mrjob examples, each against an answer computed here -------------------------------------


def texts():
    return {"one.txt": "The quick brown fox\njumps over the lazy dog\nYou and u, unusual hue\n",
            "two.txt": "Quick! Run, run: the fox's hut is up there.\n\nduty calls\n",
            "three.txt": "".join(f"line {i} about u-boats and you\n" for i in range(40))}


@pytest.fixture(scope="module")
def corpus(engine):
    s3, _ = engine
    prefix = fresh("mrjob")
    for name, text in texts().items():
        put(s3, f"{prefix}/{name}", text)
    return f"s3://{DATA}/{prefix}/"


def load(ref: str):
    from pathlib import Path

    from airflow_provider_smr.job import load_job

    return load_job(f"{Path(__file__).resolve().parents[2]}/dags_examples/jobs/{ref}")


def words(pattern: str, flags: int = 0) -> collections.Counter:
    import re

    return collections.Counter(w.lower() for t in texts().values() for w in re.findall(pattern, t, flags))


def test_word_freq_count(engine, corpus):
    _, records = run(engine, load("word_freq_count.py:word_freq_count"), corpus, split_size=64)
    assert dict(records) == dict(words(r"[\w']+"))


def test_words_containing_u_freq_count(engine, corpus):
    _, records = run(engine, load("words_containing_u_freq_count.py:u_word_freq_count"), corpus)
    expected = {w: n for w, n in words(r"[\w']+").items() if "u" in w}
    assert dict(records) == expected


def test_wc_totals_come_from_the_mapper_teardown(engine, corpus):
    result, records = run(engine, load("wc.py:wc"), corpus, split_size=64)
    all_text = "".join(texts().values())
    assert dict(records) == {"chars": len(all_text), "words": len(all_text.split()),
                             "lines": all_text.count("\n")}
    assert result["counters"]["map_output_records"] == 3 * result["counters"]["map_tasks"]


def test_count_lines_by_file(engine, corpus):
    _, records = run(engine, load("count_lines_by_file.py:count_lines_by_file"), corpus, split_size=64)
    assert dict(records) == {corpus + name: text.count("\n") for name, text in texts().items()}


def test_input_uri_from_a_function_outside_a_task_is_none():
    assert input_uri() is None and state() is None
    increment_counter("a", "b")  # outside a task: checked, counted nowhere
    with pytest.raises(TypeError, match="str group and name"):
        increment_counter("a", 3)


DOCS = {  # 6 training and 4 test documents (by the hash of their text)
    "d1-animal.txt": "The cat sat on the mat. A cat likes fish. Really.",
    "d2-animal-not_food.txt": "Dogs bark at the cat; the dog runs. Indeed.",
    "d3-not_animal-food.txt": "Fresh bread and warm soup for dinner.",
    "d4-food.txt": "Soup with bread, fish and rice.",
    "d5-not_animal.txt": "The train leaves the station at noon. Really.",
    "d6-animal.txt": "A dog and a cat share the mat.",
    "d7-not_animal-not_food.txt": "The station clock says noon; the train is late. Indeed.",
    "d8-food-not_animal.txt": "Rice and fish soup, warm bread.",
    "d9-animal-not_food.txt": "The cat chases the dog around the mat.",
    "d10-not_food.txt": "Late trains and station clocks.",
}


def classify(docs: dict, max_n: int, min_df: int) -> tuple[dict, dict, collections.Counter]:
    """The classifier's answer, computed directly: document scores, n-gram scores, doc counts."""
    import hashlib
    import math
    import re

    parsed, tally = {}, collections.Counter()
    for name, text in docs.items():
        doc_id, *cats = name.split(".")[0].split("-")
        ws = re.findall(r"[\w']+", text.lower())
        grams = collections.Counter((n, " ".join(ws[i:i + n])) for n in range(1, max_n + 1)
                                    for i in range(len(ws) - n + 1))
        grams.update({(n, None): len(ws) - n + 1 for n in range(1, max_n + 1)})
        test = int(hashlib.sha1(text.encode()).hexdigest()[-1], 16) % 2 == 1
        tally["test" if test else "training"] += 1
        parsed[doc_id] = ({c.removeprefix("not_"): not c.startswith("not_") for c in cats}, grams, test)
    df, tf = collections.Counter(), collections.defaultdict(collections.Counter)
    for cats, grams, test in parsed.values():
        if not test:
            for gram, count in grams.items():
                df[gram] += 1
                for cat in cats.items():
                    tf[gram][cat] += count
    kept = [g for g in df if df[g] >= min_df]
    m = len(kept)
    scores = {}
    for gram in kept:
        totals = tf[(gram[0], None)]
        p = {cat: (tf[gram][cat] + 2.0 / m) / (t + 2) for cat, t in totals.items()}
        scores[gram] = {c: math.log(p.get((c, True), 1 / m)) - math.log(p.get((c, False), 1 / m))
                        for c, _ in totals}
    doc_scores = {}
    for doc_id, (_, grams, _) in parsed.items():
        by_cat = collections.defaultdict(float)
        for gram, count in grams.items():
            if gram[1] is not None and gram in scores:
                for cat, score in scores[gram].items():
                    by_cat[cat] += score * count / max(grams[(gram[0], None)], 1)
        doc_scores[doc_id] = dict(by_cat)
    return doc_scores, scores, tally


def test_text_classifier(engine):
    s3, _ = engine
    prefix = fresh("docs")
    for name, text in DOCS.items():
        put(s3, f"{prefix}/{name}", text)
    result, records = run(engine, load("text_classifier.py:text_classifier"), f"s3://{DATA}/{prefix}/",
                          job_params={"max_ngram_size": 2, "stop_words": []}, num_reducers=2)
    doc_scores, ngram_scores, tally = classify(DOCS, max_n=2, min_df=2)
    docs = {key[1]: value for key, value in records if key[0] == "doc"}
    assert set(docs) == set(doc_scores)
    for doc_id, doc in docs.items():
        assert doc["cat_to_score"] == pytest.approx(doc_scores[doc_id]), doc_id
    got = {(key[1][0], key[1][1]): value for key, value in records if key[0] == "cat_to_score"}
    assert got.keys() == ngram_scores.keys()
    assert all(got[g] == pytest.approx(ngram_scores[g]) for g in got)
    assert result["counters"]["user"]["documents"] == dict(tally)
