"""The bounded check queue: checks run on its workers, and what finds it full is IGNOREd."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from p2p.checks import CheckLimits, CheckQueue
from p2p.types import PeerId, Validation

A, B, C = PeerId("a"), PeerId("b"), PeerId("c")


def test_limits_total_and_per_peer_and_frees_places_when_checks_end() -> None:
    release = threading.Event()
    names: list[str] = []

    def blocked() -> Validation:
        names.append(threading.current_thread().name)
        release.wait(10)
        return Validation.ACCEPT

    queue = CheckQueue("checker", CheckLimits(workers=1, max_pending=3, max_pending_per_peer=2))
    first = [queue.submit(A, blocked), queue.submit(A, blocked)]
    assert queue.submit(A, blocked) is Validation.IGNORE  # a's share is taken
    third = queue.submit(B, blocked)
    assert queue.submit(C, blocked) is Validation.IGNORE  # the queue is full
    assert queue.dropped == 2
    release.set()
    futures = [f for f in [*first, third] if isinstance(f, Future)]
    assert len(futures) == 3
    assert [f.result(10) for f in futures] == [Validation.ACCEPT] * 3
    assert all(name.startswith("checker") for name in names)  # not the caller's thread
    # Places come back once the checks are done (the callback runs as each future settles).
    again = queue.submit(C, lambda: Validation.REJECT)
    assert isinstance(again, Future) and again.result(10) is Validation.REJECT


def test_a_check_that_raises_settles_its_future_and_frees_its_place() -> None:
    queue = CheckQueue("checker", CheckLimits(workers=1, max_pending=1, max_pending_per_peer=1))

    def broken() -> Validation:
        raise ValueError("a bug")

    failed = queue.submit(A, broken)
    assert isinstance(failed, Future) and isinstance(failed.exception(10), ValueError)
    fine = queue.submit(A, lambda: Validation.IGNORE)
    assert isinstance(fine, Future) and fine.result(10) is Validation.IGNORE


def test_inline_runs_in_the_caller() -> None:
    queue = CheckQueue("checker", inline=True)
    caller = threading.current_thread().name
    seen: list[str] = []

    def check() -> Validation:
        seen.append(threading.current_thread().name)
        return Validation.REJECT

    assert queue.submit(A, check) is Validation.REJECT
    assert seen == [caller]
