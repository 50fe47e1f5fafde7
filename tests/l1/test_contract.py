"""BatchInbox against the embedded L1: views, digest, commits, and every revert path."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils.abi import function_signature_to_4byte_selector
from web3.exceptions import ContractCustomError

from l1.api import L1Rejected
from l1.client import Web3L1Client, deploy_batch_inbox
from l1.codec import batch_data_hash, batch_digest, decode_batch_data, encode_batch_data
from l1.embedded import EmbeddedL1, start_embedded_l1
from l1.types import BatchCommitment, BatchDomain
from primitives.crypto import SECP256K1_N, keccak256
from primitives.errors import Halt, RetryLater
from primitives.types import ZERO_ADDRESS, Address, Hash32
from tests.l1.conftest import (
    GENESIS_ROOT,
    L2_CHAIN_ID,
    VALIDATOR_KEYS,
    Inbox,
    deploy_inbox,
    make_block,
    state_root_of,
    validator_address,
)

KEY = VALIDATOR_KEYS[0]


def batch(
    number: int, first: int, last: int, prev_root: Hash32 | None = None
) -> tuple[BatchCommitment, bytes]:
    """Commitment and data for blocks first..last as batch ``number``."""
    data = encode_batch_data(make_block(n) for n in range(first, last + 1))
    commitment = BatchCommitment(
        batch_number=number,
        prev_state_root=state_root_of(first - 1) if prev_root is None else prev_root,
        state_root=state_root_of(last),
        first_block=first,
        last_block=last,
        data_hash=batch_data_hash(data),
    )
    return commitment, data


def commit(
    inbox: Inbox, commitment: BatchCommitment, data: bytes, keys: tuple[bytes, ...] = (KEY,)
) -> None:
    inbox.client.commit_batch(commitment, data, inbox.sign(commitment, keys))


def rejected(error: str) -> Any:
    return pytest.raises(L1Rejected, match="^" + re.escape(error) + "$")


@pytest.fixture(scope="module")
def one_batch() -> Inbox:
    """One validator, batch 1 (blocks 1..2) committed. Reverts leave it unchanged."""
    inbox = deploy_inbox((KEY,), [1])
    commit(inbox, *batch(1, 1, 2))
    return inbox


@pytest.fixture(scope="module")
def l1() -> EmbeddedL1:
    return start_embedded_l1()


def test_views_after_deploy() -> None:
    keys = VALIDATOR_KEYS[:3]
    inbox = deploy_inbox(keys, [5, 1, 2])
    views = inbox.contract.functions
    signers, weights = views.validators().call()
    assert [bytes.fromhex(s[2:]) for s in signers] == [validator_address(k) for k in keys]
    assert weights == [5, 1, 2]
    assert views.totalWeight().call() == 8
    assert views.weightOf(validator_address(keys[2])).call() == 2
    assert views.weightOf(validator_address(VALIDATOR_KEYS[3])).call() == 0
    assert views.l2ChainId().call() == L2_CHAIN_ID
    assert views.genesisStateRoot().call() == GENESIS_ROOT
    assert views.latestBatchNumber().call() == 0
    assert views.getBatch(0).call()[:4] == (GENESIS_ROOT, bytes(32), 0, 0)
    assert inbox.client.latest_batch() is None
    assert inbox.client.batch(0) is None and inbox.client.batch(1) is None
    assert inbox.client.domain() == BatchDomain(inbox.l1.chain_id, inbox.address, L2_CHAIN_ID)


def test_digest_matches_contract(one_batch: Inbox) -> None:
    commitment, _ = batch(7, 10, 12)
    c = commitment
    on_chain = one_batch.contract.functions.batchDigest(
        c.batch_number, c.prev_state_root, c.state_root, c.first_block, c.last_block, c.data_hash
    ).call()
    domain = one_batch.client.domain()
    assert batch_digest(domain, commitment) == on_chain
    # Every domain field is bound: another contract, L1 or L2 gives another digest.
    for other in (
        BatchDomain(domain.l1_chain_id + 1, domain.contract, domain.l2_chain_id),
        BatchDomain(domain.l1_chain_id, Address(b"\x01" * 20), domain.l2_chain_id),
        BatchDomain(domain.l1_chain_id, domain.contract, domain.l2_chain_id + 1),
    ):
        assert batch_digest(other, commitment) != on_chain


def test_commits_are_stored_emitted_and_carry_the_data() -> None:
    inbox = deploy_inbox((KEY,), [1])
    first, first_data = batch(1, 1, 3)
    second, second_data = batch(2, 4, 4)
    commit(inbox, first, first_data)
    tx_hash = inbox.client.commit_batch(second, second_data, inbox.sign(second, (KEY,)))

    committed = inbox.client.batch(2)
    assert committed is not None and committed.commitment == second
    assert committed.l1_tx_hash == tx_hash
    assert inbox.client.latest_batch() == committed
    earlier = inbox.client.batch(1)
    assert earlier is not None and earlier.commitment == first
    assert inbox.client.batch(3) is None
    stored = inbox.contract.functions.getBatch(2).call()
    assert stored == (second.state_root, second.data_hash, 4, 4, committed.l1_block_number)

    # A watcher (read-only client, no key) finds the block data on L1.
    watcher = Web3L1Client(inbox.l1.w3, inbox.address)
    assert decode_batch_data(watcher.batch_data(committed)) == (make_block(4),)
    assert watcher.batch_data(earlier) == first_data
    forged = dataclasses.replace(committed, data_hash=keccak256(b"other data"))
    with pytest.raises(RetryLater, match="do not match"):
        watcher.batch_data(forged)
    with pytest.raises(Halt, match="read-only"):
        watcher.commit_batch(*batch(3, 5, 5), ())




@pytest.mark.parametrize(
    "signers, weights, error",
    [
        ([], [], "EmptyValidatorSet()"),
        ([validator_address(KEY)], [], "LengthMismatch(signers=1, weights=0)"),
        ([ZERO_ADDRESS], [1], "ZeroAddressValidator(index=0)"),
        (
            [validator_address(KEY)] * 2,
            [1, 1],
            f"DuplicateValidator(validator=0x{validator_address(KEY).hex()})",
        ),
        ([validator_address(KEY)], [0], f"ZeroWeight(validator=0x{validator_address(KEY).hex()})"),
    ],
)
def test_constructor_reverts(
    l1: EmbeddedL1, signers: list[Address], weights: list[int], error: str
) -> None:
    with rejected(error):
        deploy_batch_inbox(l1.w3, l1.deployer_key, L2_CHAIN_ID, GENESIS_ROOT, signers, weights)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: batch(3, 3, 3), "BatchNumberMismatch(expected=2, got=3)"),
        (lambda: batch(1, 1, 2), "BatchNumberMismatch(expected=2, got=1)"),
        (
            lambda: batch(2, 3, 3, prev_root=GENESIS_ROOT),
            f"PrevStateRootMismatch(expected=0x{state_root_of(2).hex()}, got=0x{GENESIS_ROOT.hex()})",
        ),
        (
            lambda: batch(2, 4, 5, prev_root=state_root_of(2)),
            "FirstBlockMismatch(expected=3, got=4)",
        ),
        (
            lambda: batch(2, 2, 3, prev_root=state_root_of(2)),
            "FirstBlockMismatch(expected=3, got=2)",
        ),
        (
            lambda: batch(2, 3, 2, prev_root=state_root_of(2)),
            "EmptyBlockRange(firstBlock=3, lastBlock=2)",
        ),
    ],
)
def test_continuity_reverts(
    one_batch: Inbox, make: Callable[[], tuple[BatchCommitment, bytes]], error: str
) -> None:
    with rejected(error):
        commit(one_batch, *make())
    assert one_batch.client.latest_batch() is not None
    assert one_batch.contract.functions.latestBatchNumber().call() == 1


def _malleate(signature: bytes) -> bytes:
    """The other valid-looking signature for the same key and digest (high s, flipped v)."""
    s = SECP256K1_N - int.from_bytes(signature[32:64], "big")
    return signature[:32] + s.to_bytes(32, "big") + bytes([55 - signature[64]])


@pytest.mark.parametrize(
    "tamper, error",
    [
        (lambda sig: sig[:64], "InvalidSignatureLength(index=0, length=64)"),
        (lambda sig: sig + b"\x00", "InvalidSignatureLength(index=0, length=66)"),
        (lambda sig: sig[:64] + b"\x01", "InvalidSignature(index=0)"),
        (_malleate, "InvalidSignature(index=0)"),
        (lambda sig: bytes(32) + sig[32:], "InvalidSignature(index=0)"),
    ],
)
def test_malformed_signature_reverts(
    one_batch: Inbox, tamper: Callable[[bytes], bytes], error: str
) -> None:
    commitment, data = batch(2, 3, 4)
    (signature,) = one_batch.sign(commitment, (KEY,))
    with rejected(error):
        one_batch.client.commit_batch(commitment, data, [tamper(signature)])


def test_non_validator_and_wrong_data_revert(one_batch: Inbox) -> None:
    commitment, data = batch(2, 3, 4)
    outsider = VALIDATOR_KEYS[3]
    with rejected(f"UnknownSigner(index=0, signer=0x{validator_address(outsider).hex()})"):
        commit(one_batch, commitment, data, (outsider,))
    # The contract hashes the calldata itself: other data than what was signed recovers a stranger.
    with pytest.raises(L1Rejected, match=r"^UnknownSigner\(index=0, signer="):
        commit(one_batch, commitment, encode_batch_data([make_block(3)]))


def test_signers_must_be_strictly_ascending() -> None:
    keys = VALIDATOR_KEYS[:3]
    inbox = deploy_inbox(keys, [1, 1, 1])
    commitment, data = batch(1, 1, 1)
    ordered = inbox.sign(commitment, keys)
    with rejected("SignersNotAscending(index=1)"):
        inbox.client.commit_batch(commitment, data, [ordered[1], ordered[0], ordered[2]])
    with rejected("SignersNotAscending(index=2)"):
        inbox.client.commit_batch(commitment, data, [ordered[0], ordered[1], ordered[1]])
    inbox.client.commit_batch(commitment, data, ordered)
    assert inbox.client.latest_batch() is not None


def test_quorum_needs_more_than_two_thirds_of_weight() -> None:
    heavy, *light = VALIDATOR_KEYS
    inbox = deploy_inbox(VALIDATOR_KEYS, [3, 1, 1, 1])  # total 6: quorum needs weight 5
    commitment, data = batch(1, 1, 1)
    with rejected("InsufficientWeight(signed=0, total=6)"):
        inbox.client.commit_batch(commitment, data, [])
    with rejected("InsufficientWeight(signed=3, total=6)"):
        commit(inbox, commitment, data, (heavy,))
    with rejected("InsufficientWeight(signed=4, total=6)"):  # exactly 2/3 is not enough
        commit(inbox, commitment, data, (heavy, light[0]))
    with rejected("InsufficientWeight(signed=3, total=6)"):
        commit(inbox, commitment, data, tuple(light))
    commit(inbox, commitment, data, (heavy, light[0], light[2]))
    committed = inbox.client.latest_batch()
    assert committed is not None and committed.commitment == commitment


def test_get_batch_of_uncommitted_number_reverts(one_batch: Inbox) -> None:
    with pytest.raises(ContractCustomError) as caught:
        one_batch.contract.functions.getBatch(2).call()
    selector = function_signature_to_4byte_selector("UnknownBatch(uint256)")
    assert caught.value.data == "0x" + selector.hex() + (2).to_bytes(32, "big").hex()
