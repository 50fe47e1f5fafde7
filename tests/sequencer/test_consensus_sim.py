"""Four validators over the in-process network and a manual clock (issue 5's scenarios).

Safety (no two different finalized values at one height) is checked after every
simulated event by Simulation.run, and again at the end of every test.
"""

from __future__ import annotations

import pytest

from primitives.crypto import keccak256
from sequencer import wire
from tests.sequencer.sim import CHAIN_ID, Simulation, random_latency

HONEST = ["v1", "v2", "v3"]


def round_of(value: bytes) -> int:
    """The round a simulation value was built for ("height=H round=R by=NAME")."""
    return int(value.split(b" round=")[1].split(b" ")[0])


def heads(sim: Simulation) -> dict[str, int]:
    return {name: node.head for name, node in sim.nodes.items()}


def test_normal_operation_decides_many_heights_with_valid_certificates() -> None:
    sim = Simulation()
    sim.start()
    sim.run_until_height(50)
    sim.check_safety()
    for node in sim.nodes.values():
        for height, (value, certificate) in node.decided.items():
            assert value.startswith(f"height={height} round=0 ".encode())  # no round was lost
            assert certificate.value_id == keccak256(value)
            decoded = wire.decode_certificate(CHAIN_ID, wire.encode_certificate(certificate))
            assert len(decoded.votes) >= 3
    assert all(not node.evidence for node in sim.nodes.values())
    assert sim.network.rejected == []


def test_weighted_validators_need_more_than_two_thirds_of_the_weight() -> None:
    # v0 holds 4 of 7: without it the other three (3/7) can never decide.
    sim = Simulation(weights=[4, 1, 1, 1])
    sim.start()
    sim.run_until_height(10)
    sim.crash("v0")
    stalled = max(heads(sim).values())
    sim.run(120)
    assert max(node.head for node in sim.nodes.values()) == stalled
    sim.restart("v0")
    sim.run_until_height(stalled + 5)


def test_crashed_proposer_is_replaced_by_the_next_round() -> None:
    sim = Simulation()
    sim.start()
    sim.run_until_height(3)
    sim.crash("v0")
    sim.run_until_height(30, names=HONEST)
    rounds = [round_of(value) for h, (value, _) in sim.nodes["v1"].decided.items() if h > 4]
    assert max(rounds) >= 1  # heights where v0 was due were decided in a later round
    assert all(b"by=v0" not in value for h, (value, _) in sim.nodes["v1"].decided.items() if h > 4)


def test_one_of_four_down_keeps_deciding_two_down_stops_and_resumes() -> None:
    sim = Simulation()
    sim.start()
    sim.run_until_height(5)
    sim.crash("v3")
    sim.run_until_height(15, names=["v0", "v1", "v2"])
    sim.crash("v2")
    sim.run(5)  # what was in flight lands
    stalled = {name: sim.nodes[name].head for name in ("v0", "v1")}
    sim.run(300)
    assert {name: sim.nodes[name].head for name in ("v0", "v1")} == stalled
    sim.restart("v2")
    sim.run_until_height(max(stalled.values()) + 10, names=["v0", "v1", "v2"])
    sim.restart("v3", fresh=True)  # far behind: catches up by syncing certified values
    sim.run_until_height(max(stalled.values()) + 15)
    assert sim.nodes["v3"].synced > 0


def test_fresh_restart_replays_its_log_and_never_double_signs() -> None:
    sim = Simulation(latency=random_latency(7, 0.0, 0.4))
    sim.start()
    for _ in range(6):
        sim.run(1.3)
        sim.crash("v2")
        sim.run(0.7)
        sim.restart("v2", fresh=True)
    sim.run_until_height(20)
    assert all(not node.evidence for node in sim.nodes.values())


def test_byzantine_proposer_with_invalid_values_gets_nil_votes() -> None:
    sim = Simulation(byzantine=("v1",))
    sim.start()
    sim.run_until_height(30)
    honest = ["v0", "v2", "v3"]
    for name in honest:
        assert all(b"INVALID" not in value for value, _ in sim.nodes[name].decided.values())
    # v1 was proposer of round 0 at some heights: those were decided in round 1 or later.
    late = [v for v, _ in sim.nodes["v0"].decided.values() if round_of(v) > 0]
    assert len(late) >= 3


def test_equivocating_proposer_is_recorded_and_safety_holds() -> None:
    sim = Simulation(equivocating=("v2",))
    sim.start()
    sim.run_until_height(30)
    evidence = [e for node in sim.nodes.values() for e in node.evidence]
    assert evidence and all(e.offender == sim.nodes["v2"].address for e in evidence)
    for item in evidence:
        assert wire.decode_evidence(CHAIN_ID, wire.encode_evidence(item)) == item


@pytest.mark.parametrize("seed", range(4))
def test_random_delay_and_reordering(seed: int) -> None:
    sim = Simulation(latency=random_latency(seed, 0.0, 0.8))
    sim.start()
    sim.run_until_height(25)


@pytest.mark.parametrize("seed", range(2))
def test_message_loss_is_repaired_by_rebroadcast(seed: int) -> None:
    sim = Simulation(latency=random_latency(seed, 0.0, 0.3, loss=0.25))
    sim.start()
    sim.run_until_height(15)


def test_partition_two_two_stops_then_heals() -> None:
    sim = Simulation()
    sim.start()
    sim.run_until_height(5)
    sim.network.partition(["v0", "v1"], ["v2", "v3"])
    sim.run(1)
    stalled = heads(sim)
    sim.run(200)
    assert heads(sim) == stalled  # safety over liveness
    sim.network.heal()
    sim.run_until_height(max(stalled.values()) + 10)
