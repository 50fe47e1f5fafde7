"""Concurrent callers' items handed to one function together, on one thread of its own.

Transactions arrive from many RPC worker threads at once. Each of them running admission's
Python itself makes them all runnable at the same time, and the interpreter's lock is then
shared out by thread: the block path, one thread among many, gets a small share of it. Here
the callers wait (not runnable) while one thread admits everything that queued up in one
call, which also makes one journal write of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

IDLE_SECONDS = 5.0
"""How long the thread waits for work before it ends (the next call starts another)."""


class Coalescer(Generic[Item, Result]):
    """Calls ``run`` on one thread with the items of every call queued since its last run;
    each caller gets the results of its own items, or the exception ``run`` raised."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], name: str,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self._run = run
        self._name = name
        self._idle = idle_seconds
        self._cond = threading.Condition()
        self._queue: list[tuple[Sequence[Item], Future[list[Result]]]] = []
        self._running = False

    def __call__(self, items: Sequence[Item]) -> list[Result]:
        """The results of ``items``, in order, once ``run`` took them."""
        if not items:
            return []
        future: Future[list[Result]] = Future()
        with self._cond:
            self._queue.append((items, future))
            if not self._running:
                self._running = True
                # Daemon: it holds nothing to finish; its callers are what the node stops.
                threading.Thread(target=self._serve, name=self._name, daemon=True).start()
            self._cond.notify()
        return future.result()

    def _serve(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(self._idle)
                    if not self._queue:
                        self._running = False
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
