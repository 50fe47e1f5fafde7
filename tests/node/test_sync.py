"""`l2/sync/1`: serving finalized blocks, and taking only certified ones from peers."""

from __future__ import annotations

import pytest
import rlp

from node.blocks import decode_block
from node.node import Node
from node.sync import catch_up, decode_answer, decode_request, encode_request, serve_blocks
from p2p.memory import InProcessNetwork
from p2p.topics import SYNC
from primitives.clock import ManualClock
from primitives.errors import InvalidInput
from primitives.types import Hash32
from tests.node.helpers import USERS, VALIDATOR_KEYS, large_call, make_node, transfer


def chain_of(clock: ManualClock, blocks: int) -> Node:
    node = make_node(clock, VALIDATOR_KEYS[0])
    for nonce in range(blocks):
        node.submit(transfer(0, nonce))
        clock.advance(1)
        node.commit(node.propose(node.head().number + 1), b"cert %d" % (nonce + 1))
    return node


def certified(height: int, block_hash: Hash32, certificate: bytes) -> bool:
    """Stands in for the real check (sequencer/wire.py): the certificate names its height."""
    return certificate == b"cert %d" % height


@pytest.mark.parametrize("data", [b"", b"\xc0", rlp.encode([1]), rlp.encode([[1], 2]), b"\xff" * 9])
def test_malformed_requests_are_refused(data: bytes) -> None:
    node = chain_of(ManualClock(), 1)
    with pytest.raises(InvalidInput):
        serve_blocks(node, data)


@pytest.mark.parametrize("data", [b"", b"\x01", rlp.encode([b"a"]), rlp.encode([[b"a", [b"b"]]])])
def test_malformed_answers_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_answer(data)


def test_request_round_trip_and_ranges() -> None:
    assert decode_request(encode_request(5, 64)) == (5, 64)
    node = chain_of(ManualClock(), 3)
    first, _ = decode_answer(serve_blocks(node, encode_request(2, 10)))[0]
    assert decode_block(first).header == node.chain.header(2)
    assert len(decode_answer(serve_blocks(node, encode_request(0, 10)))) == 3  # genesis skipped
    assert len(decode_answer(serve_blocks(node, encode_request(2, 1)))) == 1
    assert decode_answer(serve_blocks(node, encode_request(9, 10))) == []
    assert decode_answer(serve_blocks(node, encode_request(2**64 - 1, 2**64 - 1))) == []


def test_an_answer_stays_within_the_bytes_a_peer_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of large transactions: an answer holds as many as fit in MAX_ANSWER_BYTES (at
    least one), not MAX_BLOCKS_PER_ANSWER of them; the asker goes on from where it ends."""
    clock = ManualClock()
    node = make_node(clock, VALIDATOR_KEYS[0], gas_limit=200_000_000)
    for height in range(1, 4):
        node.submit_many([large_call(user, height - 1) for user in range(len(USERS))])
        clock.advance(1)
        node.commit(node.propose(height), b"cert %d" % height)
    whole = decode_answer(serve_blocks(node, encode_request(1, 10)))
    assert len(whole) == 3
    sizes = [len(block) + len(certificate) for block, certificate in whole]
    assert min(sizes) > 400_000
    monkeypatch.setattr("node.sync.MAX_ANSWER_BYTES", sizes[0] + sizes[1])
    assert decode_answer(serve_blocks(node, encode_request(1, 10))) == whole[:2]
    assert decode_answer(serve_blocks(node, encode_request(3, 10))) == whole[2:]
    monkeypatch.setattr("node.sync.MAX_ANSWER_BYTES", 1_000)  # smaller than any block
    assert decode_answer(serve_blocks(node, encode_request(2, 10))) == whole[1:2]


def test_a_node_that_was_down_catches_up_with_certified_blocks() -> None:
    clock = ManualClock()
    source = chain_of(clock, 4)
    network = InProcessNetwork(clock)
    network.join("source").serve(SYNC, lambda _peer, data: serve_blocks(source, data))
    late = make_node(clock, VALIDATOR_KEYS[1])
    assert catch_up(late, network.join("late"), certified) == 4
    assert late.head() == source.head()
    assert late.chain.certificate(4) == b"cert 4"


def test_blocks_without_a_valid_certificate_are_not_taken() -> None:
    clock = ManualClock()
    source = chain_of(clock, 2)
    network = InProcessNetwork(clock)
    network.join("liar").serve(SYNC, lambda _peer, data: serve_blocks(source, data))
    network.join("garbage").serve(SYNC, lambda _peer, data: b"\x01\x02")
    late = make_node(clock, VALIDATOR_KEYS[1])
    assert catch_up(late, network.join("late"), lambda *_: False) == 0
    assert late.head().number == 0
