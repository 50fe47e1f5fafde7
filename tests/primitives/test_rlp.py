"""The hot path's RLP encoder gives pyrlp's bytes for every shape the chain uses."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from primitives.rlp import DecodingError, decode, encode

items = st.recursive(
    st.binary(max_size=80) | st.integers(min_value=0, max_value=2**300) | st.booleans(),
    lambda children: st.lists(children, max_size=6) | st.tuples(children, children),
    max_leaves=40,
)


@given(items)
def test_encode_equals_pyrlp(item: object) -> None:
    assert encode(item) == rlp.encode(item)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 55, 56, 255, 256, 70_000])
def test_long_strings_and_lists(size: int) -> None:
    data = b"\x81" * size
    assert encode(data) == rlp.encode(data)
    assert encode([data, [data]]) == rlp.encode([data, [data]])


def test_negative_integers_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode(-1)


@given(items)
def test_decode_inverts_encode(item: object) -> None:
    encoded = rlp.encode(item)
    assert decode(encoded) == rlp.decode(encoded)


@given(st.binary(max_size=64))
def test_decode_accepts_what_pyrlp_accepts(data: bytes) -> None:
    try:
        expected = rlp.decode(data, strict=True)
    except rlp.exceptions.DecodingError:
        with pytest.raises(DecodingError):
            decode(data, max_depth=64)
        return
    assert decode(data, max_depth=64) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\x05",  # one byte below 0x80 must be itself
        b"\xb8\x05hello",  # a short string with a long header
        b"\xb9\x00\x38" + b"a" * 56,  # a zero-padded length
        b"\x83ab",  # truncated
        b"\x80\x80",  # trailing bytes
        b"\xc2\x83a",  # an item running past its list
    ],
)
def test_non_canonical_or_broken_input_is_refused(data: bytes) -> None:
    with pytest.raises(DecodingError):
        decode(data)


def test_nesting_is_bounded_without_recursion_errors() -> None:
    deep = b"\xc0"
    for _ in range(5):
        deep = bytes([0xC0 + len(deep)]) + deep
    assert decode(deep, max_depth=6) == [[[[[[]]]]]]
    with pytest.raises(DecodingError, match="nested too deeply"):
        decode(deep, max_depth=5)
    hostile = b"\xff" + (10**6).to_bytes(8, "big") + b"\xc1" * 200_000
    with pytest.raises(DecodingError):
        decode(hostile)
