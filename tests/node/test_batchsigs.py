"""`l2/batchsigs/1`: validators sign the poster's batch digest when it is true of their chain."""

from __future__ import annotations

import pytest
import rlp

from l1.codec import (
    batch_data_hash,
    batch_digest,
    encode_batch_data,
    recover_batch_signer,
    sign_batch,
)
from l1.types import BatchCommitment, BatchDomain
from node.batchsigs import GossipBatchSignatures, encode_request, encode_signature
from node.node import Node
from p2p.memory import InProcessNetwork
from p2p.topics import BATCHSIGS
from p2p.types import PeerId
from primitives.clock import ManualClock
from primitives.crypto import private_key_to_address
from primitives.types import Address, Hash32
from tests.node.helpers import VALIDATOR_KEYS, make_node, transfer

WEIGHTS = {private_key_to_address(key): 1 for key in VALIDATOR_KEYS}
DOMAIN = BatchDomain(31337, Address(b"\x77" * 20), 7331)


def cluster(signers: int) -> tuple[ManualClock, InProcessNetwork, list[Node], list[GossipBatchSignatures]]:
    """Four validators with the same three blocks; only the first ``signers`` take part."""
    clock = ManualClock()
    network = InProcessNetwork(clock)
    nodes = [make_node(clock, key) for key in VALIDATOR_KEYS]
    for nonce in range(3):
        nodes[0].submit(transfer(0, nonce))
        clock.advance(1)
        value = nodes[0].propose(nonce + 1)
        for node in nodes:
            node.commit(value, b"")
    exchanges = [
        GossipBatchSignatures(node, network.join(f"v{i}"), WEIGHTS, clock.now)
        for i, node in enumerate(nodes[:signers])
    ]
    return clock, network, nodes, exchanges


def commitment_of(node: Node, state_root: Hash32 | None = None) -> BatchCommitment:
    data = encode_batch_data(node.block_data(n) for n in range(1, 4))
    return BatchCommitment(1, node.state_root(0), state_root or node.state_root(3), 1, 3,
                           batch_data_hash(data))


def test_the_poster_gets_a_quorum_of_signatures_in_contract_order() -> None:
    _clock, network, nodes, exchanges = cluster(4)
    commitment = commitment_of(nodes[0])
    assert exchanges[0].signatures(commitment, DOMAIN) is None  # only its own so far
    network.deliver_due()  # the request reaches the others, they sign and gossip
    network.deliver_due()
    signatures = exchanges[0].signatures(commitment, DOMAIN)
    assert signatures is not None and len(signatures) == 4
    digest = batch_digest(DOMAIN, commitment)
    signers = [recover_batch_signer(digest, s) for s in signatures]
    assert signers == sorted(WEIGHTS)


def test_two_of_four_is_no_quorum_and_three_is() -> None:
    _clock, network, nodes, exchanges = cluster(2)
    commitment = commitment_of(nodes[0])
    exchanges[0].signatures(commitment, DOMAIN)
    network.deliver_due()
    network.deliver_due()
    assert exchanges[0].signatures(commitment, DOMAIN) is None


def test_a_commitment_that_is_not_true_of_the_chain_gets_no_signatures() -> None:
    clock, network, nodes, exchanges = cluster(4)
    wrong = commitment_of(nodes[0], state_root=Hash32(b"\x01" * 32))
    for _ in range(3):
        assert exchanges[0].signatures(wrong, DOMAIN) is None
        clock.advance(5)
        network.deliver_due()
    assert network.rejected == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0",
        bytes(rlp.encode([2, b"x", b"y"])),
        bytes(rlp.encode([1, b"\x00" * 32, b"\x00" * 65])),  # no valid signature
        bytes(rlp.encode([0, [1, 2], [3]])),
        b"\x00" * 2000,
    ],
)
def test_malformed_or_forged_messages_are_rejected_at_the_gate(data: bytes) -> None:
    _clock, network, _nodes, _exchanges = cluster(2)
    network.join("stranger").publish(BATCHSIGS, data)
    network.deliver_due()
    assert [(r, s) for r, s, _ in network.rejected] == [
        (PeerId("v0"), PeerId("stranger")), (PeerId("v1"), PeerId("stranger"))
    ]


def test_a_signature_by_a_non_validator_is_rejected() -> None:
    _clock, network, nodes, _exchanges = cluster(2)
    digest = batch_digest(DOMAIN, commitment_of(nodes[0]))
    network.join("stranger").publish(BATCHSIGS, encode_signature(digest, sign_batch(digest, b"\x09" * 32)))
    network.join("other").publish(BATCHSIGS, encode_request(commitment_of(nodes[0]), DOMAIN))
    network.deliver_due()
    assert {s for _, s, _ in network.rejected} == {PeerId("stranger")}
