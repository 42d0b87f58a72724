"""The whole handler chain (map -> coordinator -> reduce -> commit) in-process on local S3."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter

from lambda_handlers import protocol
from lambda_handlers.jobspec import JobSpec, StepSpec

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa"]


def tokenize(line):
    for w in line.split():
        yield w.lower(), 1


def total(word, counts):
    yield word, sum(counts)


def _text(seed: int, lines: int) -> str:
    rnd = random.Random(seed)
    return "".join(" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 9))) + "\n"
                   for _ in range(lines))


def _counts(lines: list[bytes]) -> dict:
    out = {}
    for ln in lines:
        rec = json.loads(ln)
        assert rec["key"] not in out
        out[rec["key"]] = rec["value"]
    return out


def _word_count(harness, chain_runner, combiner, reducers=3, split_size=700, **kw):
    texts = [_text(1, 300), _text(2, 120), ""]
    objs = [harness.put(f"wc/{i}.txt", t.encode()) for i, t in enumerate(texts)]
    spec = JobSpec(steps=[StepSpec(mapper=tokenize, combiner=total if combiner else None, reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, split_size), [reducers], **kw)
    chain_runner.run(plan["events"])
    lines, manifest = harness.output(plan)
    expected = Counter(w for t in texts for w in t.split())
    return plan, lines, manifest, expected


def test_word_count_with_combiner_equals_counter(harness, chain):
    plan, lines, manifest, expected = _word_count(harness, chain(), combiner=True)
    assert _counts(lines) == dict(expected)
    assert manifest["records"] == len(expected) and len(manifest["parts"]) == 3
    assert harness.state(plan["job_id"]) == [protocol.SUCCEEDED]


def test_word_count_without_combiner_equals_counter(harness, chain):
    _, lines, _, expected = _word_count(harness, chain(), combiner=False, reducers=2)
    assert _counts(lines) == dict(expected)


def test_parts_are_sorted_by_key(harness, chain):
    plan, _, manifest, _ = _word_count(harness, chain(), combiner=True, reducers=2)
    for p in manifest["parts"]:
        body = harness.s3.get_object(Bucket=plan["output"]["bucket"], Key=p["key"])["Body"].read()
        keys = [json.loads(ln)["key"] for ln in body.splitlines()]
        assert keys == sorted(keys) and len(body) == p["size"] and len(keys) == p["records"]


def test_duplicate_delivery_of_every_task_gives_the_exact_answer(harness, chain):
    runner = chain(duplicate=True, workers=4)
    plan, lines, _, expected = _word_count(harness, runner, combiner=True)
    assert _counts(lines) == dict(expected)
    # every event ran twice, yet each transition happened once
    reduces = {k: v for k, v in runner.calls.items() if k[0] == "reduce"}
    assert set(reduces.values()) == {2} and len(reduces) == 3


def test_map_only_job_writes_parts_directly(harness, chain):
    objs = [harness.put("mo/a.txt", b"b 2\na 1\nc 3\n")]
    spec = JobSpec(steps=[StepSpec(mapper=lambda line: [tuple(line.split())])], output_format="tsv")
    plan = harness.submit(spec, harness.splits(objs, 5), [0], output_format="tsv")
    chain().run(plan["events"])
    lines, manifest = harness.output(plan)
    assert sorted(lines) == [b'"a"\t"1"', b'"b"\t"2"', b'"c"\t"3"']
    assert len(manifest["parts"]) == len(plan["splits"])


def top_pairs(kv):
    word, n = kv
    yield "top", [n, word]


def keep_top2(_, pairs):
    yield "top", sorted(pairs, reverse=True)[:2]


def test_two_steps_top_k(harness, chain):
    text = "a a a b b c d d d d\n" * 3
    objs = [harness.put("two/a.txt", text.encode())]
    spec = JobSpec(steps=[StepSpec(mapper=tokenize, combiner=total, reducer=total),
                          StepSpec(mapper=top_pairs, reducer=keep_top2)])
    plan = harness.submit(spec, harness.splits(objs, 8), [3, 1])
    chain().run(plan["events"])
    lines, _ = harness.output(plan)
    assert [json.loads(ln) for ln in lines] == [{"key": "top", "value": [[12, "d"], [9, "a"]]}]


ATTEMPTS = Counter()


def flaky(line):
    ATTEMPTS[line] += 1
    if line == "boom" and ATTEMPTS[line] == 1:
        raise RuntimeError("transient")
    yield line, 1


def test_a_failed_first_attempt_is_retried(harness, chain):
    ATTEMPTS.clear()
    objs = [harness.put("retry/a.txt", b"x\nboom\ny\n")]
    spec = JobSpec(steps=[StepSpec(mapper=flaky, reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 100), [1])
    runner = chain()
    runner.run(plan["events"])
    lines, _ = harness.output(plan)
    assert _counts(lines) == {"boom": 1, "x": 1, "y": 1}
    assert runner.calls[("map", 0, 0, 1)] == 1


def always_fails(line):
    raise ValueError(f"cannot parse {line!r}")


def test_a_task_failing_max_attempts_fails_the_job_with_the_cause(harness, chain):
    objs = [harness.put("fail/a.txt", b"hello\nworld\n")]
    spec = JobSpec(steps=[StepSpec(mapper=always_fails, reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 100), [1], max_attempts=2)
    chain().run(plan["events"])
    assert harness.state(plan["job_id"]) == [protocol.FAILED]
    failed = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"],
                                              Key=protocol.failed_key(plan["job_id"]))["Body"].read())
    assert failed["phase"] == "map" and failed["attempt"] == 1
    assert "byte 0 of s3://smr-data-test/fail/a.txt" in failed["error"]["message"]
    assert failed["error"]["record_preview"] == "hello"
    assert "cannot parse" in failed["reason"]


def test_bad_records_up_to_the_limit_are_skipped_and_counted(harness, chain):
    objs = [harness.put("bad/a.jsonl", b'{"w": "a"}\nnot json\n{"w": "b"}\n{oops\n')]
    spec = JobSpec(steps=[StepSpec(mapper=lambda r: [(r["w"], 1)], reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 100, "jsonl"), [1], max_bad_records=2)
    chain().run(plan["events"])
    lines, _ = harness.output(plan)
    assert _counts(lines) == {"a": 1, "b": 1}
    marker = json.loads(harness.s3.get_object(
        Bucket=plan["work_bucket"],
        Key=protocol.done_marker_key(plan["job_id"], 0, "map", 0))["Body"].read())
    assert marker["bad_records"] == 2 and marker["records_in"] == 4


def test_csv_jsonl_and_gzip_inputs(harness, chain):
    csv_obj = harness.put("fmt/a.csv", b"name,n\nx,1\ny,2\n\"z,q\",3\nx,4\n")
    gz_obj = harness.put("fmt/b.csv.gz", gzip.compress(b"name,n\nx,10\ny,20\n"))
    spec = JobSpec(steps=[StepSpec(mapper=lambda r: [(r["name"], int(r["n"]))], reducer=total)],
                   input_format="csv")
    plan = harness.submit(spec, harness.splits([csv_obj, gz_obj], 6, "csv"), [2])
    chain().run(plan["events"])
    assert _counts(harness.output(plan)[0]) == {"x": 15, "y": 22, "z,q": 3}

    jl = harness.put("fmt/c.jsonl", b'{"k": 1}\n\n{"k": 2}\n{"k": 1}')
    spec = JobSpec(steps=[StepSpec(mapper=lambda r: [(r["k"], 1)], reducer=total)])
    plan = harness.submit(spec, harness.splits([jl], 7, "jsonl"), [1])
    chain().run(plan["events"])
    assert [json.loads(x) for x in harness.output(plan)[0]] == [{"key": 1, "value": 2},
                                                                {"key": 2, "value": 1}]


MIXED = [None, True, False, 0, 1, 1.0, 2.5, -3, "1", "a", "", [1, "x"], [1], {"b": 1, "a": 2}]


def emit_mixed(line):
    for k in MIXED:
        yield k, 1


def test_keys_of_several_json_types_stay_distinct_and_totally_ordered(harness, chain):
    objs = [harness.put("mixed/a.txt", b"l1\nl2\nl3\n")]
    spec = JobSpec(steps=[StepSpec(mapper=emit_mixed, combiner=total, reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 3), [1])
    chain().run(plan["events"])
    got = [json.loads(x) for x in harness.output(plan)[0]]
    assert [g["value"] for g in got] == [3] * len(MIXED)
    assert [g["key"] for g in got] == [None, False, True, -3, 0, 1, 1.0, 2.5, "", "1", "a", [1],
                                       [1, "x"], {"a": 2, "b": 1}]


def test_reducer_spills_to_disk_with_a_tiny_memory_budget_and_still_counts_exactly(harness, chain):
    texts = [_text(5, 400)]
    objs = [harness.put("spill/a.txt", texts[0].encode())]
    spec = JobSpec(steps=[StepSpec(mapper=tokenize, reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 2000), [1], memory_budget_bytes=4096)
    chain().run(plan["events"])
    assert _counts(harness.output(plan)[0]) == dict(Counter(texts[0].split()))
    marker = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"], Key=protocol.done_marker_key(
        plan["job_id"], 0, "reduce", 0))["Body"].read())
    assert marker["spilled_bytes"] > 0


def by_first_letter(key, n):
    return 0 if key < "m" else 1


def test_custom_partitioner_decides_the_part(harness, chain):
    objs = [harness.put("part/a.txt", b"apple zebra kiwi nut apple\n")]
    spec = JobSpec(steps=[StepSpec(mapper=tokenize, reducer=total, partitioner=by_first_letter)])
    plan = harness.submit(spec, harness.splits(objs, 100), [2])
    chain().run(plan["events"])
    _, manifest = harness.output(plan)
    parts = [harness.s3.get_object(Bucket="smr-data-test", Key=p["key"])["Body"].read() for p in manifest["parts"]]
    assert [sorted(_counts(p.splitlines())) for p in parts] == [["apple", "kiwi"], ["nut", "zebra"]]


def test_named_inputs_each_get_their_own_mapper_for_a_join(harness, chain):
    users = harness.put("join/users.csv", b"id,name\n1,ann\n2,bob\n")
    orders = harness.put("join/orders.jsonl", b'{"user": 1, "amount": 5}\n{"user": 1, "amount": 7}\n'
                                              b'{"user": 2, "amount": 1}\n')
    spec = JobSpec(steps=[StepSpec(
        mapper={"users": lambda r: [(int(r["id"]), ["name", r["name"]])],
                "orders": lambda r: [(r["user"], ["amount", r["amount"]])]},
        reducer=lambda k, vs: [(dict(v for v in vs if v[0] == "name")["name"],
                                sum(v[1] for v in vs if v[0] == "amount"))])])
    splits = harness.splits([users], 8, "csv", "users") + harness.splits([orders], 30, "jsonl", "orders")
    for i, sp in enumerate(splits):
        sp["task"] = i
    plan = harness.submit(spec, splits, [2])
    chain().run(plan["events"])
    assert _counts(harness.output(plan)[0]) == {"ann": 12, "bob": 1}


def test_an_input_changed_during_the_job_fails_it_with_a_clear_error(harness, chain):
    objs = [harness.put("chg/a.txt", b"one\ntwo\n")]
    splits = harness.splits(objs, 100)
    harness.put("chg/a.txt", b"changed\n")
    plan = harness.submit(JobSpec(steps=[StepSpec(mapper=tokenize, reducer=total)]), splits, [1])
    chain().run(plan["events"])
    failed = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"],
                                              Key=protocol.failed_key(plan["job_id"]))["Body"].read())
    assert "object s3://smr-data-test/chg/a.txt changed during the job" in failed["reason"]


def test_a_mapper_returning_a_bare_pair_fails_with_advice(harness, chain):
    objs = [harness.put("shape/a.txt", b"x\n")]
    spec = JobSpec(steps=[StepSpec(mapper=lambda line: (line, 1), reducer=total)])
    plan = harness.submit(spec, harness.splits(objs, 100), [1], max_attempts=1)
    chain().run(plan["events"])
    failed = json.loads(harness.s3.get_object(Bucket=plan["work_bucket"],
                                              Key=protocol.failed_key(plan["job_id"]))["Body"].read())
    assert "must return an iterable of (key, value) pairs; it produced 'x'" in failed["reason"]


def test_a_map_only_last_step_reads_the_previous_reducers(harness, chain):
    objs = [harness.put("mol/a.txt", b"a b a c a b\n")]
    spec = JobSpec(steps=[StepSpec(mapper=tokenize, combiner=total, reducer=total),
                          StepSpec(mapper=lambda kv: [(kv[1], kv[0])])], output_format="csv")
    plan = harness.submit(spec, harness.splits(objs, 4), [2, 0], output_format="csv")
    chain().run(plan["events"])
    lines, manifest = harness.output(plan)
    assert sorted(lines) == [b"1,c", b"2,b", b"3,a"] and len(manifest["parts"]) == 2


def exits(line):
    raise SystemExit(3)


def test_a_mapper_calling_sys_exit_fails_the_attempt_not_the_container(harness, chain):
    objs = [harness.put("exit/a.txt", b"x\n")]
    plan = harness.submit(JobSpec(steps=[StepSpec(mapper=exits, reducer=total)]),
                          harness.splits(objs, 100), [1], max_attempts=1)
    chain().run(plan["events"])
    assert harness.state(plan["job_id"]) == [protocol.FAILED]


def test_only_the_task_of_a_one_task_phase_coordinates_inline_and_only_on_lambda(monkeypatch):
    """The rule behind a small job's missing coordinator hops (the chain itself on the local
    stack: tests/engine/test_e2e.py): a phase of one task, no admission, tasks on Lambda."""
    from lambda_handlers import plan as plan_mod
    from lambda_handlers import runtime
    from lambda_handlers.options import JobOptions
    from lambda_handlers.plan import Plan

    def plan(reducers: list[int], **options) -> Plan:
        steps, m = [], 1
        for i, r in enumerate(reducers):
            steps.append({"index": i, "num_map_tasks": m, "num_reducers": r})
            m = r
        return Plan.from_json({
            "v": 2, "job_id": "j", "work_bucket": "w", "created": "2026-01-01T00:00:00Z", "job_name": "j",
            "options": JobOptions(**options).to_dict(), "inputs": {}, "splits": [], "steps": steps,
            "output": {"uri": "s3://b/o/", "bucket": "b", "prefix": "o/", "format": "jsonl",
                       "overwrite": False, "inputs": []}})

    monkeypatch.setattr(runtime, "_invoker", None)  # as on Lambda
    one, two = plan([1]), plan([2, 1])
    assert runtime.coordinates_inline(one, 0, protocol.MAP) and runtime.coordinates_inline(one, 0, protocol.REDUCE)
    assert runtime.coordinates_inline(two, 0, protocol.MAP)
    assert not runtime.coordinates_inline(two, 0, protocol.REDUCE)  # two reducers: the coordinator
    assert not runtime.coordinates_inline(two, 1, protocol.MAP)  # step 1 maps the two parts
    assert runtime.coordinates_inline(two, 1, protocol.REDUCE)
    assert not runtime.coordinates_inline(plan([1], max_running_tasks=4), 0, protocol.MAP)  # admission
    assert not runtime.coordinates_inline(None, 0, protocol.MAP)  # the task failed before its plan
    table = Plan.from_json({**one.to_json(), "output": {**one.to_json()["output"], "table": "t",
                                                        "format": plan_mod.DYNAMODB_FORMAT}})
    assert table.output.table and not runtime.coordinates_inline(table, 0, protocol.MAP)  # the coordinator's
    timeout = one.limits.task_timeout_s  # a task that ran long leaves the call too little time
    assert runtime.coordinates_inline(one, 0, protocol.MAP, timeout / 2 - 1)
    assert not runtime.coordinates_inline(one, 0, protocol.MAP, timeout / 2)
    monkeypatch.setattr(runtime, "_invoker", lambda name, event: None)  # tests that run the chain here
    assert not runtime.coordinates_inline(one, 0, protocol.MAP)
