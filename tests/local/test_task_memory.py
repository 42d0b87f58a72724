"""``runtime.max_rss_mb`` in a warm worker on the local stack: each task's own peak."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import lambda_handlers

ALLOCATES = """
import os

from lambda_handlers import runtime

def handler(event, context):
    block = b"\\x01" * (event["mb"] * 2**20)  # written, so resident
    del block
    return {"pid": os.getpid(), "max_rss_mb": runtime.max_rss_mb()}
"""


def _zip_with_data_plane(app: str) -> bytes:
    buffer = io.BytesIO()
    root = Path(lambda_handlers.__file__).parent
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*.py"):
            archive.write(path, Path("lambda_handlers") / path.relative_to(root))
        archive.writestr("app.py", app)
    return buffer.getvalue()


def test_each_task_reports_its_own_peak_on_a_warm_worker(lam, role_arn):
    lam.create_function(FunctionName="task-memory", Runtime="python3.11", Role=role_arn,
                        Handler="app.handler", MemorySize=512, Timeout=30,
                        Code={"ZipFile": _zip_with_data_plane(ALLOCATES)})

    def run(mb: int) -> dict:
        response = lam.invoke(FunctionName="task-memory", Payload=json.dumps({"mb": mb}))
        return json.loads(response["Payload"].read())

    baseline = run(0)
    large = run(150)
    small = run(0)
    assert baseline["pid"] == large["pid"] == small["pid"]  # one warm worker
    assert baseline["max_rss_mb"] + 130 <= large["max_rss_mb"] <= baseline["max_rss_mb"] + 175
    assert small["max_rss_mb"] <= large["max_rss_mb"] - 130
