"""Four real nodes (MemoryKV, reference executor) running the validator loop over the
in-process gossip twin and one manual clock: normal operation, a crashed proposer, a
byzantine proposer, catch-up through sync, and a halt without a quorum.

Safety (no two different blocks at one height, on any node) is asserted in every test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from node.db.memory import MemoryKV
from node.node import Node, decode_block, encode_block
from node.validator import ValidatorLoop, ValidatorOptions
from p2p.memory import InProcessNetwork
from p2p.types import PeerId
from primitives.clock import ManualClock
from primitives.crypto import private_key_to_address
from primitives.types import Hash32
from sequencer import leader, wire
from sequencer.types import ValidatorSet
from tests.node.helpers import RECIPIENT, VALIDATOR_KEYS, make_node, transfer

WEIGHTS = {private_key_to_address(key): 1 for key in VALIDATOR_KEYS}
OPTIONS = ValidatorOptions(block_time=0.5)


class Cluster:
    """Validators v0..v3 and the loop that drives them by jumping the clock to the next event."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.network = InProcessNetwork(self.clock, lambda _s, _r, _t: 0.01)
        self.kvs = [MemoryKV() for _ in VALIDATOR_KEYS]
        self.nodes: list[Node] = []
        self.loops: list[ValidatorLoop | None] = []
        for index in range(len(VALIDATOR_KEYS)):
            self.nodes.append(make_node(self.clock, VALIDATOR_KEYS[index], self.kvs[index]))
            self.loops.append(self._loop(index))

    def _loop(self, index: int) -> ValidatorLoop:
        gossip = self.network.join(f"v{index}")
        return ValidatorLoop(self.nodes[index], gossip, WEIGHTS, self.clock, OPTIONS)

    def crash(self, index: int) -> None:
        self.network.crash(self.network_id(index))
        self.loops[index] = None

    def restart(self, index: int) -> None:
        """A fresh process on the same database."""
        self.network.restart(self.network_id(index))
        self.nodes[index] = make_node(self.clock, VALIDATOR_KEYS[index], self.kvs[index])
        self.loops[index] = self._loop(index)

    @staticmethod
    def network_id(index: int) -> PeerId:
        return PeerId(f"v{index}")

    def live(self) -> list[ValidatorLoop]:
        return [loop for loop in self.loops if loop is not None]

    def run(self, done: Callable[[], bool], limit: float = 60.0) -> bool:
        """Step every live node until ``done`` or ``limit`` simulated seconds pass."""
        deadline = self.clock.now() + limit
        while self.clock.now() < deadline:
            for loop in self.live():
                loop.step()
            if self.network.deliver_due():
                continue
            self.assert_safe()
            if done():
                return True
            times = [self.network.next_due()] + [loop.next_wakeup() for loop in self.live()]
            upcoming = min((t for t in times if t is not None), default=deadline)
            self.clock.set(max(upcoming, self.clock.now() + 0.001))
        return False

    def heads(self, indexes: range | list[int] = range(4)) -> list[int]:
        return [self.nodes[i].head().number for i in indexes]

    def assert_safe(self) -> None:
        """Every node that has a block at a height has the same block there."""
        for height in range(1, max(self.heads()) + 1):
            hashes = {h.hash for node in self.nodes if (h := node.chain.header(height)) is not None}
            assert len(hashes) <= 1, f"two different blocks at height {height}"


def test_transactions_sent_to_different_nodes_are_included_once_everywhere() -> None:
    cluster = Cluster()
    for index, node in enumerate(cluster.nodes):
        for nonce in range(3):
            raw = transfer(index, nonce)
            node.submit(raw)
            loop = cluster.loops[index]
            assert loop is not None
            loop.relay(raw)

    def all_included() -> bool:
        return min(cluster.heads()) >= 3 and all(
            node.state.at(node.head().state_root).get_account(RECIPIENT) is not None
            and node.state.at(node.head().state_root).get_account(RECIPIENT).balance == 12  # type: ignore[union-attr]
            for node in cluster.nodes
        )

    assert cluster.run(all_included)
    top = min(cluster.heads())
    for height in range(1, top + 1):
        headers = {node.chain.header(height) for node in cluster.nodes}
        assert len(headers) == 1
        assert all(node.chain.certificate(height) for node in cluster.nodes)
    included = [tx.hash for h in range(1, top + 1) for tx in cluster.nodes[0].chain.transactions(h)]
    assert len(included) == len(set(included)) == 12
    # Different proposers took turns (weights are equal).
    coinbases = {cluster.nodes[0].chain.header(h).coinbase for h in range(1, top + 1)}  # type: ignore[union-attr]
    assert len(coinbases) > 1


def test_a_crashed_validator_does_not_stop_finality_and_catches_up_after_restart() -> None:
    cluster = Cluster()
    assert cluster.run(lambda: min(cluster.heads()) >= 2)
    cluster.crash(3)
    before = cluster.heads([0, 1, 2])
    # v3 proposes about a quarter of the rounds: those heights need a second round.
    assert cluster.run(lambda: min(cluster.heads([0, 1, 2])) >= max(before) + 6)
    assert cluster.nodes[3].head().number < min(cluster.heads([0, 1, 2]))
    cluster.restart(3)
    target = max(cluster.heads())
    assert cluster.run(lambda: cluster.nodes[3].head().number >= target + 2)
    assert cluster.nodes[3].head().number >= target + 2


def test_two_of_four_down_stops_finality_and_one_back_resumes_it() -> None:
    cluster = Cluster()
    assert cluster.run(lambda: min(cluster.heads()) >= 1)
    cluster.crash(2)
    cluster.crash(3)
    stalled = max(cluster.heads([0, 1]))
    assert not cluster.run(lambda: max(cluster.heads([0, 1])) > stalled + 1, limit=20)
    assert max(cluster.heads([0, 1])) <= stalled + 1  # at most one block was already decided
    cluster.restart(2)
    assert cluster.run(lambda: min(cluster.heads([0, 1, 2])) >= stalled + 3)


def test_a_proposer_with_a_wrong_state_root_gets_nil_votes_and_the_next_round_decides() -> None:
    cluster = Cluster()
    first = leader.proposer(ValidatorSet.of(WEIGHTS), cluster.nodes[0].head().hash, 1, 0)
    liar = next(node for node in cluster.nodes if node.coinbase == first)
    honest_propose = liar.propose
    bad_root = Hash32(b"\x66" * 32)

    def lying_propose(height: int) -> bytes:
        header, raws = decode_block(honest_propose(height))
        return encode_block(dataclasses.replace(header, state_root=bad_root), raws)

    liar.propose = lying_propose  # type: ignore[method-assign]
    liar.submit(transfer(0, 0))
    honest = [i for i, node in enumerate(cluster.nodes) if node is not liar]
    assert cluster.run(lambda: min(cluster.heads(honest)) >= 6)
    for height in range(1, 7):
        header = cluster.nodes[honest[0]].chain.header(height)
        assert header is not None and header.state_root != bad_root
        assert header.coinbase != liar.coinbase
    # Height 1 was the liar's: its round got nil votes and round 1 decided.
    certificate = cluster.nodes[honest[0]].chain.certificate(1)
    assert certificate is not None
    assert wire.decode_certificate(liar.params.chain_id, certificate).round >= 1
