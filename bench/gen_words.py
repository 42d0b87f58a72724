"""Seeded word-count input: Zipf-distributed words from a ~50k-word vocabulary, 12 words a line.

The vocabulary is a pure function of the seed (distinct random lowercase words of 2-12 letters);
the word of rank ``r`` (0-based) has weight ``1 / (r + 1) ** ZIPF_S``. As a script::

    python bench/gen_words.py OUT --size 100MiB --seed 0
"""

from __future__ import annotations

import functools
import itertools
import random
import string
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_common import Generated, cached_file, generate_bytes, main, write_file  # noqa: E402

KIND = "words"
VOCABULARY = 50_000
WORDS_PER_LINE = 12
ZIPF_S = 1.0


@functools.lru_cache(maxsize=4)
def vocabulary(seed: int = 0, size: int = VOCABULARY) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``(words, cumulative Zipf weights)`` for ``seed``; the same on every machine."""
    rng = random.Random(f"{KIND}-vocabulary:{seed}")
    words: dict[str, None] = {}
    while len(words) < size:
        length = min(12, 2 + int(rng.expovariate(1 / 4.0)))
        words["".join(rng.choices(string.ascii_lowercase, k=length))] = None
    cum = tuple(itertools.accumulate(1.0 / (r + 1) ** ZIPF_S for r in range(size)))
    return tuple(words), cum


def make_chunk(seed: int, rng: random.Random, index: int, target: int) -> bytes:
    """Whole lines of 12 Zipf words until at least ``target`` bytes."""
    words, cum = vocabulary(seed)
    out: list[str] = []
    size = 0
    while size < target:
        lines = max(16, (target - size) // 60)
        batch = rng.choices(words, cum_weights=cum, k=WORDS_PER_LINE * lines)
        for i in range(0, len(batch), WORDS_PER_LINE):
            line = " ".join(batch[i : i + WORDS_PER_LINE]) + "\n"
            out.append(line)
            size += len(line)
            if size >= target:
                break
    return "".join(out).encode()


def words_bytes(size: int, seed: int = 0) -> bytes:
    return generate_bytes(KIND, make_chunk, size, seed)


def write_words(path, size: int, seed: int = 0, processes: int = 2) -> Generated:
    """Write Zipf word-count text."""
    return write_file(KIND, make_chunk, path, size, seed, processes)


def words_file(data_dir, size: int, seed: int = 0, processes: int = 2) -> Generated:
    return cached_file(KIND, make_chunk, data_dir, size, seed, ".txt", processes)


if __name__ == "__main__":
    main(write_words)
