"""Ethereum state (accounts, code, storage) over the KV seam, with Merkle-Patricia roots.

A block's diff is applied by the native committer (``executor_gpu.native_mpt``): every
storage trie it changes, then the account trie, each touched node read once (in rounds, one
get per node) and every new node hashed in C. Trie nodes and code are stored
content-addressed under ``schema.state_node_key`` and never deleted: every past root stays
readable (archive node).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import rlp
from eth.rlp.accounts import Account as RlpAccount
from trie.exceptions import MissingTrieNode
from trie.hexary import HexaryTrie

from executor_gpu.native_mpt import CACHE_BYTES, TrieCommitter
from executor_gpu.types import Account, AccountChange, StateDiff
from node.db import schema
from node.db.api import KV, KVReader, WriteBatch
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt, InvalidInput
from primitives.types import Address, Hash32

EMPTY_CODE_HASH = keccak256(b"")
"""Code hash of an account without code."""

_READ_THREADS = max(2, min(os.cpu_count() or 1, 8))
"""Threads that read a round's trie nodes (the caller's and helpers)."""
_READ_SHARE = 2_000
"""Fewest nodes a reading thread is given: below that, handing over costs more than it saves."""


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
    """The node's state: views at any past root, and diffs applied into a block's batch.

    ``cache_bytes`` bounds the trie committer's node cache (see ``TrieCommitter``).
    """

    def __init__(self, kv: KV, cache_bytes: int = CACHE_BYTES) -> None:
        self._kv = kv
        # One committer for the node's life: its cache holds the nodes the next block starts from.
        self._committer = TrieCommitter(cache_bytes=cache_bytes)
        self._committing = threading.Lock()
        self._readers: tuple[int, ThreadPoolExecutor] | None = None

    def at(self, state_root: Hash32, reader: KVReader | None = None) -> StateView:
        """The state at ``state_root``; pass a pending batch as ``reader`` to see its writes."""
        source = self._kv if reader is None else reader
        if state_root != EMPTY_ROOT and source.get(schema.state_node_key(state_root)) is None:
            raise InvalidInput(f"unknown state root {state_root.hex()}")
        return StateView(source, state_root)

    def apply(self, parent_root: Hash32, diff: StateDiff, batch: WriteBatch) -> Hash32:
        """Stage the state after ``diff`` into ``batch`` (the caller commits); its root."""
        get, prefix = batch.get, schema.STATE_NODE_PREFIX  # state_node_key, inlined: a get per node

        def read(keys: list[bytes]) -> list[bytes | None]:
            return list(map(get, keys))

        def load(hashes: list[bytes]) -> list[bytes | None]:
            keys = [prefix + node_hash for node_hash in hashes]
            share = max(_READ_SHARE, -(-len(keys) // _READ_THREADS))
            parts = [keys[at : at + share] for at in range(0, len(keys), share)]
            others = [self._reader_pool().submit(read, part) for part in parts[1:]]
            nodes = read(parts[0]) if parts else []
            for other in others:
                nodes += other.result()
            return nodes

        with self._committing:
            commit = self._committer.commit_state(parent_root, diff, load)
        batch.put_many(commit.nodes(prefix))
        return commit.root

    def _reader_pool(self) -> ThreadPoolExecutor:
        """Helpers for a round's node reads (LevelDB's get leaves the GIL: 2 threads read 1.3-2x
        faster), started in this process: a forked child has none of its parent's threads."""
        if self._readers is None or self._readers[0] != os.getpid():
            pool = ThreadPoolExecutor(_READ_THREADS - 1, thread_name_prefix="state-read")
            self._readers = (os.getpid(), pool)
        return self._readers[1]

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
