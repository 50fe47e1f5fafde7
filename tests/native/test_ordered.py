"""The native ordered-trie root equals the Python one (itself checked against py-evm's)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor_gpu.ordered import NativeOrderedRoot
from primitives.blocks import EMPTY_ROOT, ordered_trie_root


@pytest.fixture(scope="module")
def native() -> NativeOrderedRoot:
    return NativeOrderedRoot()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=90), max_size=300))
def test_equals_python(items: list[bytes]) -> None:
    assert NativeOrderedRoot()(items) == ordered_trie_root(items)


@pytest.mark.parametrize("count", [1, 2, 16, 127, 128, 129, 255, 256, 257, 4000, 70_000])
def test_key_lengths_cross_over(native: NativeOrderedRoot, count: int) -> None:
    # Tiny values embed nodes in their parents; big ones are referred to by hash.
    items = [bytes([i % 251]) * (1 + i % 40) for i in range(count)]
    assert native(items) == ordered_trie_root(items)


def test_empty(native: NativeOrderedRoot) -> None:
    assert native([]) == EMPTY_ROOT
