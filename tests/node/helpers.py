"""Real Node objects over MemoryKV and the reference executor, and signed transfers for them."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

from eth_account import Account

from executor_gpu.reference import PyEvmExecutor
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateOptions
from node.node import ChainParams, Node
from primitives.clock import Clock
from primitives.crypto import private_key_to_address
from primitives.types import Address
from sequencer.types import PoolConfig

CHAIN_ID = 7331
GENESIS_TIME = 1_700_000_000
BASE_FEE = 1_000_000_000
USER_KEYS = [(0x1000 + i).to_bytes(32, "big") for i in range(4)]
USERS = [private_key_to_address(k) for k in USER_KEYS]
VALIDATOR_KEYS = [(0x2000 + i).to_bytes(32, "big") for i in range(4)]
WEIGHTS = {private_key_to_address(key): 1 for key in VALIDATOR_KEYS}
RECIPIENT = Address(bytes.fromhex("42" * 20))
PARAMS = ChainParams(
    chain_id=CHAIN_ID, gas_limit=30_000_000, initial_base_fee=BASE_FEE,
    genesis_timestamp=GENESIS_TIME, max_txs_per_block=100,
)


@cache
def _reference() -> PyEvmExecutor:
    return PyEvmExecutor()


def make_node(
    clock: Clock, key: bytes = VALIDATOR_KEYS[0], kv: MemoryKV | None = None, epoch_length: int = 0,
    pool: PoolConfig | None = None, state: StateOptions | None = None,
    gas_limit: int = PARAMS.gas_limit, max_txs: int = PARAMS.max_txs_per_block,
) -> Node:
    """A validator of the four VALIDATOR_KEYS (weight 1 each) at genesis (or resumed from
    ``kv``), every user funded with 1,000 ETH."""
    reference = _reference()
    params = replace(PARAMS, epoch_length=epoch_length, gas_limit=gas_limit,
                     max_txs_per_block=max_txs)
    node = Node(kv or MemoryKV(), params, pool or PoolConfig(),
                reference, reference, key, clock, WEIGHTS, state_options=state)
    node.init_or_resume({user: GenesisAccount(balance=10**21) for user in USERS})
    return node


@cache
def transfer(user: int, nonce: int, value: int = 1, chain_id: int = CHAIN_ID) -> bytes:
    """A signed EIP-1559 transfer to RECIPIENT."""
    fields: dict[str, Any] = {
        "chainId": chain_id, "nonce": nonce, "gas": 21_000, "to": "0x" + RECIPIENT.hex(),
        "value": value, "maxFeePerGas": 10 * BASE_FEE, "maxPriorityFeePerGas": 10**9,
    }
    return bytes(Account.sign_transaction(fields, USER_KEYS[user]).raw_transaction)


@cache
def large_call(user: int, nonce: int, size: int = 100_000) -> bytes:
    """A signed EIP-1559 transaction to RECIPIENT carrying ``size`` bytes of call data."""
    fields: dict[str, Any] = {
        "chainId": CHAIN_ID, "nonce": nonce, "gas": 21_000 + 17 * size, "to": "0x" + RECIPIENT.hex(),
        "value": 0, "data": b"\x01" * size, "maxFeePerGas": 10 * BASE_FEE,
        "maxPriorityFeePerGas": 10**9,
    }
    return bytes(Account.sign_transaction(fields, USER_KEYS[user]).raw_transaction)
