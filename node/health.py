"""GET /ready: is this node producing (or following) blocks, connected to a quorum of its
validators, and keeping L1 up to date? Read from the metrics the node keeps anyway."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from node.config import HealthConfig
from node.metrics import Metrics
from rpc.types import Readiness


@dataclass(frozen=True)
class ReadinessRules:
    """What this node must show to be ready."""

    block_time: float
    """Seconds between blocks."""
    bounds: HealthConfig
    """Head age and L1 lag bounds."""
    peers_needed: int = 0
    """Peers a validator needs for a quorum (0: a single validator)."""
    posts_to_l1: bool = False
    """Whether this node posts batches (then its L1 lag counts)."""


def quorum_peers(validators: int) -> int:
    """Peers a validator of ``validators`` equal ones needs so that it and they hold more
    than 2/3 of the weight (by count: weights change with epochs, the set does not)."""
    return (2 * validators) // 3


class ReadinessCheck:
    """Answers /ready from ``metrics``; ``peers()`` counts connected peers; ``now`` is
    time.monotonic (injected for tests)."""

    def __init__(self, metrics: Metrics, rules: ReadinessRules, peers: Callable[[], int],
                 now: Callable[[], float]) -> None:
        self._metrics = metrics
        self._rules = rules
        self._peers = peers
        self._now = now

    def __call__(self) -> Readiness:
        rules, metrics = self._rules, self._metrics
        reasons: list[str] = []
        head = metrics.head_number
        since = metrics.last_block_at if metrics.last_block_at is not None else metrics.started_at
        age = self._now() - since
        limit = rules.bounds.max_head_age_blocks * rules.block_time
        if age > limit:
            reasons.append(f"head {head} has not advanced for {age:.1f} s "
                           f"(limit {limit:.1f} s, {rules.bounds.max_head_age_blocks:g} block times)")
        peers = self._peers()
        if peers < rules.peers_needed:
            reasons.append(f"{peers} peers connected, a quorum needs {rules.peers_needed}")
        details: list[tuple[str, float]] = [
            ("head", head), ("head_age_seconds", round(age, 3)), ("peers", peers)]
        if rules.posts_to_l1:
            lag = metrics.l1_lag_s
            details.append(("l1_lag_seconds", round(lag, 3)))
            if lag > rules.bounds.max_l1_lag_seconds:
                reasons.append(f"L1 is {lag:.0f} s behind (limit "
                               f"{rules.bounds.max_l1_lag_seconds:g} s)")
        return Readiness(tuple(reasons), tuple(details))
