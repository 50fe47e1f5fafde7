"""The progress line: a bar on a terminal, plain lines (or nothing) elsewhere."""

from __future__ import annotations

import io

from node.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_bar_shows_rate_and_time_left_and_clears() -> None:
    stream, clock = Terminal(), Clock()
    bar = Progress(stream, 100, "batches", clock=clock)
    bar.update(0)
    clock.now += 10
    bar.update(20, "1 not verified")
    assert stream.getvalue().endswith(
        f"\r[{'#' * 6}{'.' * 24}] 20/100 batches 1 not verified, 2.0/s, ETA 40s\033[K"
    )
    written = stream.getvalue()
    clock.now += 0.05
    bar.update(21)  # too soon to redraw
    assert stream.getvalue() == written
    bar.update(100)  # the end is always drawn
    assert "100/100 batches" in stream.getvalue()
    bar.clear()
    assert stream.getvalue().endswith("\r\033[K")


def test_plain_lines_every_interval_away_from_a_terminal() -> None:
    stream, clock = io.StringIO(), Clock()
    bar = Progress(stream, 500, "batches", plain_every_s=10, clock=clock)
    for done in range(0, 500, 50):
        bar.update(done)
        clock.now += 5
    bar.total = 1000  # more work arrived
    clock.now += 3600
    bar.update(500)
    bar.clear()
    assert stream.getvalue().splitlines() == [
        "progress: 0/500 batches",
        "progress: 100/500 batches, 10.0/s, ETA 40s",
        "progress: 200/500 batches, 10.0/s, ETA 30s",
        "progress: 300/500 batches, 10.0/s, ETA 20s",
        "progress: 400/500 batches, 10.0/s, ETA 10s",
        "progress: 500/1000 batches, 0.1/s, ETA 1h00m",
    ]


def test_silent_away_from_a_terminal_without_an_interval() -> None:
    stream = io.StringIO()
    bar = Progress(stream, 3)
    for done in range(4):
        bar.update(done)
    bar.clear()
    assert stream.getvalue() == ""
