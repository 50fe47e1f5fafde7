"""Signed transactions, bytecode snippets and a small chain for the execution tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import rlp
from eth_account import Account

from executor_gpu.reference import PyEvmExecutor
from executor_gpu.types import BatchResult, BlockEnv
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateDB, StateView
from primitives.crypto import keccak256
from primitives.transactions import Transaction, decode_transaction
from primitives.types import Address, Hash32

CHAIN_ID = 1337
KEYS = [(index + 1).to_bytes(32, "big") for index in range(16)]
ADDRESSES = [Address(bytes.fromhex(Account.from_key(key).address[2:])) for key in KEYS]
COINBASE = Address(b"\xc0" * 20)
BASE_FEE = 7


def sign(
    sender: int,
    nonce: int,
    to: Address | None,
    *,
    value: int = 0,
    data: bytes = b"",
    gas: int = 200_000,
    fee_cap: int = 10,
    tip: int = 2,
    tx_type: int = 2,
    chain_id: int = CHAIN_ID,
) -> Transaction:
    """A transaction signed by eth-account (an implementation independent of ours)."""
    fields: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "gas": gas,
        "value": value,
        "data": data,
        "to": to or b"",
    }
    if tx_type == 2:
        fields.update(type=2, maxFeePerGas=fee_cap, maxPriorityFeePerGas=tip, accessList=[])
    elif tx_type == 1:
        fields.update(type=1, gasPrice=fee_cap, accessList=[])
    else:
        fields["gasPrice"] = fee_cap
    return decode_transaction(bytes(Account.sign_transaction(fields, KEYS[sender]).raw_transaction))


def block_env(number: int = 1, **overrides: Any) -> BlockEnv:
    fields: dict[str, Any] = {
        "number": number,
        "timestamp": 1_700_000_000 + number,
        "coinbase": COINBASE,
        "gas_limit": 30_000_000,
        "base_fee_per_gas": BASE_FEE,
        "chain_id": CHAIN_ID,
        "prev_randao": Hash32(keccak256(b"randao %d" % number)),
        "block_hashes": tuple(
            Hash32(keccak256(b"block %d" % n)) for n in range(number - 1, -1, -1)
        ),
    }
    fields.update(overrides)
    return BlockEnv(**fields)


def create_address(sender: Address, nonce: int) -> Address:
    return Address(keccak256(rlp.encode([sender, nonce]))[12:])


def deploy_code(runtime: bytes) -> bytes:
    """Init code that returns ``runtime``."""
    assert len(runtime) < 256
    return (
        bytes([0x60, len(runtime), 0x80, 0x60, 0x0B, 0x60, 0x00, 0x39, 0x60, 0x00, 0xF3]) + runtime
    )


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


STORE = bytes.fromhex("6000356020355500")
"""sstore(calldata[32:64], calldata[0:32])."""
LOGGER = bytes.fromhex("6020602060003760003560206000a100")
"""log1(data = calldata[32:64], topic = calldata[0:32])."""
REVERTER = bytes.fromhex("600160005560006000fd")
"""sstore(0, 1), then revert."""
ENV_READER = bytes.fromhex(
    "43600052426020524160405248606052446080524660a052600143034060c0523a60e0526101006000f3"
)
"""Returns NUMBER, TIMESTAMP, COINBASE, BASEFEE, PREVRANDAO, CHAINID, BLOCKHASH(NUMBER-1)
and GASPRICE as eight words."""


def self_destruct_to(beneficiary: Address) -> bytes:
    """Code that self-destructs, sending its balance to ``beneficiary``."""
    return b"\x73" + beneficiary + b"\xff"


class Chain:
    """Blocks executed by the reference executor and stored through StateDB on MemoryKV."""

    def __init__(self, alloc: Mapping[Address, GenesisAccount]) -> None:
        self.kv = MemoryKV()
        self.state = StateDB(self.kv)
        self.executor = PyEvmExecutor()
        batch = self.kv.write_batch()
        self.root = self.state.genesis(alloc, batch)
        batch.commit()
        self.number = 0

    @property
    def view(self) -> StateView:
        return self.state.at(self.root)

    def run(self, txs: Sequence[Transaction], **env: Any) -> BatchResult:
        """Execute ``txs`` as the next block; checks StateDB.apply gives the executor's root."""
        self.number += 1
        result = self.executor.execute(self.view, block_env(self.number, **env), txs)
        batch = self.kv.write_batch()
        root = self.state.apply(self.root, result.state_diff, batch)
        assert root == result.state_root, f"StateDB root {root.hex()} != executor root"
        batch.commit()
        self.root = root
        return result


def funded(*extra: tuple[Address, GenesisAccount]) -> dict[Address, GenesisAccount]:
    """Every test key holds 10^21 wei, plus ``extra`` accounts."""
    alloc = {address: GenesisAccount(balance=10**21) for address in ADDRESSES}
    alloc.update(extra)
    return alloc
