"""Shared pieces of the L1 tests: an embedded L1 with a deployed BatchInbox, and a small chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from web3.contract import Contract

from l1.client import Web3L1Client, deploy_batch_inbox, load_artifact
from l1.codec import batch_digest, order_signatures, sign_batch
from l1.embedded import EmbeddedL1, start_embedded_l1
from l1.types import BatchCommitment, L2BlockData
from primitives.crypto import keccak256, private_key_to_address
from primitives.types import Address, Hash32
from tests.anvil import anvil  # noqa: F401  (the fixture, for test_anvil_*.py)

L2_CHAIN_ID = 4242
GENESIS_ROOT = keccak256(b"test genesis state")
VALIDATOR_KEYS = tuple(keccak256(b"validator %d" % i) for i in range(4))


def validator_address(key: bytes) -> Address:
    return private_key_to_address(key)


@dataclass
class Inbox:
    """A BatchInbox on a fresh embedded L1, with a client for it."""

    l1: EmbeddedL1
    address: Address
    client: Web3L1Client
    contract: Contract

    def sign(self, commitment: BatchCommitment, keys: Sequence[bytes]) -> tuple[bytes, ...]:
        digest = batch_digest(self.client.domain(), commitment)
        return order_signatures(digest, [sign_batch(digest, key) for key in keys])


def deploy_inbox(signer_keys: Sequence[bytes], weights: Sequence[int]) -> Inbox:
    l1 = start_embedded_l1()
    address = deploy_batch_inbox(
        l1.w3,
        l1.deployer_key,
        L2_CHAIN_ID,
        GENESIS_ROOT,
        [validator_address(k) for k in signer_keys],
        weights,
    )
    contract: Any = l1.w3.eth.contract(
        address=l1.w3.to_checksum_address(address), abi=load_artifact()["abi"]
    )
    return Inbox(l1, address, Web3L1Client(l1.w3, address, l1.poster_key), contract)


@pytest.fixture
def inbox() -> Inbox:
    """One validator of weight 1."""
    return deploy_inbox(VALIDATOR_KEYS[:1], [1])


def state_root_of(number: int) -> Hash32:
    return GENESIS_ROOT if number == 0 else keccak256(b"state after block %d" % number)


def make_block(number: int) -> L2BlockData:
    return L2BlockData(
        number=number,
        timestamp=1_700_000_000 + number,
        coinbase=Address(b"\xc0" * 20),
        gas_limit=30_000_000,
        base_fee_per_gas=1_000_000_000 - number,
        transactions=tuple(keccak256(b"tx %d %d" % (number, i)) * 3 for i in range(number % 3)),
    )


@dataclass
class ChainSource:
    """In-test BlockSource: a chain of finalized blocks; tests move ``head``."""

    head: int = 0
    genesis_root: Hash32 = GENESIS_ROOT
    fork_at: int | None = None
    """From this block on, state roots differ from ``state_root_of`` (another chain)."""
    epoch_length: int = 0
    """Blocks per validator-set epoch (0: one epoch forever)."""
    epoch_weights: dict[int, dict[Address, int]] = field(default_factory=dict)
    """The weights of epochs 1, 2, ... (missing: not fixed yet)."""

    def head_number(self) -> int:
        return self.head

    def block_data(self, number: int) -> L2BlockData:
        assert 1 <= number <= self.head, f"block {number} is not finalized (head {self.head})"
        return make_block(number)

    def state_root(self, number: int) -> Hash32:
        assert 0 <= number <= self.head
        if number == 0:
            return self.genesis_root
        if self.fork_at is not None and number >= self.fork_at:
            return keccak256(b"forked " + state_root_of(number))
        return state_root_of(number)

    def epoch_of(self, number: int) -> int:
        return 0 if self.epoch_length == 0 else max(number - 1, 0) // self.epoch_length

    def validators(self, epoch: int) -> dict[Address, int] | None:
        return self.epoch_weights.get(epoch)
