"""The plugin's HTML pages, drawn from what :mod:`.jobs` read (pure: no I/O).

Plain server-rendered pages in the report's style: no scripts, so they work in the "SMR job"
tab's iframe and in any browser; a running job's pages reload themselves (``<meta refresh>``).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from airflow_provider_smr.plugins import urls
from airflow_provider_smr.report import _CSS

if TYPE_CHECKING:
    from airflow_provider_smr.plugins.jobs import JobRef, JobView, ListedObject, LogEvent
    from lambda_handlers.s3uri import S3Uri

REFRESH_S = 5

_PAGE_CSS = _CSS + """
nav{margin:0 0 14px;font-size:14px}nav a{margin-right:14px}
nav a.here{font-weight:700;color:#1f2933;text-decoration:none}
pre.line{background:#f5f7fa;border:1px solid #d9dee3;color:#1f2933;font-size:13px}
td.msg{text-align:left;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
.bar{display:inline-block;height:10px;background:#2e7d32;vertical-align:middle}
.bar.running{background:#1565c0}.bar.failed{background:#c62828}.bar.todo{background:#e4e7eb}
details{margin:4px 0}summary{cursor:pointer}
"""

_NAV = ((urls.JOB, "Status"), (urls.REPORT, "Report"), (urls.LOGS, "Logs"), (urls.OUTPUT, "Output"))


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _nav(here: str, map_index: int) -> str:
    query = f"?map_index={map_index}" if map_index >= 0 else ""
    links = [f'<a class="here">{label}</a>' if page == here else f'<a href="{page}{query}">{label}</a>'
             for page, label in _NAV]
    return f"<nav>{''.join(links)}</nav>"


def page(title: str, body: str, *, here: str | None = None, map_index: int = -1,
         refresh_s: int | None = None) -> str:
    """A whole page: the nav between the job's pages, then ``body``."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    nav = _nav(here, map_index) if here else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{refresh}'
            f"<title>{html.escape(title)}</title><style>{_PAGE_CSS}</style></head><body>"
            f"{nav}{body}</body></html>\n")


def not_found(message: str) -> str:
    return page("SMR job not found", f"<h1>No SMR job here</h1><p>{html.escape(message)}</p>")


def unreadable(message: str) -> str:
    return page("SMR job unreadable", "<h1>Cannot read this SMR job</h1><p>The API server could not read it "
                f"through the task's <code>aws</code> connection:</p><pre>{html.escape(message)}</pre>")


def _state_badge(state: str) -> str:
    return f'<span class="state {html.escape(state)}">{html.escape(state)}</span>'


def _task_table(view: JobView) -> str:
    head = ("<tr><th>step / phase</th><th>done</th><th>running</th><th>failed</th><th>total</th>"
            "<th>progress</th></tr>")
    rows = []
    for index, phases in enumerate(view.status.steps):
        for phase, p in phases.items():
            scale = 240 / max(1, p.total)
            todo = max(0, p.total - p.done - p.running - p.failed)
            bar = "".join(f'<i class="bar {cls}" style="width:{n * scale:.1f}px"></i>'
                          for cls, n in (("", p.done), ("running", p.running), ("failed", p.failed),
                                         ("todo", todo)) if n)
            rows.append(f"<tr><td>{index + 1} {html.escape(phase)}</td><td>{p.done}</td><td>{p.running}</td>"
                        f"<td>{p.failed}</td><td>{p.total}</td><td>{bar}</td></tr>")
    return f'<table class="tasks">{head}{"".join(rows)}</table>'


def _failures(view: JobView) -> str:
    e = html.escape
    out = []
    if view.failure:
        out.append(f"<h2>Why the job failed</h2><pre>{e(view.failure)}</pre>")
    if view.failures:
        items = []
        for d in view.failures:
            where = f"step {d.get('step')} {d.get('phase')} task {d.get('task')} attempt {d.get('attempt')}"
            summary = f"{where}: {d.get('error_type', 'Error')}: {d.get('message', '')}"
            trace = f"<pre>{e(str(d['traceback']).rstrip())}</pre>" if d.get("traceback") else ""
            items.append(f"<details><summary>{e(summary)}</summary>{trace}</details>")
        out.append(f"<h2>Failed attempts ({len(view.failures)} most recent)</h2>{''.join(items)}")
    return "".join(out)


def status_page(view: JobView, map_index: int = -1) -> str:
    """The live status: state, the progress line, the task table and the failures with tracebacks."""
    e = html.escape
    ref, plan, status = view.ref, view.plan, view.status
    live = "" if status.terminal else f" &middot; refreshes every {REFRESH_S}s"
    body = (f"<h1>{e(plan.job_name or 'SMR job')} {_state_badge(status.state)}</h1>"
            f'<div class="meta">job <code>{e(ref.job_id)}</code> &middot; stack <code>{e(ref.stack_name)}</code>'
            f" &middot; created {_time(view.tracker.started)}{live}</div>"
            f'<pre class="line">{e(view.line)}</pre>'
            f"<h2>Tasks</h2>{_task_table(view)}"
            f"{_failures(view)}"
            f"<h2>Output</h2><p><code>{e(plan.output.uri)}</code></p>")
    return page(f"SMR job {ref.job_id}", body, here=urls.JOB, map_index=map_index,
                refresh_s=None if status.terminal else REFRESH_S)


def _console_log_group_url(group: str, region: str) -> str:
    # The console double-encodes the group name inside its fragment ("/" is "$252F").
    escaped = quote_plus(quote_plus(group)).replace("%", "$")
    return (f"https://console.aws.amazon.com/cloudwatch/home?region={quote(region)}"
            f"#logsV2:log-groups/log-group/{escaped}")


def logs_page(ref: JobRef, events: Iterable[LogEvent], groups: dict[str, str], *, terminal: bool,
              map_index: int = -1) -> str:
    """The functions' log lines that name the job (and the rest of those invocations' logs)."""
    e = html.escape
    events = list(events)
    rows = "".join(f"<tr><td>{_time(ev.timestamp / 1000)}</td><td>{e(ev.function)}</td>"
                   f'<td class="msg">{e(ev.message.rstrip())}</td></tr>' for ev in events)
    table = (f"<table><tr><th>time</th><th>function</th><th>message</th></tr>{rows}</table>" if events else
             "<p>No log line names this job yet. Functions log warnings and errors (their level is "
             "<code>AWS_LAMBDA_LOG_LEVEL</code>, WARNING by default).</p>")
    if urls.is_aws_endpoint(ref.endpoint_url) and ref.region_name:
        where = ", ".join(f'<a href="{e(_console_log_group_url(g, ref.region_name))}" target="_blank" '
                          f'rel="noopener">{e(g)}</a>' for g in groups.values())
    else:
        where = ", ".join(f"<code>{e(g)}</code>" for g in groups.values())
    body = (f"<h1>Logs of SMR job</h1><div class=\"meta\">job <code>{e(ref.job_id)}</code> &middot; "
            f"{len(events)} lines from CloudWatch Logs: {where}</div>{table}")
    return page(f"Logs of SMR job {ref.job_id}", body, here=urls.LOGS, map_index=map_index,
                refresh_s=None if terminal else REFRESH_S)


def _size(n: int) -> str:
    from airflow_provider_smr.engine.watch import format_bytes

    return format_bytes(n)


def output_page(ref: JobRef, location: S3Uri, objects: list[ListedObject], more: bool,
                map_index: int = -1) -> str:
    """A listing of the output prefix (what the S3 console shows on AWS)."""
    e = html.escape
    rows = "".join(f"<tr><td><code>{e(o.key)}</code></td><td>{_size(o.size)}</td>"
                   f"<td>{_time(o.last_modified)}</td></tr>" for o in objects)
    count = f"first {len(objects)} objects" if more else f"{len(objects)} objects"
    table = (f"<table><tr><th>key</th><th>size</th><th>last modified</th></tr>{rows}</table>" if objects
             else "<p>Nothing under this prefix yet: a job commits its output when it succeeds.</p>")
    body = (f"<h1>Output of SMR job</h1><div class=\"meta\"><code>{e(str(location))}</code> &middot; {count} "
            f"&middot; job <code>{e(ref.job_id)}</code></div>{table}")
    return page(f"Output of SMR job {ref.job_id}", body, here=urls.OUTPUT, map_index=map_index)
