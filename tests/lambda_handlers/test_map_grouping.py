"""The map loop fused with a grouping combiner (``combiner=fn(key, values)``, no ``max_bad_records``):
pairs go into the combiner's groups as the mapper yields them, with the same output as the
unfused loop, and a record that goes wrong is still named."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import mapper, runtime, shuffle
from lambda_handlers.io import readers

JSON = shuffle.serializer("json")


def _source(lines: list, block: int = 4) -> mapper._Source:
    blocks = [list(lines[i:i + block]) for i in range(0, len(lines), block)]
    at = {"base": 0}

    def numbered():
        for n, b in enumerate(blocks):
            at["base"] = n * block
            yield b

    return mapper._Source(numbered(), readers.identity, {"bucket": "b", "key": "in"},
                          lambda i: f"#{at['base'] + i}")


def total(key, values):
    yield key, sum(values)


def _combined(lines, fn, budget, fused: bool) -> tuple[list, int, int]:
    out: list = []
    comb = shuffle.Combiner(total, out.extend, JSON, budget)
    if fused:
        records = mapper.run_mapper_folding(_source(lines), fn, comb)
    else:
        records, _ = mapper.run_mapper(_source(lines), fn, comb.add_many, 0)
    comb.flush()
    return out, records, comb.compactions


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.lists(st.sampled_from(["a", "b", "c", 1, 1.0, True, None, ["x"]]), max_size=6),
                      max_size=30),
       budget=st.sampled_from([1, 3 * shuffle.KEY_COST, 64 << 20]))
def test_fused_grouping_gives_the_unfused_output_compactions_and_all(lines, budget):
    def emit(keys):
        for k in keys:
            yield k, 1

    assert _combined(lines, emit, budget, fused=True) == _combined(lines, emit, budget, fused=False)


def test_a_key_that_cannot_be_shuffled_names_its_record():
    comb = shuffle.Combiner(total, [].extend, JSON, 1 << 20)
    with pytest.raises(runtime.TaskError) as err:
        mapper.run_mapper_folding(_source(["a", "b"]), lambda line: [({line} if line == "b" else line, 1)], comb)
    assert str(err.value) == ("the mapper's key {'b'} (set) for the record at #1 cannot be shuffled: "
                              "ShuffleError: key {'b'} is not JSON-able; set serializer='pickle'")


def test_keys_only_and_raising_mappers_name_the_record():
    def keys_only(line):
        yield from line.split()

    comb = shuffle.Combiner(total, [].extend, JSON, 1 << 20)
    with pytest.raises(runtime.TaskError, match=r"^the mapper must return an iterable of \(key, value\) pairs; "
                                                r"for the record at #0 it produced 'x' \(str\)"):
        mapper.run_mapper_folding(_source(["x y"]), keys_only, comb)

    def boom(line):
        if line == "c":
            raise ValueError("no c")
        yield line, 1

    with pytest.raises(runtime.TaskError, match=r"^mapper failed on the record at #2: ValueError: no c"):
        mapper.run_mapper_folding(_source(["a", "b", "c"]), boom, shuffle.Combiner(total, [].extend, JSON, 1 << 20))
