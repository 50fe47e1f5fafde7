"""Python's cycle collector: paused around bulk work that makes no reference cycles, kept off
the long-lived heap, and timed."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

GENERATIONS = 3
"""The collector's generations (0: youngest; a pass of 2 walks every tracked object)."""


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


YOUNG_PASS_ALLOCATIONS = 20_000
"""Allocations (net of frees) between passes over the youngest generation while serving;
Python's default, 700, made a node under load spend about 2.5 µs per transaction in the
collector (bench.load, 40,000 transfers, 2-core box: 0.16 s against 0.06)."""


def tune_for_serving() -> None:
    """Takes every object alive now (modules, the chain and pool loaded at start) out of the
    collector's passes for good, and makes its young passes rarer. A full pass walks every
    tracked object holding the GIL: a node's imports alone made each one cost about 60 ms on
    the 2-core box. Reference counting still frees the frozen objects; only a reference cycle
    among them that became garbage later would stay, and startup leaves none (it is collected
    just before)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_PASS_ALLOCATIONS, *gc.get_threshold()[1:])


class CollectorTimes:
    """Seconds the cycle collector ran, and its passes, by generation, from when this is made
    until ``close`` (it listens on ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0] * GENERATIONS
        self.passes = [0] * GENERATIONS
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        # Passes never overlap: the collector runs holding the GIL.
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.seconds[generation] += time.perf_counter() - self._started
        self.passes[generation] += 1

    def close(self) -> None:
        gc.callbacks.remove(self._observe)
