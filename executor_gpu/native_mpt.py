"""The native Merkle-Patricia committer (``kernels/evm_mpt.h``), driven from Python.

A commit applies a block's changes to a trie (or a state diff to the account trie and the
storage tries) and returns the new root with every new node to persist. The C side reads
nothing itself: it lists the nodes it needs, ``load`` reads each with one get, and it goes
on, until its pass needs nothing more; then it hashes the new nodes in worker threads. A
state commit may be told the changed keys' old values (``OldValues``, from the flat tables):
it then reads no leaf of a key that existed, only the branches above it that its cache lacks.
A warm (``TrieCommitter.warm``) reads those branches ahead into the cache, while a block
executes, so that its commit finds them in memory.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from types import TracebackType
from typing import Self, cast

import numpy as np
import numpy.typing as npt

from executor_gpu.native_abi import enum_members
from executor_gpu.native_build import HOST_THREADS, cpu_library
from executor_gpu.types import AccountChange, PackedState, StateDiff
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.types import Hash32

Loader = Callable[[list[bytes]], list[bytes | None]]
"""Reads trie nodes by hash, one get each; None where the store has none."""
Told = Callable[[], tuple[bytes, Sequence[bytes | None]]]
"""Old values of account-trie keys learnt since last asked: the keys (32 bytes each,
concatenated) and each one's value as the trie holds it (None: not known)."""

_MPT = enum_members("evm_mpt.h")
_RECORD, _VALUE_MAX = _MPT["MA_SIZE"], _MPT["MA_VALUE_MAX"]
"""An account record: address, flags, nonce (8 bytes), balance, code hash, storage root."""
_DELETE, _KEEP_CODE, _KEEP_STORAGE = _MPT["MF_DELETE"], _MPT["MF_KEEP_CODE"], _MPT["MF_KEEP_STORAGE"]
_STORAGE, _RESET = _MPT["MF_STORAGE"], _MPT["MF_RESET"]
_FLAGS_AT, _NONCE_AT, _BALANCE_AT = _MPT["MA_FLAGS"], _MPT["MA_NONCE"], _MPT["MA_BALANCE"]
_CODE_HASH_AT, _STORAGE_ROOT_AT = _MPT["MA_CODE_HASH"], _MPT["MA_STORAGE_ROOT"]
_TO_END = _MPT["MW_TO_END"]
_SLOT = _MPT["MS_SIZE"]
"""A slot change's bytes: the slot and its value, 32 bytes big-endian each."""
_GONE = AccountChange(nonce=0, balance=0)
"""A deleted account's columns (its record holds the flag alone)."""

COMMIT_THREADS = min(os.cpu_count() or 1, 8)
"""Worker threads of a commit: they hash independent subtries and, when 3 or more, update
the account trie's 16 subtries of a block that changes 1,024 accounts or more."""


@dataclass(frozen=True)
class Commit:
    """What a commit produced: the new root, and the new entries of the content-addressed node
    store (trie nodes by hash; contract code by hash, for state commits)."""

    root: Hash32
    """Root of the trie (the state root, for state commits) after the changes."""
    hashes: bytes
    """The new nodes' hashes, 32 bytes each."""
    data: memoryview
    """The new nodes' encodings, concatenated: a read-only view of the memory the committer
    wrote them into (a block's tens of megabytes, neither zero-filled first nor copied)."""
    lengths: npt.NDArray[np.int64]
    """Size of each encoding."""
    codes: Mapping[bytes, bytes]
    """New contract code by hash."""
    value_data: bytes = b""
    """State commits: each changed account's new value (RLP, as its leaf holds it), in the
    diff's order, back to back."""
    value_lengths: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Each one's size; -1 for a deleted account."""

    @functools.cached_property
    def values(self) -> list[bytes | None]:
        """The new values one by one (None: deleted)."""
        ends = np.cumsum(np.maximum(self.value_lengths, 0)).tolist()
        data = self.value_data
        return [None if length < 0 else data[end - length : end]
                for end, length in zip(ends, self.value_lengths.tolist())]


@dataclass(frozen=True)
class OldValues:
    """What a diff's keys held before it, as the flat tables tell: hints a commit checks by
    hash against the trie (a wrong or missing one costs a read, never a wrong root)."""

    accounts: Sequence[bytes | None]
    """Each changed account's old value as the trie stores it (RLP), in the diff's order;
    None: it did not exist."""
    slots: Sequence[bytes | None]
    """Each changed slot's old value (big-endian, no leading zeros; None: unset), in the
    diff's order (its accounts', then each one's storage's). A reset storage starts empty:
    its slots have no old values and none are listed."""

    @functools.cached_property
    def packed_accounts(self) -> tuple[bytes, npt.NDArray[np.int64]]:
        """``accounts`` back to back, and each one's size (-1: none): made once, for the
        committer and the flat writer."""
        return _hints(self.accounts)

    @functools.cached_property
    def packed_slots(self) -> tuple[bytes, npt.NDArray[np.int64]]:
        """``slots`` as ``packed_accounts`` has the accounts."""
        return _hints(self.slots)


CACHE_BYTES = 256 << 20
"""Default budget of a committer's node cache."""

WARM_CHUNK = 1024
"""Nodes a warm reads between two looks at its ``stop``: what a commit waiting for a stopped
warm waits for at most (a few tens of ms on two cores)."""


@dataclass(frozen=True)
class Warmed:
    """What a warm did."""

    nodes: int
    """Nodes it read into the cache."""
    complete: bool
    """It walked every path to its end (False: stopped, or a node was missing or malformed)."""
    size: int = 0
    """Bytes of the nodes it read."""


def hash_keys(keys: Sequence[bytes]) -> list[Hash32]:
    """Keccak-256 of each key (keys of one length: addresses, slots), in C: a block's
    thousands of account keys cost about 0.1 us each instead of 2 us in Python."""
    if not keys:
        return []
    packed = np.frombuffer(b"".join(keys), dtype=np.uint8)
    width = len(keys[0])
    if len(packed) != width * len(keys):
        raise ValueError("keys to hash must be of one length")
    # Hash32 is a NewType of bytes: calling it per key only cost a call each.
    return cast(list[Hash32], split(hash_rows(packed.reshape(len(keys), width)), 32))


def hash_rows(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Keccak-256 of each row of a 2-D byte array (a row's 32 bytes), in C."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    digests = np.empty((len(rows), 32), dtype=np.uint8)
    if len(rows):
        cpu_library().evm_hash_keys(rows.ctypes.data, rows.shape[1], len(rows), digests.ctypes.data,
                                    HOST_THREADS)
    return digests


def split(rows: npt.NDArray[np.uint8] | bytes, width: int) -> list[bytes]:
    """The rows of a 2-D byte array (or of bytes, ``width`` bytes each) as bytes; in C
    (``struct``): 20,000 keys of 32 bytes in 0.9 ms against 2.5 by slicing in a Python loop."""
    raw = rows if isinstance(rows, bytes) else rows.tobytes()
    return list(map(_first, struct.iter_unpack(f"{width}s", raw)))


_first = itemgetter(0)


def _hints(values: Sequence[bytes | None]) -> tuple[bytes, np.ndarray]:
    """Old values concatenated, and each one's length (-1: not known)."""
    lengths = np.array([-1 if value is None else len(value) for value in values], dtype=np.int64)
    return b"".join(filter(None, values)), lengths


def pack_state(
    addresses: bytes, deleted: npt.NDArray[np.bool_], nonces: npt.NDArray[np.uint64],
    balances: npt.NDArray[np.uint8], code_hashes: npt.NDArray[np.uint8],
    counts: npt.NDArray[np.uint64], reset: npt.NDArray[np.bool_], slots: bytes,
    codes: Mapping[bytes, bytes], paths: bytes | None = None, slot_paths: bytes | None = None,
) -> PackedState:
    """A diff's changes in the committer's layout, from its accounts' columns (in its order):
    ``addresses`` (20 bytes each, joined), ``deleted``, ``nonces``, ``balances`` (32 bytes
    big-endian a row), ``code_hashes`` (a row per account, all zero unless its code changed),
    ``counts`` (its slots in ``slots``), ``reset`` (its old storage wiped); ``slots``,
    ``codes`` and the trie keys as ``PackedState`` has them."""
    n = len(deleted)
    if len(addresses) != 20 * n:
        raise ValueError("every address must be 20 bytes")
    if (paths is not None and len(paths) != 32 * n) or (
        slot_paths is not None and len(slot_paths) * _SLOT != 32 * len(slots)
    ):
        raise ValueError("a trie key is 32 bytes, one for each account or slot")
    records = np.zeros((n, _RECORD), dtype=np.uint8)
    records[:, :_FLAGS_AT] = np.frombuffer(addresses, dtype=np.uint8).reshape(n, 20)
    new_code = code_hashes.any(axis=1)
    storing = counts > 0
    storage = np.where(storing, _STORAGE | np.where(reset, _RESET, 0), np.where(reset, 0, _KEEP_STORAGE))
    flags = np.where(new_code, 0, _KEEP_CODE) | storage
    records[:, _FLAGS_AT] = np.where(deleted, _DELETE, flags)
    live = ~deleted
    records[live, _NONCE_AT : _NONCE_AT + 8] = nonces[live].astype(">u8").view(np.uint8).reshape(-1, 8)
    records[live, _BALANCE_AT : _BALANCE_AT + 32] = balances[live]
    records[live, _CODE_HASH_AT : _CODE_HASH_AT + 32] = code_hashes[live]
    records[live & reset & ~storing, _STORAGE_ROOT_AT:] = np.frombuffer(EMPTY_ROOT, dtype=np.uint8)
    return PackedState(records.tobytes(), slots, np.ascontiguousarray(counts, dtype=np.uint64), codes,
                       paths, slot_paths)


def with_trie_keys(packed: PackedState) -> PackedState:
    """``packed`` with its accounts' and slots' trie keys, hashed here where it lacks them (a
    diff packed from ``AccountChange``s; the native executor's has them)."""
    if packed.paths is not None and packed.slot_paths is not None:
        return packed
    records = np.frombuffer(packed.records, dtype=np.uint8).reshape(-1, _RECORD)
    return replace(
        packed,
        paths=hash_rows(records[:, :_FLAGS_AT]).tobytes() if packed.paths is None else packed.paths,
        slot_paths=hash_rows(slot_rows(packed)[:, :32]).tobytes() if packed.slot_paths is None
        else packed.slot_paths,
    )


def pack_changes(diff: StateDiff) -> PackedState:
    """``diff``'s changes packed from its AccountChange objects (an executor that made no
    ``StateDiff.packed``, genesis)."""
    changes = list(diff.accounts.values())
    n = len(changes)
    live = [change or _GONE for change in changes]
    code_hashes = np.zeros((n, 32), dtype=np.uint8)
    codes: dict[bytes, bytes] = {}
    for i, change in enumerate(live):
        if change.code is not None:
            code_hash = keccak256(change.code)
            codes[code_hash] = change.code
            code_hashes[i] = np.frombuffer(code_hash, dtype=np.uint8)
    slots = b"".join(
        slot.to_bytes(32, "big") + value.to_bytes(32, "big")
        for change in live for slot, value in change.storage.items()
    )
    balances = b"".join(change.balance.to_bytes(32, "big") for change in live)
    return pack_state(
        b"".join(diff.accounts),
        np.fromiter((change is None for change in changes), dtype=bool, count=n),
        np.fromiter((change.nonce for change in live), dtype=np.uint64, count=n),
        np.frombuffer(balances, dtype=np.uint8).reshape(n, 32),
        code_hashes,
        np.fromiter((len(change.storage) for change in live), dtype=np.uint64, count=n),
        np.fromiter((change.storage_reset for change in live), dtype=bool, count=n),
        slots, codes,
    )


def account_rows(records: npt.NDArray[np.uint8], olds: Sequence[bytes | None]) -> list[bytes | None]:
    """The new values of accounts (RLP, as trie leaves and flat rows hold them) from their
    packed records (a row each) and their old values (None: new): a value, or None for a
    deleted account, each; in C, outside a commit."""
    n = len(olds)
    records = np.ascontiguousarray(records, dtype=np.uint8)
    if records.shape != (n, _RECORD):
        raise ValueError("an account record is MA_SIZE bytes, one for each old value")
    joined, lengths = _hints(olds)
    offsets = np.zeros(n, dtype=np.uint64)
    np.cumsum(np.maximum(lengths, 0)[:-1], out=offsets[1:])
    out = ctypes.create_string_buffer(_VALUE_MAX * n)
    sizes = np.empty(n, dtype=np.int64)
    cpu_library().mpt_account_rows(records.tobytes(), n, joined, offsets.ctypes.data, lengths.ctypes.data,
                                   out, sizes.ctypes.data)
    if (sizes == 0).any():
        raise Halt("malformed account in the state")
    data = out.raw
    return [None if size < 0 else data[at : at + size]
            for at, size in zip(range(0, _VALUE_MAX * n, _VALUE_MAX), sizes.tolist())]


@dataclass(frozen=True)
class FlatChanges:
    """Flat rows to write (accounts' or slots'), as ``flat_changes`` found them."""

    changed: npt.NDArray[np.bool_]
    """Which of the rows it was given are written."""
    names: bytes
    """Their flat keys after the prefix, in order."""
    values: bytes
    """Their new rows, back to back."""
    sizes: npt.NDArray[np.int64]
    """Each one's size (-1: deleted)."""
    undo: bytes
    """The change set's records that restore them: flat key, old size (2 bytes), old row."""


def flat_changes(
    stage: npt.NDArray[np.bool_], keys: bytes, width: int, prefix: bytes,
    old: tuple[bytes, npt.NDArray[np.int64]], new: tuple[bytes, npt.NDArray[np.int64]],
) -> FlatChanges:
    """The flat rows ``stage`` picks whose new value (``new``: values back to back and sizes,
    -1 deleted) differs from the old (``old``, -1 none), and their undo records; ``keys``: the
    rows' flat keys after ``prefix``, ``width`` bytes each (an account's trie key; a slot's
    account and slot trie keys). In C: one pass instead of a few Python objects a row (a block
    of 50,000 transfers changes 100,000 accounts)."""
    n = len(stage)
    (olds, old_lengths), (news, new_lengths) = old, new
    if len(keys) != width * n or len(old_lengths) != n or len(new_lengths) != n or len(prefix) != 1:
        raise ValueError("a key, an old and a new value for each row, and a 1-byte prefix")
    if n and int(old_lengths.max()) > 0xFFFF:
        raise Halt("malformed row in the flat state: over 65,535 bytes")
    changed = np.zeros(n, dtype=np.uint8)
    names = np.empty(width * n, dtype=np.uint8)
    values = np.empty(len(news), dtype=np.uint8)
    sizes = np.empty(n, dtype=np.int64)
    undo = np.empty((width + 3) * n + len(olds), dtype=np.uint8)
    undo_size = ctypes.c_uint64()
    stage8 = np.ascontiguousarray(stage, dtype=np.uint8)
    old_lengths = np.ascontiguousarray(old_lengths, dtype=np.int64)
    new_lengths = np.ascontiguousarray(new_lengths, dtype=np.int64)
    count = cpu_library().mpt_flat_changes(
        n, stage8.ctypes.data, keys, width, prefix[0], olds, old_lengths.ctypes.data, news,
        new_lengths.ctypes.data, changed.ctypes.data, names.ctypes.data, values.ctypes.data,
        sizes.ctypes.data, undo.ctypes.data, ctypes.byref(undo_size),
    )
    sizes = sizes[:count]
    return FlatChanges(changed.view(bool), names[: width * count].tobytes(),
                       values[: int(np.maximum(sizes, 0).sum())].tobytes(), sizes,
                       undo[: undo_size.value].tobytes())


def kept_storage(packed: PackedState) -> npt.NDArray[np.bool_]:
    """Which of a packed diff's accounts keep their old storage (their slots set change it):
    neither deleted nor wiped."""
    flags = np.frombuffer(packed.records, dtype=np.uint8)[_FLAGS_AT::_RECORD]
    kept: npt.NDArray[np.bool_] = ((flags & _KEEP_STORAGE) != 0) | (
        ((flags & _STORAGE) != 0) & ((flags & _RESET) == 0)
    )
    return kept


def slot_rows(packed: PackedState) -> npt.NDArray[np.uint8]:
    """A packed diff's slot changes, a row each: the slot, then its value (32 bytes each)."""
    return np.frombuffer(packed.slots, dtype=np.uint8).reshape(-1, _SLOT)


def slot_values(words: npt.NDArray[np.uint8]) -> tuple[bytes, npt.NDArray[np.int64]]:
    """Slot values (a row of 32 bytes, big-endian, each) as flat rows hold them: without
    their leading zeros, back to back, and each one's size (-1 for zero: no row)."""
    nonzero = words != 0
    first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 32)
    data = words[np.arange(32) >= first[:, None]].tobytes()
    return data, np.where(first == 32, -1, 32 - first).astype(np.int64)


def kept_slots(packed: PackedState) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """For each of a packed diff's slot changes (``slot_rows``): its account (an index), and
    whether that account kept its storage (``kept_storage``)."""
    kept = kept_storage(packed)
    owners = np.repeat(np.arange(len(kept)), packed.counts.astype(np.int64))
    return owners, kept[owners]


def _slot_hints(packed: PackedState, old: OldValues, accounts: int) -> Sequence[bytes | None]:
    """The old value told of each slot of ``packed``: ``old.slots`` lists those of the
    accounts that kept their storage (a wiped one starts empty: none)."""
    kept = np.repeat(kept_storage(packed), packed.counts.astype(np.int64))
    if (len(old.accounts), len(old.slots)) != (accounts, int(kept.sum())):
        raise ValueError("old values must follow the diff's accounts and slots")
    if kept.all():
        return old.slots
    slots = iter(old.slots)
    return [next(slots) if mine else None for mine in kept.tolist()]


class TrieCommitter:
    """A session of the C committer: one commit at a time (not thread-safe).

    It keeps the nodes of its last commits, up to ``cache_bytes``: the next block's paths
    start in them (every block changes the top of the trie), so most of its reads are saved.
    Nodes are content-addressed, so a cached node is always right; the one thing it can do
    is stand in for a node whose write batch was dropped, which only a root of that dropped
    batch reaches. Its memory is freed by ``close`` or when it is collected.
    """

    def __init__(self, threads: int = COMMIT_THREADS, cache_bytes: int = CACHE_BYTES) -> None:
        self._lib = cpu_library()
        self._session: int | None = self._lib.mpt_open(threads, cache_bytes)
        if not self._session:
            raise MemoryError("cannot open a trie committer session")
        self._free = weakref.finalize(self, self._lib.mpt_close, self._session)

    def close(self) -> None:
        """Frees the session's memory."""
        self._free()
        self._session = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def commit_trie(self, root: bytes, changes: Mapping[bytes, bytes | None], load: Loader) -> Commit:
        """The trie under ``root`` after setting each key (32 bytes: the path itself) to its
        value, or deleting it where the value is None or empty."""
        keys = b"".join(changes)
        if len(keys) != 32 * len(changes):
            raise ValueError("trie keys must be 32 bytes")
        values = [b"" if value is None else value for value in changes.values()]
        lengths = np.fromiter(
            (-1 if value is None else len(value) for value in changes.values()), dtype=np.int64, count=len(changes)
        )
        self._lib.mpt_begin_trie(
            self._open(root), root, len(changes), keys, b"".join(values), lengths.ctypes.data
        )
        return self._run(load, {}, 0)

    def commit_state(
        self, root: bytes, diff: StateDiff, load: Loader, old: OldValues | None = None,
    ) -> Commit:
        """The state under ``root`` after ``diff``: its storage tries, then its account trie;
        ``old``: the keys' old values, when known. The trie keys the packed diff carries
        (``PackedState.paths``, ``slot_paths``) are used as they are; those it lacks are
        hashed in C."""
        packed = diff.packed or pack_changes(diff)
        accounts = len(diff.accounts)
        if len(packed.records) != _RECORD * accounts or len(packed.counts) != accounts:
            raise ValueError("a packed diff must hold a record and a slot count for each account")
        known_slots: Sequence[bytes | None] = ()  # the old values told of the slots
        if old is not None:
            known_slots = _slot_hints(packed, old, accounts)
        keys, slot_paths = packed.paths, packed.slot_paths
        if keys is not None and len(keys) != 32 * accounts:
            raise ValueError("an account's trie key is 32 bytes, one for each account")
        if slot_paths is not None and len(slot_paths) * _SLOT != 32 * len(packed.slots):
            raise ValueError("a slot's trie key is 32 bytes, one for each slot")
        hints, hint_lengths = _hints(()) if old is None else old.packed_accounts
        slot_hints, slot_hint_lengths = (old.packed_slots if old is not None and known_slots is old.slots
                                         else _hints(known_slots))
        self._lib.mpt_begin_state(
            self._open(root), root, accounts, packed.records, keys, packed.slots, slot_paths,
            packed.counts.ctypes.data, hints, None if old is None else hint_lengths.ctypes.data,
            slot_hints, None if old is None else slot_hint_lengths.ctypes.data,
        )
        return self._run(load, packed.codes, accounts)

    def warm(
        self, root: bytes, paths: Sequence[bytes], load: Loader, stop: Callable[[], bool],
        told: Told | None = None, depth: int | None = None, budget: int | None = None,
    ) -> Warmed:
        """Reads the account-trie nodes along ``paths`` (trie keys, 32 bytes: ``hash_keys`` of
        the addresses) under ``root`` into the node cache, in rounds as a commit reads, so
        that the next commit on ``root`` touching them reads none of them; ``depth``: only
        down to it (in nibbles: the nodes at that depth are the last read), not to their
        ends. ``stop`` is asked between reads of ``WARM_CHUNK`` nodes: True ends the warm
        there. ``told``, asked there too: old values of keys learnt since; a key told is not
        read to its leaf, which a commit told the same does not read either (the round's
        nodes not read yet are listed again without those leaves). Never raises for the
        store's content: a missing or malformed node ends it quietly (a commit that needs the
        node reports it). ``budget``: it ends once it read that many bytes; its rounds read the
        trie level by level, so the levels above the last one read are whole."""
        keys = b"".join(paths)
        if len(keys) != 32 * len(paths):
            raise ValueError("an account's trie key is 32 bytes")
        if depth is not None and not 0 <= depth <= 64:
            raise ValueError("a trie key has 64 nibbles: a warm's depth is 0 to 64")
        lib, session = self._lib, self._open(root)
        lib.mpt_begin_warm(session, root, len(paths), keys, _TO_END if depth is None else depth)
        nothing: tuple[bytes, Sequence[bytes | None]] = (b"", ())
        news = nothing if told is None else told()
        read = size = 0

        def spent() -> bool:
            return budget is not None and size >= budget

        while True:
            self._tell(*news)
            if stop() or spent():
                return Warmed(read, False, size)
            if (count := lib.mpt_step(session)) <= 0:
                break
            hashes = self._missing(count)
            nodes: list[bytes | None] = []
            news, stopped = nothing, False
            while len(nodes) < count and not news[1]:  # new rows: list the rest again without their leaves
                if stopped := stop() or spent():
                    break
                chunk = load(hashes[len(nodes) : len(nodes) + WARM_CHUNK])
                nodes += chunk
                size += sum(map(len, filter(None, chunk)))
                news = nothing if told is None else told()
            # a node not read goes over as empty: listed again if still needed
            found = [node or b"" for node in nodes] + [b""] * (count - len(nodes))
            self._supply(b"".join(found), found)
            read += len(found) - found.count(b"")
            if stopped or None in nodes:
                return Warmed(read, False, size)
        return Warmed(read, count == 0, size)

    def interrupt_warm(self) -> None:
        """Ends a warm running in another thread within microseconds of its work in C (its
        reads in flight end first): the one call that may come from another thread."""
        if self._session:
            self._lib.mpt_warm_stop(self._session)

    def _tell(self, paths: bytes, values: Sequence[bytes | None]) -> None:
        """Tells the warm running the old values of keys (``Told``)."""
        if not values:
            return
        if len(paths) != 32 * len(values):
            raise ValueError("an account's trie key is 32 bytes, one for each value")
        data, lengths = _hints(values)
        self._lib.mpt_warm_tell(self._session, len(values), paths, data, lengths.ctypes.data)

    def _open(self, root: bytes) -> int:
        if not self._session:
            raise ValueError("the trie committer is closed")
        if len(root) != 32:
            raise ValueError("a trie root is 32 bytes")
        return self._session

    def _missing(self, count: int) -> list[bytes]:
        """The hashes of the ``count`` nodes the pass that just stepped needs."""
        return split(ctypes.string_at(self._lib.mpt_missing(self._session), 32 * count), 32)

    def _supply(self, data: bytes, nodes: Sequence[bytes]) -> None:
        """Hands the pass the nodes it listed, ``data`` being them joined (empty: not read)."""
        lengths = np.fromiter(map(len, nodes), dtype=np.uint64, count=len(nodes))
        self._lib.mpt_supply(self._session, data, lengths.ctypes.data)

    def _run(self, load: Loader, codes: Mapping[bytes, bytes], accounts: int) -> Commit:
        lib, session = self._lib, self._session
        while (count := lib.mpt_step(session)) != 0:
            if count < 0:
                raise Halt(lib.mpt_error(session).decode())
            hashes = self._missing(count)
            nodes = load(hashes)
            try:
                data = b"".join(nodes)  # type: ignore[arg-type]  # None is caught below
            except TypeError:
                missing = next(h for h, node in zip(hashes, nodes) if node is None)
                raise Halt(f"state trie node {missing.hex()} is missing") from None
            self._supply(data, nodes)  # type: ignore[arg-type]
        root = ctypes.create_string_buffer(32)
        lib.mpt_root(session, root)
        total = ctypes.c_uint64()
        count = lib.mpt_output_size(session, ctypes.byref(total))
        hashes_out = np.empty(32 * count, dtype=np.uint8)
        data_out = np.empty(total.value, dtype=np.uint8)
        sizes = np.empty(count, dtype=np.int64)
        lib.mpt_output(session, hashes_out.ctypes.data, data_out.ctypes.data, sizes.ctypes.data)
        data_out.flags.writeable = False
        return Commit(Hash32(root.raw), hashes_out.tobytes(), data_out.data, sizes, codes,
                      *self._account_values(accounts))

    def _account_values(self, count: int) -> tuple[bytes, npt.NDArray[np.int64]]:
        """The new values of a state commit's ``count`` accounts, back to back, and each
        one's size (-1: deleted)."""
        packed = np.empty(_VALUE_MAX * count, dtype=np.uint8)
        lengths = np.empty(count, dtype=np.int64)
        self._lib.mpt_account_values(self._session, packed.ctypes.data, lengths.ctypes.data)
        return packed[: int(np.maximum(lengths, 0).sum())].tobytes(), lengths
