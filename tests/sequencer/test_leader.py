"""Leader schedule: deterministic, weighted, and a new proposer every round."""

from __future__ import annotations

import itertools
from collections import Counter

from primitives.types import Address
from sequencer.leader import proposer, proposer_order
from sequencer.types import Validator, ValidatorSet

ADDRESSES = [Address(bytes([i]) * 20) for i in range(1, 6)]


def validator_set(weights: list[int]) -> ValidatorSet:
    return ValidatorSet.of(dict(zip(ADDRESSES, weights, strict=False)))


def test_same_inputs_same_proposer_and_seed_matters() -> None:
    validators = validator_set([1, 1, 1, 1])
    same = [proposer(validators, b"seed", 10, 0) for _ in range(3)]
    assert len(set(same)) == 1
    by_seed = {proposer(validators, bytes([s]), 10, 0) for s in range(40)}
    assert len(by_seed) == 4  # the seed moves the choice


def test_every_round_moves_to_a_validator_that_has_not_proposed_yet() -> None:
    validators = validator_set([5, 1, 1, 1, 1])
    for height in range(50):
        order = proposer_order(validators, b"seed", height)
        assert sorted(order) == sorted(ADDRESSES)
        rounds = [proposer(validators, b"seed", height, r) for r in range(10)]
        assert rounds[:5] == list(order) and rounds[5:] == list(order)
        assert all(a != b for a, b in itertools.pairwise(rounds))


def test_round_zero_frequency_tracks_weight() -> None:
    weights = [8, 4, 2, 1, 1]
    validators = validator_set(weights)
    heights = 8000
    counts = Counter(proposer(validators, b"freq", h, 0) for h in range(heights))
    for address, weight in zip(ADDRESSES, weights, strict=True):
        expected = heights * weight / sum(weights)
        # 5 standard deviations of a binomial: fails for a wrong weighting, not by chance.
        sigma = (expected * (1 - weight / sum(weights))) ** 0.5
        assert abs(counts[address] - expected) < 5 * sigma, (address.hex(), counts[address], expected)


def test_zero_weight_is_not_in_the_set_and_cannot_propose() -> None:
    validators = validator_set([3, 0, 2])
    assert ADDRESSES[1] not in validators
    assert ADDRESSES[1] not in {proposer(validators, b"s", h, r) for h in range(30) for r in range(3)}


def test_quorum_arithmetic_is_strictly_more_than_two_thirds() -> None:
    validators = ValidatorSet(tuple(Validator(a, 1) for a in ADDRESSES[:3]))
    assert validators.total_weight == 3
    assert not validators.is_quorum(2) and validators.is_quorum(3)
    four = validator_set([1, 1, 1, 1])
    assert not four.is_quorum(2) and four.is_quorum(3)
    assert not four.exceeds_one_third(1) and four.exceeds_one_third(2)
    assert four.weight_of_all([ADDRESSES[0], ADDRESSES[0], Address(b"\x09" * 20)]) == 1
