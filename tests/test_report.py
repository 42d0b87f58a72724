"""The HTML job report: built from markers (pure), collected from S3, rendered by a real browser."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import shutil
import subprocess

import pytest

from airflow_provider_smr import report as rp
from lambda_handlers import protocol
from lambda_handlers.options import JobOptions
from lambda_handlers.plan import Plan

JOB = "report-job-1"
T0 = 1_780_000_000.0
WORK = "smr-report-work"
OUT = "smr-report-out"


def make_plan(maps: int = 3, reducers: int = 2, timeout: int = 60) -> Plan:
    return Plan.from_json(plan_doc(maps, reducers, timeout))


def plan_doc(maps: int = 3, reducers: int = 2, timeout: int = 60) -> dict:
    return {
        "v": 2, "job_id": JOB, "work_bucket": WORK, "job_name": "word_count",
        "created": dt.datetime.fromtimestamp(T0 - 1, dt.timezone.utc).isoformat(),
        "options": {"max_attempts": 3, "max_bad_records": 0, "speculation": False},
        "limits": {"memory_mb": 512, "task_timeout_s": timeout},
        "inputs": {"default": {"uris": ["s3://in/books/"], "format": "text"}},
        "splits": [], "steps": [{"index": 0, "num_map_tasks": maps, "num_reducers": reducers}],
        "output": {"uri": f"s3://{OUT}/counts/", "bucket": OUT, "prefix": "counts/", "format": "jsonl",
                   "overwrite": False, "inputs": ["s3://in/books/"]},
    }


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + seconds, dt.timezone.utc)


def body(task: int, attempt: int, start: float, duration: float, phase: str = "map", **kw) -> dict:
    return {"task": task, "attempt": attempt, "step": 0, "phase": phase, "started": T0 + start,
            "finished": T0 + start + duration, "duration_s": duration, "records_in": 10 * (task + 1),
            "records_out": task + 1, "bytes_in": 100, "bytes_out": 40, "memory_mb": 512,
            "requests": {"GetObject": 3, "PutObject": 3}, **kw}


def scenario() -> tuple[dict, list[dict], dict, dict]:
    """3 maps (map 1 fails once and is retried; map 2 has a speculative second attempt that wins),
    2 reducers, job succeeded: 7 attempts in all."""
    listed, done, errors = [], {}, {}

    def start(phase, task, attempt, t):
        listed.append({"Key": protocol.start_marker_key(JOB, 0, phase, task, attempt), "LastModified": at(t)})

    def finish(phase, task, b):
        key = protocol.done_marker_key(JOB, 0, phase, task)
        listed.append({"Key": key, "LastModified": at(b["finished"] - T0)})
        done[key] = b

    start("map", 0, 0, 0.0)
    finish("map", 0, body(0, 0, 0.0, 2.0))
    start("map", 1, 0, 0.1)
    listed.append({"Key": protocol.error_marker_key(JOB, 0, "map", 1, 0), "LastModified": at(1.0)})
    errors[protocol.error_detail_key(JOB, 0, "map", 1, 0)] = {
        "task": 1, "attempt": 0, "step": 0, "phase": "map", "error_type": "ValueError",
        "message": "bad line 7", "traceback": "Traceback ...", "input": None, "record_preview": None}
    start("map", 1, 1, 1.5)
    finish("map", 1, body(1, 1, 1.5, 3.0))
    start("map", 2, 0, 0.2)  # a straggler: attempt 1 starts while it runs, and wins
    start("map", 2, 1, 2.0)
    finish("map", 2, body(2, 1, 2.0, 1.0))
    start("reduce", 0, 0, 5.0)
    finish("reduce", 0, body(0, 0, 5.0, 1.0, phase="reduce"))
    start("reduce", 1, 0, 5.0)
    finish("reduce", 1, body(1, 0, 5.0, 2.0, phase="reduce"))
    listed.append({"Key": protocol.claim_key(JOB, "commit"), "LastModified": at(7.5)})
    listed.append({"Key": protocol.job_state_key(JOB, protocol.SUCCEEDED), "LastModified": at(8.0)})
    return make_plan(), listed, done, errors


def result_dict() -> dict:
    return {"job_id": JOB, "status": "SUCCEEDED", "records": 7, "parts": [f"s3://{OUT}/counts/part-00000.jsonl"],
            "requests": {"s3": {"GET": 40, "PUT": 30, "LIST": 9}, "lambda_invokes": 14},
            "lambda_gb_seconds": 5.0, "estimated_cost_usd": 0.000321}


# -- pure ----------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert rp.percentile(values, 50) == 3.0
    assert rp.percentile(values, 95) == 5.0
    assert rp.percentile(values, 20) == 1.0
    assert rp.percentile(list(range(1, 101)), 95) == 95
    assert rp.percentile([7.0], 95) == 7.0
    assert rp.percentile([], 50) is None


def test_every_attempt_becomes_one_attempt_with_its_outcome():
    plan, listed, done, errors = scenario()
    report = rp.build_report(plan, listed, done, errors)
    got = {(a.phase, a.task, a.attempt): (a.outcome, a.speculative) for a in report.attempts}
    assert got == {
        ("map", 0, 0): (rp.WON, False),
        ("map", 1, 0): (rp.FAILED, False),
        ("map", 1, 1): (rp.WON, False),  # a retry after a failure is not speculative
        ("map", 2, 0): (rp.LOST, False),
        ("map", 2, 1): (rp.WON, True),
        ("reduce", 0, 0): (rp.WON, False),
        ("reduce", 1, 0): (rp.WON, False),
    }
    failed = next(a for a in report.attempts if a.outcome == rp.FAILED)
    assert failed.error == "ValueError: bad line 7"
    assert failed.duration == pytest.approx(0.9)
    assert report.state == protocol.SUCCEEDED


def test_a_retry_after_a_silent_attempt_past_its_deadline_is_not_speculative():
    plan = make_plan(maps=1, reducers=0, timeout=10)
    listed = [{"Key": protocol.start_marker_key(JOB, 0, "map", 0, 0), "LastModified": at(0)},
              {"Key": protocol.start_marker_key(JOB, 0, "map", 0, 1), "LastModified": at(45)}]
    report = rp.build_report(plan, listed, {})
    assert [(a.attempt, a.outcome, a.speculative) for a in report.attempts] == [
        (0, rp.RUNNING, False), (1, rp.RUNNING, False)]


def test_phase_stats_count_winners_and_compute_percentiles_of_their_durations():
    plan, listed, done, errors = scenario()
    report = rp.build_report(plan, listed, done, errors)
    maps, reduces = report.phases
    assert (maps.step, maps.phase, maps.tasks, maps.done, maps.attempts, maps.failed) == (0, "map", 3, 3, 5, 1)
    assert (maps.p50_s, maps.p95_s) == (2.0, 3.0)  # durations 2, 3, 1
    assert (maps.records_in, maps.records_out, maps.bytes_in, maps.bytes_out) == (60, 6, 300, 120)
    assert (reduces.done, reduces.attempts, reduces.p50_s, reduces.p95_s) == (2, 2, 1.0, 2.0)


def test_requests_and_cost_come_from_the_result_dict_when_given():
    plan, listed, done, errors = scenario()
    report = rp.build_report(plan, listed, done, errors, result=result_dict())
    assert report.requests == {"GET": 40, "PUT": 30, "LIST": 9}
    assert (report.lambda_invokes, report.estimated_cost_usd, report.records) == (14, 0.000321, 7)
    assert not report.cost_is_estimate_from_markers


def test_without_a_result_requests_and_cost_are_estimated_from_the_markers():
    from airflow_provider_smr.cost import estimate_cost_usd, gb_seconds

    plan, listed, done, errors = scenario()
    report = rp.build_report(plan, listed, done, errors)
    assert report.requests == {"GET": 15, "PUT": 15}  # 5 winning attempts x (3 GET, 3 PUT)
    assert report.lambda_invokes == 14  # 7 attempts, each with its coordinator call
    gb_s = sum(gb_seconds(d, 512) for d in (2.0, 3.0, 1.0, 1.0, 2.0))
    assert report.estimated_cost_usd == estimate_cost_usd(gb_s, 14, {"GET": 15, "PUT": 15})
    assert report.cost_is_estimate_from_markers


def svg_bars(page: str) -> list[str]:
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    return re.findall(r'<rect class="attempt [^"]*"', svg)


def test_the_timeline_has_one_bar_per_attempt_marked_by_phase_and_outcome():
    plan, listed, done, errors = scenario()
    page = rp.render_html(rp.build_report(plan, listed, done, errors, result=result_dict()))
    bars = svg_bars(page)
    assert len(bars) == 7
    assert sum(" map " in b for b in bars) == 5 and sum(" reduce " in b for b in bars) == 2
    assert sum(" failed" in b for b in bars) == 1
    assert sum("speculative" in b for b in bars) == 1
    assert "ValueError: bad line 7" in page  # the failed bar's tooltip


def test_the_page_is_self_contained():
    plan, listed, done, errors = scenario()
    page = rp.render_html(rp.build_report(plan, listed, done, errors, failed={
        "job_id": JOB, "reason": "task failed 3 times", "error": {"error_type": "KeyError", "message": "<x>"}}))
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page)
    assert "@import" not in page and "url(http" not in page
    assert "KeyError: &lt;x&gt;" in page  # escaped
    assert "s3://in/books/" in page and f"s3://{OUT}/counts/" in page


def test_many_attempts_are_packed_into_rows_without_overlap():
    attempts = [rp.Attempt(0, "map", i, 0, T0 + (i % 10), T0 + (i % 10) + 1.5, rp.WON) for i in range(200)]
    lanes = rp._lanes(attempts, T0 + 20)
    rows: dict[int, list] = {}
    for a, lane in zip(attempts, lanes, strict=True):
        rows.setdefault(lane, []).append((a.start, a.end))
    for spans in rows.values():
        spans.sort()
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False))
    assert len(rows) < 200


def test_report_location_is_next_to_an_s3_output_and_in_the_job_prefix_otherwise():
    from lambda_handlers.protocol import report_key

    assert rp.report_location(WORK, JOB, f"s3://{OUT}/counts/") == (OUT, "counts/_report.html")
    assert rp.report_location(WORK, JOB, f"s3://{OUT}/counts") == (OUT, "counts/_report.html")
    assert rp.report_location(WORK, JOB, f"s3://{OUT}") == (OUT, "_report.html")
    assert rp.report_location(WORK, JOB, "dynamodb://table") == (WORK, protocol.job_prefix(JOB) + "_report.html")
    assert rp.report_location(WORK, JOB, f"s3://{OUT}/counts/")[1] == report_key("counts/")
    failed = rp.report_location(WORK, JOB, f"s3://{OUT}/counts/", committed=False)
    assert failed == (WORK, protocol.job_prefix(JOB) + "_report.html")


# -- collected from S3 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_s3(aws_endpoint, aws_clients, aws_env):
    """The session's local stack S3, with its environment set for the ``smr report`` command."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in aws_env.items():
            mp.setenv(name, value)
        yield aws_clients(aws_endpoint).s3


def test_collect_and_write_a_report_from_markers_in_s3(stack_s3):
    s3 = stack_s3
    s3.create_bucket(Bucket=WORK)
    s3.create_bucket(Bucket=OUT)
    plan, listed, done, errors = scenario()
    s3.put_object(Bucket=WORK, Key=protocol.plan_key(JOB), Body=json.dumps(plan.to_json()).encode())
    for obj in listed:
        payload = done.get(obj["Key"])
        s3.put_object(Bucket=WORK, Key=obj["Key"], Body=json.dumps(payload).encode() if payload else b"")
    for key, detail in errors.items():
        s3.put_object(Bucket=WORK, Key=key, Body=json.dumps(detail).encode())
    s3.put_object(Bucket=WORK, Key=protocol.result_key(JOB), Body=json.dumps(result_dict()).encode())

    report = rp.collect_report(s3, WORK, JOB)
    # Start times come from LastModified (now), winning attempts' times from their markers.
    assert len(report.attempts) == 7
    assert report.requests == {"GET": 40, "PUT": 30, "LIST": 9}  # result.json was read
    assert next(a for a in report.attempts if a.outcome == rp.FAILED).error == "ValueError: bad line 7"

    uri = rp.write_report(s3, WORK, JOB)
    assert uri == f"s3://{OUT}/counts/_report.html"
    obj = s3.get_object(Bucket=OUT, Key="counts/_report.html")
    assert obj["ContentType"].startswith("text/html")
    assert len(svg_bars(obj["Body"].read().decode())) == 7


def test_the_report_of_a_failed_job_stays_out_of_its_output_location(stack_s3):
    s3 = stack_s3
    s3.create_bucket(Bucket=WORK)
    plan = {**plan_doc(maps=1, reducers=0), "job_id": "failed-job"}
    s3.put_object(Bucket=WORK, Key=protocol.plan_key("failed-job"), Body=json.dumps(plan).encode())
    for key in (protocol.start_marker_key("failed-job", 0, "map", 0, 0),
                protocol.error_marker_key("failed-job", 0, "map", 0, 0),
                protocol.job_state_key("failed-job", protocol.FAILED)):
        s3.put_object(Bucket=WORK, Key=key, Body=b"")
    s3.put_object(Bucket=WORK, Key=protocol.failed_key("failed-job"), Body=json.dumps(
        {"job_id": "failed-job", "state": "FAILED", "reason": "map task 0 failed 1 time"}).encode())

    uri = rp.write_report(s3, WORK, "failed-job")
    assert uri == f"s3://{WORK}/{protocol.job_prefix('failed-job')}_report.html"
    page = s3.get_object(Bucket=WORK, Key=uri.split("/", 3)[3])["Body"].read().decode()
    assert "FAILED" in page and "map task 0 failed 1 time" in page and len(svg_bars(page)) == 1


def test_collect_report_of_an_unknown_job_names_the_bucket(stack_s3):
    stack_s3.create_bucket(Bucket=WORK)
    with pytest.raises(rp.ReportError, match=WORK):
        rp.collect_report(stack_s3, WORK, "no-such-job")


def test_try_write_report_turns_failures_into_a_warning(stack_s3, caplog):
    assert rp.try_write_report(stack_s3, "smr-no-such-bucket", JOB) is None
    assert "could not write the HTML report" in caplog.text


# -- rendered by a browser -----------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("the report rendering test needs Chromium: install Debian's package with "
                "`sudo apt-get install -y chromium` (.ci/run installs it in CI)", pytrace=False)


@pytest.mark.timeout(180)
def test_chromium_renders_the_report_with_its_timeline(tmp_path):
    browser = chromium()
    plan, listed, done, errors = scenario()
    page = rp.render_html(rp.build_report(plan, listed, done, errors, result=result_dict()))
    assert len(svg_bars(page)) == 7
    html_file, png = tmp_path / "report.html", tmp_path / "report.png"
    html_file.write_text(page, encoding="utf-8")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
         "--window-size=1200,900", html_file.as_uri()],
        capture_output=True, text=True, timeout=150)
    assert png.exists(), f"chromium wrote no screenshot ({proc.returncode}): {proc.stderr[-2000:]}"
    data = png.read_bytes()
    assert len(data) > 5_000
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG", "not a PNG"
        assert image.size == (1200, 900)
        pixels = image.convert("RGB")
    colours = {colour: count for count, colour in pixels.getcolors(1200 * 900)}
    assert len(colours) > 50, "the page rendered blank"
    # The bars' phase colours are on screen: the SVG was drawn, not just the text.
    for phase, hex_colour in rp.PHASE_COLOURS.items():
        rgb = tuple(bytes.fromhex(hex_colour[1:]))
        assert colours.get(rgb, 0) > 100, f"no {phase} bars visible"


# -- `smr report` --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(stack_s3, aws_endpoint, aws_clients):
    """A stack deployed on the local stack, with the scenario's markers in its work bucket."""
    from airflow_provider_smr.deploy import deploy_stack
    from lambda_handlers.options import StackSettings

    endpoint = aws_endpoint
    clients = aws_clients(endpoint)
    stack = deploy_stack(clients, "smr-report", StackSettings(memory_mb=512, timeout_s=60))
    s3 = clients.s3
    s3.create_bucket(Bucket=OUT)
    plan, listed, done, errors = scenario()
    plan = dataclasses.replace(plan, work_bucket=stack.work_bucket)
    s3.put_object(Bucket=stack.work_bucket, Key=protocol.plan_key(JOB),
                  Body=json.dumps(plan.to_json()).encode())
    for obj in listed:
        payload = done.get(obj["Key"])
        s3.put_object(Bucket=stack.work_bucket, Key=obj["Key"],
                      Body=json.dumps(payload).encode() if payload else b"")
    for key, detail in errors.items():
        s3.put_object(Bucket=stack.work_bucket, Key=key, Body=json.dumps(detail).encode())
    return endpoint, s3


def smr_report(*args: str) -> int:
    import argparse

    from airflow_provider_smr.report_command import register

    parser = argparse.ArgumentParser(prog="smr")
    register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["report", *args])
    return parsed.func(parsed)


def test_smr_report_saves_the_report_to_a_file(deployed, tmp_path, capsys):
    endpoint, _ = deployed
    out = tmp_path / "sub" / "report.html"
    assert smr_report(JOB, "--stack-name", "smr-report", "--endpoint-url", endpoint, "--out", str(out)) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert len(svg_bars(out.read_text())) == 7


def test_smr_report_without_out_stores_it_next_to_the_output(deployed, capsys):
    endpoint, s3 = deployed
    assert smr_report(JOB, "--stack-name", "smr-report", "--endpoint-url", endpoint) == 0
    assert capsys.readouterr().out.strip() == f"s3://{OUT}/counts/_report.html"
    page = s3.get_object(Bucket=OUT, Key="counts/_report.html")["Body"].read().decode()
    assert len(svg_bars(page)) == 7


def test_smr_report_of_an_unknown_job_is_one_error_line(deployed, capsys):
    endpoint, _ = deployed
    assert smr_report("nope", "--stack-name", "smr-report", "--endpoint-url", endpoint) == 1
    err = capsys.readouterr().err
    assert err.startswith("smr: error: ReportError: no job 'nope'") and len(err.splitlines()) == 1


def test_smr_report_is_a_subcommand_of_smr():
    from airflow_provider_smr.cli import build_parser

    args = build_parser().parse_args(["report", JOB, "--out", "x.html", "--endpoint-url", "http://127.0.0.1:1"])
    assert (args.job_id, args.out, args.endpoint_url, args.stack_name) == (JOB, "x.html", "http://127.0.0.1:1", "smr")


# -- a real job on the local stack -----------------------------------------------------------------


def make_flaky_tokenizer(bucket: str, flag_key: str):
    """A mapper whose first call in the whole job fails (a put-if-absent flag in S3 remembers it)."""

    def flaky_tokenize(line):
        import boto3
        from botocore.exceptions import ClientError

        try:
            boto3.client("s3").put_object(Bucket=bucket, Key=flag_key, Body=b"failed once", IfNoneMatch="*")
        except ClientError:
            pass  # a later attempt: the flag exists
        else:
            raise RuntimeError("the first attempt fails on purpose")
        for word in line.split():
            yield word, 1

    return flaky_tokenize


def count(word, ones):
    yield word, sum(ones)


@pytest.mark.timeout(600)
def test_report_of_a_job_with_a_retried_task_on_the_local_stack(deploy_engine, tmp_path):
    import uuid

    from airflow_provider_smr.job import MapReduceJob

    data = "smr-report-e2e"
    engine = deploy_engine("smr-report", input_buckets=[data])
    clients, stack, runner = engine.clients, engine.stack, engine.runner
    run = uuid.uuid4().hex[:8]
    for i in range(3):
        clients.s3.put_object(Bucket=data, Key=f"in-{run}/{i}.txt", Body=b"a b c\nb c\nc\n" * 5)
    job = MapReduceJob(mapper=make_flaky_tokenizer(data, f"flags/{run}"), reducer=count, name="flaky")
    result = runner.run(job, input=f"s3://{data}/in-{run}/", output=f"s3://{data}/out-{run}/",
                        poll_interval=0.25, timeout=300,
                        options=JobOptions(num_reducers=2, split_size=60))  # a map task per object
    assert result["counters"]["retried_attempts"] == 1

    uri = rp.write_report(clients, stack.work_bucket, result["job_id"], result=result)
    assert uri == f"s3://{data}/out-{run}/_report.html"
    page = clients.s3.get_object(Bucket=data, Key=f"out-{run}/_report.html")["Body"].read().decode()
    bars = svg_bars(page)
    assert len(bars) == result["counters"]["attempts"] == 3 + 2 + 1
    assert sum(" failed" in b for b in bars) == 1
    assert "RuntimeError: the first attempt fails on purpose" in page

    report = rp.collect_report(clients, stack.work_bucket, result["job_id"])
    assert report.state == protocol.SUCCEEDED and report.records == result["records"]
    maps = report.phases[0]
    assert (maps.tasks, maps.done, maps.attempts, maps.failed) == (3, 3, 4, 1)
    assert maps.records_in == result["counters"]["records_read"] == 45
