"""The state the native interpreter reads: flat tables the host fills from a StateReader.

Rows are loaded in batches: what transactions surely read before they run, then the keys
they named ("needs key"), each batch in one trie walk in C. They hold the batch's
committed values: after each transaction commits, its writes are applied in place. The
pre-state value of every row is kept, so that the batch's ``StateDiff`` is the difference
between the two at the end.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_not
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from executor_gpu.api import StateReader
from executor_gpu.native_abi import ABI, from_words, words
from executor_gpu.native_build import HOST_THREADS
from executor_gpu.native_mpt import pack_state
from executor_gpu.types import AccountChange, StateDiff
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.types import Address

EMPTY_CODE_HASH = keccak256(b"")
NO_CODE = 2**64 - 1
"""ACC_CODE of an account without code (-1 as the interpreter reads it)."""

_ACC_WORDS = ABI["ACC_WORDS"]
_SL_WORDS = ABI["SL_WORDS"]
_CD_WORDS = ABI["CD_WORDS"]
_EXISTS = ABI["AF_EXISTS"]
_HAS_STORAGE = ABI["AF_HAS_STORAGE"]

U64Array = npt.NDArray[np.uint64]
U8Array = npt.NDArray[np.uint8]


def address_int(address: bytes) -> int:
    """An address as the 256-bit value the interpreter compares."""
    return int.from_bytes(address, "big")


def int_address(value: int) -> Address:
    """Inverse of ``address_int``."""
    return Address(value.to_bytes(20, "big"))


class _Rows:
    """A growable 2-D array of rows, with a mark per row of whether the batch wrote it."""

    def __init__(self, width: int, dtype: type[np.generic] = np.uint64) -> None:
        self.data: npt.NDArray[Any] = np.zeros((64, width), dtype=dtype)
        self.written: npt.NDArray[np.bool_] = np.zeros(64, dtype=bool)
        self.count = 0

    def extend(self, n: int) -> int:
        """Adds ``n`` zeroed rows; returns the first."""
        size = len(self.data)
        while self.count + n > size:
            size *= 2
        if size > len(self.data):
            # Fresh zeroed memory (the kernel's zero pages until written) and the used rows
            # copied: concatenating copied every zero too (10-14 ms a block of 30,000 transfers).
            data = np.zeros((size, self.data.shape[1]), self.data.dtype)
            data[: self.count] = self.data[: self.count]
            written = np.zeros(size, dtype=bool)
            written[: self.count] = self.written[: self.count]
            self.data, self.written = data, written
        self.count += n
        return self.count - n

    @property
    def used(self) -> npt.NDArray[Any]:
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


def be_words(values: U8Array) -> U64Array:
    """Big-endian numbers of at most 32 bytes, one per row, as rows of four little-endian words."""
    n, width = values.shape
    padded = np.zeros((n, 32), dtype=np.uint8)
    padded[:, 32 - width :] = values
    return np.ascontiguousarray(padded[:, ::-1]).view("<u8")


def word_bytes(values: U64Array) -> U8Array:
    """Inverse of ``be_words``: rows of four little-endian words as 32-byte big-endian numbers."""
    return np.ascontiguousarray(values[:, ::-1], dtype=">u8").view(np.uint8)


def word_ints(words: U64Array) -> list[int]:
    """Rows of four little-endian words as Python ints."""
    if not words[:, 1:].any():  # all below 2^64: numpy converts them itself
        values: list[int] = words[:, 0].tolist()
        return values
    if not words[:, 2:].any():  # below 2^128 (balances): two limbs, half the time of bytes
        return [low | high << 64 for low, high in zip(words[:, 0].tolist(), words[:, 1].tolist())]
    raw = np.ascontiguousarray(words, dtype="<u8").tobytes()
    return [int.from_bytes(raw[i : i + 32], "little") for i in range(0, len(raw), 32)]


_EMPTY_ROOT = np.frombuffer(EMPTY_ROOT, dtype=np.uint8)
_EMPTY_CODE_WORDS = np.array(words(int.from_bytes(EMPTY_CODE_HASH, "big")), dtype=np.uint64)


class ArrayChanges(Mapping[Address, AccountChange | None]):
    """A diff's changed accounts as the executor's arrays hold them: each ``AccountChange`` is
    made when first asked for. The node's block path reads a block's tens of thousands of
    them only packed (``PackedState``), and looks up just those the pool checks against;
    making them all, with a dict for each storage, cost 20-50 ms a block."""

    def __init__(
        self, addresses: list[Address], nonces: U64Array, balances: U64Array,
        codes: list[bytes | None], resets: npt.NDArray[np.bool_], slot_counts: U64Array,
        slot_keys: U64Array, slot_values: U64Array,
    ) -> None:
        """``addresses``: the changed accounts, then the deleted ones (None); the other
        arguments follow the changed ones: nonce, balance (four words), new code (None:
        kept), storage wiped; ``slot_counts[i]`` of ``slot_keys`` / ``slot_values`` (four
        words each) are account i's slots, in order."""
        self._index = dict(zip(addresses, range(len(addresses))))
        if len(self._index) != len(addresses):
            raise ValueError("an account is changed twice in one diff")
        self._live = len(nonces)
        self._arrays = (nonces, balances, resets, slot_counts[: self._live])
        self._codes, self._slot_keys, self._slot_values = codes, slot_keys, slot_values
        self._columns: tuple[list[int], list[int], list[bool], list[int]] | None = None
        self._made: dict[int, AccountChange] = {}

    def __getitem__(self, address: Address) -> AccountChange | None:
        i = self._index[address]
        if i >= self._live:
            return None
        change = self._made.get(i)
        if change is None:
            if self._columns is None:  # all at once: a numpy element costs more than a list's
                nonces, balances, resets, counts = self._arrays
                self._columns = (nonces.tolist(), word_ints(balances), resets.tolist(),
                                 [0, *np.cumsum(counts, dtype=np.int64).tolist()])
            nonce, balance, reset, slot_starts = self._columns
            start, end = slot_starts[i], slot_starts[i + 1]
            storage = {} if start == end else dict(zip(word_ints(self._slot_keys[start:end]),
                                                       word_ints(self._slot_values[start:end])))
            change = self._made[i] = AccountChange(nonce[i], balance[i], self._codes[i], storage,
                                                   reset[i])
        return change

    def nonces_and_balances(self, addresses: Sequence[Address]) -> tuple[list[int], list[int]]:
        """``StateDiff.nonces_and_balances``, read from the arrays for just these accounts."""
        at = np.fromiter(map(self._index.__getitem__, addresses), dtype=np.int64, count=len(addresses))
        live = at < self._live
        if not live.any():
            return [0] * len(at), [0] * len(at)
        nonces, balances = self._arrays[0], self._arrays[1]
        rows = np.where(live, at, 0)
        return (np.where(live, nonces[rows], 0).tolist(),
                word_ints(np.where(live[:, None], balances[rows], 0)))

    def __contains__(self, address: object) -> bool:
        return address in self._index  # without making its change

    def __iter__(self) -> Iterator[Address]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> KeysView[Address]:
        return self._index.keys()  # a dict's: set operations on it run in C

    def __repr__(self) -> str:
        return f"ArrayChanges({dict(self.items())!r})"


class TrieReader:
    """Batched lookups in the Merkle-Patricia tries of a node store.

    A batch walks its tries level by level: each distinct node a level needs is read once
    from the store (and kept: the top of a trie is on every path), and ``evm_trie_level``
    moves every lookup through it in C and decodes the values it reaches into table rows.
    A missing or malformed node halts: the store is corrupt.
    """

    def __init__(self, nodes: Mapping[bytes, bytes], lib: ctypes.CDLL) -> None:
        self._nodes = nodes
        self._cache: dict[bytes, bytes] = {}
        self._lib = lib

    def paths(self, keys: U8Array) -> U8Array:
        """Trie paths (Keccak-256) of keys, one per row."""
        keys = np.ascontiguousarray(keys)
        digests = np.empty((len(keys), 32), dtype=np.uint8)
        self._lib.evm_hash_keys(keys.ctypes.data, keys.shape[1], len(keys), digests.ctypes.data, HOST_THREADS)
        return digests

    def walk(
        self, roots: U8Array, paths: U8Array, rows: U64Array, storage_roots: U8Array | None
    ) -> npt.NDArray[np.bool_]:
        """Looks up ``paths[i]`` in the trie under ``roots[i]`` and decodes what it finds into
        ``rows[i]``: accounts (ACC_* rows, storage roots into ``storage_roots[i]``) when
        ``storage_roots`` is given, else slots (SL_VALUE). Rows of absent keys are left alone;
        returns which keys were found."""
        # The walk runs over the lookups sorted by root and path: those that meet in a node are
        # neighbours at every level, and the nodes of a level come in the order they are used.
        order = np.lexsort((np.ascontiguousarray(paths).view(">u8")[:, 0], np.ascontiguousarray(roots).view(">u8")[:, 0]))
        paths, next_hash, found_rows = paths[order], roots[order], rows[order]
        found_roots = storage_roots[order] if storage_roots is not None else np.zeros((1, 32), dtype=np.uint8)
        state = np.where((next_hash == _EMPTY_ROOT).all(axis=1), 0, 2).astype(np.int64)
        pos = np.zeros(len(paths), dtype=np.uint64)
        level = 0
        while True:
            todo = np.flatnonzero(state == 2).astype(np.uint64)
            if not len(todo):
                break
            wanted, where = _distinct(next_hash[todo])
            nodes = self._fetch(wanted, level < _CACHED_LEVELS)
            level += 1
            lengths = np.fromiter(map(len, nodes), dtype=np.uint64, count=len(nodes))
            starts = np.cumsum(lengths) - lengths
            # Each lookup's node in the level's buffer (kept in locals: C reads them).
            offsets, sizes = starts[where], lengths[where]
            self._lib.evm_trie_level(
                b"".join(nodes), offsets.ctypes.data, sizes.ctypes.data, todo.ctypes.data,
                len(todo), paths.ctypes.data, pos.ctypes.data, state.ctypes.data, next_hash.ctypes.data,
                storage_roots is not None, found_rows.ctypes.data, rows.shape[1], found_roots.ctypes.data,
            )
        bad = np.flatnonzero(state < 0)
        if len(bad):
            root = roots[order[bad[0]]].tobytes().hex()
            raise Halt(f"malformed state trie node or value under root {root}")
        found = np.zeros(len(state), dtype=bool)
        found[order] = state == 1
        rows[order] = found_rows
        if storage_roots is not None:
            storage_roots[order] = found_roots
        return found

    def _fetch(self, hashes: list[bytes], keep: bool) -> list[bytes]:
        """The nodes of ``hashes``; ``keep`` keeps them for later walks (the top of a trie is on
        many paths; below it, nodes are rarely met twice)."""
        cache, read = self._cache, self._nodes.__getitem__
        try:
            nodes = [cache.get(node_hash) or read(node_hash) for node_hash in hashes] if keep else list(map(read, hashes))
        except KeyError:
            missing = next(h for h in hashes if h not in cache and h not in self._nodes)
            raise Halt(f"state trie node {missing.hex()} is missing") from None
        if keep:
            cache.update(zip(hashes, nodes))
        return nodes


_CACHED_LEVELS = 4
"""Trie levels whose nodes a TrieReader keeps."""


def _distinct(hashes: U8Array) -> tuple[list[bytes], npt.NDArray[np.intp]]:
    """The distinct rows of ``hashes`` (32 bytes each, equal ones next to each other), and the
    index of each row among them. Equal rows apart (paths that share their first 16 nibbles
    and not their roots' first 8 bytes) come out more than once: that costs a fetch, no more."""
    words = hashes.view("<u8")
    starts = np.ones(len(hashes), dtype=bool)
    starts[1:] = (words[1:] != words[:-1]).any(axis=1)
    where: npt.NDArray[np.intp] = np.cumsum(starts) - 1
    return hashes[starts].view("V32").ravel().tolist(), where


@dataclass
class Index:
    """An open-addressing index over table rows, as the interpreter probes it."""

    slots: npt.NDArray[np.int32]
    """Row per bucket, -1 when empty."""
    mask: int
    """Number of buckets minus one."""
    rows: int = 0
    """Rows indexed: the first ones of the table."""


def build_index(lib: ctypes.CDLL, rows: U64Array, width: int, key_words: int, index: Index | None = None) -> Index:
    """Index of ``rows`` by their first ``key_words`` words, with at most half the buckets used.
    ``index``, an index of the first rows, is extended in place when it has room."""
    if index is None or 2 * len(rows) > index.mask + 1:
        buckets = 64
        while buckets < 2 * len(rows):
            buckets *= 2
        index = Index(np.full(buckets, -1, dtype=np.int32), buckets - 1)
    data = np.ascontiguousarray(rows)
    lib.evm_build_index(data.ctypes.data, width, key_words, index.rows, len(rows), index.slots.ctypes.data, index.mask)
    index.rows = len(rows)
    return index


class StateTables:
    """Accounts, storage slots and codes known to the host, with their batch pre-state values.

    Keys are loaded in batches (``load_accounts``, ``load_slots``): one trie walk in C per
    batch, straight into the rows. A slot is keyed by its address and its 32-byte big-endian
    slot number, concatenated.
    """

    def __init__(self, reader: StateReader, lib: ctypes.CDLL) -> None:
        self._reader = reader
        self._trie = TrieReader(reader.node_store, lib)
        self._lib = lib
        self.accounts = _Rows(_ACC_WORDS)
        self._account_pre = _Rows(_ACC_WORDS)
        """Each account row as loaded (flags: AF_EXISTS, AF_HAS_STORAGE of the pre-state)."""
        self._storage_roots = _Rows(32, np.uint8)
        self._paths = _Rows(32, np.uint8)  # each account's trie key, hashed once at its load
        self.slots = _Rows(_SL_WORDS)
        self._slot_pre = _Rows(4)
        """Each slot's pre-state value."""
        self._slot_account = _Rows(1, np.int64)
        """Each slot's account row."""
        self._slot_paths = _Rows(32, np.uint8)  # each slot's trie key, likewise
        self.codes = _Rows(_CD_WORDS)
        self.code_bytes = _Bytes()
        self.jumpdests = _Bytes()
        self._analyzed = 0
        self._account_rows: dict[bytes, int] = {}
        self._addresses: list[Address] = []
        """Address of each account row."""
        self._slot_rows: dict[bytes, int] = {}
        self._code_rows: dict[bytes, int] = {}
        self._code_list: list[bytes] = []
        self._wiped: set[bytes] = set()
        self._indexed = (-1, -1)
        self._account_index: Index | None = None
        self._slot_index: Index | None = None
        self.load_seconds = 0.0
        """Time spent loading state so far."""

    # -- loading -----------------------------------------------------------

    def load_accounts(self, addresses: Iterable[bytes]) -> None:
        """Loads the accounts of ``addresses`` not loaded yet."""
        start = time.perf_counter()
        self._load_accounts(addresses)
        self.load_seconds += time.perf_counter() - start

    def load_slots(self, keys: Iterable[bytes]) -> None:
        """Loads the slots of ``keys`` (address + 32-byte slot) not loaded yet, and their accounts."""
        start = time.perf_counter()
        self._load_slots(keys)
        self.load_seconds += time.perf_counter() - start

    def _load_accounts(self, addresses: Iterable[bytes]) -> None:
        known = self._account_rows
        new = list(dict.fromkeys(addresses))
        if known:
            new = [a for a in new if a not in known]
        if not new:
            return
        n = len(new)
        keys = np.frombuffer(b"".join(new), dtype=np.uint8).reshape(n, 20)
        paths = self._trie.paths(keys)
        # Rows in the order of their flat keys: the store reads them fastest in that order.
        order = np.argsort(np.ascontiguousarray(paths).view(">u8")[:, 0], kind="stable")
        keys, paths = keys[order], paths[order]
        new = keys.view("V20").ravel().tolist()
        first = self.accounts.extend(n)
        self._storage_roots.extend(n)
        self._account_pre.extend(n)
        self._paths.extend(n)
        self._paths.data[first : first + n] = paths
        known.update(zip(new, range(first, first + n)))
        self._addresses.extend(cast("list[Address]", new))
        rows = self.accounts.data[first : first + n]
        rows[:, ABI["ACC_ADDR"] : ABI["ACC_ADDR"] + 4] = be_words(keys)
        rows[:, ABI["ACC_CODE"]] = NO_CODE
        rows[:, ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4] = _EMPTY_CODE_WORDS
        roots = self._storage_roots.data[first : first + n]
        roots[:] = _EMPTY_ROOT
        flat = self._reader.flat_accounts(paths.view("V32").ravel().tolist())
        if flat is None:
            # The root is asked for only here: a pending block's state has none yet.
            root = np.frombuffer(self._reader.state_root, dtype=np.uint8)
            self._trie.walk(np.broadcast_to(root, (n, 32)), paths, rows, roots)
        else:
            self._decode_flat(flat, rows, roots)
        hashes = rows[:, ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4]
        for i in np.flatnonzero((hashes != _EMPTY_CODE_WORDS).any(axis=1)).tolist():
            rows[i, ABI["ACC_CODE"]] = self._code_of(hashes[i, ::-1].astype(">u8").tobytes())
        self._account_pre.data[first : first + n] = rows

    def _code_of(self, code_hash: bytes) -> int:
        row = self._code_rows.get(code_hash)
        if row is not None:
            return row
        try:
            code = self._reader.node_store[code_hash]
        except KeyError:
            raise Halt(f"code {code_hash.hex()} is missing from the state store") from None
        return self.code_row(code)

    def _load_slots(self, keys: Iterable[bytes]) -> None:
        known = self._slot_rows
        new = [k for k in dict.fromkeys(keys) if k not in known]
        if not new:
            return
        owners = [k[:20] for k in new]
        self._load_accounts(owners)
        n = len(new)
        first = self.slots.extend(n)
        self._slot_pre.extend(n)
        self._slot_account.extend(n)
        self._slot_paths.extend(n)
        known.update(zip(new, range(first, first + n)))
        account_rows = np.fromiter(map(self._account_rows.__getitem__, owners), dtype=np.int64, count=n)
        self._slot_account.data[first : first + n, 0] = account_rows
        raw = np.frombuffer(b"".join(new), dtype=np.uint8).reshape(n, 52)
        rows = self.slots.data[first : first + n]
        rows[:, ABI["SL_ADDR"] : ABI["SL_ADDR"] + 4] = be_words(raw[:, :20])
        rows[:, ABI["SL_KEY"] : ABI["SL_KEY"] + 4] = be_words(raw[:, 20:])
        slot_paths = self._slot_paths.data[first : first + n] = self._trie.paths(raw[:, 20:])
        flat = self._reader.flat_slots(
            np.concatenate([self._paths.data[account_rows], slot_paths], axis=1).view("V64").ravel().tolist()
        )
        if flat is None:
            self._trie.walk(self._storage_roots.data[account_rows], slot_paths, rows, None)
        else:
            self._decode_flat(flat, rows, None)
        self._slot_pre.data[first : first + n] = rows[:, ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4]
        if self._wiped:
            # A storage wiped earlier in the batch reads as empty, whatever the pre-state holds.
            wiped = np.fromiter((owner in self._wiped for owner in owners), dtype=bool, count=n)
            rows[wiped, ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4] = 0

    def _decode_flat(self, values: list[bytes | None], rows: U64Array, roots: U8Array | None) -> None:
        """Decodes values read from the flat tables into ``rows`` (accounts, with their storage
        roots into ``roots``, when ``roots`` is given; else slots), as a walk would."""
        n = len(values)
        present = np.fromiter(map(is_not, values, repeat(None, n)), dtype=np.uint8, count=n)
        filled = [value or b"" for value in values]
        offsets = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(np.fromiter(map(len, filled), dtype=np.uint64, count=n), out=offsets[1:])
        data = np.ascontiguousarray(rows)
        bad = self._lib.evm_decode_flat(
            n, b"".join(filled), offsets.ctypes.data, present.ctypes.data,
            roots is not None, data.ctypes.data, rows.shape[1], 0 if roots is None else roots.ctypes.data,
        )
        if bad:
            raise Halt(f"malformed flat state value under root {self._reader.state_root.hex()}")
        rows[:] = data

    def account_row(self, address: bytes) -> int:
        """Row of ``address``, loaded on first use."""
        row = self._account_rows.get(address)
        if row is None:
            self.load_accounts((address,))
            row = self._account_rows[address]
        return row

    def slot_row(self, address: bytes, slot: int) -> int:
        """Row of a storage slot, loaded on first use."""
        key = address + slot.to_bytes(32, "big")
        row = self._slot_rows.get(key)
        if row is None:
            self.load_slots((key,))
            row = self._slot_rows[key]
        return row

    def account_rows(self, addresses: Iterable[bytes]) -> npt.NDArray[np.int64]:
        """Rows of loaded accounts."""
        return np.fromiter(map(self._account_rows.__getitem__, addresses), dtype=np.int64)

    def slot_rows(self, keys: Iterable[bytes]) -> npt.NDArray[np.int64]:
        """Rows of loaded slots (address + 32-byte slot)."""
        return np.fromiter(map(self._slot_rows.__getitem__, keys), dtype=np.int64)

    def code_row(self, code: bytes) -> int:
        """Index of ``code`` in the code table (deduplicated by hash)."""
        code_hash = keccak256(code)
        row = self._code_rows.get(code_hash)
        if row is not None:
            return row
        row = self.codes.extend(1)
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
            self._account_index = build_index(self._lib, self.accounts.used, _ACC_WORDS, 4, self._account_index)
            self._slot_index = build_index(self._lib, self.slots.used, _SL_WORDS, 8, self._slot_index)
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
        self.accounts.written[row] = True

    def write_slot(self, row: int, value: int) -> None:
        """Commits a new value of a slot row."""
        data = self.slots.data[row]
        data[ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4] = words(value)
        self.slots.written[row] = True

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
        self.accounts.written[rows] = True

    def commit_slots(self, rows: npt.NDArray[np.int64], values: U64Array) -> None:
        """Commits slots' new values (four words each, one per row)."""
        self.slots.data[rows, ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4] = values
        self.slots.written[rows] = True

    def slot_value(self, row: int) -> int:
        """Committed value of a slot row."""
        return from_words(self.slots.data[row][ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4])

    def wipe_storage(self, address: bytes) -> list[int]:
        """Empties the storage of ``address`` (deletion, or a creation over it); returns the rows."""
        self._wiped.add(address)
        account = self.account_row(address)
        self.accounts.data[account, ABI["ACC_FLAGS"]] &= ~np.uint64(_HAS_STORAGE)
        rows: list[int] = np.flatnonzero(self._slot_account.used[:, 0] == account).tolist()
        for row in rows:
            self.write_slot(row, 0)
        return rows

    # -- the batch's result -------------------------------------------------

    def diff(self) -> StateDiff:
        """Changes from the pre-state to the committed values, as the reference reports them."""
        pre = self._account_pre.used
        now = self.accounts.used
        # A wipe of non-empty storage is reported as a reset plus the slots set since.
        reset = np.zeros(len(now), dtype=bool)
        wiped = [self._account_rows[a] for a in self._wiped]
        reset[wiped] = (pre[wiped, ABI["ACC_FLAGS"]] & np.uint64(_HAS_STORAGE)) != 0
        slot_rows = np.flatnonzero(self.slots.written[: self.slots.count])
        owners = self._slot_account.data[slot_rows, 0]
        values = self.slots.data[slot_rows, ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4]
        baseline = np.where(reset[owners][:, None], np.uint64(0), self._slot_pre.data[slot_rows])
        changed = (values != baseline).any(axis=1)
        slot_rows, owners, values = slot_rows[changed], owners[changed], values[changed]
        key_words = self.slots.data[slot_rows, ABI["SL_KEY"] : ABI["SL_KEY"] + 4]
        written = self.accounts.written[: len(now)].copy()
        written[self._slot_account.data[np.flatnonzero(self.slots.written[: self.slots.count]), 0]] = True
        exists = (now[:, ABI["ACC_FLAGS"]] & np.uint64(_EXISTS)) != 0
        existed = (pre[:, ABI["ACC_FLAGS"]] & np.uint64(_EXISTS)) != 0
        code_changed = (now[:, ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4]
                        != pre[:, ABI["ACC_CODE_HASH"] : ABI["ACC_CODE_HASH"] + 4]).any(axis=1)
        has_slots = np.zeros(len(now), dtype=bool)
        has_slots[owners] = True
        same = (
            existed & ~reset & ~has_slots & ~code_changed
            & (now[:, ABI["ACC_NONCE"]] == pre[:, ABI["ACC_NONCE"]])
            & (now[:, ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4] == pre[:, ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4]).all(axis=1)
        )
        deleted = np.flatnonzero(written & ~exists & existed)
        rows = np.flatnonzero(written & exists & ~same)
        record = now[rows]
        # New code where there is any: most changed accounts only pay or are paid.
        codes: list[bytes | None] = [None] * len(rows)
        code_hashes = np.zeros((len(rows) + len(deleted), 32), dtype=np.uint8)
        new_codes: dict[bytes, bytes] = {}
        for i in np.flatnonzero(code_changed[rows]).tolist():
            code_index = int(record[i, ABI["ACC_CODE"]])
            code = codes[i] = b"" if code_index == NO_CODE else self.code(code_index)
            code_hash = keccak256(code)
            new_codes[code_hash] = code
            code_hashes[i] = np.frombuffer(code_hash, dtype=np.uint8)
        nonces = record[:, ABI["ACC_NONCE"]]
        balances = record[:, ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4]
        # The slots in the storages' order: by account, then in their rows' order.
        position = np.full(len(now), -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        at = position[owners]
        kept = np.flatnonzero(at >= 0)
        kept = kept[np.argsort(at[kept], kind="stable")]
        gone = len(deleted)
        counts = np.bincount(at[kept], minlength=len(rows) + gone).astype(np.uint64)
        changes = ArrayChanges(
            list(map(self._addresses.__getitem__, np.concatenate([rows, deleted]).tolist())), nonces,
            balances, codes, reset[rows], counts, key_words[kept], values[kept],
        )
        packed = pack_state(
            b"".join(changes),
            np.concatenate([np.zeros(len(rows), dtype=bool), np.ones(gone, dtype=bool)]),
            np.concatenate([nonces, np.zeros(gone, dtype=np.uint64)]),
            np.concatenate([word_bytes(balances), np.zeros((gone, 32), dtype=np.uint8)]),
            code_hashes, counts,
            np.concatenate([reset[rows], np.zeros(gone, dtype=bool)]),
            np.concatenate([word_bytes(key_words[kept]), word_bytes(values[kept])], axis=1).tobytes(),
            new_codes,
            self._paths.data[np.concatenate([rows, deleted])].tobytes(),
            self._slot_paths.data[slot_rows[kept]].tobytes(),
        )
        return StateDiff(accounts=changes, packed=packed)
