"""The per-record path on its own: map-loop CPU per combiner form next to the ``Counter`` floor,
and the self-time table of a py-spy profile of the task handlers.

``cpu`` runs one split's worth of the word-count text through the real map loop
(:func:`lambda_handlers.mapper.run_mapper_folding` / ``run_mapper``, the combiner, the
partitioned output) in this process, no S3, and reports the best CPU seconds of a few rounds (CPU
time, not wall: it holds on a shared box) for each form of the README's job: ``combiner=fold(add)``,
``combiner=total`` (the README's first job) and no combiner; then ``Counter.update(line.split())``
over the same lines::

    python bench/per_record.py cpu --size 12MiB

``profile RAW`` summarises ``py-spy record --subprocesses --format raw`` output: self time per
function over the task handlers' main threads (the read-ahead thread, blocked on its full queue,
left out)::

    py-spy record --subprocesses --format raw -r 50 -o wc.raw -- python bench/run.py --only wordcount-records
    python bench/per_record.py profile wc.raw [after.raw]
"""

from __future__ import annotations

import argparse
import collections
import operator
import re
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_words import words_file  # noqa: E402
from lambda_handlers.sizes import parse_size  # noqa: E402


def words(line):
    for word in line.split():
        yield word, 1


def total(key, counts):
    yield key, sum(counts)


def map_cpu(text: bytes, rounds: int = 3, reducers: int = 6) -> dict[str, float]:
    """Best CPU seconds of the map loop (and the combiner's flush) per form, and the Counter floor."""
    from lambda_handlers import mapper, shuffle
    from lambda_handlers.io import readers
    from lambda_handlers.jobspec import Fold

    ser = shuffle.serializer("json")
    best: dict[str, float] = collections.defaultdict(lambda: float("inf"))
    for _ in range(rounds):
        for form in ("fold", "total", "none"):
            lines = text.decode().splitlines()
            blocks = [lines[i:i + readers.BLOCK_RECORDS] for i in range(0, len(lines), readers.BLOCK_RECORDS)]
            source = mapper._Source(iter(blocks), readers.identity, {}, str)
            out = shuffle.PartitionedOutput(reducers, ser)
            started = time.process_time()
            if form == "none":
                mapper.run_mapper(source, words, out.add_many, 0)
            else:
                comb = (shuffle.FoldCombiner(Fold(operator.add), out.add_many, ser, 256 << 20) if form == "fold"
                        else shuffle.Combiner(total, out.add_many, ser, 256 << 20))
                if form == "fold" or hasattr(comb, "add_outputs"):
                    mapper.run_mapper_folding(source, words, comb)  # as map_task runs them
                else:  # a tree from before the grouping combiner was fused into the loop
                    mapper.run_mapper(source, words, comb.add_many, 0)
                comb.flush()
            out.finish()
            best[form] = min(best[form], time.process_time() - started)
        started = time.process_time()
        counts: collections.Counter[str] = collections.Counter()
        for line in text.decode().splitlines():
            counts.update(line.split())
        best["counter floor"] = min(best["counter floor"], time.process_time() - started)
    return dict(best)


def profile_table(path: str) -> tuple[collections.Counter[str], int]:
    """Self-time samples per function over the task handlers' main threads, and their total."""
    samples: collections.Counter[str] = collections.Counter()
    total_n = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not any("lambda_handlers/" in f for f in frames) or any("prefetched.<locals>.pump" in f for f in frames):
            continue
        total_n += int(n)
        name = re.sub(r" \((.*?)(:\d+)?\)$", lambda m: " (" + m.group(1).rsplit("/", 1)[-1] + ")", frames[-1])
        samples[name] += int(n)
    return samples, total_n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    cpu = sub.add_parser("cpu", help="map-loop CPU per combiner form and the Counter floor")
    cpu.add_argument("--size", type=parse_size, default=parse_size("12MiB"), help="bytes of text (one split)")
    cpu.add_argument("--rounds", type=int, default=3)
    prof = sub.add_parser("profile", help="self-time table of py-spy raw profiles")
    prof.add_argument("raw", nargs="+", help="one profile, or a before and an after")
    prof.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)
    if args.command == "cpu":
        with tempfile.TemporaryDirectory(prefix="smr-per-record-") as tmp:
            gen = words_file(Path(tmp), args.size)
            best = map_cpu(Path(gen.path).read_bytes(), args.rounds)
        floor = best["counter floor"]
        for form, seconds in best.items():
            print(f"{form:>14}: {seconds:6.3f} s CPU  {seconds / floor:5.2f}x the Counter floor")
        return
    tables = [profile_table(path) for path in args.raw]
    names = list(dict.fromkeys(f for samples, _ in tables for f, _ in samples.most_common(args.top)))
    print("samples: " + ", ".join(str(n) for _, n in tables))
    print("| function (self time) | " + " | ".join("%" for _ in tables) + " |")
    print("|---|" + "---|" * len(tables))
    for f in names:
        print(f"| `{f}` | " + " | ".join(f"{100 * s[f] / max(1, n):.1f}" for s, n in tables) + " |")


if __name__ == "__main__":
    main()
