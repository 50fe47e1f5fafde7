"""A deterministic simulation of the GPU-weighted election, with one cheating validator.

Four validators with the same hardware (SPEED products per simulated second) run the real
consensus state machine (tests/sequencer/sim.py) over epochs of EPOCH_LENGTH heights. The
rules under test are the real ones: sequencer.election (the chain-defined window, what a
proposer carries, the nil prevote for a block that leaves out a proof held at the cutoff),
sequencer.weights (Fiat-Shamir samples, cap_shares) and sequencer.leader.

What is modelled: a proof is (epoch, validator, claimed products, products really done,
Merkle root). Verifying it draws the real samples for its key and root and passes only if
every sample is a product that was done: exactly what recomputing the samples does to a
made-up fingerprint (tests/sequencer/test_weights.py checks that with real products). A
block's value carries proofs; the next epoch's weights are cap_shares of what the window's
blocks carried; an epoch's seed is sequencer.election.next_seed of the reveals the window
before carried (commit-reveal through the proofs, as node/epochs.py does).

The cheater (v0) can:
- "long": compute until the window's deadline instead of the honest stop, and carry its
  proof itself when it proposes a block before the deadline;
- "grind": claim 1.25x the products it did, re-rolling its root (new samples) up to
  GRIND_TRIES times for a root whose samples miss every made-up product;
- "censor": carry only its own proof in the blocks it proposes;
- "seed": grind the blocks it proposes (SEED_TRIES salts) for the value whose hash would
  give it the most proposals of the next epoch if the seed were a block hash (the old rule).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import rlp

from p2p.types import PeerId, Validation
from primitives.crypto import keccak256
from primitives.types import Address, Hash32
from sequencer import leader
from sequencer.election import (
    MAX_PROOFS,
    ChallengeWindow,
    carry,
    counted_reveals,
    missing,
    next_seed,
    reveal,
)
from sequencer.types import ValidatorSet
from sequencer.weights import cap_shares, challenge_key, samples
from tests.sequencer.sim import CHAIN_ID, SEED, SimApp, SimNode, Simulation

PROOFS = "sim/proofs"
EPOCH_LENGTH = 12
SPEED = 100_000
"""Products per simulated second, the same machine for every validator."""
GRIND_TRIES = 100
SEED_TRIES = 16
"""Roots a grinding cheater tries per epoch (a bounded stand-in; test_weights.py grinds 3,000)."""
CHEATER = "v0"
BEHAVIOURS = ("long", "grind", "censor", "seed")


@dataclass(frozen=True)
class SimProof:
    """A weight proof as the simulation sees it."""

    epoch: int
    """The epoch it answers."""
    validator: Address
    """Who proved."""
    products: int
    """Products claimed (the weight it asks for)."""
    done: int
    """Products really computed: 0 .. done - 1 are right, the rest made up."""
    root: Hash32
    """The commitment the samples are drawn from."""
    reveal: bytes
    """The prover's seed reveal for ``epoch`` (sequencer.election.reveal)."""
    commit: bytes
    """keccak of its reveal for the next epoch."""

    def encode(self) -> bytes:
        return bytes(rlp.encode([self.epoch, self.validator, self.products, self.done, self.root,
                                 self.reveal, self.commit]))

    @staticmethod
    def decode(data: bytes) -> SimProof:
        epoch, validator, products, done, root, reveal, commit = rlp.decode(data)
        return SimProof(int.from_bytes(epoch, "big"), Address(validator),
                        int.from_bytes(products, "big"), int.from_bytes(done, "big"), Hash32(root),
                        reveal, commit)


@cache
def passes(data: bytes, seed: Hash32) -> bool:
    """Whether a verifier accepts the proof for ``seed``: every sample was really computed."""
    proof = SimProof.decode(data)
    key = challenge_key(CHAIN_ID, proof.epoch, seed, proof.validator)
    return 0 < proof.products and all(i < proof.done for i in samples(key, proof.root, proof.products))


class ElectionApp(SimApp):
    """Values are rlp [height, round, proposer, [proofs]]; validation applies the proof
    rules, and honest validators endorse only values that keep the inclusion rule."""

    def __init__(self, sim: ElectionSim, name: str) -> None:
        super().__init__(name)
        self.sim = sim

    def build(self, height: int, round: int) -> tuple[bytes, Hash32]:
        sim, node = self.sim, self.sim.nodes[self.name]
        window = sim.window
        epoch = window.epoch_of(height)
        held = sim.held[self.name].get(epoch, {})
        included = sim.included(node, epoch, height)
        proofs: list[bytes] = []
        if window.may_carry(height):
            due = sim.due[self.name].get(epoch, frozenset()) if window.must_carry(height) else None
            proofs = carry(held, included, due)
            if self.name == CHEATER:
                # Its own proof whenever it has one (made after the cutoff too), and the
                # others' only when it does not censor.
                own = [held[node.address]] if node.address in held and node.address not in included else []
                others = [] if "censor" in sim.behaviours else [p for p in proofs if p not in own]
                proofs = [*own, *others][:MAX_PROOFS]
        value = bytes(rlp.encode([height, round, self.name, proofs, 0]))
        if self.name == CHEATER and "seed" in sim.behaviours:
            value = max((bytes(rlp.encode([height, round, self.name, proofs, salt]))
                         for salt in range(SEED_TRIES)), key=lambda v: sim.proposals_for(v, node))
        return value, keccak256(value)

    def validate(self, height: int, value: bytes, value_id: Hash32) -> bool:
        self.validated += 1
        if keccak256(value) != value_id:
            return False
        sim, node = self.sim, self.sim.nodes[self.name]
        number, _round, _by, proofs, _salt = rlp.decode(value)
        if int.from_bytes(number, "big") != height:
            return False
        epoch = sim.window.epoch_of(height)
        seen = sim.included(node, epoch, height)
        carried: set[Address] = set()
        for data in proofs:
            proof = SimProof.decode(data)
            # Rule: proofs of this epoch, inside its window, valid, one per validator.
            if (proof.epoch != epoch or not sim.window.may_carry(height)
                    or not passes(data, sim.seed_of(node, epoch))
                    or proof.validator in seen | carried):
                return False
            carried.add(proof.validator)
        return True

    def endorses(self, height: int, value: bytes, value_id: Hash32) -> bool:
        if self.name == CHEATER:
            return True  # the cheater votes for anything valid
        sim, node = self.sim, self.sim.nodes[self.name]
        epoch = sim.window.epoch_of(height)
        carried = {SimProof.decode(data).validator for data in rlp.decode(value)[3]}
        due = sim.due[self.name].get(epoch, frozenset())
        return not missing(height, sim.window, due, sim.included(node, epoch, height), carried,
                           node.consensus.round, len(sim.validators_at(node, height).validators))


class ElectionSim(Simulation):
    """Four validators; ``behaviours`` (a subset of BEHAVIOURS) make v0 cheat."""

    def __init__(self, behaviours: tuple[str, ...] = (), seed: int = 0) -> None:
        self.behaviours = behaviours
        self.window = ChallengeWindow.of(EPOCH_LENGTH)
        self.held: dict[str, dict[int, dict[Address, bytes]]] = {}
        self.due: dict[str, dict[int, frozenset[Address]]] = {}
        self.started: dict[str, tuple[int, float]] = {}
        self._weights: dict[tuple[str, int], dict[Address, int]] = {}
        self._seeds: dict[tuple[str, int], Hash32] = {}
        jitter = random.Random(seed)
        super().__init__(n=4, latency=lambda _s, _r, _t: jitter.uniform(0.005, 0.02))
        for node in self.nodes.values():
            self.held[node.name] = {}
            self.due[node.name] = {}
            node.gossip.subscribe(PROOFS, lambda _p, _d: Validation.ACCEPT, self._on_proof(node))

    def make_app(self, name: str, byzantine: bool) -> SimApp:
        return ElectionApp(self, name)

    # -- the chain, as each node sees it ---------------------------------------------------

    def included(self, node: SimNode, epoch: int, below: int) -> set[Address]:
        """Validators whose proof ``node``'s blocks of ``epoch`` under ``below`` carry."""
        found: set[Address] = set()
        for height in range(self.window.first_height(epoch), below):
            found |= {SimProof.decode(p).validator for p in rlp.decode(node.decided[height][0])[3]}
        return found

    def earned(self, node: SimNode, epoch: int) -> dict[Address, int]:
        """Products carried by ``epoch``'s window in ``node``'s chain, per validator."""
        return {v: p.products for v, p in self.carried(node, epoch).items()}

    def weights(self, node: SimNode, epoch: int) -> dict[Address, int]:
        if epoch == 0:
            return {v.address: 1 for v in self.validators.validators}
        if (node.name, epoch) not in self._weights:
            self._weights[(node.name, epoch)] = (
                cap_shares(self.earned(node, epoch - 1)) or self.weights(node, epoch - 1))
        return self._weights[(node.name, epoch)]

    def validators_at(self, node: SimNode, height: int) -> ValidatorSet:
        return ValidatorSet.of(self.weights(node, self.window.epoch_of(height)))

    def seed_of(self, node: SimNode, epoch: int) -> Hash32:
        """``epoch``'s seed in ``node``'s chain: next_seed of the reveals of the window before
        that open their validators' commitments of the window before that."""
        if epoch == 0:
            return keccak256(SEED)
        if (node.name, epoch) not in self._seeds:
            carried = [self.carried(node, e) for e in (epoch - 1, epoch - 2)]
            reveals = {v: p.reveal for v, p in carried[0].items()}
            commits = {v: p.commit for v, p in carried[1].items()}
            self._seeds[(node.name, epoch)] = next_seed(
                epoch - 1, self.seed_of(node, epoch - 1), counted_reveals(reveals, commits))
        return self._seeds[(node.name, epoch)]

    def carried(self, node: SimNode, epoch: int) -> dict[Address, SimProof]:
        """The proofs ``epoch``'s window carried in ``node``'s chain (none before epoch 0)."""
        found: dict[Address, SimProof] = {}
        if epoch < 0:
            return found
        for height in range(self.window.first_height(epoch), self.window.last_height(epoch) + 1):
            for data in rlp.decode(node.decided[height][0])[3]:
                proof = SimProof.decode(data)
                found[proof.validator] = proof
        return found

    def seed_at(self, node: SimNode, height: int) -> bytes:
        return self.seed_of(node, self.window.epoch_of(height))

    def proposals_for(self, value: bytes, node: SimNode) -> int:
        """Round-0 proposals ``node`` would get in the next epoch if its seed were the hash
        of ``value`` (what a seed-grinding proposer maximizes)."""
        height = node.head + 1
        validators = self.validators_at(node, height)
        first = self.window.first_height(self.window.epoch_of(height) + 1)
        return sum(leader.proposer(validators, keccak256(value), h, 0) == node.address
                   for h in range(first, first + EPOCH_LENGTH))

    # -- proving ----------------------------------------------------------------------------

    def on_height(self, node: SimNode, height: int) -> None:
        window, name = self.window, node.name
        epoch = window.epoch_of(height)
        if height == window.cutoff_height(epoch):
            self.due[name][epoch] = frozenset(self.held[name].get(epoch, {}))
        proving = window.proving_epoch(height)
        if height == window.seed_height(proving) + 1:  # the seed is final: everyone starts
            self.started[name] = (proving, self.clock.now())
        long = name == CHEATER and "long" in self.behaviours
        stop = window.last_height(epoch) if long else window.stop_height(epoch)
        if height == stop and self.started.get(name, (-1, 0.0))[0] == epoch:
            done = int(SPEED * (self.clock.now() - self.started[name][1]))
            data = self._prove(node, epoch, done, self.seed_of(node, epoch))
            self.held[name].setdefault(epoch, {})[node.address] = data
            node.gossip.publish(PROOFS, data)

    def _prove(self, node: SimNode, epoch: int, done: int, seed: Hash32) -> bytes:
        """An honest proof of ``done`` products, or the cheater's grinding best."""
        root = Hash32(keccak256(rlp.encode([node.name, epoch, done])))
        secrets = (reveal(node.key, CHAIN_ID, epoch), keccak256(reveal(node.key, CHAIN_ID, epoch + 1)))
        if node.name != CHEATER or "grind" not in self.behaviours:
            return SimProof(epoch, node.address, done, done, root, *secrets).encode()
        claimed = done * 5 // 4
        for attempt in range(GRIND_TRIES):
            root = Hash32(keccak256(rlp.encode([node.name, epoch, done, attempt])))
            data = SimProof(epoch, node.address, claimed, done, root, *secrets).encode()
            if passes(data, seed):
                break
        return data

    def _on_proof(self, node: SimNode) -> Callable[[PeerId, bytes], None]:
        def handle(_peer: PeerId, data: bytes) -> None:
            proof = SimProof.decode(data)
            height = node.head + 1
            if (node.alive and proof.epoch == self.window.epoch_of(height)
                    and passes(data, self.seed_of(node, proof.epoch))):
                self.held[node.name].setdefault(proof.epoch, {}).setdefault(proof.validator, data)
        return handle
