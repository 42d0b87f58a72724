"""Seeded AMPLab ``uservisits`` rows for Q2 (``SUM(adRevenue) GROUP BY SUBSTR(sourceIP, 1, 8)``).

Schema of the Big Data Benchmark (no header, comma separated)::

    sourceIP,destURL,visitDate,adRevenue,userAgent,countryCode,languageCode,searchWord,duration

Source IPs are uniform over IPv4, so 8-character prefixes are many (hundreds of thousands per
100 MiB): the shuffle is real, as in the benchmark. Rows average ~170 bytes like the published
sample. As a script: ``python bench/gen_uservisits.py OUT --size 100MiB --seed 0``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gen_common import Generated, cached_file, generate_bytes, main, write_file  # noqa: E402

KIND = "uservisits"
COLUMNS = ("sourceIP", "destURL", "visitDate", "adRevenue", "userAgent", "countryCode",
           "languageCode", "searchWord", "duration")
_LOWER = bytes(97 + b % 26 for b in range(256))
USER_AGENTS = (
    "Mozilla/5.0 (Windows; U; Windows NT 5.2) AppleWebKit/525.13 (KHTML like Gecko) Chrome/0.2.149.27",
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)",
    "Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_5_6; en-us) AppleWebKit/525.27.1 Safari/525.27.1",
    "Opera/9.64 (Windows NT 5.1; U; en) Presto/2.1.1",
    "Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.9.0.10) Gecko/2009042316 Firefox/3.0.10",
    "Googlebot/2.1 (+http://www.googlebot.com/bot.html)",
    "Mozilla/5.0 (iPhone; U; CPU like Mac OS X) AppleWebKit/420+ Version/3.0 Mobile/1A543a",
    "Lynx/2.8.6rel.5 libwww-FM/2.14",
)
COUNTRIES = ("USA", "BRA", "DEU", "FRA", "GBR", "IND", "CHN", "JPN", "SRB", "ZAF", "CAN", "MEX")
LANGUAGES = ("EN", "PT", "DE", "FR", "HI", "ZH", "JA", "SR", "ES")
SEARCH_WORDS = ("rhymed", "fibrefriend", "spluttering", "tenable", "obstetrical", "kite",
                "gazetteer", "vestige", "brigand", "quarrelsome", "dismal", "ukulele")


def make_chunk(seed: int, rng: random.Random, index: int, target: int) -> bytes:
    """Whole uservisits rows until at least ``target`` bytes."""
    rows: list[str] = []
    size = 0
    rand, bits, pick = rng.random, rng.getrandbits, rng.choice
    while size < target:
        letters = rng.randbytes(8192).translate(_LOWER).decode()
        pos = 0
        while pos < 8192 - 100 and size < target:
            ip = bits(32)
            length = 20 + bits(6)
            url, pos = letters[pos : pos + length], pos + length
            country = pick(COUNTRIES)
            row = (f"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255},{url},"
                   f"{1970 + bits(5)}-{1 + bits(16) % 12:02d}-{1 + bits(16) % 28:02d},"
                   f"{rand() * 1000:.6f},{pick(USER_AGENTS)},{country},{country}-{pick(LANGUAGES)},"
                   f"{pick(SEARCH_WORDS)},{1 + bits(16) % 10}\n")
            rows.append(row)
            size += len(row)
    return "".join(rows).encode()


def uservisits_bytes(size: int, seed: int = 0) -> bytes:
    return generate_bytes(KIND, make_chunk, size, seed)


def write_uservisits(path, size: int, seed: int = 0, processes: int = 2) -> Generated:
    """Write AMPLab uservisits rows."""
    return write_file(KIND, make_chunk, path, size, seed, processes)


def uservisits_file(data_dir, size: int, seed: int = 0, processes: int = 2) -> Generated:
    return cached_file(KIND, make_chunk, data_dir, size, seed, ".csv", processes)


if __name__ == "__main__":
    main(write_uservisits)
