"""Four real nodes (MemoryKV, reference executor) running the validator loop over the
in-process gossip twin and one manual clock: normal operation, a crashed proposer, a
byzantine proposer, catch-up through sync, and a halt without a quorum.

Safety (no two different blocks at one height, on any node) is asserted in every test.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

import pytest
import rlp
from eth_account import Account

from l1.client import Web3L1Client, deploy_batch_inbox
from l1.embedded import start_embedded_l1
from l1.poster import BatchPoster, MemoryPosterStore, PosterConfig
from l1.types import ValidatorSet as ValidatorSet_L1
from l1.watcher import BatchReport, Status, Watcher
from node.batchsigs import GossipBatchSignatures
from node.blocks import decode_block, encode_block
from node.db.memory import MemoryKV
from node.node import Node
from node.validator import ValidatorLoop, ValidatorOptions
from node.watch import NodeChain
from p2p.memory import InProcessNetwork, Latency
from p2p.topics import CONSENSUS, TXS
from p2p.txbatch import encode_tx_batch
from p2p.types import PeerId, Validation
from primitives.clock import ManualClock
from primitives.crypto import keccak256
from primitives.types import Hash32
from sequencer import leader, wire
from sequencer.consensus import verify_certificate
from sequencer.election import next_seed
from sequencer.types import Broadcast, Proposal, ValidatorSet, Vote, VoteKind
from sequencer.weights import decode_proof, encode_proof
from tests.node.helpers import CHAIN_ID, RECIPIENT, VALIDATOR_KEYS, WEIGHTS, make_node, transfer

OPTIONS = ValidatorOptions(block_time=0.5, background=False)


class Cluster:
    """Validators v0..v3 and the loop that drives them by jumping the clock to the next event."""

    def __init__(
        self, epoch_length: int = 0, options: list[ValidatorOptions] | None = None,
        latency: Latency = lambda _s, _r, _t: 0.01,
    ) -> None:
        self.epoch_length = epoch_length
        self.options = options or [OPTIONS] * len(VALIDATOR_KEYS)
        self.clock = ManualClock()
        self.network = InProcessNetwork(self.clock, latency)
        self.kvs = [MemoryKV() for _ in VALIDATOR_KEYS]
        self.nodes: list[Node] = []
        self.loops: list[ValidatorLoop | None] = []
        for index in range(len(VALIDATOR_KEYS)):
            self.nodes.append(self._node(index))
            self.loops.append(self._loop(index))

    def _loop(self, index: int) -> ValidatorLoop:
        gossip = self.network.join(f"v{index}")
        return ValidatorLoop(self.nodes[index], gossip, self.clock, self.options[index])

    def _node(self, index: int) -> Node:
        return make_node(self.clock, VALIDATOR_KEYS[index], self.kvs[index], self.epoch_length)

    def crash(self, index: int) -> None:
        self.network.crash(self.network_id(index))
        self.loops[index] = None

    def restart(self, index: int) -> None:
        """A fresh process on the same database."""
        self.network.restart(self.network_id(index))
        self.nodes[index] = self._node(index)
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


@pytest.mark.parametrize(("hop", "fastest", "slowest"), [(0.01, 0.5, 0.6), (0.2, 0.6, 0.7)])
def test_heights_start_block_time_apart_and_a_slower_one_is_followed_at_once(
    hop: float, fastest: float, slowest: float,
) -> None:
    """A block every block_time (0.5 s) from each height's start, as a single validator makes
    them; a height that took longer (its messages 0.2 s a hop: about 0.6 s) is followed at
    once, not block_time after its commit."""
    cluster = Cluster(latency=lambda _s, _r, _t: hop)
    assert cluster.run(lambda: min(cluster.heads()) >= 1)
    start = cluster.clock.now()
    assert cluster.run(lambda: min(cluster.heads()) >= 11)
    assert fastest * 10 <= cluster.clock.now() - start <= slowest * 10


def test_a_validator_that_fell_behind_the_others_heights_follows_their_next_proposal() -> None:
    """Each validator starts a height block_time after it started the last; one whose
    messages came late for a while (v0, 0.8 s a hop: longer than a block time) started its
    heights that much later. When a proposal of the next height arrives while it waits, it
    starts that height then: it does not stay behind (and the others do not wait that long
    for each proposal of its)."""
    slow_until = [0.0]

    def latency(_sender: PeerId, receiver: PeerId, _topic: str) -> float:
        return 0.8 if receiver == "v0" and cluster.clock.now() < slow_until[0] else 0.01

    cluster = Cluster(latency=latency)
    slow_until[0] = cluster.clock.now() + 5
    starts: dict[int, dict[int, float]] = {}

    def record() -> bool:
        for index, loop in enumerate(cluster.live()):
            starts.setdefault(loop.consensus.height, {})[index] = loop._height_started
        return False

    assert not cluster.run(record, limit=12)
    late = [max(at.values()) - min(at.values()) for height, at in sorted(starts.items())
            if len(at) == 4 and min(at.values()) >= slow_until[0] + 1]
    assert len(late) >= 10 and max(late) < 0.05


def test_a_proposer_with_a_wrong_state_root_gets_nil_votes_and_the_next_round_decides() -> None:
    cluster = Cluster()
    first = leader.proposer(ValidatorSet.of(WEIGHTS), cluster.nodes[0].head().hash, 1, 0)
    liar = next(node for node in cluster.nodes if node.coinbase == first)
    honest_propose = liar.propose
    bad_root = Hash32(b"\x66" * 32)

    def lying_propose(height: int, proofs: Sequence[bytes] = (), within: float | None = None) -> bytes:
        block = decode_block(honest_propose(height, proofs, within))
        return encode_block(dataclasses.replace(block.header, state_root=bad_root),
                            block.transactions)

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


def test_gpu_weights_from_proofs_carried_in_one_epoch_decide_the_next() -> None:
    # CPU challenges of different sizes; v3 computes nothing, so it earns no weight.
    products = [16, 32, 16, 0]
    options = [
        dataclasses.replace(OPTIONS, challenge_device="cpu", challenge_max_products=n)
        for n in products
    ]
    cluster = Cluster(epoch_length=6, options=options)  # window: heights 1 .. 4
    assert cluster.run(lambda: min(cluster.heads()) >= 13, limit=120)
    addresses = [node.coinbase for node in cluster.nodes]
    for node in cluster.nodes:
        carried = [decode_proof(p) for h in range(1, 7) for p in node.chain.proofs(h)]
        assert sorted((p.validator, p.products) for p in carried) == sorted(
            (a, n) for a, n in zip(addresses, products) if n
        )
        # Three earners: each holds 1/3 (sequencer.weights.cap_shares), v3 none.
        assert node.epochs.weights(1) == {a: 16 for a, n in zip(addresses, products) if n}
    # Heights of epoch 1 were decided by the new weights: v3's precommits count for nothing,
    # and every certificate holds more than 2/3 of the 48 units of work.
    epoch1 = ValidatorSet.of(cluster.nodes[0].epochs.weights(1))
    assert addresses[3] not in epoch1
    for height in range(7, 13):
        data = cluster.nodes[0].chain.certificate(height)
        assert data is not None
        certificate = wire.decode_certificate(cluster.nodes[0].params.chain_id, data)
        verify_certificate(certificate, epoch1)


def test_a_restarted_validator_never_sends_a_second_different_vote_for_one_slot() -> None:
    cluster = Cluster()
    node = cluster.nodes[0]
    me = node.coinbase

    def vote(value: bytes | None, kind: VoteKind = VoteKind.PREVOTE, height: int = 5) -> Broadcast:
        value_id = None if value is None else Hash32(value * 32)
        return Broadcast(wire.sign_vote(node.params.chain_id, VALIDATOR_KEYS[0], kind, height, 0,
                                        value_id, me))

    sent: list[bytes] = []
    network = cluster.network
    network.join("observer").subscribe(CONSENSUS, lambda _p, _d: Validation.ACCEPT,
                                       lambda _p, data: sent.append(data))
    loop = cluster.loops[0]
    assert loop is not None
    loop._run([vote(b"\x01"), vote(b"\x01")])  # a rebroadcast of the same vote goes out
    cluster.crash(0)
    cluster.restart(0)
    loop = cluster.loops[0]
    assert loop is not None
    loop._run([vote(b"\x02"), vote(None), vote(b"\x02", VoteKind.PRECOMMIT)])
    cluster.clock.advance(1)
    network.deliver_due()
    decoded = [wire.decode_message(node.params.chain_id, data) for data in sent]
    assert [(m.kind, m.value_id) for m in decoded if isinstance(m, Vote)] == [
        (VoteKind.PREVOTE, Hash32(b"\x01" * 32)), (VoteKind.PREVOTE, Hash32(b"\x01" * 32)),
        (VoteKind.PRECOMMIT, Hash32(b"\x02" * 32)),
    ]
    loop._forget_signed_below(6)  # height 5 decided: its records go
    loop._run([vote(b"\x03")])
    cluster.clock.advance(1)
    network.deliver_due()
    assert len(sent) == 4


def test_delayed_and_reordered_messages_still_give_one_chain() -> None:
    jitter = random.Random(7)
    # Every message takes 10 ms to 1.5 s, so messages overtake each other all the time.
    cluster = Cluster(latency=lambda _s, _r, _t: jitter.uniform(0.01, 1.5))
    cluster.nodes[1].submit(transfer(1, 0))
    loop = cluster.loops[1]
    assert loop is not None
    loop.relay(transfer(1, 0))
    assert cluster.run(lambda: min(cluster.heads()) >= 6, limit=300)
    assert any(cluster.nodes[0].chain.transactions(h) for h in range(1, 7))


def test_a_partition_without_a_quorum_stops_finality_and_healing_resumes_it() -> None:
    cluster = Cluster()
    assert cluster.run(lambda: min(cluster.heads()) >= 2)
    cluster.network.partition(["v0", "v1"], ["v2", "v3"])
    stalled = max(cluster.heads())
    assert not cluster.run(lambda: max(cluster.heads()) > stalled + 1, limit=20)
    cluster.network.heal()
    assert cluster.run(lambda: min(cluster.heads()) >= stalled + 3, limit=120)


def test_two_different_proposals_are_kept_as_evidence_and_one_chain_follows() -> None:
    cluster = Cluster()
    chain_id = cluster.nodes[0].params.chain_id
    index = 2
    liar = cluster.loops[index]
    assert liar is not None
    publish = liar.gossip.publish

    def equivocate(topic: str, data: bytes) -> None:
        publish(topic, data)
        message = wire.decode_message(chain_id, data) if topic == CONSENSUS else None
        if isinstance(message, Proposal):
            block = decode_block(message.value)
            later = dataclasses.replace(block.header, timestamp=block.header.timestamp + 1)
            other = encode_block(later, block.transactions, block.proofs)
            publish(topic, wire.encode_message(wire.sign_proposal(
                chain_id, VALIDATOR_KEYS[index], message.height, message.round, other,
                later.hash, message.pol_round, message.proposer,
            )))

    liar.gossip.publish = equivocate  # type: ignore[method-assign]
    assert cluster.run(lambda: min(cluster.heads()) >= 8)
    offenders = {
        wire.decode_evidence(chain_id, data).offender
        for node in cluster.nodes for data in node.chain.evidence()
    }
    assert offenders == {cluster.nodes[index].coinbase}


def test_a_restarted_validator_resumes_the_round_it_had_signed_in() -> None:
    cluster = Cluster()
    me = cluster.nodes[0].coinbase
    cluster.crash(3)  # heights it would propose at round 0 go to round 1

    def own_rounds() -> set[int]:
        loop = cluster.loops[0]
        assert loop is not None
        logged = loop._logged(loop.consensus.height)
        return {m.round for m in logged if me in (getattr(m, "validator", None),
                                                  getattr(m, "proposer", None))}

    assert cluster.run(lambda: max(own_rounds(), default=0) >= 1)
    before = cluster.loops[0]
    assert before is not None
    height, signed_round = before.consensus.height, max(own_rounds())
    cluster.crash(0)
    cluster.restart(0)
    after = cluster.loops[0]
    assert after is not None
    after.step()
    # The log was replayed: it resumes in the round it signed in last, not at round 0.
    assert (after.consensus.height, after.consensus.round) == (height, signed_round)


@pytest.mark.parametrize("epoch_length", [0, 4])
def test_the_leader_seed_is_fixed_per_epoch_not_the_parent_hash(epoch_length: int) -> None:
    quick = dataclasses.replace(OPTIONS, challenge_device="cpu", challenge_max_products=16)
    cluster = Cluster(epoch_length=epoch_length, options=[quick] * len(VALIDATOR_KEYS))
    assert cluster.run(lambda: min(cluster.heads()) >= 13, limit=240)
    loop, node = cluster.loops[0], cluster.nodes[0]
    assert loop is not None
    genesis = node.chain.header(0)
    assert genesis is not None
    if epoch_length == 0:
        assert all(loop._seed(height) == genesis.hash for height in range(1, 14))
        return
    # Epoch 0: the genesis hash. Epoch 1: mixes no reveal (nothing was committed before
    # epoch 0). Epoch 2: every validator's reveal, carried in epoch 1's window, opening the
    # commitment its proof of epoch 0 made; no block hash, so no proposer chose it.
    carried = {e: {decode_proof(p).validator: decode_proof(p) for h in range(e * 4 + 1, e * 4 + 4)
                   for p in node.chain.proofs(h)} for e in (0, 1)}
    assert len(carried[0]) == len(carried[1]) == len(VALIDATOR_KEYS)
    assert all(keccak256(carried[1][v].reveal) == carried[0][v].commit for v in carried[1])
    seeds = [genesis.hash, next_seed(0, genesis.hash, {})]
    seeds.append(next_seed(1, seeds[1], {v: p.reveal for v, p in carried[1].items()}))
    for height in range(1, 13):
        assert loop._seed(height) == node.epochs.seed((height - 1) // 4) == seeds[(height - 1) // 4]
    hashes = {header.hash for h in range(13) if (header := node.chain.header(h)) is not None}
    assert not set(seeds[1:]) & hashes


def _unsigned_by_anyone(raw: bytes) -> bytes:
    """A type-2 transaction ``raw`` with s = 0: a signature no key made."""
    fields = rlp.decode(raw[1:])
    return b"\x02" + bytes(rlp.encode([*fields[:-1], b""]))


def test_gossiped_batches_are_pooled_by_the_gate_and_bad_ones_rejected_whole() -> None:
    cluster = Cluster()
    outsider = cluster.network.join("outsider")

    def send(raws: list[bytes]) -> None:
        outsider.publish(TXS, encode_tx_batch(raws))
        cluster.clock.advance(0.02)
        cluster.network.deliver_due()

    def pooled(raw: bytes) -> list[bool]:
        return [node.admission.pooled([keccak256(raw)])[0] is not None for node in cluster.nodes]

    # REJECT: one transaction that can never be valid (no signer, another chain) spoils it.
    send([transfer(0, 0), _unsigned_by_anyone(transfer(1, 0))])
    send([transfer(2, 0), transfer(3, 0, chain_id=1)])
    assert cluster.network.rejected == [(PeerId(f"v{i}"), PeerId("outsider"), TXS)
                                        for i in range(4)] * 2
    assert pooled(transfer(0, 0)) == pooled(transfer(2, 0)) == [False] * 4
    # ACCEPT: pooled (durably, as over RPC) by the gate's check; the loop never sees it.
    send([transfer(0, 0), transfer(2, 0)])
    assert pooled(transfer(0, 0)) == pooled(transfer(2, 0)) == [True] * 4
    # IGNORE, no penalty: nothing new (known already; one signer who cannot pay among them).
    paupers = [bytes(Account.sign_transaction({  # the second one with a nonce gap, too
        "chainId": 7331, "nonce": 300 * i, "gas": 21_000, "to": "0x" + "11" * 20, "value": 1,
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
    }, bytes([7 + i]) * 32).raw_transaction) for i in range(2)]
    send([transfer(2, 0)])
    send([transfer(0, 0), transfer(2, 0), paupers[0]])
    assert len(cluster.network.rejected) == 8
    # REJECT: nothing pooled, mostly signers who cannot pay (what random signatures recover).
    send([transfer(0, 0), *paupers])
    assert len(cluster.network.rejected) == 12
    assert pooled(paupers[0]) == pooled(paupers[1]) == [False] * 4
    assert cluster.run(lambda: all(node.admission.pooled([keccak256(transfer(0, 0))]) == [None]
                                   for node in cluster.nodes))  # and included


def test_weight_proofs_are_verified_by_the_gate_before_they_are_kept_or_forwarded() -> None:
    options = [dataclasses.replace(OPTIONS, challenge_device="cpu", challenge_max_products=16)
               ] * len(VALIDATOR_KEYS)
    cluster = Cluster(epoch_length=20, options=options)
    node = cluster.nodes[0]

    def carried() -> list[bytes]:
        return [p for h in range(1, node.head().number + 1) for p in node.chain.proofs(h)]

    assert cluster.run(lambda: bool(carried()), limit=30)
    assert node.head().number < 20  # still the proofs' epoch
    honest = carried()[0]
    proof = decode_proof(honest)
    forged = encode_proof(dataclasses.replace(proof, products=proof.products * 2))
    loop = cluster.loops[1]
    assert loop is not None
    assert loop._gate_proof(PeerId("outsider"), forged) is Validation.REJECT
    assert loop._gate_proof(PeerId("outsider"), honest) is Validation.ACCEPT
    late = encode_proof(dataclasses.replace(proof, epoch=proof.epoch + 1))
    assert loop._gate_proof(PeerId("outsider"), late) is Validation.IGNORE


def test_each_epochs_weights_reach_l1_before_its_batches_and_the_watcher_agrees() -> None:
    # As above: v3 proves nothing, so from epoch 1 on the set is v0..v2 with 16 each.
    options = [
        dataclasses.replace(OPTIONS, challenge_device="cpu", challenge_max_products=n)
        for n in (16, 32, 16, 0)
    ]
    cluster = Cluster(epoch_length=6, options=options)
    assert cluster.run(lambda: min(cluster.heads()) >= 14, limit=120)
    l1 = start_embedded_l1()
    address = deploy_batch_inbox(l1.w3, l1.deployer_key, CHAIN_ID, cluster.nodes[0].state_root(0),
                                 sorted(WEIGHTS), [1] * len(WEIGHTS))
    client = Web3L1Client(l1.w3, address, l1.poster_key)
    # Every validator answers over l2/batchsigs/1; v0 posts.
    exchanges = [GossipBatchSignatures(node, cluster.network.join(f"s{i}"), cluster.clock.now)
                 for i, node in enumerate(cluster.nodes)]
    poster = BatchPoster(client, cluster.nodes[0], exchanges[0], MemoryPosterStore(),
                         cluster.clock, PosterConfig(blocks_per_batch=4, confirmations=0))
    for _ in range(40):
        poster.step()
        cluster.network.deliver_due()
        cluster.network.deliver_due()
        cluster.clock.advance(2.5)  # ASK_AGAIN_AFTER: a request is repeated
    # Epochs 0 and 1 are on L1 (batches of 4 blocks, cut at 6 and 12); epoch 2's set follows
    # at once, while its first batch waits for 4 blocks (heads are at 14).
    assert client.validator_set() == ValidatorSet_L1.of(2, cluster.nodes[0].epochs.weights(2))
    latest = client.latest_batch()
    assert latest is not None and (latest.batch_number, latest.last_block) == (4, 12)
    epoch_1 = cluster.nodes[0].epochs.weights(1)
    assert cluster.nodes[0].coinbase in epoch_1 and len(epoch_1) == 3  # v3 left the set
    for number in range(1, latest.batch_number + 1):
        batch = client.batch(number)
        assert batch is not None
        epoch = cluster.nodes[0].epoch_of(batch.first_block)
        assert cluster.nodes[0].epoch_of(batch.last_block) == epoch  # a batch ends with its epoch
        assert client.validators_at(batch) == ValidatorSet_L1.of(
            epoch, cluster.nodes[0].epochs.weights(epoch))
    # A watcher rebuilding the chain from L1 alone verifies every batch, signers included.
    follower = make_node(cluster.clock, epoch_length=6)
    watcher = Watcher(Web3L1Client(l1.w3, address), NodeChain(follower))
    reports = []
    while (report := watcher.step()) is not None:
        reports.append(report)
    assert [(r.status, r.batch.batch_number) for r in reports if isinstance(r, BatchReport)] == [
        (Status.OK, n) for n in range(1, latest.batch_number + 1)
    ], reports
