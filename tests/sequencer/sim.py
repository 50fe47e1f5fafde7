"""A deterministic multi-validator simulation of sequencer.consensus.

Validators run the real state machine, wire encoding and gate over p2p.memory's
InProcessNetwork, driven by a ManualClock: the simulation jumps the clock to the next
message delivery or timeout, so a minute of consensus runs in milliseconds and a seed
replays exactly. Faults: crash/restart, partitions, latency (delay, reordering, loss),
byzantine proposers (invalid values, equivocation). A node that falls behind syncs
finalized values with their certificates over request/response, as the node does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import rlp

from p2p.memory import InProcessGossip, InProcessNetwork
from p2p.topics import CONSENSUS as TOPIC
from p2p.topics import SYNC
from p2p.types import PeerId, Validation
from primitives.clock import ManualClock
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput, RetryLater
from primitives.types import Address, Hash32
from sequencer import wire
from sequencer.consensus import Consensus, verify_certificate
from sequencer.gates import check_consensus_message
from sequencer.types import (
    Action,
    Behind,
    Broadcast,
    CommitCertificate,
    ConsensusConfig,
    ConsensusMessage,
    Decide,
    Disagree,
    Evidence,
    Proposal,
    ValidatorSet,
)

CHAIN_ID = 7331
SEED = b"simulation seed"
INVALID = b"INVALID "


class SimApp:
    """Values name their height, round and proposer; ids are their keccak; a byzantine app
    builds values every honest validator rejects (like a block with a wrong state root)."""

    def __init__(self, name: str, byzantine: bool = False) -> None:
        self.name = name
        self.byzantine = byzantine
        self.validated = 0

    def build(self, height: int, round: int) -> tuple[bytes, Hash32]:
        value = f"height={height} round={round} by={self.name}".encode()
        if self.byzantine:
            value = INVALID + value
        return value, keccak256(value)

    def validate(self, height: int, value: bytes, value_id: Hash32) -> bool:
        self.validated += 1
        return (
            keccak256(value) == value_id
            and not value.startswith(INVALID)
            and value.startswith(f"height={height} ".encode())
        )

    def endorses(self, height: int, value: bytes, value_id: Hash32) -> bool:
        return True


@dataclass
class SimNode:
    name: str
    key: bytes
    app: SimApp
    consensus: Consensus
    gossip: InProcessGossip
    alive: bool = True
    decided: dict[int, tuple[bytes, CommitCertificate]] = field(default_factory=dict)
    """Height -> (value, certificate): this node's finalized chain."""
    decided_at: dict[int, float] = field(default_factory=dict)
    log: list[ConsensusMessage] = field(default_factory=list)
    """Every message this node signed or accepted: its write-ahead log, replayed on a fresh
    restart (a real node logs its own messages before sending them)."""
    evidence: list[Evidence] = field(default_factory=list)
    synced: int = 0

    @property
    def address(self) -> Address:
        return private_key_to_address(self.key)

    @property
    def head(self) -> int:
        return max(self.decided, default=0)


class Simulation:
    """``n`` validators with keys 1..n, names v0..v{n-1}, deciding heights from 1."""

    def __init__(
        self,
        n: int = 4,
        weights: list[int] | None = None,
        latency: Callable[[PeerId, PeerId, str], float | None] | None = None,
        config: ConsensusConfig | None = None,
        byzantine: tuple[str, ...] = (),
        equivocating: tuple[str, ...] = (),
    ) -> None:
        """``byzantine`` validators propose invalid values; ``equivocating`` ones sign two
        different proposals for each of their rounds."""
        self.equivocating = equivocating
        self.clock = ManualClock()
        self.base_latency = latency or (lambda _s, _r, _t: 0.01)
        self.override: dict[PeerId, float] | None = None
        self.network = InProcessNetwork(self.clock, self._latency)
        self.config = config or ConsensusConfig()
        keys = [(i + 1).to_bytes(32, "big") for i in range(n)]
        weights = weights or [1] * n
        self.validators = ValidatorSet.of(
            {private_key_to_address(k): w for k, w in zip(keys, weights, strict=True)}
        )
        self.nodes: dict[str, SimNode] = {}
        for i, key in enumerate(keys):
            name = f"v{i}"
            app = self.make_app(name, byzantine=name in byzantine)
            node = SimNode(name, key, app, self._machine(key, app), self.network.join(name))
            self.nodes[name] = node
            node.gossip.subscribe(TOPIC, self._gate(node), self._handler(node))
            node.gossip.serve(SYNC, self._sync_server(node))

    def make_app(self, name: str, byzantine: bool) -> SimApp:
        """The consensus app of validator ``name`` (subclasses bring their own values)."""
        return SimApp(name, byzantine)

    def _machine(self, key: bytes, app: SimApp) -> Consensus:
        return Consensus(
            chain_id=CHAIN_ID, app=app, clock=self.clock, private_key=key, config=self.config
        )

    def validators_at(self, node: SimNode, height: int) -> ValidatorSet:
        """The set deciding ``height`` in ``node``'s view (fixed here; epochs in subclasses)."""
        return self.validators

    def seed_at(self, node: SimNode, height: int) -> bytes:
        """The leader seed of ``height`` in ``node``'s view (fixed here)."""
        return SEED

    def on_height(self, node: SimNode, height: int) -> None:
        """Called as ``node`` starts deciding ``height`` (subclasses act on epochs here)."""

    def _latency(self, sender: PeerId, receiver: PeerId, topic: str) -> float | None:
        if self.override is not None and receiver in self.override:
            return self.override[receiver]
        return self.base_latency(sender, receiver, topic)

    # -- wiring, as node/ does it -------------------------------------------------------------

    def _gate(self, node: SimNode) -> Callable[[PeerId, bytes], Validation]:
        def gate(_peer: PeerId, data: bytes) -> Validation:
            height = max(node.consensus.height, 1)
            return check_consensus_message(
                data, chain_id=CHAIN_ID, height=height,
                validators=self.validators_at(node, height), seed=self.seed_at(node, height),
            )
        return gate

    def _handler(self, node: SimNode) -> Callable[[PeerId, bytes], None]:
        def handle(_peer: PeerId, data: bytes) -> None:
            if node.alive:
                message = wire.decode_message(CHAIN_ID, data)
                node.log.append(message)
                self.apply(node, node.consensus.on_message(message))
        return handle

    def _sync_server(self, node: SimNode) -> Callable[[PeerId, bytes], bytes]:
        def serve(_peer: PeerId, data: bytes) -> bytes:
            height = int.from_bytes(data, "big")
            if height not in node.decided:
                raise InvalidInput(f"height {height} is not finalized here")
            value, certificate = node.decided[height]
            return bytes(rlp.encode([value, wire.encode_certificate(certificate)]))
        return serve

    def apply(self, node: SimNode, actions: list[Action]) -> None:
        for action in actions:
            assert not isinstance(action, Disagree), f"{node.name}: {action}"  # all are honest
            if isinstance(action, Broadcast):
                node.log.append(action.message)
                if isinstance(action.message, Proposal) and node.name in self.equivocating:
                    equivocate(self, node.name, action.message)
                else:
                    self.publish(node, action.message)
            elif isinstance(action, Decide):
                self._commit(node, action.height, action.value, action.certificate)
            elif isinstance(action, Behind):
                self._sync(node, action.height)
        node.evidence += node.consensus.take_evidence()

    def publish(self, node: SimNode, message: ConsensusMessage) -> None:
        node.gossip.publish(TOPIC, wire.encode_message(message))

    def _commit(self, node: SimNode, height: int, value: bytes, cert: CommitCertificate) -> None:
        assert height not in node.decided, f"{node.name} decided {height} twice"
        node.decided[height] = (value, cert)
        node.decided_at[height] = self.clock.now()
        self.on_height(node, height + 1)
        self.apply(node, node.consensus.start_height(
            height + 1, self.validators_at(node, height + 1), self.seed_at(node, height + 1)))

    def _sync(self, node: SimNode, target: int) -> None:
        """Fetch finalized values up to ``target`` from peers, checking each certificate."""
        while node.head + 1 < target:
            height = node.head + 1
            for peer in node.gossip.peers():
                try:
                    raw = node.gossip.request(peer, SYNC, height.to_bytes(8, "big"), timeout=1.0)
                except RetryLater:
                    continue
                value, cert_bytes = rlp.decode(raw)
                certificate = wire.decode_certificate(CHAIN_ID, cert_bytes)
                verify_certificate(certificate, self.validators_at(node, height))
                assert certificate.height == height
                assert node.app.validate(height, value, certificate.value_id)
                node.synced += 1
                self._commit(node, height, value, certificate)
                break
            else:
                return  # nobody can serve it now; Behind comes again at the next rebroadcast

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes.values():
            self.on_height(node, 1)
            self.apply(node, node.consensus.start_height(
                1, self.validators_at(node, 1), self.seed_at(node, 1)))

    def step(self, until: float) -> bool:
        """Advance to the next event no later than ``until``; False when there is none."""
        times = [self.network.next_due()] + [
            n.consensus.next_deadline() for n in self.nodes.values() if n.alive
        ]
        due = min((t for t in times if t is not None), default=None)
        if due is None or due > until:
            self.clock.set(max(until, self.clock.now()))
            return False
        self.clock.set(max(due, self.clock.now()))
        self.network.deliver_due()
        for node in self.nodes.values():
            if node.alive:
                self.apply(node, node.consensus.tick())
        return True

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Run for ``seconds`` of simulated time, or until ``until()`` holds."""
        end = self.clock.now() + seconds
        while not (until is not None and until()) and self.step(end):
            self.check_safety()
        self.check_safety()

    def run_until_height(self, height: int, seconds: float = 600.0, names: list[str] | None = None) -> None:
        chosen = [self.nodes[n] for n in names or self.nodes]
        self.run(seconds, lambda: all(n.head >= height for n in chosen))
        heads = {n.name: n.head for n in chosen}
        assert all(h >= height for h in heads.values()), f"not at height {height}: {heads}"

    # -- faults -------------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        self.nodes[name].alive = False
        self.network.crash(PeerId(name))

    def restart(self, name: str, fresh: bool = False) -> None:
        """Bring ``name`` back: with its consensus memory, or ``fresh`` from its finalized chain
        and its write-ahead log of signed messages (what a restarted process has)."""
        node = self.nodes[name]
        self.network.restart(PeerId(name))
        node.alive = True
        if fresh:
            node.consensus = self._machine(node.key, node.app)
            height = node.head + 1
            replay = [m for m in node.log if m.height == height]
            self.apply(node, node.consensus.start_height(
                height, self.validators_at(node, height), self.seed_at(node, height), replay))

    # -- properties ---------------------------------------------------------------------------

    def check_safety(self) -> None:
        """No two nodes finalized different values at one height."""
        by_height: dict[int, set[bytes]] = {}
        for node in self.nodes.values():
            for height, (value, _) in node.decided.items():
                by_height.setdefault(height, set()).add(value)
        conflicts = {h: v for h, v in by_height.items() if len(v) > 1}
        assert not conflicts, f"safety violated: {conflicts}"

    def common_head(self, names: list[str] | None = None) -> int:
        return min(self.nodes[n].head for n in names or self.nodes)


def random_latency(seed: int, low: float = 0.0, high: float = 0.5, loss: float = 0.0
                   ) -> Callable[[PeerId, PeerId, str], float | None]:
    """Seeded independent delays per message (so messages overtake each other), and loss."""
    rng = random.Random(seed)

    def latency(_sender: PeerId, _receiver: PeerId, _topic: str) -> float | None:
        if rng.random() < loss:
            return None
        return rng.uniform(low, high)
    return latency


def equivocate(sim: Simulation, name: str, proposal: Proposal) -> None:
    """Have ``name`` sign a second, valid-looking value for ``proposal``'s slot and send the
    two so that half the validators see one first and half the other."""
    node = sim.nodes[name]
    other = f"height={proposal.height} round={proposal.round} by={name} (twin)".encode()
    twin = wire.sign_proposal(
        CHAIN_ID, node.key, proposal.height, proposal.round, other, keccak256(other),
        proposal.pol_round, node.address,
    )
    names = [PeerId(n) for n in sim.nodes if n != name]
    first, second = names[: len(names) // 2], names[len(names) // 2:]
    sim.override = {**{p: 0.01 for p in first}, **{p: 0.05 for p in second}}
    sim.publish(node, proposal)
    sim.override = {**{p: 0.05 for p in first}, **{p: 0.01 for p in second}}
    sim.publish(node, twin)
    sim.override = None
