"""Heavy gate checks (signatures, proofs) on a few worker threads behind a bounded queue.

A gate that needs more than a glance at a message hands the work to a ``CheckQueue`` and
returns its future: the host holds the message (neither delivered nor forwarded) until
the verdict. The queue never grows: a check that finds it full, or finds its peer's share
full, is IGNOREd at once (dropped without penalty, as gossipsub drops what it has no room
for), so a flood costs at most ``workers`` threads of work and never reaches the
consensus thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from p2p.types import PeerId, Validation


@dataclass(frozen=True)
class CheckLimits:
    """How much checking a queue does at once and how much it holds."""

    workers: int = 1
    """Threads running checks (a check should release the GIL for its heavy part)."""
    max_pending: int = 8
    """Checks queued or running; more are IGNOREd."""
    max_pending_per_peer: int = 2
    """Of those, from one delivering peer: one flooding peer cannot take every place."""


class CheckQueue:
    """Runs checks by the ``limits``; ``inline`` runs them in the caller (deterministic tests)."""

    def __init__(self, name: str, limits: CheckLimits = CheckLimits(), inline: bool = False) -> None:
        self._limits = limits
        self._inline = inline
        self._executor = ThreadPoolExecutor(limits.workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending: Counter[PeerId] = Counter()
        self._total = 0
        self.dropped = 0
        """Checks IGNOREd for want of room (for metrics and tests)."""

    def submit(
        self, peer: PeerId, check: Callable[[], Validation]
    ) -> Validation | Future[Validation]:
        """``check``'s verdict to come, for a message delivered by ``peer``; IGNORE when full."""
        if self._inline:
            return check()
        limits = self._limits
        with self._lock:
            if self._total >= limits.max_pending or self._pending[peer] >= limits.max_pending_per_peer:
                self.dropped += 1
                return Validation.IGNORE
            self._total += 1
            self._pending[peer] += 1
        future = self._executor.submit(check)
        future.add_done_callback(lambda _future: self._done(peer))
        return future

    def _done(self, peer: PeerId) -> None:
        with self._lock:
            self._total -= 1
            self._pending[peer] -= 1
            if not self._pending[peer]:
                del self._pending[peer]
