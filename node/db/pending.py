"""The state after a block whose root is still being computed.

Pipelined block production executes block h+1 while block h's state root and write run in
a thread. h+1 reads h's changes from here, over the committed flat state of h's parent: one
`get` a key as from a committed view, never a trie walk (the tries of h do not exist yet).
The rows of the accounts h changed carry a placeholder storage root: the executors only ask
whether a storage is empty, which the changes tell, except for one storage that h cleared
slots of without setting any (then ``exact`` says so, and h+1 runs again once h is final).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import compress, repeat

import numpy as np

from executor_gpu.native_abi import enum_members
from executor_gpu.native_mpt import account_rows, kept_storage, slot_rows, split
from executor_gpu.types import Account, PackedState
from node.db.state import StateView, decode_account, read_code
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.transactions import Transaction
from primitives.types import Address, Hash32

PENDING_ROOT = Hash32(keccak256(b"l2node: a storage root not computed yet"))
"""The storage root in the rows of accounts whose storage a pending block changed and left
non-empty, and the state root of its provisional header: a trie walk from it finds nothing,
loudly."""

_BLOCK_CONTEXT_OPS = frozenset({0x40, 0xF0, 0xF5})
"""BLOCKHASH (reads the pending block's hash, not known yet), CREATE and CREATE2 (code made
in the block could read it)."""

_MPT = enum_members("evm_mpt.h")
"""Where a packed account record keeps its fields, and its flags."""
_FLAGS_AT = _MPT["MA_FLAGS"]
_STORAGE_ROOT_AT, _RECORD = _MPT["MA_STORAGE_ROOT"], _MPT["MA_SIZE"]
_KEEP_STORAGE = _MPT["MF_KEEP_STORAGE"]
_STORAGE, _RESET = _MPT["MF_STORAGE"], _MPT["MF_RESET"]


_ENDS = frozenset({0x00, 0x56, 0xF3, 0xFD, 0xFE, 0xFF})
"""STOP, JUMP, RETURN, REVERT, INVALID, SELFDESTRUCT: what follows runs only from a JUMPDEST."""


@functools.lru_cache(maxsize=4096)
def reads_block_context(code: bytes) -> bool:
    """True when ``code`` may run BLOCKHASH, CREATE or CREATE2: one of them as an instruction
    (PUSH data skipped) that execution can reach (not after an instruction that ends a run
    with no JUMPDEST between: the data compilers append, such as solc's metadata)."""
    at, end, reachable = 0, len(code), True
    while at < end:
        op = code[at]
        if op == 0x5B:
            reachable = True
        elif reachable and op in _BLOCK_CONTEXT_OPS:
            return True
        elif op in _ENDS:
            reachable = False
        at += op - 0x5E if 0x60 <= op <= 0x7F else 1
    return False


class PendingView:
    """``StateReader`` of the state after a pending block: its packed changes over ``base``,
    the committed flat state of its parent. Should a commit (the pending block's own write)
    make ``base`` stale, the reads go on from ``settled()``, the committed state after the
    block, which it waits for."""

    def __init__(self, packed: PackedState, base: StateView, settled: Callable[[], StateView]) -> None:
        if packed.paths is None or packed.slot_paths is None:
            raise ValueError("a pending view takes a packed diff with its trie keys")
        self._base = base
        self._settled = settled
        self._exact = True
        self._codes = packed.codes
        self._served: dict[bytes, bytes] = {}
        """What the node store served, by hash: code, or trie nodes to a reader that walks."""
        records = np.frombuffer(packed.records, dtype=np.uint8).reshape(-1, _RECORD)
        paths = np.frombuffer(packed.paths, dtype=np.uint8).reshape(-1, 32)
        self._accounts = dict(zip(split(paths, 32), range(len(records))))
        slots = slot_rows(packed)
        owners = np.repeat(np.arange(len(records)), packed.counts.astype(np.int64))
        keys = np.concatenate([paths[owners], np.frombuffer(packed.slot_paths, dtype=np.uint8).reshape(-1, 32)],
                              axis=1)
        self._slots = dict(zip(split(keys, 64), split(slots[:, 32:], 32)))
        self._wiped = (~kept_storage(packed)).tolist()
        """Per account: its old storage is gone (deleted, or wiped by a creation)."""
        # The records as the rows read: a storage set non-empty gets the placeholder root, one
        # wiped and left empty the empty root, one only cleared slots of keeps its old root
        # (which may be empty now: reading such a row makes the view inexact).
        flags = records[:, _FLAGS_AT]
        storing, reset = (flags & _STORAGE) != 0, (flags & _RESET) != 0
        stores = np.bincount(owners, weights=slots[:, 32:].any(axis=1), minlength=len(records)) > 0
        self._cleared = storing & ~stores & ~reset
        self._records = records.copy()
        self._records[storing & stores, _STORAGE_ROOT_AT:] = np.frombuffer(PENDING_ROOT, dtype=np.uint8)
        self._records[storing & ~stores & reset, _STORAGE_ROOT_AT:] = np.frombuffer(EMPTY_ROOT, dtype=np.uint8)
        self._records[:, _FLAGS_AT] = np.where(
            storing, (flags & np.uint8(0xFF ^ _STORAGE ^ _RESET)) | np.where(self._cleared, _KEEP_STORAGE, 0),
            flags)
        self._pending = True
        """False once reads come from ``settled()``, which holds the block's own rows."""

    # -- StateReader ------------------------------------------------------------------------

    @property
    def state_root(self) -> Hash32:
        """The pending block's root: asking waits for it (a reader that walks tries, as the
        reference executor does, runs on the final state)."""
        return self._settle().state_root

    @property
    def node_store(self) -> Mapping[bytes, bytes]:
        return _Codes(self._codes, self._base.node_store, self._served)

    @property
    def reads_flat(self) -> bool:
        return True

    def get_account(self, address: Address) -> Account | None:
        (raw,) = self.flat_accounts([keccak256(address)])
        return None if raw is None else decode_account(raw)

    def get_code(self, address: Address) -> bytes:
        return read_code(self.node_store, self.get_account(address), address)

    def get_storage(self, address: Address, slot: int) -> int:
        (raw,) = self.flat_slots([keccak256(address) + keccak256(slot.to_bytes(32, "big"))])
        return 0 if raw is None else int.from_bytes(raw, "big")

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None]:
        values = self._read(StateView.flat_accounts, account_hashes)
        if self._pending:
            found = list(map(self._accounts.get, account_hashes))
            hits = [i for i, at in enumerate(found) if at is not None]
            if hits:
                rows = np.array([found[i] for i in hits], dtype=np.int64)
                olds = [values[i] for i in hits]
                cleared = self._cleared[rows]
                if cleared.any() and any(decode_account(old).storage_root != EMPTY_ROOT
                                         for old in compress(olds, cleared.tolist()) if old):
                    self._exact = False  # slots cleared: the storage may be empty now
                for i, row in zip(hits, account_rows(self._records[rows], olds)):
                    values[i] = row
        return values

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None]:
        values = self._read(StateView.flat_slots, slot_paths)
        if self._pending:
            for i, (key, value) in enumerate(zip(slot_paths, map(self._slots.get, slot_paths, repeat(None)))):
                if value is not None:
                    values[i] = value.lstrip(b"\0") or None
                else:
                    at = self._accounts.get(key[:32])
                    if at is not None and self._wiped[at]:
                        values[i] = None
        return values

    def bulk_reads(self) -> Mapping[bytes, bytes | None]:
        """None of its rows are the committed state's: ``StateDB.apply`` reads them again."""
        return {}

    # -- what the block after it did --------------------------------------------------------

    def exact(self, txs: Sequence[Transaction]) -> bool:
        """False when what ``txs`` did may depend on what this view cannot tell: the pending
        block's hash (BLOCKHASH in a code it served, or code made by a creation) or whether a
        storage it cleared slots of is empty. Their block then runs again once it is final."""
        if not self._exact or any(tx.to is None for tx in txs):
            return False
        return not any(map(reads_block_context, list(self._served.values())))

    # -- rows -------------------------------------------------------------------------------

    def _read(self, read: Callable[[StateView, Sequence[bytes]], list[bytes | None] | None],
              keys: Sequence[bytes]) -> list[bytes | None]:
        """The committed rows of ``keys``; from the settled state once the base went stale."""
        values = read(self._base, keys)
        if values is None:
            values = read(self._settle(), keys)
            if values is None:
                raise Halt("the flat state moved twice under a block being executed")
        return values

    def _settle(self) -> StateView:
        """The committed state after the pending block, waited for; reads come from it now."""
        if self._pending:
            self._base, self._pending = self._settled(), False
        return self._base


class _Codes(Mapping[bytes, bytes]):
    """Code by hash: the pending block's new code, then the committed store's; remembers
    what it served (``PendingView.exact`` reads it)."""

    def __init__(self, new: Mapping[bytes, bytes], store: Mapping[bytes, bytes],
                 served: dict[bytes, bytes]) -> None:
        self._new, self._store, self._served = new, store, served

    def __getitem__(self, code_hash: bytes) -> bytes:
        code = self._new.get(code_hash)
        if code is None:
            code = self._store[code_hash]
        self._served[code_hash] = code
        return code

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._new)

    def __len__(self) -> int:
        return len(self._new)
