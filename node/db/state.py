"""Ethereum state (accounts, code, storage) over the KV seam, with Merkle-Patricia roots.

Writes go through py-evm's own ``AccountDB`` over an adapter onto the KV, so the
roots are by construction the ones py-evm computes. Trie nodes and code are
stored content-addressed under ``schema.state_node_key`` and never deleted: every
past root stays readable (archive node).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import rlp
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.rlp.accounts import Account as RlpAccount
from trie.exceptions import MissingTrieNode
from trie.hexary import HexaryTrie

from executor_gpu.types import Account, AccountChange, StateDiff
from node.db import schema
from node.db.api import KV, KVReader, WriteBatch
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt, InvalidInput
from primitives.types import Address, Hash32

EMPTY_CODE_HASH = keccak256(b"")
"""Code hash of an account without code."""


@dataclass(frozen=True)
class GenesisAccount:
    """An account of the genesis allocation."""

    balance: int = 0
    """Wei held at genesis."""
    nonce: int = 0
    """Starting nonce."""
    code: bytes = b""
    """Contract code (empty for an externally owned account)."""
    storage: Mapping[int, int] = field(default_factory=dict)
    """Initial storage slots (zero values are ignored)."""


class NodeStore(Mapping[bytes, bytes]):
    """Trie nodes and code by hash, read from a KV (or a batch, to see its pending writes)."""

    def __init__(self, reader: KVReader) -> None:
        self._reader = reader

    def __getitem__(self, node_hash: bytes) -> bytes:
        value = self._reader.get(schema.state_node_key(node_hash))
        if value is None:
            raise KeyError(node_hash)
        return value

    def __contains__(self, node_hash: object) -> bool:
        return isinstance(node_hash, bytes) and (
            self._reader.get(schema.state_node_key(node_hash)) is not None
        )

    def __iter__(self) -> Iterator[bytes]:
        prefix_length = len(schema.STATE_NODE_PREFIX)
        for key, _ in self._reader.iterate(schema.STATE_NODE_PREFIX):
            yield key[prefix_length:]

    def __len__(self) -> int:
        return sum(1 for _ in self._reader.iterate(schema.STATE_NODE_PREFIX))


class _BatchNodeDB(BaseDB):
    """py-evm's database API onto a write batch: reads see pending writes, writes are staged."""

    def __init__(self, batch: WriteBatch) -> None:
        self._batch = batch

    def __getitem__(self, key: bytes) -> bytes:
        value = self._batch.get(schema.state_node_key(key))
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._batch.put(schema.state_node_key(key), value)

    def __delitem__(self, key: bytes) -> None:
        # Content-addressed nodes may be shared by other roots; AccountDB never deletes.
        raise Halt(f"refusing to delete state node {key.hex()}: the state store is append-only")

    def _exists(self, key: bytes) -> bool:
        return self._batch.get(schema.state_node_key(key)) is not None


class StateView:
    """Read-only state at one root; implements executor_gpu.api.StateReader."""

    def __init__(self, reader: KVReader, state_root: Hash32) -> None:
        self._root = state_root
        self._nodes = NodeStore(reader)
        self._trie = HexaryTrie(self._nodes, state_root)

    @property
    def state_root(self) -> Hash32:
        return self._root

    @property
    def node_store(self) -> Mapping[bytes, bytes]:
        return self._nodes

    def get_account(self, address: Address) -> Account | None:
        encoded = self._lookup(self._trie, keccak256(address))
        if not encoded:
            return None
        account = rlp.decode(encoded, sedes=RlpAccount)
        return Account(
            nonce=account.nonce,
            balance=account.balance,
            storage_root=Hash32(account.storage_root),
            code_hash=Hash32(account.code_hash),
        )

    def get_code(self, address: Address) -> bytes:
        account = self.get_account(address)
        if account is None or account.code_hash == EMPTY_CODE_HASH:
            return b""
        try:
            return self._nodes[account.code_hash]
        except KeyError:
            raise Halt(f"code {account.code_hash.hex()} of {address.hex()} is missing") from None

    def get_storage(self, address: Address, slot: int) -> int:
        account = self.get_account(address)
        if account is None or account.storage_root == EMPTY_ROOT:
            return 0
        storage = HexaryTrie(self._nodes, account.storage_root)
        encoded = self._lookup(storage, keccak256(slot.to_bytes(32, "big")))
        return rlp.decode(encoded, sedes=rlp.sedes.big_endian_int) if encoded else 0

    def _lookup(self, trie: HexaryTrie, key: bytes) -> bytes:
        try:
            value: bytes = trie.get(key)
        except MissingTrieNode as exc:
            raise Halt(f"state trie node missing under root {self._root.hex()}: {exc}") from exc
        return value


class StateDB:
    """The node's state: views at any past root, and diffs applied into a block's batch."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv

    def at(self, state_root: Hash32, reader: KVReader | None = None) -> StateView:
        """The state at ``state_root``; pass a pending batch as ``reader`` to see its writes."""
        source = self._kv if reader is None else reader
        if state_root != EMPTY_ROOT and source.get(schema.state_node_key(state_root)) is None:
            raise InvalidInput(f"unknown state root {state_root.hex()}")
        return StateView(source, state_root)

    def apply(self, parent_root: Hash32, diff: StateDiff, batch: WriteBatch) -> Hash32:
        """Stage the state after ``diff`` into ``batch`` (the caller commits); its root."""
        accounts = AccountDB(AtomicDB(_BatchNodeDB(batch)), parent_root)
        for address, change in diff.accounts.items():
            if change is None:
                accounts.delete_account(address)
            else:
                _apply_change(accounts, address, change)
        try:
            accounts.persist()
        except MissingTrieNode as exc:
            raise Halt(f"state trie node missing under root {parent_root.hex()}: {exc}") from exc
        return Hash32(accounts.state_root)

    def genesis(self, alloc: Mapping[Address, GenesisAccount], batch: WriteBatch) -> Hash32:
        """Stage the genesis state into ``batch``; its root."""
        diff = StateDiff(
            accounts={
                address: AccountChange(
                    nonce=account.nonce,
                    balance=account.balance,
                    code=account.code or None,
                    storage=account.storage,
                )
                for address, account in alloc.items()
            }
        )
        return self.apply(EMPTY_ROOT, diff, batch)


def _apply_change(accounts: AccountDB, address: Address, change: AccountChange) -> None:
    if change.storage_reset:
        accounts.delete_storage(address)
    accounts.set_nonce(address, change.nonce)
    accounts.set_balance(address, change.balance)
    if change.code is not None:
        accounts.set_code(address, change.code)
    for slot, value in change.storage.items():
        accounts.set_storage(address, slot, value)
