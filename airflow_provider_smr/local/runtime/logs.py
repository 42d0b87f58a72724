"""CloudWatch Logs lines for one invocation, written the way Lambda writes them."""

from __future__ import annotations

import base64
import math
import threading
import time
from dataclasses import dataclass

TAIL_BYTES = 4096
_lock = threading.Lock()


@dataclass
class InvocationRecord:
    """What the REPORT line says about one invocation."""

    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_used_mb: int
    init_ms: float | None = None


def invocation_lines(record: InvocationRecord, handler_logs: str) -> list[str]:
    """START, the handler's output, END and REPORT, one CloudWatch event each."""
    lines = [f"START RequestId: {record.request_id} Version: $LATEST"]
    lines += [line for line in handler_logs.splitlines() if line.strip()]
    lines.append(f"END RequestId: {record.request_id}")
    report = (f"REPORT RequestId: {record.request_id}\tDuration: {record.duration_ms:.2f} ms\t"
              f"Billed Duration: {max(1, math.ceil(record.duration_ms))} ms\t"
              f"Memory Size: {record.memory_mb} MB\tMax Memory Used: {record.max_memory_used_mb} MB")
    if record.init_ms is not None:
        report += f"\tInit Duration: {record.init_ms:.2f} ms"
    lines.append(report + "\t")
    return lines


def tail(lines: list[str]) -> str:
    """``X-Amz-Log-Result``: the last 4 KB of the invocation's log, base64-encoded."""
    data = ("\n".join(lines) + "\n").encode()
    return base64.b64encode(data[-TAIL_BYTES:]).decode()


def write(account_id: str, region: str, function_name: str, stream: str, lines: list[str]) -> None:
    """Append ``lines`` to ``/aws/lambda/<function_name>`` in moto's Logs backend."""
    from moto.logs.models import logs_backends

    backend = logs_backends[account_id][region]
    group = f"/aws/lambda/{function_name}"
    now = int(time.time() * 1000)
    with _lock:
        if group not in backend.groups:
            backend.create_log_group(group, tags={})
        backend.ensure_log_stream(group, stream)
        backend.put_log_events(group, stream, [{"timestamp": now, "message": m} for m in lines])
