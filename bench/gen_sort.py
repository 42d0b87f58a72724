"""Seeded gensort-shaped records: 100 bytes each, a 10-byte printable key first.

Layout of one record (ASCII, like ``gensort -a`` but ``\\n``-terminated so it is one text line)::

    KKKKKKKKKK  RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR  FFFF...(53 bytes)\\n

K: key of printable ASCII 32-126 (not uniform: a sampled range partitioner must cope), R: the
record number in 32 hex digits (globally unique), F: filler. Sort order is by the 10-byte key,
byte-wise (``LC_ALL=C``). As a script: ``python bench/gen_sort.py OUT --size 100MiB --seed 0``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_common import CHUNK_BYTES, Generated, cached_file, generate_bytes, main, write_file  # noqa: E402

KIND = "sort"
RECORD = 100
KEY = 10
_PRINTABLE = bytes(32 + b % 95 for b in range(256))
_FILLER = "0123456789ABCDEF" * 4
RECORDS_PER_CHUNK = -(-CHUNK_BYTES // RECORD)  # what make_chunk writes for a full chunk


def make_chunk(seed: int, rng: random.Random, index: int, target: int) -> bytes:
    """``ceil(target / 100)`` records; record numbers continue across chunks."""
    count = -(-target // RECORD)
    keys = rng.randbytes(KEY * count).translate(_PRINTABLE).decode("ascii")
    first = index * RECORDS_PER_CHUNK
    out = []
    for i in range(count):
        n = first + i
        start = (n % 11)
        out.append(f"{keys[i * KEY:(i + 1) * KEY]}  {n:032X}  {_FILLER[start:start + 53]}\n")
    return "".join(out).encode("ascii")


def sort_bytes(size: int, seed: int = 0) -> bytes:
    return generate_bytes(KIND, make_chunk, size, seed)


def write_sort(path, size: int, seed: int = 0, processes: int = 2) -> Generated:
    """Write gensort-shaped records."""
    return write_file(KIND, make_chunk, path, size, seed, processes)


def sort_file(data_dir, size: int, seed: int = 0, processes: int = 2) -> Generated:
    return cached_file(KIND, make_chunk, data_dir, size, seed, ".txt", processes)


if __name__ == "__main__":
    main(write_sort)
