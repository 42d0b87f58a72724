"""End to end on the local stack: deployed functions, real handlers, the driver, exact answers.

Every job runs through :class:`~airflow_provider_smr.engine.runner.JobRunner` against a stack
deployed with ``deploy_stack`` on the local stack (moto + Lambda emulation), and its committed
output is compared with the same computation done in plain Python.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import math
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from airflow_provider_smr.job import MapReduceJob, load_job
from lambda_handlers.options import JobOptions

ROOT = Path(__file__).resolve().parents[2]
DATA = "smr-e2e-data"
POLL = 0.25
TIMEOUT = 300

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def engine(deploy_engine):
    """(s3 client, JobRunner) on a stack deployed once for this module."""
    engine = deploy_engine("smr-e2e", input_buckets=[DATA])
    return engine.s3, engine.runner


def put(s3, key: str, body: str | bytes) -> str:
    s3.put_object(Bucket=DATA, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{DATA}/{key}"


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def run(engine, job, input, **kw):
    s3, runner = engine
    output = f"s3://{DATA}/out/{fresh('run')}/"
    result = runner.run(job, input=input, output=output, poll_interval=POLL, timeout=TIMEOUT,
                        options=JobOptions(**kw))
    return result, read_records(s3, result)


def read_records(s3, result) -> list[tuple]:
    """Records of all parts in order, as (key, value) with JSON types preserved."""
    records = []
    for uri in result["parts"]:
        bucket, key = uri[5:].split("/", 1)
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines():
            rec = json.loads(line)
            records.append((rec["key"], rec["value"]))
    return records


def sort_key(kv):
    return json.dumps(kv, sort_keys=True)


def words_text(seed: int, lines: int) -> str:
    rng = random.Random(seed)
    vocab = [f"{chr(97 + i % 26)}{i}" for i in range(150)] + ["The", "the", "Fox", "fox", "naïve", "café"]
    return "".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) + "\n"
                   for _ in range(lines))


def word_counter(*texts: str) -> dict:
    return dict(collections.Counter(w.lower() for t in texts for w in t.split()))


# -- job functions (pickled by value: this module does not exist inside Lambda) ----------------


def tokenize(line):
    for word in line.split():
        yield word.lower(), 1


def total(key, values):
    yield key, sum(values)


def word_lengths(line):  # map-only
    for word in line.split():
        yield word, len(word)


def by_first_letter(key, n):
    return ord(key[0]) % n


def mixed_keys(line):
    n = int(line)
    yield n % 3, 1                      # int
    yield f"s{n % 2}", 1                # str
    yield n % 2 == 0, 1                 # bool
    yield None, 1                       # null
    yield [n % 2, "x"], 1               # list
    yield (n % 4) / 2, 1                # float (0.0, 0.5, 1.0, 1.5)


def jsonl_by_color(rec):
    yield rec["color"], rec["n"]


def csv_by_city(row):
    yield row["city"], int(row["people"])


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("combiner", [total, None], ids=["with-combiner", "without-combiner"])
def test_word_count_equals_counter(engine, combiner):
    s3, _ = engine
    prefix = fresh("wc")
    texts = [words_text(seed, 400) for seed in range(3)]
    for i, t in enumerate(texts):
        put(s3, f"{prefix}/part-{i}.txt", t)
    job = MapReduceJob(mapper=tokenize, combiner=combiner, reducer=total)
    result, records = run(engine, job, f"s3://{DATA}/{prefix}/", split_size="4KiB", num_reducers=3)
    assert dict(records) == word_counter(*texts)
    assert len(records) == len(dict(records))  # every key exactly once
    assert result["counters"]["records_read"] == sum(t.count("\n") for t in texts)
    assert result["counters"]["output_records"] == len(records)


def test_example_word_count_job(engine):
    s3, _ = engine
    text = words_text(7, 300)
    uri = put(s3, f"{fresh('ex')}/in.txt", text)
    _, records = run(engine, load_job(f"{ROOT}/dags_examples/jobs/word_count.py:word_count"), uri)
    assert dict(records) == word_counter(text)



def invocations(runner, role: str) -> int:
    """How many times the stack's ``role`` function ran: one ``REPORT`` line per invocation."""
    kw, n = {"logGroupName": f"/aws/lambda/{runner.stack.functions[role]}"}, 0
    while True:
        page = runner.clients.logs.filter_log_events(**kw)
        n += sum(e["message"].startswith("REPORT RequestId:") for e in page["events"])
        if not page.get("nextToken"):
            return n
        kw["nextToken"] = page["nextToken"]


def test_a_phase_of_one_task_is_coordinated_by_that_task_and_larger_ones_by_the_coordinator(engine):
    """A one-split, one-reducer job runs in one invocation of the mapper: the winning task of a
    phase that has only it makes the coordinator's call itself, and runs the one task that call
    starts (the reducer, which then commits); a phase of two reducers notifies the coordinator
    once a task, and its reducers are invoked."""
    import time

    s3, runner = engine
    text = words_text(11, 200)
    uri = put(s3, f"{fresh('inline')}/in.txt", text)
    roles = ("mapper", "reducer", "coordinator")
    before = {role: invocations(runner, role) for role in roles}

    def ran(role: str, n: int) -> bool:  # a function logs its end just after the work it did
        for _ in range(100):
            if invocations(runner, role) >= before[role] + n:
                break
            time.sleep(0.1)
        return invocations(runner, role) == before[role] + n

    result, records = run(engine, MapReduceJob(mapper=tokenize, reducer=total), uri, num_reducers=1)
    assert dict(records) == word_counter(text) and result["counters"]["map_tasks"] == 1
    assert result["counters"]["attempts"] == 2 and result["counters"]["reduce_tasks"] == 1
    assert ran("mapper", 1) and ran("reducer", 0) and ran("coordinator", 0)
    assert result["requests"]["lambda_invokes"] == 1  # the result counts the invokes there were
    assert result["estimate"]["lambda_invocations"] == 1  # and the planner's model expects them
    result, records = run(engine, MapReduceJob(mapper=tokenize, reducer=total), uri, num_reducers=2)
    assert dict(records) == word_counter(text) and result["counters"]["reduce_tasks"] == 2
    assert ran("mapper", 2) and ran("reducer", 2) and ran("coordinator", 2)
    assert result["requests"]["lambda_invokes"] == 5  # the mapper, 2 reducers, 2 coordinator calls
    assert result["estimate"]["lambda_invocations"] == 5

def uservisits_csv(seed: int, rows: int) -> tuple[str, list[dict]]:
    rng = random.Random(seed)
    fields = ["sourceIP", "destURL", "visitDate", "adRevenue", "userAgent", "countryCode",
              "languageCode", "searchWord", "duration"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    data = []
    for _ in range(rows):
        row = {"sourceIP": f"{rng.randint(1, 30)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
               "destURL": f"http://x{rng.randint(0, 99)}.com/p", "visitDate": "2024-01-01",
               "adRevenue": f"{rng.uniform(0, 1):.6f}", "userAgent": "Mozilla/5.0 (X11, Linux)",
               "countryCode": "USA", "languageCode": "en", "searchWord": "smr", "duration": "3"}
        writer.writerow(row)
        data.append(row)
    return out.getvalue(), data


def test_amplab_q2_group_by_ip_prefix(engine):
    s3, _ = engine
    prefix = fresh("uservisits")
    rows = []
    for i in range(2):
        text, data = uservisits_csv(i, 600)
        put(s3, f"{prefix}/uservisits-{i}.csv", text)
        rows += data
    job = load_job(f"{ROOT}/dags_examples/jobs/amplab.py:revenue_by_ip_prefix")
    _, records = run(engine, job, f"s3://{DATA}/{prefix}/", split_size="8KiB", num_reducers=2)
    groups = collections.defaultdict(list)
    for r in rows:
        groups[r["sourceIP"][:8]].append(float(r["adRevenue"]))
    assert dict(records) == {k: round(math.fsum(v), 6) for k, v in groups.items()}


def test_map_only_job_writes_mapper_output_sorted_within_parts(engine):
    s3, _ = engine
    text = words_text(11, 200)
    uri = put(s3, f"{fresh('maponly')}/in.txt", text)
    result, records = run(engine, MapReduceJob(mapper=word_lengths), uri, split_size="2KiB")
    assert sorted(records) == sorted((w, len(w)) for w in text.split())
    assert result["counters"]["reduce_tasks"] == 0
    for uri in result["parts"]:
        keys = [k for k, _ in read_records(s3, {"parts": [uri]})]
        assert keys == sorted(keys)


def test_two_step_top_k(engine):
    s3, _ = engine
    text = words_text(5, 500)
    uri = put(s3, f"{fresh('topk')}/in.txt", text)
    job = load_job(f"{ROOT}/dags_examples/jobs/top_k.py:top_words")
    result, records = run(engine, job, uri, split_size="3KiB", num_reducers=3)
    ranked = sorted(word_counter(text).items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert records == [(rank, [w, c]) for rank, (w, c) in enumerate(ranked, start=1)]
    assert result["counters"]["reduce_tasks"] == 4  # 3 in step 0, 1 in step 1


def test_join_of_two_named_inputs(engine):
    s3, _ = engine
    prefix = fresh("join")
    rng = random.Random(3)
    users = "user_id,name\n" + "".join(f"u{i},name {i}\n" for i in range(50))
    orders = [{"user_id": f"u{rng.randint(0, 59)}", "amount": rng.randint(1, 100)} for _ in range(400)]
    put(s3, f"{prefix}/users.csv", users)
    put(s3, f"{prefix}/orders/o.jsonl", "".join(json.dumps(o) + "\n" for o in orders))
    job = load_job(f"{ROOT}/dags_examples/jobs/join.py:user_orders")
    _, records = run(engine, job, {"users": f"s3://{DATA}/{prefix}/users.csv",
                                   "orders": f"s3://{DATA}/{prefix}/orders/"},
                     split_size="1KiB", num_reducers=2)
    expected = {}
    for i in range(50):
        amounts = [o["amount"] for o in orders if o["user_id"] == f"u{i}"]
        expected[f"u{i}"] = {"name": f"name {i}", "orders": len(amounts), "total": sum(amounts)}
    assert dict(records) == expected


def test_custom_partitioner_decides_which_part_holds_a_key(engine):
    s3, _ = engine
    text = words_text(9, 300)
    uri = put(s3, f"{fresh('part')}/in.txt", text)
    job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total, partitioner=by_first_letter)
    result, records = run(engine, job, uri, num_reducers=3)
    assert dict(records) == word_counter(text)
    for index, part in enumerate(result["parts"]):
        keys = [k for k, _ in read_records(s3, {"parts": [part]})]
        assert keys and all(ord(k[0]) % 3 == index for k in keys)


def test_csv_jsonl_and_gzip_inputs(engine):
    s3, _ = engine
    prefix = fresh("formats")
    text = words_text(13, 300)
    gz_uri = put(s3, f"{prefix}/text/a.txt.gz", gzip.compress(text.encode()))
    _, records = run(engine, MapReduceJob(mapper=tokenize, reducer=total), gz_uri, split_size=100)
    assert dict(records) == word_counter(text)

    items = [{"color": random.Random(i).choice(["red", "green", "blue"]), "n": i} for i in range(300)]
    jl = put(s3, f"{prefix}/items.jsonl", "".join(json.dumps(x) + "\n" for x in items))
    _, records = run(engine, MapReduceJob(mapper=jsonl_by_color, reducer=total, input_format="jsonl"),
                     jl, split_size="1KiB")
    expected = collections.Counter()
    for x in items:
        expected[x["color"]] += x["n"]
    assert dict(records) == dict(expected)

    rows = "city,people\r\n" + "".join(f"c{i % 7},{i}\r\n" for i in range(300))
    cs = put(s3, f"{prefix}/cities.csv", rows)
    _, records = run(engine, MapReduceJob(mapper=csv_by_city, reducer=total, input_format="csv"),
                     cs, split_size=300)
    assert dict(records) == {f"c{c}": sum(i for i in range(300) if i % 7 == c) for c in range(7)}


def test_keys_of_several_json_types_stay_distinct(engine):
    s3, _ = engine
    uri = put(s3, f"{fresh('types')}/n.txt", "".join(f"{i}\n" for i in range(60)))
    _, records = run(engine, MapReduceJob(mapper=mixed_keys, reducer=total), uri, split_size=50,
                     num_reducers=2)
    expected = collections.Counter()
    for n in range(60):
        for k, _ in mixed_keys(str(n)):
            expected[json.dumps(k)] += 1
    assert sorted((json.dumps(k), v) for k, v in records) == sorted(expected.items())
    assert {type(k) for k, _ in records} == {int, str, bool, type(None), list, float}


def test_two_hundred_split_job(engine):
    s3, _ = engine
    text = words_text(17, 2000)
    uri = put(s3, f"{fresh('many')}/big.txt", text)
    split = math.ceil(len(text.encode()) / 200)
    result, records = run(engine, MapReduceJob(mapper=tokenize, combiner=total, reducer=total), uri,
                          split_size=split, num_reducers=4, max_concurrency=16)
    assert result["counters"]["map_tasks"] == 200
    assert dict(records) == word_counter(text)


def test_output_is_the_same_for_any_split_size_and_reducer_count(engine):
    s3, _ = engine
    text = words_text(23, 200)
    uri = put(s3, f"{fresh('det')}/in.txt", text)
    job = MapReduceJob(mapper=tokenize, combiner=total, reducer=total)
    outputs = set()
    for split_size, reducers in [(97, 1), ("1KiB", 2), ("64MiB", 5)]:
        _, records = run(engine, job, uri, split_size=split_size, num_reducers=reducers)
        outputs.add(json.dumps(sorted(records)))
    assert len(outputs) == 1
    assert dict(json.loads(outputs.pop())) == word_counter(text)


def test_smr_run_local_cli_replaces_a_folder_output_only_with_overwrite(tmp_path):
    """The issue's sequence: 3 reducers then 1 into the same folder. The second run is refused
    without --overwrite (before any stack starts); with it the folder holds exactly the new part."""
    out = tmp_path / "wc"

    def smr_run(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "airflow_provider_smr.cli", "run",
             "dags_examples/jobs/word_count.py:word_count", "--local", "--input", "README.md",
             "--output", str(out), "--json", *flags],
            cwd=ROOT, capture_output=True, text=True, timeout=600)

    def counts() -> dict:
        found = {}
        for part in sorted(out.glob("part-*")):
            for line in part.read_text().splitlines():
                rec = json.loads(line)
                found[rec["key"]] = rec["value"]
        return found

    expected = word_counter((ROOT / "README.md").read_text())
    first = smr_run("--num-reducers", "3")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stdout.strip().splitlines()[-1])["status"] == "SUCCEEDED"
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS", "part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert counts() == expected

    refused = smr_run("--num-reducers", "1")
    assert refused.returncode == 1
    assert "OutputExistsError" in refused.stderr and "pass --overwrite" in refused.stderr
    assert len(list(out.glob("part-*"))) == 3

    second = smr_run("--num-reducers", "1", "--overwrite")
    assert second.returncode == 0, second.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-00000.jsonl"]
    assert [p["key"].rsplit("/", 1)[-1] for p in json.loads((out / "_SUCCESS").read_text())["parts"]] == [
        "part-00000.jsonl"]
    assert counts() == expected

    inline = tmp_path / "wc-inline"  # the job in one process, no stack: the same parts, byte for byte
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_smr.cli", "run",
         "dags_examples/jobs/word_count.py:word_count", "--inline", "--input", "README.md",
         "--output", str(inline), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = sorted(p.name for p in out.glob("part-*"))
    assert sorted(p.name for p in inline.glob("part-*")) == parts
    assert all((inline / name).read_bytes() == (out / name).read_bytes() for name in parts)


def slow_tokenize(line):
    import time

    time.sleep(0.5)
    yield from tokenize(line)


def test_smr_status_and_cancel_commands_stop_a_running_job(engine, aws_endpoint, aws_env):
    s3, runner = engine
    uri = put(s3, f"{fresh('cancel')}/in.txt", words_text(29, 200))
    output = f"s3://{DATA}/out/{fresh('cancelled')}/"
    job_id = runner.submit(MapReduceJob(mapper=slow_tokenize, reducer=total), input=uri, output=output,
                           options=JobOptions(split_size=200))
    env = {**aws_env, "PATH": "/usr/bin:/bin"}
    common = ["--endpoint-url", aws_endpoint, "--stack-name", "smr-e2e"]
    status = subprocess.run([sys.executable, "-m", "airflow_provider_smr.cli", "status", job_id, "--json",
                             *common], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    assert json.loads(status.stdout.splitlines()[-1])["state"] in ("PENDING", "RUNNING")
    cancel = subprocess.run([sys.executable, "-m", "airflow_provider_smr.cli", "cancel", job_id, *common],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert cancel.returncode == 0, cancel.stderr[-2000:]
    assert runner.status(job_id).state == "CANCELLED"
    from airflow_provider_smr.engine.runner import JobCancelledError

    with pytest.raises(JobCancelledError):
        runner.wait(job_id, poll_interval=POLL, timeout=TIMEOUT)
    bucket, prefix = output[5:].split("/", 1)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount")


def test_smr_run_reports_a_bad_input_as_one_line(engine, aws_endpoint, aws_env):
    env = {**aws_env, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_smr.cli", "run",
         "dags_examples/jobs/word_count.py:word_count", "--input", f"s3://{DATA}/no/such/prefix/",
         "--output", f"s3://{DATA}/out/never/", "--endpoint-url", aws_endpoint,
         "--stack-name", "smr-e2e"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("smr: error:")]
    assert errors == [f"smr: error: InputNotFoundError: --input 's3://{DATA}/no/such/prefix/' matched no objects"]


def fail_on_poison(line):
    if "poison" in line:
        raise ValueError("poisoned record")
    yield from tokenize(line)


def output_objects(s3, output: str) -> dict:
    bucket, prefix = output[5:].split("/", 1)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_a_failed_overwrite_leaves_the_previous_output_intact(engine):
    from airflow_provider_smr.engine.runner import JobFailedError

    s3, runner = engine
    prefix = fresh("keep")
    good = put(s3, f"{prefix}/good.txt", words_text(31, 100))
    bad = put(s3, f"{prefix}/bad/in.txt", words_text(37, 100) + "poison here\n")
    output = f"s3://{DATA}/out/{fresh('kept')}/"
    runner.run(MapReduceJob(mapper=tokenize, reducer=total), input=good, output=output, poll_interval=POLL,
               timeout=TIMEOUT, options=JobOptions(num_reducers=2))
    before = output_objects(s3, output)
    with pytest.raises(JobFailedError, match="poisoned record"):
        runner.run(MapReduceJob(mapper=fail_on_poison, reducer=total), input=bad, output=output,
                   poll_interval=POLL, timeout=TIMEOUT,
                   options=JobOptions(overwrite=True, num_reducers=3, max_attempts=2))
    assert output_objects(s3, output) == before
