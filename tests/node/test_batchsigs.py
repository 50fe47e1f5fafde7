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
    validator_set_digest,
)
from l1.types import BatchCommitment, BatchDomain, ValidatorSet
from node.batchsigs import (
    MAX_MESSAGE_BYTES,
    BatchSignature,
    GossipBatchSignatures,
    decode_message,
    encode_request,
    encode_set_request,
    encode_signature,
)
from node.node import Node
from p2p.memory import InProcessNetwork
from p2p.topics import BATCHSIGS
from p2p.types import PeerId, Validation
from primitives.clock import ManualClock
from primitives.crypto import private_key_to_address
from primitives.types import Address, Hash32
from tests.node.helpers import VALIDATOR_KEYS, make_node, transfer

WEIGHTS = {private_key_to_address(key): 1 for key in VALIDATOR_KEYS}
DOMAIN = BatchDomain(31337, Address(b"\x77" * 20), 7331)


def cluster(
    signers: int, epoch_length: int = 0,
) -> tuple[ManualClock, InProcessNetwork, list[Node], list[GossipBatchSignatures]]:
    """Four validators with the same three blocks; only the first ``signers`` take part."""
    clock = ManualClock()
    network = InProcessNetwork(clock)
    nodes = [make_node(clock, key, epoch_length=epoch_length) for key in VALIDATOR_KEYS]
    for nonce in range(3):
        nodes[0].submit(transfer(0, nonce))
        clock.advance(1)
        value = nodes[0].propose(nonce + 1)
        for node in nodes:
            node.commit(value, b"")
    exchanges = [
        GossipBatchSignatures(node, network.join(f"v{i}"), clock.now)
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
        b"\x00" * (MAX_MESSAGE_BYTES + 1),
        bytes(rlp.encode([2, [1, [[b"\x01" * 19, 1]]], [1, b"\x77" * 20, 2]])),  # short address
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


def test_the_next_validator_set_is_signed_by_a_quorum_of_the_current_one() -> None:
    # Epochs of 3 blocks: block 2 closes epoch 0's window, which fixes epoch 1's weights
    # (no proofs were carried: the genesis weights again).
    _clock, network, nodes, exchanges = cluster(4, epoch_length=3)
    new_set = ValidatorSet.of(1, WEIGHTS)
    assert nodes[0].validators(1) == WEIGHTS and nodes[0].validators(2) is None
    assert exchanges[0].validator_signatures(new_set, DOMAIN) is None  # only its own so far
    network.deliver_due()
    network.deliver_due()
    signatures = exchanges[0].validator_signatures(new_set, DOMAIN)
    assert signatures is not None and len(signatures) == 4
    digest = validator_set_digest(DOMAIN, new_set)
    assert [recover_batch_signer(digest, s) for s in signatures] == sorted(WEIGHTS)
    # Every validator answered the request with a signature: all on the gossip topic.
    assert network.rejected == []


@pytest.mark.parametrize("wrong", [
    ValidatorSet(1, tuple((a, 2) for a in sorted(WEIGHTS))),  # other weights
    ValidatorSet(1, tuple(sorted(WEIGHTS.items(), reverse=True))),  # not in address order
    ValidatorSet(2, tuple(sorted(WEIGHTS.items()))),  # an epoch not fixed yet
])
def test_a_validator_set_that_is_not_the_chains_gets_no_signatures(wrong: ValidatorSet) -> None:
    clock, network, _nodes, exchanges = cluster(4, epoch_length=3)
    other = network.join("other")
    heard: list[bytes] = []
    other.subscribe(BATCHSIGS, lambda _peer, _data: Validation.ACCEPT,
                    lambda _peer, data: heard.append(data))
    for _ in range(3):
        other.publish(BATCHSIGS, encode_set_request(wrong, DOMAIN))
        assert exchanges[0].validator_signatures(wrong, DOMAIN) is None
        clock.advance(5)
        network.deliver_due()
    assert heard and not [m for m in map(decode_message, heard) if isinstance(m, BatchSignature)]
