"""BatchInbox: batch data in several parts, and validator set updates (with their revert paths)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from l1.api import L1Rejected
from l1.client import Web3L1Client
from l1.codec import (
    DATA_PIECE_BYTES,
    batch_data_hash,
    order_signatures,
    sign_batch,
    split_batch_data,
    validators_digest,
)
from l1.types import BatchCommitment, L1Call, ValidatorSet
from primitives.crypto import private_key_to_address
from primitives.types import Address
from tests.l1.conftest import VALIDATOR_KEYS, Inbox, deploy_inbox, state_root_of, validator_address

KEY = VALIDATOR_KEYS[0]


def rejected(error: str) -> Any:
    return pytest.raises(L1Rejected, match="^" + re.escape(error) + "$")


def commitment_for(number: int, data: bytes) -> BatchCommitment:
    return BatchCommitment(
        batch_number=number,
        prev_state_root=state_root_of(number - 1),
        state_root=state_root_of(number),
        first_block=number,
        last_block=number,
        data_hash=batch_data_hash(data),
    )


def call(inbox: Inbox, function: str, *args: Any) -> L1Call:
    data = bytes.fromhex(inbox.contract.encode_abi(function, list(args))[2:])
    return L1Call(data=data, gas=5_000_000, what=function)


def transact(inbox: Inbox, function: str, *args: Any) -> None:
    """Run a call from the poster account, failing with the contract's reason if it reverts."""
    inbox.client.simulate(call(inbox, function, *args))
    inbox.contract.functions[function](*args).transact(
        {"from": inbox.l1.w3.eth.account.from_key(inbox.l1.poster_key).address}
    )


def test_data_hash_matches_the_contract_and_ignores_the_cut(inbox: Inbox) -> None:
    for size in (0, 1, 31, DATA_PIECE_BYTES - 1, DATA_PIECE_BYTES, DATA_PIECE_BYTES + 1, 3 * DATA_PIECE_BYTES + 5):
        payload = os.urandom(size)
        assert inbox.contract.functions.dataHashOf(payload).call() == batch_data_hash(payload)
    payload = os.urandom(5 * DATA_PIECE_BYTES + 7)
    for max_part in (DATA_PIECE_BYTES, 2 * DATA_PIECE_BYTES + 100, 10 * DATA_PIECE_BYTES):
        parts = split_batch_data(payload, max_part)
        assert b"".join(parts) == payload
        assert all(len(p) % DATA_PIECE_BYTES == 0 and 0 < len(p) <= max_part for p in parts[:-1])
    with pytest.raises(ValueError):
        split_batch_data(payload, DATA_PIECE_BYTES - 1)


@pytest.mark.parametrize("size", [3 * DATA_PIECE_BYTES, 3 * DATA_PIECE_BYTES + 1000, 9 * DATA_PIECE_BYTES - 1])
def test_large_batch_goes_in_parts_and_comes_back_whole(inbox: Inbox, size: int) -> None:
    client = Web3L1Client(inbox.l1.w3, inbox.address, inbox.l1.poster_key, max_part_bytes=2 * DATA_PIECE_BYTES)
    data = os.urandom(size)
    commitment = commitment_for(1, data)
    signatures = inbox.sign(commitment, (KEY,))
    calls = client.batch_calls(commitment, data, signatures)
    assert len(calls) >= 2 and all(len(c.data) < 3 * DATA_PIECE_BYTES for c in calls)
    client.commit_batch(commitment, data, signatures)
    committed = client.latest_batch()
    assert committed is not None and committed.commitment == commitment
    assert Web3L1Client(inbox.l1.w3, inbox.address).batch_data(committed) == data


def test_part_zero_starts_over_and_other_senders_do_not_interfere(inbox: Inbox) -> None:
    piece = os.urandom(DATA_PIECE_BYTES)
    stale = os.urandom(DATA_PIECE_BYTES)
    tail = os.urandom(100)
    transact(inbox, "appendBatchData", 1, 0, stale)
    transact(inbox, "appendBatchData", 1, 1, stale)
    transact(inbox, "appendBatchData", 1, 0, piece)  # a restarted poster sends again from part 0
    # Someone else's parts for the same batch stay theirs.
    inbox.contract.functions.appendBatchData(1, 0, stale).transact(
        {"from": inbox.l1.w3.eth.account.from_key(inbox.l1.deployer_key).address}
    )
    data = piece + tail
    commitment = commitment_for(1, data)
    signatures = list(inbox.sign(commitment, (KEY,)))
    transact(inbox, "commitBatch", 1, commitment.prev_state_root, commitment.state_root, 1, 1, 1, tail, signatures)
    committed = inbox.client.latest_batch()
    assert committed is not None and committed.commitment == commitment
    assert inbox.client.batch_data(committed) == data


def test_part_reverts(inbox: Inbox) -> None:
    piece = os.urandom(DATA_PIECE_BYTES)
    with rejected("PartNotPieceAligned(length=0)"):
        transact(inbox, "appendBatchData", 1, 0, b"")
    with rejected(f"PartNotPieceAligned(length={DATA_PIECE_BYTES + 1})"):
        transact(inbox, "appendBatchData", 1, 0, piece + b"x")
    with rejected("PartOutOfOrder(expected=0, got=1)"):
        transact(inbox, "appendBatchData", 1, 1, piece)
    transact(inbox, "appendBatchData", 1, 0, piece)
    with rejected("PartOutOfOrder(expected=1, got=2)"):
        transact(inbox, "appendBatchData", 1, 2, piece)
    commitment = commitment_for(1, piece)
    signatures = list(inbox.sign(commitment, (KEY,)))
    args = (commitment.prev_state_root, commitment.state_root, 1, 1)
    with rejected("PartOutOfOrder(expected=1, got=2)"):
        transact(inbox, "commitBatch", 1, *args, 2, b"", signatures)
    transact(inbox, "commitBatch", 1, *args, 1, b"", signatures)
    with rejected("BatchAlreadyCommitted(batchNumber=1)"):
        transact(inbox, "appendBatchData", 1, 0, piece)
    # The parts were consumed: committing batch 2 with "part 1" finds none.
    second = commitment_for(2, piece)
    with rejected("PartOutOfOrder(expected=0, got=1)"):
        transact(inbox, "commitBatch", 2, second.prev_state_root, second.state_root, 2, 2, 1, b"",
                 list(inbox.sign(second, (KEY,))))


def sign_update(inbox: Inbox, epoch: int, signers: list[Address], weights: list[int], keys: tuple[bytes, ...]) -> list[bytes]:
    digest = validators_digest(inbox.client.domain(), epoch, signers, weights)
    return list(order_signatures(digest, [sign_batch(digest, key) for key in keys]))


def test_validator_set_update_needs_the_current_quorum_once() -> None:
    old = VALIDATOR_KEYS[:3]
    new = VALIDATOR_KEYS[2:4]
    inbox = deploy_inbox(old, [1, 1, 1])
    functions = inbox.contract.functions
    signers = [validator_address(k) for k in new]
    weights = [2, 5]
    assert functions.validatorsDigest(1, signers, weights).call() == validators_digest(
        inbox.client.domain(), 1, signers, weights
    )
    with rejected("InsufficientWeight(signed=2, total=3)"):
        transact(inbox, "updateValidators", 1, signers, weights, sign_update(inbox, 1, signers, weights, old[:2]))
    with rejected(f"UnknownSigner(index=0, signer=0x{private_key_to_address(new[1]).hex()})"):
        transact(inbox, "updateValidators", 1, signers, weights, sign_update(inbox, 1, signers, weights, new[1:]))
    with rejected("EpochMismatch(expected=1, got=2)"):
        transact(inbox, "updateValidators", 2, signers, weights, sign_update(inbox, 2, signers, weights, old))
    signed = sign_update(inbox, 1, signers, weights, old)
    # Signatures cover the set: another weight list recovers other signers.
    with pytest.raises(L1Rejected, match="^UnknownSigner"):
        transact(inbox, "updateValidators", 1, signers, [2, 6], signed)
    assert inbox.client.validator_set() == ValidatorSet(0, tuple((validator_address(k), 1) for k in old))
    new_set = ValidatorSet(1, tuple(zip(signers, weights)))
    inbox.client.update_validators(new_set, signed)
    assert inbox.client.validator_set() == new_set
    assert functions.totalWeight().call() == new_set.total_weight == 7
    assert functions.weightOf(validator_address(old[0])).call() == 0
    with rejected("EpochMismatch(expected=2, got=1)"):  # no replay
        transact(inbox, "updateValidators", 1, signers, weights, signed)

    # Batches now need the new set: the old majority no longer signs for them.
    data = b"\x01batch"
    commitment = commitment_for(1, data)
    with pytest.raises(L1Rejected, match="^UnknownSigner"):
        inbox.client.commit_batch(commitment, data, inbox.sign(commitment, old[:2]))
    inbox.client.commit_batch(commitment, data, inbox.sign(commitment, new))


@pytest.mark.parametrize(
    "signers, weights, error",
    [
        ([], [], "EmptyValidatorSet()"),
        ([validator_address(KEY)], [], "LengthMismatch(signers=1, weights=0)"),
        ([validator_address(KEY)], [0], f"ZeroWeight(validator=0x{validator_address(KEY).hex()})"),
    ],
)
def test_update_to_an_invalid_set_reverts(inbox: Inbox, signers: list[Address], weights: list[int], error: str) -> None:
    with rejected(error):
        transact(inbox, "updateValidators", 1, signers, weights, sign_update(inbox, 1, signers, weights, (KEY,)))
