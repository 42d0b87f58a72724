"""Column batches (lambda_handlers.columns): str-keyed batches travel as joined columns and come back
exactly as the serializer would give them; anything else stays the serializer's list of pairs."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_handlers import columns, shuffle

JSON, PICKLE = shuffle.serializer("json"), shuffle.serializer("pickle")
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "\0", "a\0b", "\ud800", "\\u0000", '"q"', "é", "\U0001f600"])
scalars = (st.integers(min_value=-(1 << 70), max_value=1 << 70) | st.floats(allow_nan=False)
           | st.booleans() | st.none() | text | st.lists(st.integers(), max_size=2))


def _same(got, want) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return math.copysign(1, got) == math.copysign(1, want) and (got == want or got != got)
    return type(got) is type(want) and got == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(text, st.one_of(text, st.floats(), st.integers(), scalars)), min_size=1,
                max_size=30),
       st.sampled_from(["same", "str", "float", "int"]))
def test_a_batch_decodes_to_what_the_serializer_gives_back(pairs, shape):
    if shape != "same":  # one value type per batch: the packed column kinds
        make = {"str": str, "float": float, "int": lambda v: hash(str(v)) % 1000 - 500}[shape]
        pairs = [(k, make(len(k))) for k, _ in pairs]
    for ser in (JSON, PICKLE):
        payload = shuffle.encode_batch(pairs, ser)
        got = shuffle.decode_batch(payload, ser)
        want = ser.loads(ser.dumps(pairs))
        assert len(got) == len(want)
        for (gk, gv), (wk, wv) in zip(got, want, strict=True):
            assert gk == wk and type(gk) is str
            assert _same(gv, wv), (gv, wv)


def test_str_keyed_batches_are_columns_and_other_keys_are_the_serializers_pairs():
    assert columns.is_columns(shuffle.encode_batch([("a", 1), ("b", 2.5)], JSON))
    assert columns.is_columns(shuffle.encode_batch([("a", "x"), ("b", [1, {"c": None}])], JSON))
    for batch in ([(1, "a")], [("a", 1), (2, 1)], [("a\0b", 1)], [("a", 1, 2)]):
        payload = shuffle.encode_batch(batch, JSON)
        assert payload == JSON.dumps(batch)


def test_packed_columns_keep_nan_infinities_signed_zero_and_big_ints():
    floats = [("a", float("nan")), ("b", float("inf")), ("c", -0.0), ("d", 1e308)]
    keys, values = shuffle.decode_columns(shuffle.encode_batch(floats, JSON), JSON)
    assert keys == ["a", "b", "c", "d"] and math.isnan(values[0])
    assert values[1:] == [float("inf"), -0.0, 1e308]
    assert math.copysign(1, values[2]) == -1
    ints = [("a", (1 << 63) - 1), ("b", -(1 << 63)), ("c", 1 << 64), ("d", True)]
    assert shuffle.decode_batch(shuffle.encode_batch(ints, JSON), JSON) == [tuple(p) for p in ints]
    assert type(shuffle.decode_batch(shuffle.encode_batch(ints, JSON), JSON)[3][1]) is bool


def test_a_corrupt_column_batch_is_a_shuffle_error():
    import pytest

    payload = shuffle.encode_batch([("a", "x"), ("b", "y")], JSON)
    with pytest.raises(shuffle.ShuffleError, match="corrupt shuffle batch"):
        shuffle.decode_columns(payload[:-2] + b"zz", JSON)  # a separator lost
