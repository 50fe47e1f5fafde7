"""The state the native interpreter reads: flat tables the host fills from a StateReader.

Rows are loaded on demand (the interpreter stops with "needs key" for a row it lacks)
and hold the batch's committed values: after each transaction commits, its writes are
applied in place. The pre-state value of every row is kept, so that the batch's
``StateDiff`` is the difference between the two at the end.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import rlp

from executor_gpu.api import StateReader
from executor_gpu.native_abi import ABI, from_words, value_at, words
from executor_gpu.types import Account, AccountChange, StateDiff
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.types import Address, Hash32

EMPTY_CODE_HASH = keccak256(b"")
NO_CODE = 2**64 - 1
"""ACC_CODE of an account without code (-1 as the interpreter reads it)."""

_ACC_WORDS = ABI["ACC_WORDS"]
_SL_WORDS = ABI["SL_WORDS"]
_CD_WORDS = ABI["CD_WORDS"]
_EXISTS = ABI["AF_EXISTS"]
_HAS_STORAGE = ABI["AF_HAS_STORAGE"]

U64Array = npt.NDArray[np.uint64]


def address_int(address: bytes) -> int:
    """An address as the 256-bit value the interpreter compares."""
    return int.from_bytes(address, "big")


def int_address(value: int) -> Address:
    """Inverse of ``address_int``."""
    return Address(value.to_bytes(20, "big"))


class _Rows:
    """A growable 2-D uint64 array."""

    def __init__(self, width: int) -> None:
        self.data: U64Array = np.zeros((64, width), dtype=np.uint64)
        self.count = 0

    def append(self) -> int:
        if self.count == len(self.data):
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.count += 1
        return self.count - 1

    @property
    def used(self) -> U64Array:
        return self.data[: self.count]


class _Bytes:
    """A growable byte buffer backed by numpy (the interpreter reads it in place)."""

    def __init__(self) -> None:
        self.data: npt.NDArray[np.uint8] = np.zeros(4096, dtype=np.uint8)
        self.count = 0

    def extend(self, blob: bytes, reserve: int) -> int:
        """Appends ``blob`` in a region of ``reserve`` bytes; returns its offset."""
        while self.count + reserve > len(self.data):
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        offset = self.count
        self.data[offset : offset + len(blob)] = np.frombuffer(blob, dtype=np.uint8)
        self.count += reserve
        return offset


class TrieReader:
    """Point lookups in the Merkle-Patricia tries of a node store, each node parsed in C.

    Walking the trie in Python (trie.HexaryTrie) costs most of a lookup's time in RLP
    decoding; this fetches the nodes from the store and lets ``evm_trie_step`` pick the path.
    """

    def __init__(self, nodes: Mapping[bytes, bytes], lib: ctypes.CDLL) -> None:
        self._nodes = nodes
        self._cache: dict[bytes, bytes] = {}
        """Nodes read so far: the top of the trie is on every path."""
        self._step = lib.evm_trie_step
        self._out = (ctypes.c_uint64 * 3)()

    def get(self, root: bytes, key: bytes) -> bytes | None:
        """Value at keccak(key) in the trie under ``root``, or None."""
        if root == EMPTY_ROOT:
            return None
        path = keccak256(key)
        node = self._node(root)
        out = self._out
        at = 0
        while True:
            kind = self._step(node, len(node), path, at, out)
            if kind == 0:
                return None
            if kind < 0:
                raise Halt(f"malformed state trie node under root {root.hex()}")
            at += out[2]
            start = out[0]
            if kind == 1:
                return node[start : start + out[1]]
            node = self._node(node[start : start + 32]) if kind == 2 else node[start : start + out[1]]

    def _node(self, node_hash: bytes) -> bytes:
        node = self._cache.get(node_hash)
        if node is None:
            try:
                node = self._cache[node_hash] = self._nodes[node_hash]
            except KeyError:
                raise Halt(f"state trie node {node_hash.hex()} is missing") from None
        return node


@dataclass
class Index:
    """An open-addressing index over table rows, as the interpreter probes it."""

    slots: npt.NDArray[np.int32]
    """Row per bucket, -1 when empty."""
    mask: int
    """Number of buckets minus one."""


def build_index(lib: ctypes.CDLL, rows: U64Array, width: int, key_words: int) -> Index:
    """Index of ``rows`` by their first ``key_words`` words, with at most half the buckets used."""
    buckets = 64
    while buckets < 2 * len(rows):
        buckets *= 2
    slots = np.empty(buckets, dtype=np.int32)
    data = np.ascontiguousarray(rows)
    lib.evm_build_index(data.ctypes.data, width, key_words, len(rows), slots.ctypes.data, buckets - 1)
    return Index(slots, buckets - 1)


class StateTables:
    """Accounts, storage slots and codes known to the host, with their batch pre-state values."""

    def __init__(self, reader: StateReader, lib: ctypes.CDLL) -> None:
        self._reader = reader
        self._trie = TrieReader(reader.node_store, lib)
        self._root = reader.state_root
        self._lib = lib
        self.accounts = _Rows(_ACC_WORDS)
        self.slots = _Rows(_SL_WORDS)
        self.codes = _Rows(_CD_WORDS)
        self.code_bytes = _Bytes()
        self.jumpdests = _Bytes()
        self._analyzed = 0
        self._account_rows: dict[bytes, int] = {}
        self._slot_rows: dict[tuple[bytes, int], int] = {}
        self._code_rows: dict[bytes, int] = {}
        self._code_list: list[bytes] = []
        self._account_pre: list[Account | None] = []
        self._storage_roots: dict[bytes, bytes] = {}
        self._slot_pre: list[int] = []
        self._slot_address: list[bytes] = []
        self._wiped: set[bytes] = set()
        self.written_accounts: set[int] = set()
        self.written_slots: set[int] = set()
        self._indexed = (-1, -1)
        self._account_index: Index | None = None
        self._slot_index: Index | None = None

    # -- loading -----------------------------------------------------------

    def account_row(self, address: bytes) -> int:
        """Row of ``address``, loaded from the reader on first use."""
        row = self._account_rows.get(address)
        if row is not None:
            return row
        account = self._read_account(address)
        row = self.accounts.append()
        self._account_rows[address] = row
        self._account_pre.append(account)
        data = self.accounts.data[row]
        data[ABI["ACC_ADDR"] : ABI["ACC_ADDR"] + 4] = words(address_int(address))
        if account is None:
            data[ABI["ACC_CODE"]] = NO_CODE
            data[ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4] = words(int.from_bytes(EMPTY_CODE_HASH, "big"))
            return row
        self._storage_roots[address] = account.storage_root
        code_index = NO_CODE
        if account.code_hash != EMPTY_CODE_HASH:
            code_index = self.code_row(self._reader.node_store[account.code_hash])
        self._set_account(row, account.nonce, account.balance, code_index, account.code_hash, True)
        if account.storage_root != EMPTY_ROOT:
            data[ABI["ACC_FLAGS"]] |= _HAS_STORAGE
        return row

    def slot_row(self, address: bytes, slot: int) -> int:
        """Row of a storage slot, loaded from the reader on first use."""
        key = (address, slot)
        row = self._slot_rows.get(key)
        if row is not None:
            return row
        value = self._read_slot(address, slot)
        row = self.slots.append()
        self._slot_rows[key] = row
        self._slot_pre.append(value)
        self._slot_address.append(address)
        data = self.slots.data[row]
        data[ABI["SL_ADDR"] : ABI["SL_ADDR"] + 4] = words(address_int(address))
        data[ABI["SL_KEY"] : ABI["SL_KEY"] + 4] = words(slot)
        # A storage wiped earlier in the batch reads as empty, whatever the pre-state holds.
        data[ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4] = words(0 if address in self._wiped else value)
        return row

    def _read_account(self, address: bytes) -> Account | None:
        encoded = self._trie.get(self._root, address)
        if encoded is None:
            return None
        nonce, balance, storage_root, code_hash = rlp.decode(encoded)
        return Account(
            int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), Hash32(storage_root),
            Hash32(code_hash),
        )

    def _read_slot(self, address: bytes, slot: int) -> int:
        if address not in self._storage_roots:
            self.account_row(address)
        root = self._storage_roots.get(address, EMPTY_ROOT)
        encoded = self._trie.get(root, slot.to_bytes(32, "big"))
        return 0 if encoded is None else int.from_bytes(rlp.decode(encoded), "big")

    def code_row(self, code: bytes) -> int:
        """Index of ``code`` in the code table (deduplicated by hash)."""
        code_hash = keccak256(code)
        row = self._code_rows.get(code_hash)
        if row is not None:
            return row
        row = self.codes.append()
        self._code_rows[code_hash] = row
        self._code_list.append(code)
        rec = self.codes.data[row]
        rec[ABI["CD_OFF"]] = self.code_bytes.extend(code, len(code))
        rec[ABI["CD_LEN"]] = len(code)
        rec[ABI["CD_JUMPDEST_OFF"]] = self.jumpdests.extend(b"", (len(code) + 7) // 8)
        return row

    def code(self, index: int) -> bytes:
        """Bytes of code table entry ``index``."""
        return self._code_list[index]

    # -- what the interpreter reads -----------------------------------------

    def prepare(self) -> tuple[Index, Index]:
        """Analyzes new codes and rebuilds the indexes when rows were added."""
        if self._analyzed < self.codes.count:
            self._lib.evm_analyze_codes(
                self.codes.data.ctypes.data, self._analyzed, self.codes.count,
                self.code_bytes.data.ctypes.data, self.jumpdests.data.ctypes.data,
            )
            self._analyzed = self.codes.count
        if self._indexed != (self.accounts.count, self.slots.count):
            self._account_index = build_index(self._lib, self.accounts.used, _ACC_WORDS, 4)
            self._slot_index = build_index(self._lib, self.slots.used, _SL_WORDS, 8)
            self._indexed = (self.accounts.count, self.slots.count)
        assert self._account_index is not None and self._slot_index is not None
        return self._account_index, self._slot_index

    # -- committed values ---------------------------------------------------

    def _set_account(
        self, row: int, nonce: int, balance: int, code_index: int, code_hash: bytes, exists: bool
    ) -> None:
        data = self.accounts.data[row]
        data[ABI["ACC_NONCE"]] = nonce
        data[ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4] = words(balance)
        data[ABI["ACC_CODE"]] = code_index
        data[ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4] = words(int.from_bytes(code_hash, "big"))
        flags = int(data[ABI["ACC_FLAGS"]]) & _HAS_STORAGE
        data[ABI["ACC_FLAGS"]] = flags | (_EXISTS if exists else 0)

    def account(self, row: int) -> tuple[int, int, int, bool]:
        """Committed (nonce, balance, code index, exists) of an account row."""
        data = self.accounts.data[row]
        return (
            int(data[ABI["ACC_NONCE"]]),
            from_words(data[ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4]),
            int(data[ABI["ACC_CODE"]]),
            bool(int(data[ABI["ACC_FLAGS"]]) & _EXISTS),
        )

    def code_hash(self, row: int) -> bytes:
        """Committed code hash of an account row."""
        data = self.accounts.data[row]
        return from_words(data[ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4]).to_bytes(32, "big")

    def write_account(
        self, row: int, nonce: int, balance: int, code_index: int, code_hash: bytes, exists: bool
    ) -> None:
        """Commits new values of an account row."""
        if not exists:
            nonce, balance, code_index, code_hash = 0, 0, NO_CODE, EMPTY_CODE_HASH
        self._set_account(row, nonce, balance, code_index, code_hash, exists)
        self.written_accounts.add(row)

    def write_slot(self, row: int, value: int) -> None:
        """Commits a new value of a slot row."""
        data = self.slots.data[row]
        data[ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4] = words(value)
        self.written_slots.add(row)

    def commit_accounts(self, rows: npt.NDArray[np.int64], entries: U64Array, offsets: dict[str, int]) -> None:
        """Commits existing accounts' new values from interpreter entries (one per row).

        ``offsets`` name the entry words: nonce, value (balance), code, orig (code hash).
        """
        data = self.accounts.data
        data[rows, ABI["ACC_NONCE"]] = entries[:, offsets["nonce"]]
        data[rows, ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4] = entries[:, offsets["value"] : offsets["value"] + 4]
        data[rows, ABI["ACC_CODE"]] = entries[:, offsets["code"]]
        data[rows, ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4] = entries[:, offsets["orig"] : offsets["orig"] + 4]
        data[rows, ABI["ACC_FLAGS"]] |= np.uint64(_EXISTS)
        self.written_accounts.update(rows.tolist())

    def commit_slots(self, rows: npt.NDArray[np.int64], values: U64Array) -> None:
        """Commits slots' new values (four words each, one per row)."""
        self.slots.data[rows, ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4] = values
        self.written_slots.update(rows.tolist())

    def slot_value(self, row: int) -> int:
        """Committed value of a slot row."""
        return from_words(self.slots.data[row][ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4])

    def wipe_storage(self, address: bytes) -> list[int]:
        """Empties the storage of ``address`` (deletion, or a creation over it); returns the rows."""
        self._wiped.add(address)
        self.accounts.data[self.account_row(address), ABI["ACC_FLAGS"]] &= ~np.uint64(_HAS_STORAGE)
        rows = [row for (owner, _), row in self._slot_rows.items() if owner == address]
        for row in rows:
            self.write_slot(row, 0)
        return rows

    # -- the batch's result -------------------------------------------------

    def diff(self) -> StateDiff:
        """Changes from the pre-state to the committed values, as the reference reports them."""
        written: dict[bytes, dict[int, tuple[int, int]]] = {}
        slot_rows = sorted(self.written_slots)
        for row, record in zip(slot_rows, self.slots.data[slot_rows].tolist()):
            key, value = value_at(record, ABI["SL_KEY"]), value_at(record, ABI["SL_VALUE"])
            written.setdefault(self._slot_address[row], {})[key] = (value, self._slot_pre[row])
        changes: dict[Address, AccountChange | None] = {}
        rows = sorted(self.written_accounts | {self._account_rows[a] for a in written})
        for row, record in zip(rows, self.accounts.data[rows].tolist()):
            address = int_address(value_at(record, ABI["ACC_ADDR"]))
            pre = self._account_pre[row]
            if not record[ABI["ACC_FLAGS"]] & _EXISTS:
                if pre is not None:
                    changes[address] = None
                continue
            nonce, balance, code_index = record[ABI["ACC_NONCE"]], value_at(record, ABI["ACC_BALANCE"]), record[ABI["ACC_CODE"]]
            code_hash = value_at(record, ABI["ACC_CODE_HASH"]).to_bytes(32, "big")
            pre_hash = EMPTY_CODE_HASH if pre is None else pre.code_hash
            code = None if code_hash == pre_hash else (b"" if code_index == NO_CODE else self.code(code_index))
            # A wipe of non-empty storage is reported as a reset plus the slots set since.
            reset = address in self._wiped and pre is not None and pre.storage_root != EMPTY_ROOT
            slots = {
                slot: value
                for slot, (value, pre_value) in written.get(address, {}).items()
                if (value != 0 if reset else value != pre_value)
            }
            if (
                pre is not None
                and not reset
                and not slots
                and code is None
                and (pre.nonce, pre.balance) == (nonce, balance)
            ):
                continue
            changes[address] = AccountChange(
                nonce=nonce, balance=balance, code=code, storage=slots, storage_reset=reset
            )
        return StateDiff(accounts=changes)
