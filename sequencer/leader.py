"""Leader schedule: who proposes at a height and round, the same answer on every node.

For each height the validators (sorted by address) are put in a weighted random order
drawn from ``keccak(seed, height, i)``: draw ``i`` picks among the validators not drawn
yet, each with probability proportional to its weight. The proposer of round ``r`` is
the ``r mod n``-th of that order. So round 0's proposer is a weighted choice (a validator
proposes first in a share of heights that tracks its weight), and a round change always
moves to a validator that has not proposed at this height yet, until all have had a turn:
a crashed or silent proposer costs one round, not a lottery of rounds.
"""

from __future__ import annotations

import rlp

from primitives.crypto import keccak256
from primitives.types import Address
from sequencer.types import Validator, ValidatorSet


def proposer_order(validators: ValidatorSet, seed: bytes, height: int) -> tuple[Address, ...]:
    """The weighted order of proposers for ``height``; round ``r`` uses entry ``r mod n``."""
    remaining: list[Validator] = list(validators.validators)
    order: list[Address] = []
    for draw in range(len(remaining)):
        total = sum(v.weight for v in remaining)
        # 256 random bits modulo a weight total far below 2**64: the bias is negligible.
        ticket = int.from_bytes(keccak256(rlp.encode([seed, height, draw])), "big") % total
        for index, validator in enumerate(remaining):
            if ticket < validator.weight:
                order.append(remaining.pop(index).address)
                break
            ticket -= validator.weight
    return tuple(order)


def proposer(validators: ValidatorSet, seed: bytes, height: int, round: int) -> Address:
    """The proposer of (height, round)."""
    order = proposer_order(validators, seed, height)
    return order[round % len(order)]
