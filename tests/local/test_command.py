"""``smr local up`` serves in the foreground, prints what to export, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.local.test_lifecycle import _alive, _session_members


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.timeout(180)
def test_local_up_prints_the_environment_and_stops_on_sigterm():
    command = [sys.executable, "-m", "airflow_provider_smr.cli", "local", "up", "--port", "0"]
    smr = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in smr.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in text
        assert "export AWS_ACCESS_KEY_ID=testing" in text
        family = set()
        for server_pid in _children(smr.pid):
            family |= _session_members(server_pid) | {server_pid}
        assert family
        smr.send_signal(signal.SIGTERM)
        rest = smr.stdout.read()
        assert smr.wait(timeout=60) == 0
        assert "stopped" in rest
        assert not any(_alive(pid) for pid in family)
    finally:
        if smr.poll() is None:
            smr.kill()
            smr.wait()
