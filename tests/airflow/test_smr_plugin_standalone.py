"""The UI plugin under ``airflow standalone``: a finished task's extra links open its job's pages.

smr_word_count runs through the real scheduler; its task's links are read through the REST API
and opened on the same API server (the plugin is mounted there), through Airflow's auth (the
simple auth manager with ``SIMPLE_AUTH_MANAGER_ALL_ADMINS``, which signs every request as admin),
and the report link is opened by headless Chromium.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

DAG_ID = "smr_word_count"
TASK_ID = "count_words"
OUTPUT = "s3://smr-examples/word_count/plugin/"

pytestmark = pytest.mark.timeout(900)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


@pytest.fixture(scope="module")
def finished_run(standalone):
    """A successful smr_word_count run: (api, its run path)."""
    api = standalone
    api.ready(DAG_ID)
    _, run_path = api.trigger(DAG_ID, {"output": OUTPUT})
    api.finish(run_path, 600)
    return api, run_path


@pytest.fixture(scope="module")
def links(finished_run) -> dict[str, str]:
    """The task's extra links, as absolute URLs on the API server (the UI resolves them so)."""
    api, run_path = finished_run
    status, body = api.call("GET", f"{run_path}/taskInstances/{TASK_ID}/links")
    assert status == 200, body
    origin = api.base.removesuffix("/api/v2")
    return {name: urllib.parse.urljoin(origin + "/", url) for name, url in body["extra_links"].items() if url}


def test_the_task_links_open_the_plugin_pages_of_its_job(finished_run, links):
    api, run_path = finished_run
    xcom = api.call("GET", f"{run_path}/taskInstances/{TASK_ID}/xcomEntries/return_value")[1]["value"]
    job_id = (json.loads(xcom) if isinstance(xcom, str) else xcom)["job_id"]
    origin = api.base.removesuffix("/api/v2")
    pages = f"{origin}/smr/dags/{DAG_ID}/runs/"
    assert links["SMR Report"].startswith(pages) and links["SMR Report"].endswith(f"/tasks/{TASK_ID}/report")
    assert links["SMR Logs"].endswith(f"/tasks/{TASK_ID}/logs")
    assert links["SMR Output"].endswith(f"/tasks/{TASK_ID}/output")  # the local stack: the plugin's listing

    status, report = get(links["SMR Report"])
    assert status == 200, report[-2000:]
    assert job_id in report and 'class="state SUCCEEDED"' in report
    assert 'aria-label="timeline of task attempts"' in report
    status, logs = get(links["SMR Logs"])
    assert status == 200 and job_id in logs and "CloudWatch Logs" in logs, logs[-2000:]
    status, listing = get(links["SMR Output"])
    assert status == 200 and "_SUCCESS" in listing and "part-00000" in listing, listing[-2000:]


def test_the_job_tab_is_registered_and_shows_the_job(finished_run, links):
    api, run_path = finished_run
    status, plugins = api.call("GET", "/plugins")
    assert status == 200, plugins
    (smr,) = [p for p in plugins["plugins"] if p["name"] == "smr"]
    assert [v["destination"] for v in smr["external_views"]] == ["task_instance"]
    assert smr["fastapi_apps"][0]["url_prefix"] == "/smr"
    # The UI fills the href's placeholders (a task that is not mapped keeps {MAP_INDEX}).
    run_id = urllib.parse.unquote(run_path.rsplit("/", 1)[1])
    href = (smr["external_views"][0]["href"].replace("{DAG_ID}", DAG_ID)
            .replace("{RUN_ID}", urllib.parse.quote(run_id, safe="")).replace("{TASK_ID}", TASK_ID))
    status, tab = get(api.base.removesuffix("/api/v2") + href)
    assert status == 200 and 'class="state SUCCEEDED"' in tab and "<table" in tab, tab[-2000:]
    status, other = get(api.base.removesuffix("/api/v2") + href.replace(TASK_ID, "show_top_words"))
    assert status == 404 and "recorded no SMR job" in other


def test_chromium_opens_the_report_link_and_finds_the_timeline(links, tmp_path):
    from tests.test_report import chromium

    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", links["SMR Report"]],
        capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'aria-label="timeline of task attempts"' in proc.stdout, proc.stdout[-2000:]
    assert '<rect class="attempt map' in proc.stdout
