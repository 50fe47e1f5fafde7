"""GPU weight proofs carried by blocks: what a block may carry, and the weights that follow."""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest

from executor_gpu.challenge import run_challenge
from l1.codec import decode_batch_data, encode_batch_data
from l1.types import L2BlockData
from node.blocks import decode_block, encode_block, proofs_commitment
from node.node import Node
from primitives.clock import ManualClock
from primitives.crypto import keccak256, private_key_to_address, sign_hash
from primitives.errors import InvalidInput
from primitives.types import Hash32
from sequencer.weights import (
    Commitment,
    challenge_key,
    decode_proof,
    encode_proof,
    make_proof,
    proof_digest,
)
from tests.node.helpers import CHAIN_ID, VALIDATOR_KEYS, make_node

EPOCH = 2
PRODUCTS = 16


@cache
def proof(index: int, seed: Hash32, epoch: int = 0) -> bytes:
    """Validator ``index``'s proof of PRODUCTS products (CPU) for ``epoch`` and ``seed``."""
    key = challenge_key(CHAIN_ID, epoch, seed, private_key_to_address(VALIDATOR_KEYS[index]))
    commitment = Commitment()
    clock = ManualClock()
    run_challenge(key, clock.now() + 1, clock, device="cpu", on_batch=commitment.add,
                  max_products=PRODUCTS)
    return encode_proof(make_proof(commitment, key, CHAIN_ID, epoch, seed, VALIDATOR_KEYS[index]))


def pair(epoch_length: int = EPOCH) -> tuple[ManualClock, Node, Node]:
    clock = ManualClock()
    return (clock, make_node(clock, VALIDATOR_KEYS[0], epoch_length=epoch_length),
            make_node(clock, VALIDATOR_KEYS[1], epoch_length=epoch_length))


def test_a_block_carries_valid_proofs_once_and_they_become_the_next_epochs_weights() -> None:
    clock, proposer, peer = pair()
    seed = proposer.head().hash  # epoch 0's seed: the genesis hash
    clock.advance(1)
    first = proposer.propose(1, [proof(0, seed), proof(1, seed)])
    block = decode_block(first)
    assert len(block.proofs) == 2 and block.header.extra_data == proofs_commitment(block.proofs)
    assert peer.verify(first)
    for node in (proposer, peer):
        node.commit(first, None)
    # The same validators' proofs are not carried twice in an epoch.
    second = proposer.propose(2, [proof(0, seed), proof(2, seed)])
    assert [decode_proof(p).validator for p in decode_block(second).proofs] == [
        private_key_to_address(VALIDATOR_KEYS[2])
    ]
    assert peer.verify(second)
    for node in (proposer, peer):
        node.commit(second, None)
        assert node.epochs.weights(1) == {
            private_key_to_address(VALIDATOR_KEYS[i]): PRODUCTS for i in range(3)
        }
        assert node.epochs.weights(0) == {
            private_key_to_address(key): 1 for key in VALIDATOR_KEYS
        }
    # Epoch 1 carried nothing: epoch 2 keeps epoch 1's weights.
    for height in (3, 4):
        value = proposer.propose(height)
        peer.commit(value, None)
        proposer.commit(value, None)
    assert peer.epochs.weights(2) == peer.epochs.weights(1)


def test_blocks_with_wrong_proofs_do_not_verify() -> None:
    clock, proposer, peer = pair()
    seed = proposer.head().hash
    clock.advance(1)
    honest = decode_block(proposer.propose(1))
    good = proof(0, seed)
    forged = dataclasses.replace(decode_proof(good), products=PRODUCTS * 1000)
    wrong = [
        [encode_proof(forged)],  # claims work it did not do (and its signature breaks)
        [good, good],  # one validator twice
        [proof(0, seed, epoch=1)],  # another epoch's
        [b"\x01\x02"],  # not a proof
    ]
    for proofs in wrong:
        header = dataclasses.replace(honest.header, extra_data=proofs_commitment(proofs))
        assert not peer.verify(encode_block(header, honest.transactions, proofs))
    # The commitment in the header must match what the block carries.
    assert not peer.verify(encode_block(honest.header, honest.transactions, [good]))
    # A proposer does not carry what does not verify.
    assert decode_block(proposer.propose(1, [encode_proof(forged), b"junk"])).proofs == ()


def test_a_chain_without_epochs_carries_no_proofs() -> None:
    clock, proposer, peer = pair(epoch_length=0)
    seed = proposer.head().hash
    clock.advance(1)
    honest = decode_block(proposer.propose(1, [proof(0, seed)]))
    assert honest.proofs == ()
    proofs = [proof(0, seed)]
    header = dataclasses.replace(honest.header, extra_data=proofs_commitment(proofs))
    assert not peer.verify(encode_block(header, honest.transactions, proofs))


def test_l1_block_data_carries_the_proofs_so_a_replay_derives_the_same_blocks_and_weights() -> None:
    clock, proposer, _ = pair()
    watcher = make_node(clock, VALIDATOR_KEYS[3], epoch_length=EPOCH)
    seed = proposer.head().hash
    for height in (1, 2):
        clock.advance(1)
        proofs = [proof(0, seed), proof(1, seed)] if height == 1 else []
        proposer.commit(proposer.propose(height, proofs), None)
    posted = decode_batch_data(encode_batch_data([proposer.block_data(n) for n in (1, 2)]))
    assert len(posted[0].proofs) == 2
    for block in posted:
        header = proposer.chain.header(block.number)
        assert header is not None and watcher.replay(block).hash == header.hash
    assert watcher.epochs.weights(1) == proposer.epochs.weights(1) != watcher.epochs.weights(0)
    # Without the proofs the replayed header differs: its extra_data commits to them.
    stripped = dataclasses.replace(posted[0], proofs=())
    other = make_node(clock, VALIDATOR_KEYS[3], epoch_length=EPOCH)
    first = proposer.chain.header(1)
    assert first is not None and other.replay(stripped).hash != first.hash


def test_an_unwound_window_is_derived_again_from_the_blocks_that_replace_it() -> None:
    # A watcher's chain unwinds on an L1 reorg: the weights and seeds cached from the
    # unwound blocks go with them, and the replacing blocks decide the epoch again.
    clock, proposer, _ = pair()
    other = make_node(clock, VALIDATOR_KEYS[2], epoch_length=EPOCH)
    watcher = make_node(clock, VALIDATOR_KEYS[3], epoch_length=EPOCH)
    seed = proposer.head().hash
    first, second = [], []
    for height in (1, 2):
        clock.advance(1)
        first.append(proposer.propose(height, [proof(0, seed)] if height == 1 else []))
        proposer.commit(first[-1], None)
        second.append(other.propose(height, [proof(2, seed)] if height == 1 else []))
        other.commit(second[-1], None)
    for value in first:
        watcher.replay(watcher_block(proposer, value))
    before = (watcher.epochs.weights(1), watcher.epochs.seed(1))
    assert before[0] == {private_key_to_address(VALIDATOR_KEYS[0]): PRODUCTS}
    batch = watcher.kv.write_batch()
    genesis = watcher.chain.header(0)
    assert genesis is not None
    watcher.chain.stage_unwind(batch, 0)
    watcher.state.stage_unwind(batch, 0, genesis.state_root)
    batch.commit()
    watcher.forget_head()
    for value in second:
        watcher.replay(watcher_block(other, value))
    after = (watcher.epochs.weights(1), watcher.epochs.seed(1))
    assert after == (other.epochs.weights(1), other.epochs.seed(1))
    assert after[0] == {private_key_to_address(VALIDATOR_KEYS[2]): PRODUCTS} != before[0]
    assert watcher.chain.proofs(1) == decode_block(second[0]).proofs


def watcher_block(node: Node, value: bytes) -> L2BlockData:
    """The L1 form of a block ``node`` committed (what a watcher replays)."""
    return node.block_data(decode_block(value).header.number)


def test_a_seed_reveal_must_open_the_commitment_of_the_epoch_before() -> None:
    clock, proposer, _ = pair()
    genesis = proposer.head().hash
    for height in (1, 2):  # epoch 0 carries validator 0's proof: its commitment for epoch 1
        clock.advance(1)
        proposer.commit(proposer.propose(height, [proof(0, genesis)] if height == 1 else []), None)
    seed = proposer.epochs.seed(1)
    honest = decode_proof(proof(0, seed, epoch=1))
    assert keccak256(honest.reveal) == decode_proof(proof(0, genesis)).commit
    assert proposer.epochs.verified(encode_proof(honest), 1) == honest.validator
    # The same proof revealing anything else (signed properly) earns nothing.
    other = dataclasses.replace(honest, reveal=b"\x01" * 32, signature=b"")
    parity, r, s = sign_hash(proof_digest(CHAIN_ID, other), VALIDATOR_KEYS[0])
    forged = dataclasses.replace(other, signature=r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([parity]))
    with pytest.raises(InvalidInput, match="does not open"):
        proposer.epochs.verified(encode_proof(forged), 1)
    # A validator without a proof in epoch 0 committed to nothing: its reveal is not checked,
    # and it does not count in the seed of epoch 2.
    assert proposer.epochs.verified(proof(1, seed, epoch=1), 1) == private_key_to_address(VALIDATOR_KEYS[1])
