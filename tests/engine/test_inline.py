"""``job.run_inline`` and ``smr run --inline``: the data plane in this process, no stack, no AWS.

Answers are checked against plain Python; the parts against a run of the same job, input, split
size and reducers on a stack of the session's local stack, byte for byte.
"""

from __future__ import annotations

import json
import logging
import operator
import random
import threading
import uuid
from collections import Counter

import pytest

from airflow_provider_smr import MapReduceJob, Step, batch_mapper, fold, identity, range_partitioner
from airflow_provider_smr.cli import main
from airflow_provider_smr.engine.inline import InlineError, run_inline
from dags_examples.jobs import samples
from dags_examples.jobs.amplab import USERVISITS_FIELDS, revenue_by_ip_prefix
from dags_examples.jobs.join import user_orders
from dags_examples.jobs.top_k import top_words
from dags_examples.jobs.word_count import word_count
from lambda_handlers import context
from lambda_handlers.options import JobOptions

DATA = "smr-e2e-data"
WORDS = samples.text_lines(7, 2300)  # 106 KiB of text


def tokenize(line):
    for word in line.split():
        yield word.lower(), 1


def total(word, counts):
    yield word, sum(counts)


def keyed(lines):
    return [(line.split()[0], line) for line in lines if line.strip()]


sort_lines = MapReduceJob(mapper=batch_mapper(keyed), partitioner=range_partitioner(["k", "r"]),
                          reducer=identity, num_reducers=3, output_format="tsv", name="sort_lines")


def word_counter(text: bytes) -> Counter:
    return Counter(w.lower() for w in text.decode().split())


def uservisits_csv(rows: int) -> bytes:
    rng = random.Random(3)
    lines = [",".join(USERVISITS_FIELDS)]
    for _ in range(rows):
        ip = f"{rng.randint(1, 30)}.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        lines.append(f"{ip},url,2026-01-01,{rng.uniform(0, 1):.6f},Mozilla,USA,en,w,1")
    return ("\n".join(lines) + "\n").encode()


def test_run_inline_returns_the_output_pairs_in_part_order():
    pairs = word_count.run_inline(WORDS, split_size="16KiB", num_reducers=3)
    assert dict(pairs) == word_counter(WORDS) and len(pairs) == len(word_counter(WORDS))
    one_part = word_count.run_inline(b"the cat\nthe dog\n")
    assert one_part == [("cat", 1), ("dog", 1), ("the", 2)]


def test_the_output_folder_holds_the_parts_and_the_manifest(tmp_path):
    out = tmp_path / "counts"
    run = run_inline(word_count, WORDS, out, split_size="32KiB", num_reducers=2)
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-00000.jsonl", "part-00001.jsonl"]
    manifest = json.loads((out / "_SUCCESS").read_text())
    assert manifest["records"] == len(word_counter(WORDS)) == run.result["records"]
    assert run.result["status"] == "SUCCEEDED" and run.result["local_output"] == str(out)
    counters = run.result["counters"]
    assert counters["map_tasks"] == -(-len(WORDS) // 32768) and counters["attempts"] == counters["map_tasks"] + 2


def _stack_parts(deployment, job, inputs: dict[str, bytes], **options) -> list[tuple[str, bytes]]:
    s3, prefix = deployment.s3, f"inline-{uuid.uuid4().hex[:8]}"
    uris = {}
    for name, body in inputs.items():
        s3.put_object(Bucket=DATA, Key=f"{prefix}/{name}/input", Body=body)
        uris[name] = f"s3://{DATA}/{prefix}/{name}/input"
    result = deployment.runner.run(job, input=uris if len(uris) > 1 else uris["default"],
                                   output=f"s3://{DATA}/{prefix}/out/", poll_interval=0.2, timeout=300,
                                   options=JobOptions(**options))
    parts = []
    for uri in result["parts"]:
        key = uri.split("/", 3)[3]
        parts.append((key.rsplit("/", 1)[1], s3.get_object(Bucket=DATA, Key=key)["Body"].read()))
    return parts


HELD_IN = [  # (job, inputs, options): the example jobs, several map tasks and reducers each
    (word_count, {"default": WORDS}, {"split_size": "8KiB", "num_reducers": 3}),
    (top_words, {"default": WORDS}, {"split_size": "20KiB", "num_reducers": 2}),
    (user_orders, {"users": samples.users_csv(300), "orders": samples.orders_jsonl(300, 2000)},
     {"split_size": "10KiB", "num_reducers": 2}),
    (revenue_by_ip_prefix, {"default": uservisits_csv(1500)}, {"split_size": "24KiB"}),
    (sort_lines, {"default": WORDS}, {"split_size": "30KiB"}),
]


@pytest.mark.timeout(900)
def test_inline_parts_are_byte_identical_to_a_stack_run(deploy_engine, tmp_path):
    deployment = deploy_engine("smr-e2e", input_buckets=[DATA])
    stack = deployment.stack
    for job, inputs, options in HELD_IN:
        expected = _stack_parts(deployment, job, inputs, **options)
        out = tmp_path / job.name
        given = inputs["default"] if list(inputs) == ["default"] else inputs
        run_inline(job, given, out, memory_mb=stack.memory_mb, timeout_s=stack.timeout_s, **options)
        got = [(p.name, p.read_bytes()) for p in sorted(out.glob("part-*"))]
        assert [n for n, _ in got] == [n for n, _ in expected], job.name
        assert got == expected, job.name


def test_named_inputs_params_and_the_task_context_reach_the_functions():
    seen = []

    def tag_users(line):
        seen.append((context.input_name(), context.input_uri(), context.task()))
        yield line, context.job_params()["tag"]

    def tag_orders(line):
        yield line, "order"

    job = MapReduceJob(mapper={"users": tag_users, "orders": tag_orders}, reducer=identity)
    pairs = job.run_inline({"users": [b"ann\n", b"bob\n"], "orders": b"o1\n"}, job_params={"tag": "user"})
    assert pairs == [("ann", "user"), ("bob", "user"), ("o1", "order")]
    assert {(name, uri) for name, uri, _ in seen} == {
        ("users", "s3://smr-local-data/inputs/users-0/input"),
        ("users", "s3://smr-local-data/inputs/users-1/input")}
    assert {t.phase for _, _, t in seen} == {"map"}
    assert context.task() is None and context.job_params() == {}  # the caller's context is its own


CALLS: Counter = Counter()


def explode_on_boom(line):
    CALLS[line] += 1
    for word in line.split():
        if word == "boom":
            raise ZeroDivisionError("boom found")
        yield word, 1


def test_an_error_in_the_mapper_is_its_own_exception_with_its_traceback_and_no_retry():
    CALLS.clear()
    job = MapReduceJob(mapper=explode_on_boom, reducer=total)
    with pytest.raises(ZeroDivisionError, match="boom found") as info:
        job.run_inline(b"a b\nc boom\nd\n", max_attempts=3)
    tb = info.value.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code is explode_on_boom.__code__  # post-mortem debugging starts there
    assert "byte 4 of s3://smr-local-data/inputs/default-0/input" in info.value.__notes__[0]
    assert "record: c boom" in info.value.__notes__[0]
    assert CALLS["a b"] == 1 and CALLS["c boom"] == 2  # mapped again alone to name it; no retry


def test_the_jobs_functions_run_in_the_callers_thread_where_breakpoint_works():
    threads = set()

    def mapper(line):
        threads.add(threading.get_ident())
        yield line, 1

    def reducer(key, values):
        threads.add(threading.get_ident())
        yield key, sum(values)

    MapReduceJob(mapper=mapper, combiner=reducer, reducer=reducer).run_inline(WORDS, split_size="32KiB")
    assert threads == {threading.get_ident()}


def test_an_error_in_the_reducer_is_its_own_exception():
    def fails_on_dog(word, counts):
        if word == "dog":
            raise KeyError(word)
        yield word, sum(counts)

    with pytest.raises(KeyError) as info:
        MapReduceJob(mapper=tokenize, reducer=fails_on_dog).run_inline(b"cat dog\n")
    assert "reduce task 0 of step 0" in info.value.__notes__[0]


def test_a_mapper_that_returns_no_pairs_says_what_to_write():
    with pytest.raises(Exception, match=r"write `yield key, value`"):
        MapReduceJob(mapper=lambda line: 3, reducer=total).run_inline(b"x\n")


def test_bad_records_are_skipped_inline_as_on_a_stack():
    def numbers(line):
        yield "sum", int(line)

    job = MapReduceJob(mapper=numbers, combiner=fold(operator.add), reducer=fold(operator.add))
    assert job.run_inline(b"1\n2\nthree\n4\n", max_bad_records=1) == [("sum", 7)]


def test_a_later_step_and_the_memory_settings_run_inline():
    job = MapReduceJob(steps=[Step(mapper=tokenize, combiner=total, reducer=total),
                              Step(mapper=lambda kv: [(kv[1], kv[0])], reducer=identity)])
    pairs = job.run_inline(WORDS, memory_mb=128, split_size="16KiB", num_reducers=2)
    assert sorted(pairs) == sorted((n, w) for w, n in word_counter(WORDS).items())


def test_what_an_inline_run_cannot_do_is_refused_before_it_runs(tmp_path):
    with pytest.raises(InlineError, match=r"input 's3://b/x': an inline run reads local files"):
        word_count.run_inline("s3://b/x")
    with pytest.raises(InlineError, match=r"output 's3://b/out/': an inline run writes to a local"):
        word_count.run_inline(b"a\n", "s3://b/out/")
    with pytest.raises(InlineError, match=r"unknown option 'reducers'"):
        word_count.run_inline(b"a\n", reducers=2)
    with pytest.raises(ValueError, match=r"memory_mb must be an integer in \[128, 10240\], got 64"):
        word_count.run_inline(b"a\n", memory_mb=64)


@pytest.fixture
def cli():
    """``smr`` in this process; the log levels its commands set are restored after the test."""
    loggers = [logging.getLogger(name) for name in ("smr", "airflow_provider_smr")]
    levels = [logger.level for logger in loggers]
    yield main
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_smr_run_inline_writes_the_folder_and_prints_the_result(cli, tmp_path, capsys):
    (tmp_path / "in.txt").write_bytes(WORDS)
    out = tmp_path / "wc"
    code = cli(["run", "dags_examples/jobs/word_count.py:word_count", "--inline", "--input",
                 str(tmp_path / "in.txt"), "--output", str(out), "--split-size", "40KiB", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED" and result["counters"]["map_tasks"] == -(-len(WORDS) // 40960)
    counts = {}
    for part in sorted(out.glob("part-*.jsonl")):
        for line in part.read_text().splitlines():
            rec = json.loads(line)
            counts[rec["key"]] = rec["value"]
    assert counts == word_counter(WORDS) and (out / "_SUCCESS").exists()


def test_smr_run_inline_raises_the_jobs_own_error(cli, tmp_path):
    job_file = tmp_path / "boom_job.py"
    job_file.write_text("from airflow_provider_smr import MapReduceJob\n\n"
                        "def explode(line):\n    raise ValueError('bad line ' + line)\n\n"
                        "job = MapReduceJob(mapper=explode, reducer=None)\n")
    (tmp_path / "in.txt").write_text("first\n")
    with pytest.raises(ValueError, match="bad line first"):
        cli(["run", f"{job_file}:job", "--inline", "--input", str(tmp_path / "in.txt"),
              "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_local_s3_input_is_a_cli_error_of_one_line(cli, capsys):
    code = cli(["run", "dags_examples/jobs/word_count.py:word_count", "--inline", "--input",
                 "s3://some-bucket/in/", "--output", "out"])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        "smr: error: InlineError: --input 's3://some-bucket/in/': an inline run reads local files "
        "(or bytes); run on the local stack (--local) or a deployed stack to read S3 or DynamoDB")



def test_an_inline_run_into_a_committed_folder_is_refused_unless_overwrite(tmp_path):
    from airflow_provider_smr.engine.runner import OutputExistsError

    out = tmp_path / "counts"
    run_inline(word_count, WORDS, out, split_size="32KiB", num_reducers=3)
    with pytest.raises(OutputExistsError, match=r"pass overwrite=True to replace it"):
        run_inline(word_count, WORDS, out, num_reducers=1)
    assert len(list(out.glob("part-*"))) == 3
    run_inline(word_count, WORDS, out, num_reducers=1, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-00000.jsonl"]
