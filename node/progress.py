"""Progress of long commands: a one-line bar on a terminal, occasional plain lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30
"""Characters between the brackets."""
REDRAW_S = 0.1
"""Least time between two redraws of the bar."""


class Progress:
    """Shows ``done/total``, the rate and the time left.

    On a terminal it redraws one line in place (``clear`` removes it before other
    output); elsewhere it prints a plain line every ``plain_every_s`` seconds, or
    nothing when that is None (logs stay free of carriage returns).
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        unit: str = "",
        *,
        plain_every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        """Target count; may grow while running (new work arrived)."""
        self._stream = stream
        self._unit = f" {unit}" if unit else ""
        self._terminal = stream.isatty()
        self._plain_every_s = plain_every_s
        self._clock = clock
        self._started = clock()
        self._start_done: int | None = None
        self._shown = float("-inf")

    def update(self, done: int, note: str = "") -> None:
        """Show that ``done`` of ``total`` are done; ``note`` is appended (e.g. failures)."""
        now = self._clock()
        if self._start_done is None:
            self._start_done, self._started = done, now
        interval = REDRAW_S if self._terminal else self._plain_every_s
        finished = done >= self.total
        if interval is None or (now - self._shown < interval and not finished):
            return
        self._shown = now
        text = f"{done}/{self.total}{self._unit}" + (f" {note}" if note else "") + self._speed(
            done, now
        )
        if self._terminal:
            filled = BAR_WIDTH * min(done, self.total) // max(self.total, 1)
            self._stream.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}\033[K")
        else:
            self._stream.write(f"progress: {text}\n")
        self._stream.flush()

    def clear(self) -> None:
        """Remove the bar from a terminal line, before printing something else."""
        if self._terminal:
            self._stream.write("\r\033[K")
            self._stream.flush()

    def _speed(self, done: int, now: float) -> str:
        assert self._start_done is not None
        elapsed = now - self._started
        moved = done - self._start_done
        if elapsed <= 0 or moved <= 0:
            return ""
        rate = moved / elapsed
        left = max(self.total - done, 0) / rate
        return f", {rate:.1f}/s, ETA {_duration(left)}"


def _duration(seconds: float) -> str:
    """``seconds`` as 42s, 3m05s or 2h07m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
