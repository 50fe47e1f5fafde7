"""Concurrent callers' items handed to one function together, on threads of its own.

Used twice on the way of a transaction from a front to the pool. A front's callers (a wallet
sends one transaction at a time) go to the node in shared frames: each frame costs the node's
interpreter a request. In the node, the fronts' frames reach admission from many worker
threads at once; each of them running admission's Python itself would make them all runnable
at the same time, and the interpreter's lock is shared out by thread: the block path, one
thread among many, would get a small share of it. Here the callers wait (not runnable) while
a thread runs everything that queued up in one call. More than one such thread: while one
waits (for its fsync, or for the node), another runs.

Each call crosses threads twice, and each crossing waits for the lock: where callers do much
Python of their own (JSON-RPC bodies parsed in the node), they lose more than they give.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

IDLE_SECONDS = 5.0
"""How long a thread waits for work before it ends (the next call starts another)."""
THREADS = 2
"""Runs at a time."""


class Coalescer(Generic[Item, Result]):
    """Calls ``run`` on at most ``threads`` threads of its own, each time with the items of
    every call queued until then; each caller gets the results of its own items, or the
    exception ``run`` raised."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], name: str,
                 threads: int = THREADS, idle_seconds: float = IDLE_SECONDS) -> None:
        self._run = run
        self._name = name
        self._threads = threads
        self._idle = idle_seconds
        self._cond = threading.Condition()
        self._queue: list[tuple[Sequence[Item], Future[list[Result]]]] = []
        self._running = 0
        self._waiting = 0
        """Threads waiting for work."""

    def __call__(self, items: Sequence[Item]) -> list[Result]:
        """The results of ``items``, in order, once ``run`` took them."""
        if not items:
            return []
        future: Future[list[Result]] = Future()
        with self._cond:
            self._queue.append((items, future))
            if self._waiting:
                self._cond.notify()
            elif self._running < self._threads:
                self._running += 1
                # Daemon: it holds nothing to finish; its callers are what the node stops.
                threading.Thread(target=self._serve, name=self._name, daemon=True).start()
        return future.result()

    def _serve(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._waiting += 1
                    self._cond.wait(self._idle)
                    self._waiting -= 1
                    if not self._queue:
                        self._running -= 1
                        return
                calls, self._queue = self._queue, []
            try:
                results = self._run([item for items, _ in calls for item in items])
            except BaseException as exc:  # noqa: BLE001 (each caller gets it, as from its own call)
                for _, future in calls:
                    future.set_exception(exc)
                continue
            at = 0
            for items, future in calls:
                future.set_result(list(results[at : at + len(items)]))
                at += len(items)
