"""Shared machinery of the seeded data generators: deterministic chunks written in parallel.

A generated file is the concatenation of chunks ``0, 1, 2, ...``; chunk ``k`` is a pure function of
``(seed, k)`` and of how many bytes it must reach, so the bytes do not depend on how many processes
wrote them, and a smaller file is a prefix (to the line) of a larger one with the same seed.
Every chunk holds whole lines only.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20

# make_chunk(seed, rng, chunk_index, target_bytes) -> bytes of whole lines, len >= target_bytes
ChunkMaker = Callable[[int, random.Random, int, int], bytes]


@dataclass(frozen=True)
class Generated:
    path: Path
    size: int
    lines: int


def chunk_rng(kind: str, seed: int, chunk: int) -> random.Random:
    """The random stream of one chunk (str seeds hash with sha512: stable across runs and machines)."""
    return random.Random(f"{kind}:{seed}:{chunk}")


def _targets(size: int) -> list[int]:
    full, rest = divmod(size, CHUNK_BYTES)
    return [CHUNK_BYTES] * full + ([rest] if rest else [])


def _one_chunk(args: tuple[str, ChunkMaker, int, int, int]) -> bytes:
    kind, make_chunk, seed, index, target = args
    return make_chunk(seed, chunk_rng(kind, seed, index), index, target)


def generate_bytes(kind: str, make_chunk: ChunkMaker, size: int, seed: int) -> bytes:
    """All chunks in memory, in one process (small sizes and tests)."""
    return b"".join(_one_chunk((kind, make_chunk, seed, i, t)) for i, t in enumerate(_targets(size)))


def write_file(kind: str, make_chunk: ChunkMaker, path: str | os.PathLike, size: int, seed: int,
               processes: int = 2) -> Generated:
    """Write at least ``size`` bytes of whole lines to ``path`` (idempotent for the same arguments)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    jobs = [(kind, make_chunk, seed, i, t) for i, t in enumerate(_targets(size))]
    written = lines = 0
    with open(tmp, "wb") as out:
        if processes > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(processes) as pool:
                chunks = pool.map(_one_chunk, jobs, chunksize=4)
                for chunk in chunks:
                    written += out.write(chunk)
                    lines += chunk.count(b"\n")
        else:
            for job in jobs:
                chunk = _one_chunk(job)
                written += out.write(chunk)
                lines += chunk.count(b"\n")
    os.replace(tmp, path)
    return Generated(path, written, lines)


def cached_file(kind: str, make_chunk: ChunkMaker, data_dir: str | os.PathLike, size: int,
                seed: int, suffix: str, processes: int = 2) -> Generated:
    """Generate once per (kind, size, seed) under ``data_dir``; reuse the file afterwards."""
    path = Path(data_dir) / f"{kind}-{size}-s{seed}{suffix}"
    if path.exists():
        data_size = path.stat().st_size
        with open(path, "rb") as f:
            lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 22), b""))
        return Generated(path, data_size, lines)
    return write_file(kind, make_chunk, path, size, seed, processes)


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """``"100MiB"``, ``"1GB"``, ``"512k"`` or a plain integer -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 100MiB, 1GiB, 4096)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def main(write: Callable[..., Generated]) -> None:
    """Command line of every ``gen_*.py``: ``OUT --size SIZE --seed N``."""
    import argparse

    parser = argparse.ArgumentParser(description=write.__doc__)
    parser.add_argument("out")
    parser.add_argument("--size", default="100MiB", type=parse_size)
    parser.add_argument("--seed", default=0, type=int)
    parser.add_argument("--processes", default=2, type=int)
    args = parser.parse_args()
    got = write(args.out, args.size, args.seed, args.processes)
    print(f"{got.path}: {got.size} bytes, {got.lines} lines")
