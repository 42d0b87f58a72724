"""Every code example in README.md runs, on the local stack, as a reader would run it.

- ```python blocks run in order in one module (as if pasted into one script), unless the comment
  line above says ``<!-- readme-test: skip (reason) -->``;
- ```bash blocks marked ``<!-- readme-test: run -->`` run line by line in a shell (in a scratch
  folder holding README.md and dags_examples/);
- the ```bash block marked ``<!-- readme-test: environment -->`` (``smr local up`` + exports) is the
  environment every example runs in, with the fixture's endpoint instead of port 4566;
- the ```json block of "The XCom result" has the keys of a real result.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTED_ENDPOINT = "http://127.0.0.1:4566"
MARKERS = ("run", "environment", "skip")

pytestmark = pytest.mark.timeout(900)


@dataclass
class Block:
    lang: str
    code: str
    line: int
    marker: str | None  # "run" | "environment" | "skip" | None
    heading: str


def readme_blocks(text: str) -> list[Block]:
    blocks, heading, marker = [], "", None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        m = re.match(r"<!--\s*readme-test:\s*(\w+)", line)
        if m:
            marker = m.group(1)
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append(Block(fence.group(1), "\n".join(lines[i + 1:end]) + "\n", i + 1, marker, heading))
            marker, i = None, end
        elif line.strip() and not m:
            marker = None  # a marker applies to the block right below it
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def test_readme_markers_are_known_and_skips_are_few():
    assert BLOCKS, "README has no code blocks"
    for b in BLOCKS:
        assert b.marker in (None, *MARKERS), f"README line {b.line}: unknown marker {b.marker!r}"
        assert b.lang, f"README line {b.line}: give the code block a language"
    assert sum(b.marker == "skip" for b in BLOCKS) <= 2
    assert [b.marker for b in BLOCKS if b.lang == "python"].count(None) >= 4
    assert sum(b.marker == "environment" for b in BLOCKS) == 1


def test_readme_python_blocks_compile():
    for b in BLOCKS:
        if b.lang == "python":
            compile(b.code, f"README.md:{b.line}", "exec")


def commands(block: Block) -> list[str]:
    return [ln for ln in block.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_shell_examples_are_smr_commands_that_parse():
    from airflow_provider_smr.cli import build_parser

    for b in BLOCKS:
        if b.lang == "bash" and b.marker == "run":
            for command in commands(b):
                words = shlex.split(command)
                assert words[0] == "smr", command
                build_parser().parse_args([w.replace("$JOB_ID", "job-1") for w in words[1:]])


def documented_environment(endpoint: str) -> dict[str, str]:
    """The variables the README's environment block exports, pointed at ``endpoint``."""
    block = next(b for b in BLOCKS if b.marker == "environment")
    env: dict[str, str] = {}
    for line in commands(block):
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            for word in words[1:]:
                name, _, value = word.partition("=")
                env[name] = value.replace(DOCUMENTED_ENDPOINT, endpoint)
        else:
            assert words[:3] == ["smr", "local", "up"], line
    return env


def test_the_documented_environment_points_everything_at_the_local_stack():
    env = documented_environment("http://127.0.0.1:1234")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1234"
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["extra"]["endpoint_url"] == "http://127.0.0.1:1234" and conn["conn_type"] == "aws"
    from airflow_provider_smr.demo import airflow_env

    demo = airflow_env("/tmp/x", "http://127.0.0.1:1234", base={})
    assert json.loads(demo["AIRFLOW_CONN_AWS_DEFAULT"]) == conn


@pytest.fixture
def readme_env(aws_endpoint, monkeypatch, tmp_path):
    """The README's environment on the test's local stack, and a scratch folder to run in."""
    for name in [n for n in os.environ if n.startswith(("AWS_", "AIRFLOW_CONN_"))]:
        monkeypatch.delenv(name)
    env = documented_environment(aws_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "README.md").symlink_to(README)
    (tmp_path / "dags_examples").symlink_to(ROOT / "dags_examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "dags_examples"))
    return tmp_path


def run_python_blocks() -> dict:
    module = types.ModuleType("readme_examples")  # like a reader's script: pickled by value
    sys.modules[module.__name__] = module
    try:
        for b in BLOCKS:
            if b.lang == "python" and b.marker != "skip":
                exec(compile(b.code, f"README.md:{b.line}", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


def run_shell(command: str, cwd: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **extra_env,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (f"`{command}` failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_readme_examples_run_on_the_local_stack(readme_env):
    namespace = run_python_blocks()
    result = namespace["result"]  # "Running a job": the hook's result on the local stack
    assert result["status"] == "SUCCEEDED"

    xcom = next(b for b in BLOCKS if b.lang == "json" and b.heading == "The XCom result")
    documented = json.loads(xcom.code)
    assert set(documented) == set(result)
    for nested in ("counters", "timings", "requests"):
        assert set(documented[nested]) == set(result[nested]), nested

    ran = []
    for b in BLOCKS:
        if b.lang == "bash" and b.marker == "run":
            for command in commands(b):
                proc = run_shell(command, readme_env, {"JOB_ID": result["job_id"]})
                ran.append((command, proc.stdout))
    smr_run = next(out for cmd, out in ran if cmd.startswith("smr run"))
    assert json.loads(smr_run.strip().splitlines()[-1])["status"] == "SUCCEEDED"
    written = {p.name for p in (readme_env / "wc-out").iterdir()}
    assert "_SUCCESS" in written and any(name.startswith("part-") for name in written)
    page = (readme_env / "report.html").read_text()
    bars = re.findall(r'<rect class="attempt ', page)
    assert len(bars) == result["counters"]["attempts"]


def test_the_operator_table_lists_every_argument_of_the_operator():
    import inspect

    from airflow_provider_smr.operators.smr import ServerlessMapReduceOperator

    text = README.read_text()
    table = text[text.index("### The operator's arguments"):text.index("### The XCom result")]
    documented = {name for row in table.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    params = inspect.signature(ServerlessMapReduceOperator.__init__).parameters
    arguments = {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY}
    assert arguments - documented == set(), "arguments missing from the README table"
    aws = {"aws_conn_id", "region_name", "verify", "botocore_config"}
    assert documented - arguments - aws == set(), "the README documents arguments that do not exist"
