"""A block's size is its RLP encoding's length, counted from the lengths of its parts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.transactions import LEGACY_TX
from rpc.render import block_rlp, block_size
from rpc.types import BlockView
from tests.rpc.twin import build_chain

EDGES = [2, 54, 55, 56, 57, 255, 256, 257, 65_535, 65_536]
"""Lengths where an RLP prefix grows (short form below 56, then 1, 2, 3 length bytes)."""


def block_of(shapes: list[tuple[bool, int]]) -> BlockView:
    """A block of the test chain's header with legacy or typed transactions of these raw
    lengths (only the lengths and types count toward the size)."""
    template = next(view for view in build_chain().blocks if len(view.transactions) > 1)
    legacy = next(tx for tx in template.transactions if tx.tx_type == LEGACY_TX)
    typed = next(tx for tx in template.transactions if tx.tx_type != LEGACY_TX)
    return BlockView(template.header, tuple(
        replace(legacy if is_legacy else typed, raw=b"\x02" * length) for is_legacy, length in shapes
    ))


def test_size_of_each_block_of_a_chain() -> None:
    chain = build_chain()
    assert any(view.transactions for view in chain.blocks)
    for view in chain.blocks:
        assert block_size(view) == len(block_rlp(view))


@pytest.mark.parametrize("length", EDGES)
def test_size_at_the_prefix_edges(length: int) -> None:
    # One typed or legacy transaction of that length; or that many short ones (a long list).
    for shapes in ([(False, length)], [(True, length)], [(True, 2)] * min(length, 2_000)):
        view = block_of(shapes)
        assert block_size(view) == len(block_rlp(view))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(EDGES) | st.integers(2, 70_000)),
                max_size=40))
def test_size_of_blocks_of_any_transaction_lengths(shapes: list[tuple[bool, int]]) -> None:
    view = block_of(shapes)
    assert block_size(view) == len(block_rlp(view))
