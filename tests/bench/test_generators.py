"""The seeded generators: the same seed gives the same bytes, in the benchmark's record shapes."""

from __future__ import annotations

import collections

import pytest

from bench.gen_common import CHUNK_BYTES, parse_size
from bench.gen_sort import KEY, RECORD, sort_bytes, write_sort
from bench.gen_uservisits import COLUMNS, uservisits_bytes, write_uservisits
from bench.gen_words import VOCABULARY, WORDS_PER_LINE, vocabulary, words_bytes, write_words

GENERATORS = [words_bytes, uservisits_bytes, sort_bytes]


@pytest.mark.parametrize("generate", GENERATORS)
def test_same_seed_gives_same_bytes_and_other_seed_differs(generate):
    assert generate(50_000, seed=3) == generate(50_000, seed=3)
    assert generate(50_000, seed=3) != generate(50_000, seed=4)


@pytest.mark.parametrize("generate", GENERATORS)
def test_output_is_whole_lines_of_at_least_the_size(generate):
    data = generate(30_000, seed=1)
    assert len(data) >= 30_000
    assert data.endswith(b"\n")
    assert len(data) < 30_000 + 500


@pytest.mark.parametrize("generate", GENERATORS)
def test_a_smaller_file_is_a_prefix_of_a_larger_one(generate):
    small = generate(CHUNK_BYTES + 10_000, seed=2)
    large = generate(2 * CHUNK_BYTES + 5, seed=2)
    assert large.startswith(small[:CHUNK_BYTES])


@pytest.mark.parametrize("write, generate", [(write_words, words_bytes),
                                             (write_uservisits, uservisits_bytes),
                                             (write_sort, sort_bytes)])
def test_parallel_file_writer_matches_in_memory_bytes(tmp_path, write, generate):
    size = 2 * CHUNK_BYTES + 777
    got = write(tmp_path / "data", size, seed=5, processes=2)
    data = (tmp_path / "data").read_bytes()
    assert data == generate(size, seed=5)
    assert got.size == len(data) and got.lines == data.count(b"\n")


def test_words_are_zipf_distributed_over_the_vocabulary():
    words, cum = vocabulary(0)
    assert len(set(words)) == VOCABULARY == len(cum)
    lines = words_bytes(400_000, seed=0).decode().splitlines()
    assert all(len(line.split()) == WORDS_PER_LINE for line in lines)
    counts = collections.Counter(w for line in lines for w in line.split())
    top = [w for w, _ in counts.most_common(3)]
    assert top == list(words[:3])
    # Zipf s=1: the first word is about twice as frequent as the second
    assert 1.6 < counts[words[0]] / counts[words[1]] < 2.4
    assert len(counts) > 10_000


def test_uservisits_rows_follow_the_benchmark_schema_with_many_ip_prefixes():
    rows = uservisits_bytes(200_000, seed=0).decode().splitlines()
    prefixes = set()
    for row in rows:
        fields = row.split(",")
        assert len(fields) == len(COLUMNS)
        ip = fields[0].split(".")
        assert len(ip) == 4 and all(0 <= int(o) <= 255 for o in ip)
        assert float(fields[3]) >= 0
        assert fields[6].startswith(fields[5] + "-")
        prefixes.add(fields[0][:8])
    assert len(prefixes) > 0.8 * len(rows)
    assert 140 < sum(map(len, rows)) / len(rows) < 200


def test_sort_records_are_100_bytes_with_unique_record_numbers():
    data = sort_bytes(CHUNK_BYTES + 1000, seed=0)
    records = data.splitlines(keepends=True)
    assert all(len(r) == RECORD for r in records)
    assert all(32 <= b <= 126 for r in records[:1000] for b in r[:KEY])
    numbers = [int(r[KEY + 2 : KEY + 34], 16) for r in records]
    assert numbers == list(range(len(records)))


@pytest.mark.parametrize("text, size", [("100MiB", 100 << 20), ("1GB", 1 << 30), ("512k", 512 << 10),
                                        ("4096", 4096), ("1.5KiB", 1536)])
def test_parse_size_uses_binary_units(text, size):
    assert parse_size(text) == size


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError):
        parse_size("lots")
