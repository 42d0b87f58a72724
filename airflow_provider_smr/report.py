"""The job report: a self-contained HTML page with a timeline of every task attempt.

Collection reads what the job left in S3 — ONE paginated LIST of its ``status/`` prefix, the
``plan.json``, the done markers (one per task), the error details of failed attempts and the
terminal ``done.json`` / ``failed.json`` / ``result.json`` — and :func:`build_report` turns those
into a :class:`JobReport` without any I/O. :func:`render_html` draws it: an inline SVG timeline
with one bar per task attempt (coloured by phase; failed attempts hatched and outlined red,
speculative ones dashed), per-phase stats, request counts and the estimated cost, inputs and
output. No external assets and no JavaScript: the page is one file that opens anywhere.

Start times come from the start markers' ``LastModified``; a done marker carries its winning
attempt's ``started`` / ``finished`` / ``duration_s`` / records / bytes; a failed attempt ends at
its error marker's ``LastModified``.
"""

from __future__ import annotations

import datetime as dt
import heapq
import html
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from lambda_handlers import protocol
from lambda_handlers.aws_errors import is_not_found
from lambda_handlers.clock import epoch_seconds
from lambda_handlers.plan import Plan
from lambda_handlers.s3uri import S3Uri

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_smr.engine.runner import RunnerLog

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/html; charset=utf-8"
PHASE_COLOURS = {protocol.MAP: "#3b82c4", protocol.REDUCE: "#e08a1e"}
FAILED_COLOUR = "#c62828"

# Attempt outcomes.
WON = "succeeded"  # wrote the task's done marker
FAILED = "failed"  # wrote an error marker
LOST = "superseded"  # no marker of its own and another attempt won (or the job ended without it)
RUNNING = "running"  # no marker yet and the job is still running


@dataclass
class Attempt:
    """One task attempt: one bar on the timeline."""

    step: int
    phase: str
    task: int
    attempt: int
    start: float | None  # epoch seconds
    end: float | None
    outcome: str  # WON | FAILED | LOST | RUNNING
    speculative: bool = False
    error: str | None = None  # "Type: message" of a failed attempt
    hooks_s: dict[str, float] = field(default_factory=dict)  # the winner's setup_s / teardown_s

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    @property
    def label(self) -> str:
        return f"step {self.step} {self.phase} task {self.task} attempt {self.attempt}"


@dataclass
class PhaseStats:
    """Stats of one phase of one step, from its winning attempts."""

    step: int
    phase: str
    tasks: int  # planned
    done: int  # tasks with a done marker
    attempts: int
    failed: int
    p50_s: float | None
    p95_s: float | None
    records_in: int
    records_out: int
    bytes_in: int
    bytes_out: int


@dataclass
class JobReport:
    job_id: str
    job_name: str | None
    state: str
    created: float | None
    output: str
    output_format: str | None
    inputs: list[dict]  # [{"name", "uris", "format"}]
    attempts: list[Attempt]
    phases: list[PhaseStats]
    requests: dict[str, int] = field(default_factory=dict)  # S3 requests by type
    lambda_invokes: int | None = None
    lambda_gb_seconds: float | None = None
    estimated_cost_usd: float | None = None
    cost_is_estimate_from_markers: bool = False  # no result dict: from the markers alone
    records: int | None = None
    parts: list[str] = field(default_factory=list)
    error: str | None = None
    generated: float | None = None
    #: increment_counter's totals so far, ``{group: {name: total}}`` (winning attempts only)
    user_counters: dict[str, dict[str, int | float]] = field(default_factory=dict)

    @property
    def span(self) -> tuple[float, float]:
        """(first start, last end) over all attempts, for the timeline's axis."""
        starts = [a.start for a in self.attempts if a.start is not None]
        ends = [a.end for a in self.attempts if a.end is not None] + starts
        if not starts:
            t0 = self.created or 0.0
            return t0, t0 + 1.0
        t0 = min(starts)
        return t0, max(max(ends), t0 + 0.001)


# ---------------------------------------------------------------------------------------------
# Pure building blocks


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100): the smallest value with at least q% at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _attempts(plan: Plan, listed: list[dict], done_bodies: dict[tuple[int, str, int], dict],
              errors: dict[tuple[int, str, int, int], dict], state: str) -> list[Attempt]:
    job_id = plan.job_id
    starts: dict[tuple[int, str, int, int], float | None] = {}
    error_marks: dict[tuple[int, str, int, int], float | None] = {}
    for obj in listed:
        k = protocol.parse_status_key(job_id, obj["Key"])
        if (k is None or k.kind not in ("start", "error")
                or k.step is None or k.phase is None or k.task is None or k.attempt is None):
            continue
        key = (k.step, k.phase, k.task, k.attempt)
        (starts if k.kind == "start" else error_marks)[key] = epoch_seconds(obj.get("LastModified"))
    # A winning attempt whose start marker was not listed (cannot happen, but be total) still shows.
    for (step, phase, task), won in done_bodies.items():
        key = (step, phase, task, int(won.get("attempt", 0)))
        starts.setdefault(key, epoch_seconds(won.get("started")))
    for key in error_marks:
        starts.setdefault(key, None)

    timeout = plan.limits.task_timeout_s
    terminal = state in protocol.TERMINAL_STATES
    out = []
    for key in sorted(starts):
        step, phase, task, attempt = key
        body = done_bodies.get((step, phase, task))
        start = starts[key]
        if body is not None and int(body.get("attempt", -1)) == attempt:
            start = epoch_seconds(body.get("started")) or start
            out.append(Attempt(step, phase, task, attempt, start, epoch_seconds(body.get("finished")), WON,
                               hooks_s={k: body[k] for k in ("setup_s", "teardown_s") if k in body}))
            continue
        if key in error_marks:
            detail = errors.get(key) or {}
            text = f"{detail.get('error_type', 'Error')}: {detail.get('message', '')}" if detail else None
            out.append(Attempt(step, phase, task, attempt, start, error_marks[key], FAILED, error=text))
            continue
        outcome = LOST if (body is not None or terminal) else RUNNING
        # A superseded attempt is drawn until its task was done (its own end is unknown).
        end = epoch_seconds(body.get("finished")) if body is not None else None
        if end is not None and start is not None:
            end = max(end, start)
        out.append(Attempt(step, phase, task, attempt, start, end, outcome))
    # Speculative: a later attempt started while the previous one had not failed and was not yet
    # past its deadline (after which the coordinator retries a silent attempt as failed).
    by_key = {(a.step, a.phase, a.task, a.attempt): a for a in out}
    for a in out:
        prev = by_key.get((a.step, a.phase, a.task, a.attempt - 1))
        if prev is None or prev.outcome == FAILED or a.start is None or prev.start is None:
            continue
        if a.start - prev.start < timeout:
            a.speculative = True
    return out


def _phase_stats(plan: Plan, attempts: list[Attempt],
                 done_bodies: dict[tuple[int, str, int], dict]) -> list[PhaseStats]:
    stats = []
    for s in plan.steps:
        phases = [(protocol.MAP, s.num_map_tasks)]
        if s.num_reducers:
            phases.append((protocol.REDUCE, s.num_reducers))
        for phase, total in phases:
            mine = [a for a in attempts if a.step == s.index and a.phase == phase]
            bodies = [b for (step, p, _), b in sorted(done_bodies.items())
                      if step == s.index and p == phase]
            durations = [float(b.get("duration_s", 0.0)) for b in bodies]
            stats.append(PhaseStats(
                step=s.index, phase=phase, tasks=total, done=len(bodies), attempts=len(mine),
                failed=sum(1 for a in mine if a.outcome == FAILED),
                p50_s=percentile(durations, 50), p95_s=percentile(durations, 95),
                records_in=sum(int(b.get("records_in", 0)) for b in bodies),
                records_out=sum(int(b.get("records_out", 0)) for b in bodies),
                bytes_in=sum(int(b.get("bytes_in", 0)) for b in bodies),
                bytes_out=sum(int(b.get("bytes_out", 0)) for b in bodies)))
    return stats


def _marker_costs(done_bodies: Iterable[dict], attempts: int, memory_mb: int) -> dict:
    """Requests and cost from the done markers alone (no result dict, e.g. a failed job)."""
    from airflow_provider_smr.cost import estimate_cost_usd, gb_seconds, lambda_invokes
    from airflow_provider_smr.engine.requests import S3_TYPES

    done_bodies = list(done_bodies)
    requests: Counter = Counter()
    gb_s = 0.0
    for b in done_bodies:
        for op, n in (b.get("requests") or {}).items():
            requests[S3_TYPES.get(op, op.upper())] += n
        gb_s += gb_seconds(float(b.get("duration_s", 0.0)), int(b.get("memory_mb") or memory_mb))
    invokes = lambda_invokes(attempts, done_bodies)  # the task and its coordinator notification
    return {"requests": dict(sorted(requests.items())), "lambda_invokes": invokes,
            "lambda_gb_seconds": round(gb_s, 3),
            "estimated_cost_usd": estimate_cost_usd(gb_s, invokes, requests)}


def _state(job_id: str, listed: list[dict]) -> str:
    states = set()
    for obj in listed:
        k = protocol.parse_status_key(job_id, obj["Key"])
        if k is not None and k.kind == "job":
            states.add(k.name)
    found = [s for s in protocol.TERMINAL_STATES if s in states]
    if found:
        return found[0]
    return protocol.RUNNING if listed else protocol.PENDING


def build_report(plan: Plan, listed: list[dict], done_markers: Mapping[str, dict | None],
                 error_details: Mapping[str, dict | None] | None = None, *, result: dict | None = None,
                 done: dict | None = None, failed: dict | None = None,
                 generated: float | None = None) -> JobReport:
    """The report of a job from what it left in S3 (pure).

    :param plan: the job's ``plan.json``.
    :param listed: boto3 ``Contents`` entries listed under its ``status/`` prefix.
    :param done_markers: done-marker bodies by key (None: the marker was not found).
    :param error_details: error-detail bodies (``errors/...``) by key (None: not found).
    :param result: the result dict of a succeeded job (request counts, cost), if known.
    :param done: ``done.json``; ``failed``: ``failed.json``.
    """
    job_id = plan.job_id
    bodies: dict[tuple[int, str, int], dict] = {}
    for key, body in done_markers.items():
        k = protocol.parse_status_key(job_id, key)
        if (k is not None and k.kind == "done" and body is not None
                and k.step is not None and k.phase is not None and k.task is not None):
            bodies[(k.step, k.phase, k.task)] = body
    errors: dict[tuple[int, str, int, int], dict] = {}
    for body in (error_details or {}).values():
        if body:
            errors[(body["step"], body["phase"], body["task"], body["attempt"])] = body

    state = _state(job_id, listed)
    attempts = _attempts(plan, listed, bodies, errors, state)
    report = JobReport(
        job_id=job_id, job_name=plan.job_name or None, state=state, created=epoch_seconds(plan.created or None),
        output=plan.output.uri, output_format=plan.output.format,
        inputs=[{"name": name, "uris": list(spec.uris), "format": spec.format}
                for name, spec in sorted(plan.inputs.items())],
        attempts=attempts, phases=_phase_stats(plan, attempts, bodies), generated=generated)
    from airflow_provider_smr.engine.watch import user_counters

    report.user_counters = user_counters(bodies.values())
    if result:
        req = result.get("requests", {})
        report.requests = dict(req.get("s3", {}))
        report.lambda_invokes = req.get("lambda_invokes")
        report.lambda_gb_seconds = result.get("lambda_gb_seconds")
        report.estimated_cost_usd = result.get("estimated_cost_usd")
        report.records = result.get("records")
        report.parts = list(result.get("parts", []))
    else:
        budget = plan.limits.memory_budget_bytes  # a quarter of the memory
        memory = int(budget * 4 / 1024**2) if budget else 1024
        costs = _marker_costs(bodies.values(), len(attempts), memory)
        report.requests = costs["requests"]
        report.lambda_invokes = costs["lambda_invokes"]
        report.lambda_gb_seconds = costs["lambda_gb_seconds"]
        report.estimated_cost_usd = costs["estimated_cost_usd"]
        report.cost_is_estimate_from_markers = True
        if done:
            report.parts = list(done.get("parts", []))
    if failed:
        from airflow_provider_smr.engine.watch import failure_message

        report.error = failure_message(failed)
    return report


# ---------------------------------------------------------------------------------------------
# Collection (I/O)


def _s3(clients: Any) -> Any:
    return getattr(clients, "s3", clients)


def _get_json(s3: Any, bucket: str, key: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return json.loads(body)


class ReportError(LookupError):
    """The job cannot be reported on (it does not exist in this work bucket)."""


class KnownReads(TypedDict, total=False):
    """What the caller already read, so :func:`collect_report` does not read it again."""

    plan: Plan | None
    listed: list[dict] | None
    done_markers: dict[str, dict] | None
    done: dict | None


def collect_report(clients: Any, work_bucket: str, job_id: str, *, result: dict | None = None,
                   plan: Plan | None = None, listed: list[dict] | None = None,
                   done_markers: dict[str, dict] | None = None, done: dict | None = None) -> JobReport:
    """Read the job's markers from S3 (one paginated LIST + GETs) and build its report.

    What the caller already read is not read again: ``plan``, ``listed`` (its ``status/``
    listing), ``done_markers`` (done-marker bodies by key: only the listed ones missing from it
    are fetched) and ``done`` (``done.json``).

    :param clients: an :class:`~airflow_provider_smr.engine.aws.AwsClients` (or an S3 client).
    :param result: the job's result dict when the caller has it (else ``result.json`` is read).
    """
    from airflow_provider_smr.engine.watch import list_status

    s3 = _s3(clients)
    if plan is None:
        doc = _get_json(s3, work_bucket, protocol.plan_key(job_id))
        plan = Plan.from_json(doc) if doc is not None else None
    if plan is None:
        raise ReportError(f"no job {job_id!r} in s3://{work_bucket}/ (no {protocol.plan_key(job_id)})")
    listed = list_status(s3, work_bucket, job_id) if listed is None else listed
    known = dict(done_markers or {})
    done_keys, error_keys = [], []
    for obj in listed:
        k = protocol.parse_status_key(job_id, obj["Key"])
        if k is not None and k.kind == "done":
            done_keys.append(obj["Key"])
        elif (k is not None and k.kind == "error" and k.step is not None and k.phase is not None
              and k.task is not None and k.attempt is not None):
            error_keys.append(protocol.error_detail_key(job_id, k.step, k.phase, k.task, k.attempt))
    state = _state(job_id, listed)
    extra = {"result": protocol.result_key(job_id) if result is None and state == protocol.SUCCEEDED else None,
             "done": protocol.done_key(job_id) if done is None and state == protocol.SUCCEEDED else None,
             "failed": protocol.failed_key(job_id) if state == protocol.FAILED else None}
    wanted = [*(k for k in done_keys if k not in known), *error_keys, *[k for k in extra.values() if k]]
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="smr-report") as pool:
        fetched = dict(zip(wanted, pool.map(lambda key: _get_json(s3, work_bucket, key), wanted), strict=True))
    fetched.update(known)
    return build_report(
        plan, listed, {k: fetched.get(k) for k in done_keys}, {k: fetched[k] for k in error_keys},
        result=result or (fetched.get(extra["result"]) if extra["result"] else None),
        done=done or (fetched.get(extra["done"]) if extra["done"] else None),
        failed=fetched.get(extra["failed"]) if extra["failed"] else None,
        generated=dt.datetime.now(dt.timezone.utc).timestamp())


def report_location(work_bucket: str, job_id: str, output_uri: str, committed: bool = True) -> tuple[str, str]:
    """(bucket, key) of the report: ``<output>/_report.html`` for a committed S3 output; else the
    job's prefix in the work bucket (non-S3 outputs, and jobs that did not commit: a failed job
    never changes its output location)."""
    output = S3Uri.parse_or_none(output_uri) if committed else None
    if output is not None:
        return output.bucket, protocol.report_key(output.key)
    return work_bucket, protocol.job_prefix(job_id) + protocol.REPORT_NAME


def write_report(clients: Any, work_bucket: str, job_id: str, result: dict | None = None,
                 **known: Unpack[KnownReads]) -> str:
    """Collect, render and store the job's report; return its ``s3://`` URI (see
    :func:`report_location` for where it goes). ``known``: what :func:`collect_report` need not
    read again (``plan``, ``listed``, ``done_markers``, ``done``)."""
    report = collect_report(clients, work_bucket, job_id, result=result, **known)
    bucket, key = report_location(work_bucket, job_id, report.output,
                                  committed=report.state == protocol.SUCCEEDED)
    _s3(clients).put_object(Bucket=bucket, Key=key, Body=render_html(report).encode("utf-8"),
                            ContentType=CONTENT_TYPE)
    return str(S3Uri(bucket, key))


def try_write_report(clients: Any, work_bucket: str, job_id: str, result: dict | None = None,
                     logger: RunnerLog | None = None, **known: Unpack[KnownReads]) -> str | None:
    """:func:`write_report` for a finished job's epilogue: a report that cannot be written is a
    warning, never a failure of a job that has already committed."""
    try:
        uri = write_report(clients, work_bucket, job_id, result=result, **known)
    except Exception as exc:  # noqa: BLE001 - the job's outcome must not depend on its report
        (logger or log).warning("job %s: could not write the HTML report: %s", job_id, exc)
        return None
    (logger or log).info("job %s: report at %s", job_id, uri)
    return uri


# ---------------------------------------------------------------------------------------------
# Rendering

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9dee3}
.meta{color:#52606d;font-size:13px}
.state{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600}
.SUCCEEDED{background:#2e7d32}.FAILED{background:#c62828}.CANCELLED{background:#6b7280}.RUNNING,.PENDING{background:#1565c0}
table{border-collapse:collapse;font-size:13px}th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f7fa}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
pre{background:#fdf2f2;border:1px solid #f5c2c2;padding:10px;font-size:12px;white-space:pre-wrap}
code{font-size:12px}svg text{font-family:system-ui,sans-serif}
"""

SVG_WIDTH = 1100
LEFT = 70
RIGHT = 20
TOP = 24


def _lanes(attempts: list[Attempt], t1: float) -> list[int]:
    """Pack bars into rows: each row holds attempts that do not overlap in time (greedy by start,
    reusing the row that frees up first; O(n log n) for jobs with many thousands of attempts)."""
    order = sorted(range(len(attempts)), key=lambda i: (attempts[i].start or 0.0, i))
    free: list[tuple[float, int]] = []  # (busy until, row) heap
    lanes = [0] * len(attempts)
    rows = 0
    for i in order:
        a = attempts[i]
        start = a.start or 0.0
        end = a.end if a.end is not None else t1
        if free and free[0][0] <= start:
            _, lane = heapq.heappop(free)
        else:
            lane, rows = rows, rows + 1
        lanes[i] = lane
        heapq.heappush(free, (max(end, start), lane))
    return lanes


def _ticks(length: float) -> list[float]:
    raw = length / 8
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(length // step) + 1)]


def render_timeline(report: JobReport) -> str:
    """The inline SVG: one ``<rect class="attempt ...">`` per task attempt."""
    t0, t1 = report.span
    length = t1 - t0
    attempts = report.attempts
    lanes = _lanes(attempts, t1)
    rows = max(lanes, default=0) + 1
    bar = max(2.0, min(14.0, 520.0 / rows))
    gap = 1.0 if bar < 6 else 3.0
    plot_h = rows * (bar + gap)
    height = TOP + plot_h + 34
    width = SVG_WIDTH - LEFT - RIGHT
    scale = width / length

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{height:.0f}" '
           f'viewBox="0 0 {SVG_WIDTH} {height:.0f}" role="img" aria-label="timeline of task attempts">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f3b4b4"/>'
           f'<line x1="0" y1="0" x2="0" y2="6" stroke="{FAILED_COLOUR}" stroke-width="3"/></pattern></defs>',
           f'<rect x="{LEFT}" y="{TOP}" width="{width}" height="{plot_h:.1f}" fill="#f8fafc" stroke="#d9dee3"/>']
    for tick in _ticks(length):
        x = LEFT + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h:.1f}" stroke="#e4e7eb"/>'
                   f'<text x="{x:.1f}" y="{TOP + plot_h + 16:.1f}" font-size="11" text-anchor="middle" '
                   f'fill="#52606d">{tick:g}s</text>')
    out.append(f'<text x="{LEFT}" y="{TOP - 8}" font-size="12" fill="#52606d">{len(attempts)} task '
               f'attempts in {rows} rows; time since the first start</text>')
    for a, lane in zip(attempts, lanes, strict=True):
        start = a.start if a.start is not None else t0
        end = a.end if a.end is not None else t1
        x = LEFT + (start - t0) * scale
        w = max(1.5, (end - start) * scale)
        y = TOP + lane * (bar + gap) + gap / 2
        classes = ["attempt", a.phase, a.outcome] + (["speculative"] if a.speculative else [])
        fill = "url(#hatch)" if a.outcome == FAILED else PHASE_COLOURS.get(a.phase, "#888")
        stroke = (f' stroke="{FAILED_COLOUR}" stroke-width="1.5"' if a.outcome == FAILED else
                  ' stroke="#111" stroke-width="1.2" stroke-dasharray="3 2"' if a.speculative else "")
        opacity = ' fill-opacity="0.45"' if a.outcome in (LOST, RUNNING) else ""
        tip = f"{a.label}: {a.outcome}" + (" (speculative)" if a.speculative else "")
        if a.duration is not None:
            tip += f", {a.duration:.2f}s"
        if a.hooks_s:  # the step's task setup / teardown, inside that duration
            tip += " (" + ", ".join(f"{k[:-2]} {v:.2f}s" for k, v in a.hooks_s.items()) + ")"
        if a.error:
            tip += f"\n{a.error}"
        out.append(f'<rect class="{" ".join(classes)}" x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" '
                   f'height="{bar:.2f}" fill="{fill}"{stroke}{opacity}><title>{html.escape(tip)}</title></rect>')
    out.append("</svg>")
    return "\n".join(out)


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _legend() -> str:
    items = [f'<span><i class="sw" style="background:{c}"></i>{p}</span>' for p, c in PHASE_COLOURS.items()]
    items.append(f'<span><i class="sw" style="background:#f3b4b4;border:1px solid {FAILED_COLOUR}"></i>failed</span>')
    items.append('<span><i class="sw" style="border:1px dashed #111"></i>speculative</span>')
    items.append('<span><i class="sw" style="background:#3b82c4;opacity:.45"></i>superseded / running</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _stats_table(report: JobReport) -> str:
    head = ("<tr><th>step / phase</th><th>tasks</th><th>attempts</th><th>failed</th><th>p50</th>"
            "<th>p95</th><th>records in</th><th>records out</th><th>bytes in</th><th>bytes out</th></tr>")
    rows = [f"<tr><td>{p.step} {p.phase}</td><td>{p.done}/{p.tasks}</td><td>{p.attempts}</td>"
            f"<td>{p.failed}</td><td>{_fmt_s(p.p50_s)}</td><td>{_fmt_s(p.p95_s)}</td>"
            f"<td>{p.records_in:,}</td><td>{p.records_out:,}</td><td>{_fmt_bytes(p.bytes_in)}</td>"
            f"<td>{_fmt_bytes(p.bytes_out)}</td></tr>" for p in report.phases]
    return f'<table class="phases">{head}{"".join(rows)}</table>'


def _cost_table(report: JobReport) -> str:
    rows = [f"<tr><td>S3 {html.escape(kind)}</td><td>{n:,}</td></tr>" for kind, n in sorted(report.requests.items())]
    invokes = report.lambda_invokes if report.lambda_invokes is not None else "-"
    rows.append(f"<tr><td>Lambda invokes</td><td>{invokes}</td></tr>")
    if report.lambda_gb_seconds is not None:
        rows.append(f"<tr><td>Lambda GB-seconds</td><td>{report.lambda_gb_seconds:,.3f}</td></tr>")
    cost = "-" if report.estimated_cost_usd is None else f"${report.estimated_cost_usd:.6f}"
    rows.append(f"<tr><th>estimated cost on AWS</th><th>{cost}</th></tr>")
    note = ("<p class=meta>From the done markers only (no result dict): control-plane requests "
            "are not counted.</p>" if report.cost_is_estimate_from_markers else
            "<p class=meta>List prices (airflow_provider_smr.cost); storage and transfer excluded.</p>")
    return f"<table class=cost>{''.join(rows)}</table>{note}"


def _counters_table(report: JobReport) -> str:
    """The user counters (``increment_counter``), or nothing when the job has none."""
    if not report.user_counters:
        return ""
    e = html.escape
    rows = [f"<tr><td>{e(group)}</td><td>{e(name)}</td><td>{count:,}</td></tr>"
            for group, names in report.user_counters.items() for name, count in names.items()]
    return ("<h2>Counters</h2><table class=counters><tr><th>group</th><th>name</th><th>total</th></tr>"
            f"{''.join(rows)}</table>")


def _io_section(report: JobReport) -> str:
    e = html.escape
    items = "".join(f"<li><b>{e(i['name'])}</b> ({e(str(i.get('format') or '-'))}): "
                    + ", ".join(f"<code>{e(u)}</code>" for u in i["uris"]) + "</li>" for i in report.inputs)
    parts = f"{len(report.parts)} parts" if report.parts else "no parts committed"
    records = f", {report.records:,} records" if report.records is not None else ""
    return (f"<h2>Inputs</h2><ul>{items}</ul><h2>Output</h2><p><code>{e(report.output)}</code> "
            f"({e(str(report.output_format or '-'))}; {parts}{records})</p>")


def render_html(report: JobReport, refresh_s: int | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts, no links out).

    :param refresh_s: reload the page this often (a running job's live report), or never.
    """
    e = html.escape
    t0, t1 = report.span
    error = f"<h2>Error</h2><pre>{e(report.error)}</pre>" if report.error else ""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>SMR job {e(report.job_id)}</title>
<style>{_CSS}</style></head><body>
<h1>{e(report.job_name or 'SMR job')} <span class="state {e(report.state)}">{e(report.state)}</span></h1>
<div class="meta">job <code>{e(report.job_id)}</code> &middot; created {_fmt_time(report.created)} &middot;
tasks ran from {_fmt_time(t0)} for {t1 - t0:.2f}s &middot; report generated {_fmt_time(report.generated)}</div>
<h2>Timeline</h2>{_legend()}
{render_timeline(report)}
<h2>Phases</h2>{_stats_table(report)}
{_counters_table(report)}
<h2>Requests and cost</h2>{_cost_table(report)}
{_io_section(report)}
{error}
</body></html>
"""
