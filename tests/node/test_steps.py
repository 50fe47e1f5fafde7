"""Block production split for consensus: propose, verify (re-execution), commit."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest
import rlp

from node.blocks import MAX_BLOCK_BYTES, decode_block, encode_block
from node.db import schema
from node.db.state import Prefetch, StateDB, StateOptions
from node.node import Node
from primitives.clock import ManualClock
from primitives.errors import Halt
from primitives.gossip import MAX_MESSAGE
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from sequencer import wire
from sequencer.types import PoolConfig, Proposal
from tests.node.helpers import RECIPIENT, USERS, VALIDATOR_KEYS, large_call, make_node, transfer


def pair() -> tuple[ManualClock, Node, Node]:
    clock = ManualClock()
    return clock, make_node(clock, VALIDATOR_KEYS[0]), make_node(clock, VALIDATOR_KEYS[1])


def test_a_block_proposed_or_verified_here_commits_without_decoding_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, proposer, peer = pair()
    proposer.submit(transfer(0, 0))
    clock.advance(2)
    value = proposer.propose(1)
    assert peer.verify(value)

    def no_decode(_value: bytes) -> None:
        raise AssertionError("decoded a block staged here")

    monkeypatch.setattr("node.node.decode_block", no_decode)
    # An equal value (not the same object) is found too.
    assert proposer.commit(bytes(bytearray(value)), None) == peer.commit(value, None)
    assert proposer.head().number == peer.head().number == 1


def test_a_peer_reproduces_and_commits_the_proposed_block() -> None:
    clock, proposer, peer = pair()
    for nonce in range(3):
        proposer.submit(transfer(0, nonce))
    peer.submit(transfer(0, 0))  # the peer pooled one of them too
    clock.advance(2)
    value = proposer.propose(1)
    assert peer.verify(value)
    head = peer.commit(value, b"certificate")
    assert proposer.commit(value, b"certificate") == head
    assert head.number == 1 and len(peer.chain.transactions(1)) == 3
    assert peer.chain.certificate(1) == b"certificate"
    assert len(peer.pool) == 0 and len(proposer.pool) == 0
    assert list(proposer.kv.iterate(schema.POOL_PREFIX)) == []
    balance = peer.state.at(head.state_root).get_account(RECIPIENT)
    assert balance is not None and balance.balance == 3


def test_a_proposal_fits_one_gossip_message_and_what_does_not_fit_waits() -> None:
    """A pool holding more bytes of transactions than a block may carry: the proposal takes
    what fits (MAX_BLOCK_BYTES), so that its consensus message stays within MAX_MESSAGE, and
    the next block takes the rest. A larger one could never be gossiped: the round would
    fail, and the next proposer's the same way."""
    clock = ManualClock()
    proposer = make_node(clock, VALIDATOR_KEYS[0], gas_limit=200_000_000)
    peer = make_node(clock, VALIDATOR_KEYS[1], gas_limit=200_000_000)
    raws = [large_call(user, nonce) for nonce in range(11) for user in range(len(USERS))]
    assert sum(map(len, raws)) > MAX_BLOCK_BYTES
    assert all(isinstance(tx, Transaction) for tx in proposer.submit_many(raws))
    clock.advance(2)
    value = proposer.propose(1)
    block = decode_block(value)
    assert len(value) <= MAX_BLOCK_BYTES and 0 < len(block.transactions) < len(raws)
    # The proposal as the validator gossips it, its integers and signature at their largest.
    message = Proposal(2**64 - 1, 2**32, value, block.header.hash, 2**32, USERS[0], b"\xff" * 65)
    assert len(wire.encode_message(message)) <= MAX_MESSAGE
    assert peer.verify(value)
    for node in (proposer, peer):
        node.commit(value, None)
    clock.advance(2)
    rest = decode_block(proposer.propose(2)).transactions
    assert sorted(block.transactions + rest) == sorted(raws)
    # A single validator's block is final at once, never gossiped: it takes them all.
    alone = make_node(clock, VALIDATOR_KEYS[2], gas_limit=200_000_000)
    alone.submit_many(raws)
    clock.advance(2)
    assert len(alone.chain.transactions(alone.produce_block().number)) == len(raws)


def test_a_proposer_takes_what_it_can_build_within_the_time_it_is_given() -> None:
    """Under a backlog, a proposal's gas is what the node's pace builds in ``within``
    seconds; without a time, the block gas limit bounds it."""
    clock = ManualClock()
    node = make_node(clock, VALIDATOR_KEYS[0], pool=PoolConfig(max_per_sender=100), max_txs=1_000)
    node.submit_many([transfer(user, nonce) for nonce in range(100) for user in range(len(USERS))])
    clock.advance(2)
    # Untimed, the first guess (100M gas a second) takes 50M gas: all 8.4M pooled.
    assert len(decode_block(node.propose(1, within=0.5)).transactions) == 400
    node.pace.seconds_per_gas = 1 / 10_500_000  # 10.5M gas a second: 500 transfers
    assert len(decode_block(node.propose(1, within=0.5)).transactions) == 250
    assert len(decode_block(node.propose(1)).transactions) == 400


def test_commit_without_verify_re_executes() -> None:
    clock, proposer, peer = pair()
    proposer.submit(transfer(1, 0))
    clock.advance(1)
    value = proposer.propose(1)
    assert peer.commit(value, None).hash == decode_block(value).header.hash


def test_produce_block_is_propose_plus_commit() -> None:
    clock = ManualClock()
    node = make_node(clock)
    node.submit(transfer(0, 0))
    clock.advance(1)
    header = node.produce_block()
    assert header.number == 1 and node.head() == header
    assert node.chain.certificate(1) is None


def _tampered(value: bytes, **changes: object) -> bytes:
    block = decode_block(value)
    return encode_block(dataclasses.replace(block.header, **changes), block.transactions)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: _tampered(v, state_root=Hash32(b"\x01" * 32)),
        lambda v: _tampered(v, receipts_root=Hash32(b"\x02" * 32)),
        lambda v: _tampered(v, gas_used=1),
        lambda v: _tampered(v, base_fee_per_gas=1),
        lambda v: _tampered(v, number=2),
        lambda v: _tampered(v, parent_hash=Hash32(b"\x03" * 32)),
        lambda v: _tampered(v, timestamp=1_600_000_000),
        lambda v: _tampered(v, timestamp=1_800_000_000),
        lambda v: _tampered(v, extra_data=b"x"),
        lambda v: encode_block(decode_block(v).header, []),  # transactions left out
        lambda v: encode_block(decode_block(v).header, decode_block(v).transactions * 2),  # replayed
        lambda v: encode_block(decode_block(v).header, [transfer(2, 0, chain_id=1)]),
        lambda v: v[:-1],
        lambda v: b"",
        lambda v: b"\xc0",
        lambda v: bytes(rlp.encode([b"x", [b"y"]])),
        lambda v: bytes(rlp.encode([[b""] * 20, b"notalist"])),
        lambda v: bytes(rlp.encode([decode_block(v).header.to_rlp(), [b"\x02\xff"], []])),
        lambda v: bytes(rlp.encode([decode_block(v).header.to_rlp(), [], [b"\x01"]])),
        lambda v: bytes(rlp.encode([decode_block(v).header.to_rlp(), []])),  # old shape
    ],
)
def test_verify_says_false_to_hostile_or_wrong_blocks(mutate) -> None:  # type: ignore[no-untyped-def]
    clock, proposer, peer = pair()
    proposer.submit(transfer(0, 0))
    proposer.submit(transfer(0, 1))
    clock.advance(1)
    value = proposer.propose(1)
    bad = mutate(value)
    assert not peer.verify(bad)
    assert peer.head().number == 0
    assert peer.verify(value)  # the honest block still verifies afterwards


def test_committing_a_block_this_node_cannot_reproduce_halts() -> None:
    clock, proposer, peer = pair()
    clock.advance(1)
    value = _tampered(proposer.propose(1), state_root=Hash32(b"\x01" * 32))
    with pytest.raises(Halt):
        peer.commit(value, b"cert")
    assert peer.head().number == 0


def test_a_block_on_an_old_head_no_longer_verifies() -> None:
    clock, proposer, peer = pair()
    clock.advance(1)
    first = proposer.propose(1)
    assert peer.verify(first)
    peer.commit(first, None)
    assert not peer.verify(first)


def test_blocks_faster_than_one_a_second_stay_valid() -> None:
    clock, proposer, peer = pair()
    for _ in range(30):  # timestamps run ahead of the clock by up to one second per block
        value = proposer.propose(proposer.head().number + 1)
        assert peer.verify(value)
        proposer.commit(value, None)
        peer.commit(value, None)
    assert peer.head().timestamp > clock.now() + 15


def test_blocks_prefetch_their_accounts_trie_paths_and_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proposing and re-executing a block each start a prefetch of its senders', recipients'
    and coinbase's trie paths under the parent's root; with it running, both commit the same
    block, and it had ended by then."""
    started: list[tuple[Node, Hash32, set[Address], Prefetch]] = []
    prefetch = StateDB.prefetch

    def spy(state: StateDB, root: Hash32, addresses: Iterable[Address]) -> Prefetch:
        touched = set(addresses)
        running = prefetch(state, root, touched)
        started.append((next(node for node in nodes if node.state is state), root, touched, running))
        return running

    monkeypatch.setattr(StateDB, "prefetch", spy)
    clock = ManualClock()
    always = StateOptions(prefetch_min_cores=1)  # whatever the cores here
    proposer, peer = (make_node(clock, key, state=always) for key in VALIDATOR_KEYS[:2])
    nodes = (proposer, peer)
    proposer.submit(transfer(0, 0))
    proposer.submit(transfer(1, 0))
    clock.advance(2)
    genesis_root = proposer.head().state_root
    value = proposer.propose(1)
    assert peer.verify(value)
    head = peer.commit(value, None)
    assert proposer.commit(value, None) == head
    touched = {USERS[0], USERS[1], RECIPIENT, head.coinbase}
    assert [(node, root, addresses) for node, root, addresses, _ in started] == [
        (proposer, genesis_root, touched), (peer, genesis_root, touched)]
    assert all(running.done and running.warmed is not None for *_, running in started)


def test_no_prefetch_on_a_host_without_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """With fewer cores than ``prefetch_min_cores``, blocks are built without a prefetch."""

    def refuse(*_args: object) -> Prefetch:
        raise AssertionError("prefetched")

    monkeypatch.setattr(StateDB, "prefetch", refuse)
    clock = ManualClock()
    node = make_node(clock, state=StateOptions(prefetch_min_cores=10_000))
    node.submit(transfer(0, 0))
    clock.advance(1)
    assert node.produce_block().number == 1
