"""The peer measured in the same run: Lithops ``localhost`` running the floor's own function.

Lithops (an optional bench dependency: ``pip install -e '.[bench]'``, which ``make bench`` does)
runs the word-count floor's ``Counter`` loop (:func:`bench.floors.word_counter`) over byte-range
chunks of the same file with ``map_reduce`` on its localhost backend (2 worker processes, local
storage), and the trivial job as a whole process (Python start, import, executor, one
``map_reduce`` over 5 KB, result), the way ``smr run`` is timed. As a script (what the whole-process
row runs)::

    python bench/peers.py wordcount PATH [--chunks 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import floors  # noqa: E402

CHUNKS = 8
WORKERS = floors.PROCESSES


def available() -> bool:
    """Whether Lithops is installed (the rows are skipped, and say so, when it is not)."""
    try:
        import lithops  # noqa: F401
    except ImportError:
        return False
    return True


def lithops_config(workers: int = WORKERS) -> dict[str, Any]:
    """Lithops' localhost backend and storage, its workers on this interpreter (its default runtime
    is whatever ``python`` is first on PATH, which may lack the packages)."""
    return {"lithops": {"backend": "localhost", "storage": "localhost", "log_level": "WARNING"},
            "localhost": {"worker_processes": workers, "runtime": sys.executable}}


def count_range(path: str, start: int, end: int) -> Counter[str]:
    """One map call: the floor's ``Counter`` over the lines starting in ``[start, end)``."""
    return floors.word_counter(floors._range_lines(path, start, end))


def merge_counters(results: list[Counter[str]]) -> Counter[str]:
    """The reduce call: the map calls' counters added up."""
    total: Counter[str] = Counter()
    for part in results:
        total.update(part)
    return total


def lithops_word_count(path: str | Path, chunks: int = CHUNKS, workers: int = WORKERS) -> floors.Floor:
    """Word count of ``path`` with Lithops ``map_reduce`` over ``chunks`` byte ranges cut at lines;
    the seconds cover the executor, the calls and the result (not the interpreter's start)."""
    import cloudpickle
    import lithops

    # Lithops' workers do not have this repository on their path: ship the functions by value.
    for module in (floors, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(module)
    started = time.perf_counter()
    executor = lithops.FunctionExecutor(config=lithops_config(workers))
    ranges = [(str(path), a, b) for a, b in floors.line_ranges(path, chunks)]
    futures = executor.map_reduce(count_range, ranges, merge_counters)
    answer = dict(executor.get_result(futures))
    seconds = time.perf_counter() - started
    executor.clean()
    return floors.Floor(seconds, answer)


def lithops_process(path: str | Path, chunks: int = 1) -> tuple[float, dict[str, int]]:
    """Whole-process seconds of ``python bench/peers.py wordcount PATH``, and its answer."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "wordcount", str(path),
                           "--chunks", str(chunks)], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])["counts"]


def ratios(seconds: float | None, floor_s: float | None, peer_s: float | None) -> dict[str, float | None]:
    """``seconds`` over the floor's and over the peer's (None where either is missing)."""
    def over(base: float | None) -> float | None:
        return round(seconds / base, 2) if seconds and base else None

    return {"vs_floor": over(floor_s), "vs_lithops": over(peer_s)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=("wordcount",))
    p.add_argument("path", help="a local text file")
    p.add_argument("--chunks", type=int, default=CHUNKS, help=f"byte ranges (default {CHUNKS})")
    p.add_argument("--workers", type=int, default=WORKERS, help=f"worker processes (default {WORKERS})")
    args = p.parse_args(argv)
    if args.chunks < 1 or args.workers < 1:
        p.error("--chunks and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = lithops_word_count(args.path, args.chunks, args.workers)
    print(json.dumps({"seconds": round(run.seconds, 3), "counts": run.answer}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
