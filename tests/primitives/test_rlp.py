"""The hot path's RLP encoder gives pyrlp's bytes for every shape the chain uses."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from primitives.rlp import encode

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
