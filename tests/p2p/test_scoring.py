"""Peer scoring rules on a fake clock: REJECTs add up and decay; past the threshold a peer is
banned for a while, then starts over."""

from __future__ import annotations

import pytest

from p2p.scoring import PeerScores, ScoreRules
from p2p.types import PeerId
from primitives.clock import ManualClock

BAD, GOOD = PeerId("bad"), PeerId("good")
RULES = ScoreRules(penalty=1.0, half_life=60.0, ban_threshold=5.0, ban_seconds=600.0)


def test_five_quick_rejects_ban_a_peer_for_ban_seconds_then_it_starts_over() -> None:
    clock = ManualClock()
    scores = PeerScores(clock, RULES)
    assert [scores.rejected(BAD) for _ in range(5)] == [False, False, False, False, True]
    assert scores.banned(BAD) and not scores.banned(GOOD)
    assert not scores.rejected(BAD)  # already banned: no second ban
    clock.advance(599)
    assert scores.banned(BAD) and scores.expired() == []
    clock.advance(1)
    assert not scores.banned(BAD)
    assert scores.expired() == [BAD] and scores.expired() == []
    assert scores.score(BAD) == 0.0
    assert not scores.rejected(BAD)  # a fresh start: one REJECT is far from a ban


def test_scores_decay_so_occasional_rejects_never_ban() -> None:
    clock = ManualClock()
    scores = PeerScores(clock, RULES)
    scores.rejected(GOOD)
    clock.advance(60)
    assert scores.score(GOOD) == pytest.approx(0.5)
    for _ in range(100):  # one REJECT a minute: the score settles below 2
        assert not scores.rejected(GOOD)
        clock.advance(60)
    assert scores.score(GOOD) < 2 and not scores.banned(GOOD)


def test_peers_are_scored_apart() -> None:
    clock = ManualClock()
    scores = PeerScores(clock, RULES)
    for _ in range(4):
        scores.rejected(BAD)
        scores.rejected(GOOD)
    assert not scores.banned(BAD) and not scores.banned(GOOD)
    assert scores.rejected(BAD) and not scores.banned(GOOD)


def test_the_table_is_bounded_by_forgetting_the_lowest_scores() -> None:
    clock = ManualClock()
    scores = PeerScores(clock, ScoreRules(max_tracked=3))
    for name in ("old", "b", "c"):
        scores.rejected(PeerId(name))
        clock.advance(30)
    scores.rejected(PeerId("c"))
    scores.rejected(PeerId("new"))
    assert scores.score(PeerId("old")) == 0.0  # the most decayed one went
    assert scores.score(PeerId("c")) > 1.0 and scores.score(PeerId("new")) == 1.0
