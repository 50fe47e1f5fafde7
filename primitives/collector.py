"""Pausing Python's cycle collector around bulk work that makes no reference cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pauses Python's cycle collector for a batch of work that makes many objects (tuples,
    lists, receipts, state changes) but no reference cycles: each of the collector's passes
    walks every live object of the process, so a batch of 100k transactions spent about a
    quarter of the host's time in it, and a block's state commit 30-50 ms. Reference counting
    still frees everything as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
