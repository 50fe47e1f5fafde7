"""A real Node (MemoryKV, py-evm reference executor and tracer) behind the real RPC app, in
process: for the methods whose answers depend on real execution (gas, access lists, traces)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address
from fastapi.testclient import TestClient

from executor_gpu.reference import PyEvmExecutor
from executor_gpu.tracing import ReferenceTracer
from node.backend import NodeRpcBackend
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount
from node.node import Node
from primitives.clock import ManualClock
from primitives.types import Address
from rpc.server import create_app
from sequencer.types import PoolConfig
from tests.node.helpers import PARAMS, USER_KEYS, USERS, VALIDATOR_KEYS
from tests.rpc.conftest import Rpc

TOKEN_SOURCE = Path(__file__).resolve().parents[1] / "e2e" / "TestToken.sol"
CHAIN_ID = PARAMS.chain_id


class RealChain:
    """A single-validator node; ``mine`` produces a block from the pool."""

    def __init__(self, alloc: dict[Address, GenesisAccount] | None = None) -> None:
        reference = PyEvmExecutor()
        self.clock = ManualClock()
        self.node = Node(MemoryKV(), PARAMS, PoolConfig(), reference, reference,
                         VALIDATOR_KEYS[0], self.clock, tracer=ReferenceTracer())
        genesis = {user: GenesisAccount(balance=10**21) for user in USERS}
        genesis.update(alloc or {})
        self.node.init_or_resume(genesis)
        self.backend = NodeRpcBackend(self.node, None)
        self.client = TestClient(create_app(self.backend))
        self.rpc = Rpc(self.client)

    def mine(self) -> int:
        """Produce the next block; its number."""
        self.clock.advance(1)
        return self.node.produce_block().number

    def send(self, user: int, **fields: Any) -> str:
        """Sign ``fields`` with user ``user``'s key (nonce, chain id and fees filled in) and
        send it; the transaction hash."""
        address = "0x" + USERS[user].hex()
        fields.setdefault("chainId", CHAIN_ID)
        fields.setdefault("nonce", int(self.rpc("eth_getTransactionCount", address, "pending"), 16))
        if "gasPrice" not in fields and fields.get("type", 2) == 2:
            fields.setdefault("maxFeePerGas", 10 * PARAMS.initial_base_fee)
            fields.setdefault("maxPriorityFeePerGas", 10**9)
        # eth-account insists on EIP-55 spellings.
        if fields.get("to"):
            fields["to"] = to_checksum_address(fields["to"])
        fields["accessList"] = [
            {**entry, "address": to_checksum_address(entry["address"])}
            for entry in fields.get("accessList", [])
        ]
        if fields.get("type") is None and "gasPrice" in fields:  # legacy
            fields.pop("type", None)
            del fields["accessList"]
        raw = Account.sign_transaction(fields, USER_KEYS[user]).raw_transaction
        result: str = self.rpc("eth_sendRawTransaction", "0x" + bytes(raw).hex())
        return result
