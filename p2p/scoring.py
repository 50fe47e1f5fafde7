"""Peer scoring: a peer whose messages the gates keep REJECTing is banned for a while.

Pure rules over an injected clock (no I/O); the libp2p host applies the verdicts
(disconnects and refuses a banned peer until its ban ends). Like gossipsub's P4 "invalid
messages" counter: each REJECT adds a penalty to the delivering peer, penalties decay
exponentially, and a peer past the threshold is banned. An honest peer gets a REJECT only
by accident (a view that raced a height change), far below the threshold; IGNOREs (stale,
duplicate, no room to check) never count.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.types import PeerId
from primitives.clock import Clock


@dataclass(frozen=True)
class ScoreRules:
    """How fast invalid messages get a peer banned, and for how long."""

    penalty: float = 1.0
    """Added to a peer's score per REJECTed message."""
    half_life: float = 60.0
    """Seconds in which a peer's score halves."""
    ban_threshold: float = 5.0
    """A score reaching this bans the peer (5 REJECTs within a few seconds; 5 spread over a
    few minutes do not)."""
    ban_seconds: float = 600.0
    """How long a ban lasts; afterwards the peer starts again from a score of 0."""
    max_tracked: int = 10_000
    """Most peers with a score kept; beyond it the lowest scores are forgotten."""


@dataclass(frozen=True)
class _Score:
    value: float
    at: float


class PeerScores:
    """Scores and bans of peers, by the ``rules`` and ``clock``. Not thread-safe: one owner."""

    def __init__(self, clock: Clock, rules: ScoreRules = ScoreRules()) -> None:
        self._clock = clock
        self._rules = rules
        self._scores: dict[PeerId, _Score] = {}
        self._bans: dict[PeerId, float] = {}  # peer -> when its ban ends

    def score(self, peer: PeerId) -> float:
        """The peer's decayed score now (0 for a peer with no REJECTs)."""
        kept = self._scores.get(peer)
        if kept is None:
            return 0.0
        elapsed = max(self._clock.now() - kept.at, 0.0)
        decay: float = 0.5 ** (elapsed / self._rules.half_life)
        return kept.value * decay

    def rejected(self, peer: PeerId) -> bool:
        """Count a REJECTed message delivered by ``peer``; True when this bans it."""
        if self.banned(peer):
            return False
        rules = self._rules
        value = self.score(peer) + rules.penalty
        if value >= rules.ban_threshold:
            self._scores.pop(peer, None)
            self._bans[peer] = self._clock.now() + rules.ban_seconds
            return True
        self._scores[peer] = _Score(value, self._clock.now())
        if len(self._scores) > rules.max_tracked:
            lowest = min(self._scores, key=self.score)
            del self._scores[lowest]
        return False

    def banned(self, peer: PeerId) -> bool:
        """Whether ``peer`` is banned now."""
        until = self._bans.get(peer)
        return until is not None and self._clock.now() < until

    def expired(self) -> list[PeerId]:
        """Peers whose ban has ended since the last call (they are forgotten here)."""
        now = self._clock.now()
        ended = [peer for peer, until in self._bans.items() if now >= until]
        for peer in ended:
            del self._bans[peer]
        return ended
