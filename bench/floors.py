"""Floors: the same answer computed by the fastest simple thing on this machine, timed in-run.

Each floor is a 2-process single pass over the same bytes (each process owns the lines starting in
its half of the file, as a split would), results merged, written the way a Python user who wants
speed writes it (bench/README.md, "Floors", says why each was chosen):

- word count: ``collections.Counter.update(line.split())`` per line (:func:`word_counter`), the
  fastest simple Python measured here (the per-word ``dict`` loop is ~25% slower);
- AMPLab Q2: a ``dict.get`` loop over ``line.split(",", 4)`` (``defaultdict`` and unpacking measured
  slower);
- sort: ``LC_ALL=C sort --parallel=2`` (GNU sort, faster than any pure-Python sort and merge).

A floor returns its wall seconds and its answer, so the benchmark also checks the engine's output
against it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROCESSES = 2


@dataclass
class Floor:
    seconds: float
    answer: Any


def line_ranges(path: str | os.PathLike, parts: int) -> list[tuple[int, int]]:
    """Byte ranges that cut ``path`` into ``parts`` pieces at line boundaries."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            f.seek(max(cuts[-1], size * i // parts))
            f.readline()
            cuts.append(min(size, f.tell()))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _read_range(path: str, start: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def word_counter(lines: Iterable[str]) -> Counter[str]:
    """``Counter`` of the whitespace-separated words of ``lines``: the word-count floor's loop, also
    the batch job's mapper (bench/jobs.py) and the Lithops row's map function (bench/peers.py)."""
    counts: Counter[str] = Counter()
    update = counts.update
    for line in lines:
        update(line.split())
    return counts


def count_words(data: bytes) -> dict[str, int]:
    """``{word: count}`` of whitespace-separated words."""
    return dict(word_counter(data.decode().splitlines()))


def _range_lines(path: str, start: int, end: int, chunk: int = 8 << 20) -> Iterator[str]:
    """The lines of ``path[start:end]`` (cut at newlines), read and decoded 8 MiB at a time: what a
    user's ``for line in f`` costs, without holding the range's bytes, text and line list at once."""
    with open(path, "rb") as f:
        f.seek(start)
        left, carry = end - start, b""
        while left > 0:
            data = carry + f.read(min(chunk, left))
            left -= len(data) - len(carry)
            cut = data.rfind(b"\n") + 1 if left > 0 else len(data)
            carry = data[cut:]
            yield from data[:cut].decode().splitlines()
        if carry:
            yield carry.decode()


def _count_words(args: tuple[str, int, int]) -> dict[str, int]:
    return dict(word_counter(_range_lines(*args)))


def _sum_revenue(args: tuple[str, int, int]) -> dict[str, float]:
    sums: dict[str, float] = {}
    get = sums.get
    for line in _read_range(*args).decode().splitlines():
        fields = line.split(",", 4)
        key = fields[0][:8]
        sums[key] = get(key, 0.0) + float(fields[3])
    return sums


def _merge_add(parts: list[dict]) -> dict:
    total = dict(parts[0]) if parts else {}
    for part in parts[1:]:
        get = total.get
        for k, v in part.items():
            total[k] = get(k, 0) + v
    return total


def python_pass(path: str | os.PathLike, work: Callable[[tuple[str, int, int]], dict],
                processes: int = PROCESSES) -> Floor:
    started = time.perf_counter()
    ranges = [(str(path), a, b) for a, b in line_ranges(path, processes)]
    with ProcessPoolExecutor(processes) as pool:
        answer = _merge_add(list(pool.map(work, ranges)))
    return Floor(time.perf_counter() - started, answer)


def word_count_floor(path: str | os.PathLike) -> Floor:
    """``{word: count}`` over whitespace-split words, 2 processes."""
    return python_pass(path, _count_words)


def amplab_q2_floor(path: str | os.PathLike) -> Floor:
    """``{sourceIP[:8]: sum(adRevenue)}``, 2 processes."""
    return python_pass(path, _sum_revenue)


def sort_floor(path: str | os.PathLike, out: str | os.PathLike) -> Floor:
    """``LC_ALL=C sort --parallel=2``; the answer is the sorted file's path."""
    env = dict(os.environ, LC_ALL="C")
    tmp = Path(out).parent
    started = time.perf_counter()
    subprocess.run(["sort", "--parallel=2", "-S", "25%", "-T", str(tmp), "-o", str(out), str(path)],
                   env=env, check=True)
    return Floor(time.perf_counter() - started, Path(out))
