"""A cheating validator gains no more than its honest share of the GPU weight (simulation).

Four validators with the same hardware decide EPOCHS epochs in tests/sequencer/election_sim.py;
v0 cheats in one way or in all at once. Whatever it does: every honest validator's proof is
carried in every epoch (censoring fails), no epoch gives the cheater more weight than the
honest validators get, and over the run its weight is at most the honest average. Seed
grinding by proposers has nothing to grind: the seed mixes only committed reveals.
"""

from __future__ import annotations

from functools import cache

import pytest

from primitives.types import Address
from sequencer import leader
from sequencer.election import MAX_PROOFS, ChallengeWindow, carry, missing
from tests.sequencer.election_sim import CHEATER, EPOCH_LENGTH, ElectionSim

EPOCHS = 6


def run(behaviours: tuple[str, ...], seed: int = 0) -> ElectionSim:
    sim = ElectionSim(behaviours, seed)
    sim.start()
    sim.run_until_height(EPOCHS * EPOCH_LENGTH + 1, seconds=3_600)
    return sim


def shares(sim: ElectionSim) -> list[dict[str, float]]:
    """Each epoch's weight share per validator name (1 .. EPOCHS), from an honest node's chain."""
    honest = sim.nodes["v1"]
    names = {node.address: node.name for node in sim.nodes.values()}
    out = []
    for epoch in range(1, EPOCHS + 1):
        weights = sim.weights(honest, epoch)
        total = sum(weights.values())
        out.append({names[a]: w / total for a, w in weights.items()})
    return out


def test_the_window_is_fixed_by_the_chain() -> None:
    window = ChallengeWindow.of(30)
    assert (window.seed_height(2), window.first_height(2), window.stop_height(2),
            window.cutoff_height(2), window.last_height(2)) == (50, 61, 78, 79, 80)
    assert [window.proving_epoch(h) for h in (50, 51, 60, 61, 80, 81)] == [1, 2, 2, 2, 2, 3]
    assert window.may_carry(80) and not window.may_carry(81) and not window.may_carry(90)
    assert window.must_carry(79) and not window.must_carry(78) and not window.must_carry(81)


@cache
def honest_run() -> list[dict[str, float]]:
    """The shares when v0 is honest too: what it earns without cheating."""
    return shares(run(()))


def test_honest_validators_share_the_weight_equally() -> None:
    sim = run(())
    assert shares(sim) == honest_run()  # deterministic
    for epoch in shares(sim):
        assert set(epoch) == {"v0", "v1", "v2", "v3"}
        assert max(epoch.values()) < 1.2 * min(epoch.values())
    assert all(value[1].round == 0 for value in sim.nodes["v1"].decided.values())


@pytest.mark.parametrize("behaviours", [("long",), ("grind",), ("censor",), ("seed",),
                                        ("long", "censor", "seed")])
def test_a_cheater_gains_no_more_than_its_honest_share(behaviours: tuple[str, ...]) -> None:
    sim = run(behaviours)
    per_epoch = shares(sim)
    for epoch in per_epoch:
        # Censoring failed: every honest validator's proof was carried, every epoch.
        assert {"v1", "v2", "v3"} <= set(epoch), epoch
        honest = [epoch[name] for name in ("v1", "v2", "v3")]
        # Within the few percent by which message timing moves any measured window.
        assert epoch.get(CHEATER, 0.0) <= 1.05 * max(honest), epoch
        # The cap: below 1/3 each with four validators, exactly 1/n with fewer.
        assert all(share < 1 / 3 if len(epoch) >= 4 else share == 1 / len(epoch)
                   for share in epoch.values())
    # Over the run: no more than the same validator gets when honest (the same network, the
    # same messages' timing), beyond 1%, nor more than the honest validators' average by 3%.
    cheater = sum(epoch.get(CHEATER, 0.0) for epoch in per_epoch)
    honest = [sum(epoch[n] for epoch in per_epoch) for n in ("v1", "v2", "v3")]
    baseline = sum(epoch[CHEATER] for epoch in honest_run())
    assert cheater <= 1.01 * baseline and cheater <= 1.03 * sum(honest) / 3, (cheater, baseline, honest)
    if "grind" in behaviours:  # its overclaim never verified: no weight at all
        assert cheater == 0.0
    if behaviours == ("censor",):
        # The inclusion rule fired: a block the cheater proposed from the cutoff on without
        # the others' proofs got no quorum, and the height was decided in a later round.
        node = sim.nodes["v1"]
        assert any(
            node.decided[h][1].round >= 1
            and leader.proposer(sim.validators_at(node, h), sim.seed_at(node, h), h, 0)
            == sim.nodes[CHEATER].address
            for h in node.decided if sim.window.must_carry(h))


def test_carry_and_missing_rules() -> None:
    window = ChallengeWindow.of(EPOCH_LENGTH)  # heights 1 .. 8 carry; cutoff 7
    a, b, c = (Address(bytes([i]) * 20) for i in (1, 2, 3))
    held = {a: b"pa", b: b"pb", c: b"pc"}
    assert carry(held, {b}, None) == [b"pa", b"pc"]  # before the cutoff: all it holds
    assert carry(held, {b}, {a}) == [b"pa"]  # after it: only what it held at the cutoff
    assert carry({Address(bytes([i]) * 20): b"p" for i in range(20)}, (), None) == [b"p"] * MAX_PROOFS
    assert missing(7, window, {a, b}, {b}, set()) == {a}
    assert missing(8, window, {a, b}, {b}, {a}) == set()
    assert missing(6, window, {a, b}, set(), set()) == set()  # before the cutoff: no rule
    assert missing(9, window, {a, b}, set(), set()) == set()  # past the window: no proofs at all
    full = {Address(bytes([i + 10]) * 20) for i in range(MAX_PROOFS)}
    assert missing(8, window, {a}, set(), full) == set()  # a full block is never faulted
    # Once every one of 4 validators proposed at the height, a proof held by too few to be
    # carried no longer stops the chain.
    assert missing(8, window, {a}, set(), set(), round=3, validators=4) == {a}
    assert missing(8, window, {a}, set(), set(), round=4, validators=4) == set()
