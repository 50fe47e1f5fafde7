"""Ordered-trie roots (a block's transactions and receipts roots) in C: ``kernels/evm_ordered.h``.

primitives.blocks.ordered_trie_root builds the same trie in Python; a block of 20,000
transactions spent most of its root time encoding nodes there.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from itertools import accumulate

import numpy as np

from executor_gpu.native_build import NativeUnavailable, cpu_library
from primitives.blocks import EMPTY_ROOT, OrderedRoot, ordered_trie_root
from primitives.types import Hash32


class NativeOrderedRoot:
    """An OrderedRoot computed by the interpreter's C library."""

    def __init__(self) -> None:
        self._lib = cpu_library()

    def __call__(self, items: Sequence[bytes]) -> Hash32:
        if not items:
            return EMPTY_ROOT
        offsets = np.fromiter(accumulate(map(len, items), initial=0), dtype=np.uint64,
                              count=len(items) + 1)
        root = ctypes.create_string_buffer(32)
        if not self._lib.evm_ordered_root(len(items), b"".join(items), offsets.ctypes.data, root):
            raise MemoryError("no memory for an ordered trie")
        return Hash32(root.raw)


@functools.cache
def ordered_root() -> OrderedRoot:
    """The native one where the C library builds; else the Python one."""
    try:
        return NativeOrderedRoot()
    except (NativeUnavailable, OSError):
        return ordered_trie_root
