"""Wall time of each stage of the block path, for the block's log line (and metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StageTimes:
    """Seconds spent per named stage, in the order the stages first ran."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.seconds: dict[str, float] = {}
        """Stage name -> seconds, added up over every time it ran."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block under ``name`` (also when it raises)."""
        start = self._clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self._clock() - start

    def __str__(self) -> str:
        """``select=12ms execute=340ms ...``"""
        return " ".join(f"{name}={1000 * value:.0f}ms" for name, value in self.seconds.items())
