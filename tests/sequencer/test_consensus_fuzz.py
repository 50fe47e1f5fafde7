"""Seeded random fault schedules over four validators: safety always, liveness after healing.

Each seed draws a schedule of crashes, fresh restarts, partitions, message loss, delays
and an equivocating or invalid-value proposer; Simulation.run checks safety after every
event. Once every fault is healed the validators must decide new heights again.
"""

from __future__ import annotations

import random

import pytest

from tests.sequencer.sim import Simulation, random_latency

NAMES = ["v0", "v1", "v2", "v3"]


def fuzz(seed: int, phases: int) -> Simulation:
    rng = random.Random(seed)
    bad = rng.choice(NAMES)
    kind = rng.choice(["equivocating", "byzantine", "honest"])
    sim = Simulation(
        latency=random_latency(seed, 0.0, rng.uniform(0.05, 1.5), loss=rng.uniform(0.0, 0.3)),
        byzantine=(bad,) if kind == "byzantine" else (),
        equivocating=(bad,) if kind == "equivocating" else (),
    )
    sim.start()
    for _ in range(phases):
        fault = rng.choice(["crash", "restart", "partition", "heal", "none"])
        if fault == "crash":
            sim.crash(rng.choice(NAMES))
        elif fault == "restart":
            down = [n for n in NAMES if not sim.nodes[n].alive]
            if down:
                sim.restart(rng.choice(down), fresh=rng.random() < 0.5)
        elif fault == "partition":
            shuffled = rng.sample(NAMES, len(NAMES))
            cut = rng.randint(1, 3)
            sim.network.partition(shuffled[:cut], shuffled[cut:])
        elif fault == "heal":
            sim.network.heal()
        sim.run(rng.uniform(0.5, 15.0))
    sim.network.heal()
    for name in NAMES:
        if not sim.nodes[name].alive:
            sim.restart(name, fresh=rng.random() < 0.5)
    sim.run_until_height(max(n.head for n in sim.nodes.values()) + 3, seconds=3600)
    return sim


@pytest.mark.parametrize("seed", range(8))
def test_random_fault_schedules(seed: int) -> None:
    sim = fuzz(seed, phases=8)
    evidence = {e.offender for node in sim.nodes.values() for e in node.evidence}
    assert evidence <= {n.address for n in sim.nodes.values() if n.name in sim.equivocating}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8, 200))
def test_many_random_fault_schedules(seed: int) -> None:
    fuzz(seed, phases=20)
