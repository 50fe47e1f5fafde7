"""Seams of the sequencer's pure logic that the node implements."""

from __future__ import annotations

from typing import Protocol

from primitives.types import Hash32


class ConsensusApp(Protocol):
    """What consensus needs from the chain: make a value, and check one.

    Both are called synchronously from the state machine; they must be deterministic for
    a given chain state (every honest node must judge a value the same way).
    """

    def build(self, height: int, round: int) -> tuple[bytes, Hash32]:
        """A new value to propose at ``height`` (an encoded block) and its id (block hash)."""
        ...

    def validate(self, height: int, value: bytes, value_id: Hash32) -> bool:
        """Whether ``value`` may be decided at ``height``: ``value_id`` is its id, and
        re-executing it reproduces every root it claims. False means a nil vote, and a value
        more than 2/3 precommitted that this says False to stops this node (Disagree)."""
        ...

    def endorses(self, height: int, value: bytes, value_id: Hash32) -> bool:
        """Whether this node prevotes for a new proposal of a valid ``value``: rules that rest
        on what this node saw (the weight proofs it held at the cutoff, sequencer.election).
        Honest nodes may judge these differently, so False only withholds this node's prevote:
        a value that more than 2/3 prevote or precommit is followed and decided as usual."""
        ...
