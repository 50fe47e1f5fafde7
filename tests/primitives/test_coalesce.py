"""Coalescer: concurrent callers' items in one run on one thread, each caller its results."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from primitives.coalesce import Coalescer


def test_callers_queued_during_a_run_share_the_next_one() -> None:
    runs: list[list[int]] = []
    first_running, release = threading.Event(), threading.Event()

    def run(items: list[int]) -> list[int]:
        runs.append(items)
        if len(runs) == 1:
            first_running.set()
            release.wait(10)
        return [item * 10 for item in items]

    coalesce = Coalescer(run, "test", threads=1)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(coalesce, [1])
        assert first_running.wait(10)
        later = [pool.submit(coalesce, items) for items in ([2, 3], [4], [5, 6])]
        while sum(len(items) for items, _ in coalesce._queue) < 5:  # all three queued
            threading.Event().wait(0.001)
        release.set()
        assert first.result(10) == [10]
        assert [f.result(10) for f in later] == [[20, 30], [40], [50, 60]]
    assert runs[0] == [1] and sorted(runs[1]) == [2, 3, 4, 5, 6] and len(runs) == 2


def test_every_caller_of_a_failed_run_gets_its_exception_and_the_next_run_goes_on() -> None:
    def run(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("bad item")
        return items

    coalesce = Coalescer(run, "test")
    with pytest.raises(ValueError, match="bad item"):
        coalesce(["bad"])
    assert coalesce(["good"]) == ["good"]
    assert coalesce([]) == []


def test_the_thread_ends_when_idle_and_a_later_call_starts_another() -> None:
    coalesce: Coalescer[int, int] = Coalescer(lambda items: items, "coalesce-idle-test",
                                              idle_seconds=0.05)
    assert coalesce([1]) == [1]

    def alive() -> bool:
        return any(t.name == "coalesce-idle-test" for t in threading.enumerate())

    for _ in range(200):
        if not alive():
            break
        threading.Event().wait(0.01)
    assert not alive()
    assert coalesce([2]) == [2]


def test_a_second_thread_runs_while_the_first_waits() -> None:
    """While one run blocks (admission waiting for its fsync), the next call runs."""
    started, release = threading.Event(), threading.Event()

    def run(items: list[str]) -> list[str]:
        if items == ["slow"]:
            started.set()
            release.wait(10)
        return items

    coalesce = Coalescer(run, "test", threads=2)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(coalesce, ["slow"])
        assert started.wait(10)
        assert pool.submit(coalesce, ["quick"]).result(10) == ["quick"]  # not behind "slow"
        assert not slow.done()
        release.set()
        assert slow.result(10) == ["slow"]
