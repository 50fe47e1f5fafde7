"""Ethereum state (accounts, code, storage) over the KV seam: Merkle-Patricia roots for every
block, and a flat copy of the latest state for reads.

Roots: a block's diff is applied by the native committer (``executor_gpu.native_mpt``): every
storage trie it changes, then the account trie, each touched node read once (in rounds, one
get per node) and every new node hashed in C. Trie nodes and code are stored
content-addressed under ``schema.state_node_key`` and never deleted: every past root stays
readable by walking its trie (archive node; proofs).

Flat state: the same batch writes the diff into the flat tables (``schema.FLAT_*``), every
account and slot of one state under the trie's hashed keys, and moves the marker that names
their root and height. ``StateDB.at(root)`` reads the flat tables, one ``get`` a value, when
``root`` is the marker's root as its reader sees it (so a staged batch reads its own writes),
and walks the trie for any other root. Each height keeps a change set (the values its writes
replaced), so ``stage_unwind`` takes the flat state back with the blocks (an L1 reorg under the
watcher's chain).

Prefetch: while a block executes, ``StateDB.prefetch`` reads the account-trie paths of the
accounts it touches into the committer's node cache in a thread (``TrieCommitter.warm``), so
that its ``apply`` reads few nodes on the block's path; ``apply`` stops a warm still running.
The flat rows that views of its root read in bulk meanwhile (the executor's) are told to the
warm: it then skips those accounts' leaves, which ``apply``, told the same rows, never reads.

Cache: a bounded LRU of decoded accounts and slots of the committed flat state. Reads fill it;
``StateDB.commit``, which commits every batch carrying state, updates the entries the batch
changed and bumps a generation count before and after. A view opened before a commit sees the
count move and reads its own root from the trie from then on, so no view mixes two states and
the cache never holds a value of a staged, uncommitted batch.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, compress, repeat
from typing import Annotated, Self, TypeVar, cast

import numpy as np
import numpy.typing as npt
import rlp
from annotated_types import Ge
from trie.exceptions import MissingTrieNode
from trie.hexary import HexaryTrie
from trie.iter import NodeIterator

from executor_gpu.native_mpt import (
    CACHE_BYTES,
    COMMIT_THREADS,
    Commit,
    Loader,
    OldValues,
    Told,
    TrieCommitter,
    Warmed,
    flat_changes,
    hash_keys,
    kept_slots,
    kept_storage,
    pack_changes,
    slot_rows,
    slot_values,
    split,
    with_trie_keys,
)
from executor_gpu.types import Account, AccountChange, PackedState, StateDiff
from node.db import schema
from node.db.api import KV, KVReader, WriteBatch
from node.db.memory import PackedWrites
from primitives import rlp as fast_rlp
from primitives.blocks import EMPTY_ROOT
from primitives.collector import cycle_collector_paused
from primitives.crypto import keccak256
from primitives.errors import Halt, InvalidInput
from primitives.types import Address, Hash32

log = logging.getLogger(__name__)

EMPTY_CODE_HASH = keccak256(b"")
"""Code hash of an account without code."""


_Value = TypeVar("_Value", Account, int)
"""What a flat table holds, decoded: an account or a slot's value."""

_UNREAD = b"not read yet"
"""Stands for a flat row that was not read yet: told apart by identity (``is``), so a row of
these very bytes is still a row."""


@dataclass(frozen=True)
class StateOptions:
    """How much the flat state keeps in memory and for unwinding ([state] in the config)."""

    cache_entries: Annotated[int, Ge(0)] = 100_000
    """Accounts and slots the cache of the committed head holds (about 0.5 KB each)."""
    node_cache_mib: Annotated[int, Ge(0)] = CACHE_BYTES >> 20
    """The state committer's cache of trie branches, where each block's paths start: a larger
    state has more of them (at 10M accounts, 3072 lets ``StateDB.warm_top`` read the million
    lowest branches at start, which a block otherwise reads one per account)."""
    unwind_depth: Annotated[int, Ge(0)] = 128
    """Heights whose change sets are kept (a block of 10,000 transfers writes about 2 MB);
    unwinding deeper rebuilds the flat tables from the trie (reads the whole state)."""
    prefetch_min_cores: Annotated[int, Ge(1)] = 3
    """Cores a host needs for the node to prefetch each block's trie paths while it executes
    (``StateDB.prefetch``): its thread needs a core to spare (on two cores it slowed a block's
    execution more than it sped its root up). 1: always."""


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


@dataclass(frozen=True)
class FlatMarker:
    """Which state the flat tables hold (``schema.FLAT_MARKER``)."""

    root: Hash32
    """Its state root."""
    height: int
    """Diffs applied since genesis (height 0), the block number in a node; -1 before genesis."""

    @classmethod
    def read(cls, reader: KVReader) -> FlatMarker:
        """The marker as ``reader`` sees it; absent: the empty state before genesis."""
        data = reader.get(schema.FLAT_MARKER)
        if data is None:
            return cls(EMPTY_ROOT, -1)
        if len(data) != 40:
            raise Halt("corrupt flat state marker in the database")
        return cls(Hash32(data[:32]), schema.decode_number(data[32:]))

    def encode(self) -> bytes:
        """The stored form: root, then the 8-byte height."""
        return self.root + schema.encode_number(self.height)


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


class FlatCache:
    """Decoded accounts and slots of the committed flat state at ``root``, by flat key, least
    recently used evicted first; and the generation count of commits (odd while one runs)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.root: Hash32 | None = None
        self.generation = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, Account | int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def adopt(self, root: Hash32, generation: int) -> int | None:
        """Serve ``root``, the committed marker's root read at ``generation``: the generation
        views of it use, or None when a commit began since. A change of root empties the
        cache and moves the generation on, so views of the old root stop using it."""
        with self._lock:
            if generation != self.generation:
                return None
            if root != self.root:
                self._entries.clear()
                self.root = root
                self.generation += 2
            return self.generation

    def get(self, key: bytes) -> Account | int | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: bytes, value: Account | int, generation: int) -> None:
        """Keep ``value``, read from the committed tables at ``generation`` (dropped when a
        commit began since: it may be the old state's)."""
        with self._lock:
            if generation != self.generation:
                return
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def begin_commit(self) -> None:
        with self._lock:
            self.generation += 1

    def end_commit(self, staged: _StagedFlat | None) -> None:
        """After a commit of ``staged`` (None: of unknown effect): drop the entries it
        changed (their next read reads the tables: a block changes tens of thousands of
        accounts that are seldom read one by one again, and decoding them all here cost the
        block path more than that), or start over when it does not continue the cached
        state."""
        with self._lock:
            self.generation += 1
            if staged is None or staged.writes is None or staged.before != self.root:
                self._entries.clear()
                self.root = None
                return
            entries = self._entries
            for key in entries.keys() & staged.writes:
                del entries[key]
            self.root = staged.after


@dataclass
class _StagedFlat:
    """What the flat writes staged into one batch do, for the cache at commit."""

    before: Hash32
    """Root of the flat state the batch starts from."""
    after: Hash32
    """Root it leaves."""
    writes: set[bytes] | None
    """Every flat key written; None when the steps staged did not chain (the cache starts
    over)."""


class _Stale(Exception):
    """A commit moved the flat tables since the view was opened."""


def _node_loader(reader: KVReader) -> Loader:
    """Reads trie nodes by hash from ``reader``, all in one ``get_many``."""
    prefix = schema.STATE_NODE_PREFIX  # state_node_key, inlined: a key per node
    return lambda hashes: reader.get_many([prefix + node_hash for node_hash in hashes])


class _FlatReads:
    """One view's reads of the flat tables; valid while the cache's generation stays put."""

    def __init__(
        self, reader: KVReader, cache: FlatCache, generation: int, cached: bool,
        told: Callable[[list[bytes], list[bytes | None]], None],
    ) -> None:
        """``told``: given every bulk read's keys and values that still hold."""
        self._reader = reader
        self._cache = cache
        self._generation = generation
        self._cached = cached
        self._told = told

    def account(self, address: Address) -> Account | None:
        key = schema.flat_account_key(_account_hash(address))
        return self._read(key, Account, _flat_account)

    def storage(self, address: Address, slot: int) -> int:
        key = schema.flat_storage_key(_account_hash(address), _slot_hash(slot))
        return self._read(key, int, _flat_slot) or 0

    def values(self, keys: list[bytes]) -> list[bytes | None]:
        """The stored values of flat ``keys``, one get each (bulk reads skip the cache)."""
        values = self._reader.get_many(keys)
        self._check()
        self._told(keys, values)
        return values

    def _read(
        self, key: bytes, kind: type[_Value], decode: Callable[[bytes | None], _Value | None]
    ) -> _Value | None:
        """The decoded value of ``key``: from the cache, else the tables (then cached)."""
        if self._cached:
            hit = self._cache.get(key)
            if isinstance(hit, kind):
                self._check()
                return hit
        value = decode(self._reader.get(key))
        self._check()
        if self._cached and value is not None:
            self._cache.put(key, value, self._generation)
        return value

    def current(self) -> bool:
        """True while no commit began since the view opened (its reads still hold)."""
        return self._cache.generation == self._generation

    def _check(self) -> None:
        if not self.current():
            raise _Stale


class StateView:
    """Read-only state at one root; implements executor_gpu.api.StateReader.

    Reads come from ``flat`` while it is given and current, else from the trie."""

    def __init__(
        self, reader: KVReader, state_root: Hash32, flat: _FlatReads | None = None
    ) -> None:
        self._root = state_root
        self._nodes = NodeStore(reader)
        self._trie = HexaryTrie(self._nodes, state_root)
        self._flat = flat
        self._bulk_read: dict[bytes, bytes | None] = {}

    @property
    def state_root(self) -> Hash32:
        return self._root

    @property
    def node_store(self) -> Mapping[bytes, bytes]:
        return self._nodes

    @property
    def reads_flat(self) -> bool:
        """True while reads come from the flat tables (False: they walk the trie)."""
        return self._flat is not None

    def get_account(self, address: Address) -> Account | None:
        if self._flat is not None:
            try:
                return self._flat.account(address)
            except _Stale:
                self._flat = None
        encoded = _trie_get(self._trie, _account_hash(address))
        return decode_account(encoded) if encoded else None

    def get_code(self, address: Address) -> bytes:
        return read_code(self._nodes, self.get_account(address), address)

    def get_storage(self, address: Address, slot: int) -> int:
        if self._flat is not None:
            try:
                return self._flat.storage(address, slot)
            except _Stale:
                self._flat = None
        account = self.get_account(address)
        if account is None or account.storage_root == EMPTY_ROOT:
            return 0
        storage = HexaryTrie(self._nodes, account.storage_root)
        encoded = _trie_get(storage, _slot_hash(slot))
        return rlp.decode(encoded, sedes=rlp.sedes.big_endian_int) if encoded else 0

    def get_accounts_flat(self, addresses: Sequence[Address]) -> list[Account | None] | None:
        """The accounts of ``addresses``, their flat rows read in one batch (over threads when
        there are thousands); None when this view does not read flat (read them one by one)."""
        values = self.flat_accounts(hash_keys(addresses))
        return None if values is None else list(map(_flat_account, values))

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None] | None:
        prefix = schema.FLAT_ACCOUNT_PREFIX
        return self._flat_values([prefix + path for path in account_hashes])

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None] | None:
        prefix = schema.FLAT_STORAGE_PREFIX
        return self._flat_values([prefix + path for path in slot_paths])

    def _flat_values(self, keys: list[bytes]) -> list[bytes | None] | None:
        if self._flat is not None:
            try:
                values = self._flat.values(keys)
            except _Stale:
                self._flat = None
                return None
            self._bulk_read.update(zip(keys, values))
            return values
        return None

    def bulk_reads(self) -> Mapping[bytes, bytes | None]:
        """The flat rows bulk reads got (by flat key; None: absent), while they still hold:
        ``StateDB.apply`` of a diff on this state need not read them again."""
        if self._flat is None or not self._flat.current():
            return {}
        return self._bulk_read

    def account_proof(self, address: Address) -> tuple[bytes, ...]:
        """The trie nodes from the root along the account's key (EIP-1186 ``accountProof``)."""
        return self._proof(self._trie, _account_hash(address))

    def storage_proof(self, address: Address, slot: int) -> tuple[bytes, ...]:
        """The nodes from the account's storage root along the slot's key (none when the
        account has no storage)."""
        account = self.get_account(address)
        if account is None or account.storage_root == EMPTY_ROOT:
            return ()
        return self._proof(HexaryTrie(self._nodes, account.storage_root), _slot_hash(slot))

    def _proof(self, trie: HexaryTrie, key: bytes) -> tuple[bytes, ...]:
        try:
            nodes = trie.get_proof(key)  # type: ignore[no-untyped-call]  # py-trie: untyped
        except MissingTrieNode as exc:
            raise Halt(f"state trie node missing under root {self._root.hex()}: {exc}") from exc
        encoded = [rlp.encode(node) for node in nodes]
        # As go-ethereum: nodes embedded in their parent (under 32 bytes) are not listed.
        return tuple(node for i, node in enumerate(encoded) if i == 0 or len(node) >= 32)


_Warm = Callable[[Callable[[], bool], Told], Warmed]
"""Runs a warm: asks its first argument whether to stop, its second for accounts' rows told."""


class Prefetch:
    """A warm of the committer's node cache running in a thread of its own (``StateDB.prefetch``).
    As a context manager, it is stopped and waited for on exit."""

    def __init__(self, root: Hash32, warm: _Warm, interrupt: Callable[[], None]) -> None:
        """``interrupt``: ends the warm's work in C at once."""
        self.root = root
        """The state root whose trie it reads."""
        self._interrupt = interrupt
        self._stop = threading.Event()
        self._rows: queue.SimpleQueue[tuple[list[bytes], list[bytes | None]]] = queue.SimpleQueue()
        self.warmed: Warmed | None = None
        """What the warm did, once it ended (None before, or when it failed)."""
        self._thread = threading.Thread(target=self._run, args=(warm,), name="state-prefetch")
        self._thread.start()

    def _run(self, warm: _Warm) -> None:
        try:
            self.warmed = warm(self._stop.is_set, self._told)
        except Exception:  # a prefetch never fails a block: its commit reads what it needs
            log.exception("state prefetch failed")

    def tell(self, keys: list[bytes], values: list[bytes | None]) -> None:
        """Flat rows of its root just read (by flat key; None: absent), for the warm."""
        self._rows.put((keys, values))

    def _told(self) -> tuple[bytes, list[bytes | None]]:
        """The accounts' rows told since the last call (``Told``; the warm's thread): a bulk
        read of account rows (not of slots), their keys stripped of the prefix at once."""
        size = len(schema.flat_account_key(EMPTY_ROOT))
        paths: list[bytes] = []
        values: list[bytes | None] = []
        while not self._rows.empty():
            keys, rows = self._rows.get()
            joined = np.frombuffer(b"".join(keys), dtype=np.uint8)
            if len(joined) != size * len(keys):  # slots' keys are longer
                continue
            table = joined.reshape(-1, size)
            if (table[:, 0] == schema.FLAT_ACCOUNT_PREFIX[0]).all():
                paths.append(table[:, 1:].tobytes())
                values += rows
        return b"".join(paths), values

    @property
    def done(self) -> bool:
        """True once the warm ended (finished, stopped or failed)."""
        return not self._thread.is_alive()

    def stop(self) -> None:
        """End the warm: at once in C, after the chunk of reads in flight in Python."""
        self._stop.set()
        if not self.done:
            self._interrupt()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the warm and wait for it to end (a chunk of reads at most)."""
        self.stop()
        self._thread.join()


class StateDB:
    """The node's state: views at any past root, and diffs applied into a block's batch.

    Batches that ``apply``, ``genesis`` or ``stage_unwind`` staged into are committed with
    ``commit``, which keeps the cache and the views opened before it right."""

    def __init__(
        self, kv: KV, cache_bytes: int = CACHE_BYTES, options: StateOptions | None = None,
        threads: int = COMMIT_THREADS,
    ) -> None:
        """``cache_bytes``: the committer's node cache; ``options``: the flat state's;
        ``threads``: the committer's worker threads."""
        self._kv = kv
        # One committer for the node's life: its cache holds the nodes the next block starts from.
        self._committer = TrieCommitter(threads, cache_bytes)
        self._cache_bytes = cache_bytes
        # Serialises the committer's commits and warms (it is one session, not thread-safe).
        self._committing = threading.Lock()
        self._prefetch: Prefetch | None = None
        # A top warm (warm_top) is wanted and has not finished: resume_warm starts it again.
        self._top_wanted = False
        self._options = options or StateOptions()
        self._cache = FlatCache(self._options.cache_entries)
        # One batch commit at a time, so the cache's generation brackets exactly one.
        self._batch_commits = threading.Lock()
        # Flat writes staged per uncommitted batch (forgotten with a discarded batch).
        self._staged: weakref.WeakKeyDictionary[WriteBatch, _StagedFlat] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def cache(self) -> FlatCache:
        return self._cache

    @property
    def node_cache_bytes(self) -> int:
        """The committer's node cache budget."""
        return self._cache_bytes

    def at(self, state_root: Hash32, reader: KVReader | None = None) -> StateView:
        """The state at ``state_root``; pass a pending batch as ``reader`` to see its writes."""
        source = self._kv if reader is None else reader
        generation = self._cache.generation  # before the marker: a commit after it shows
        if generation % 2 == 0 and FlatMarker.read(source).root == state_root:
            # Only committed reads (no batch) may fill or use the cache.
            adopted = None if reader is not None else self._cache.adopt(state_root, generation)
            flat = _FlatReads(source, self._cache, generation if adopted is None else adopted,
                              adopted is not None, functools.partial(self._tell_prefetch, state_root))
            return StateView(source, state_root, flat)
        if state_root != EMPTY_ROOT and source.get(schema.state_node_key(state_root)) is None:
            raise InvalidInput(f"unknown state root {state_root.hex()}")
        return StateView(source, state_root)

    def apply(
        self, parent_root: Hash32, diff: StateDiff, batch: WriteBatch,
        known: Mapping[bytes, bytes | None] | None = None,
    ) -> Hash32:
        """Stage the state after ``diff`` into ``batch`` (the caller commits); its root.

        The flat tables follow when they hold ``parent_root`` as ``batch`` sees them; their old
        rows, read first, tell the committer the old values (it then reads no old leaf).
        ``known``: flat rows of ``parent_root`` already read (``StateView.bulk_reads`` of the
        view the diff was executed on), not read again."""
        prefix = schema.STATE_NODE_PREFIX

        def read_flat(keys: list[bytes]) -> list[bytes | None]:
            if not known:
                return batch.get_many(keys)
            values = list(map(known.get, keys, repeat(_UNREAD)))  # usually every one of them
            if _UNREAD not in values:
                return values
            found = iter(batch.get_many([key for key, value in zip(keys, values) if value is _UNREAD]))
            return [next(found) if value is _UNREAD else value for value in values]

        packed = with_trie_keys(diff.packed or pack_changes(diff))
        diff = replace(diff, packed=packed)  # the committer packs and hashes nothing again
        marker = FlatMarker.read(batch)
        # Rows go into the batch packed, written before its other writes: only where no
        # earlier step of the batch wrote flat rows one by one (a batch chaining blocks).
        flat = _FlatWriter(batch, packed=batch not in self._staged) if marker.root == parent_root else None
        # Tens of thousands of tuples and lists a block (no cycles): 30-50 ms of collector passes.
        with cycle_collector_paused():
            old = None if flat is None else flat.read_old(packed, read_flat)
            if self._prefetch is not None:
                self._prefetch.stop()
            with self._committing:
                commit = self._committer.commit_state(parent_root, diff, _node_loader(batch), old)
            # The nodes as the committer packed them; new code (rare) one by one.
            batch.put_packed(prefix, commit.hashes, 32, commit.data, commit.lengths)
            batch.put_many((prefix + code_hash, code) for code_hash, code in commit.codes.items())
            if flat is not None:
                flat.stage(diff, packed, commit)
                flat.finish(marker, FlatMarker(commit.root, marker.height + 1),
                            self._options.unwind_depth)
                self._record(batch, parent_root, commit.root, flat.written)
        return commit.root

    def prefetch(self, state_root: Hash32, addresses: Iterable[Address]) -> Prefetch:
        """Start reading the account-trie paths of ``addresses`` under ``state_root`` (committed)
        into the committer's node cache, in a thread, while a block touching them executes:
        its ``apply`` on ``state_root`` then finds them in memory. The next ``apply``, prefetch
        or warm stops it (``Prefetch.stop``): it waits for the chunk of reads in flight at
        most, never for a whole warm."""
        return self._start_warm(state_root, functools.partial(hash_keys, list(addresses)))

    def warm_top(self, state_root: Hash32) -> Prefetch:
        """Start reading the top of the account trie under ``state_root`` (committed) into the
        committer's node cache, in a thread, stopped as a prefetch is: level by level, down to
        ``top_depth`` of the cache, until it read half the cache (its young generation).
        Every block reads and rewrites thousands of these branches, and a node that just
        started read them block by block. On a 1M-account state on the 2-core box, blocks of
        10,000 transfers after a warm to depth 4 (69,905 nodes, 1 s) read 12,000-15,000 nodes
        each for their root (274-324 ms); with a 1 GiB cache the warm reads depth 5 too
        (947,000 nodes; 13-59 s in the background) and the same blocks read 1,400-1,950 nodes
        (root 146-192 ms)."""
        self._top_wanted = True
        depth = top_depth(self.node_cache_bytes)
        return self._start_warm(state_root, functools.partial(top_paths, depth), depth,
                                self.node_cache_bytes // 2)

    def resume_warm(self, state_root: Hash32) -> Prefetch | None:
        """After a block is written (``state_root``, committed): start the top warm again if a
        block's state work stopped it before it finished (None: nothing to resume, or a warm
        runs). It goes on from what it read, on the new root, between blocks: the first
        blocks of a node restarted under load would stop it for good, and a large state's
        blocks would then read its lowest top branches one by one, block after block (at
        10M accounts, the start's warm to depth 5 took 22-71 s on the 2-core box)."""
        running = self._prefetch
        if not self._top_wanted or (running is not None and not running.done):
            return None
        return self.warm_top(state_root)

    def stop_warm(self) -> None:
        """Stop the warm or prefetch running, if any, and wait for it (at shutdown)."""
        if self._prefetch is not None:
            self._prefetch.close()

    def _start_warm(
        self, state_root: Hash32, paths: Callable[[], list[Hash32]], depth: int | None = None,
        budget: int | None = None,
    ) -> Prefetch:
        if self._prefetch is not None:
            self._prefetch.stop()
        self._prefetch = Prefetch(state_root, functools.partial(self._warm, state_root, paths, depth, budget),
                                  self._committer.interrupt_warm)
        return self._prefetch

    def _tell_prefetch(self, state_root: Hash32, keys: list[bytes], values: list[bytes | None]) -> None:
        """Flat rows of ``state_root`` read in bulk: the old values a warm of it may skip leaves by."""
        prefetch = self._prefetch
        if prefetch is not None and prefetch.root == state_root and not prefetch.done:
            prefetch.tell(keys, values)

    def _warm(
        self, state_root: Hash32, paths: Callable[[], list[Hash32]], depth: int | None,
        budget: int | None, stop: Callable[[], bool], told: Told,
    ) -> Warmed:
        keys = paths()  # in the warm's thread: a block's thousands of keys are hashed here
        with self._committing:
            if stop():  # a commit came first
                return Warmed(0, False)
            warmed = self._committer.warm(state_root, keys, _node_loader(self._kv), stop, told,
                                          depth, budget)
        if depth is not None and (warmed.complete or (budget is not None and warmed.size >= budget)):
            self._top_wanted = False  # done: to its depth, or as much as the cache is to keep
        return warmed

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

    def stage_unwind(self, batch: WriteBatch, height: int, state_root: Hash32) -> None:
        """Stage taking the flat state back to ``height`` (block number), whose root is
        ``state_root``: from the change sets of the heights above it, or, below the kept
        ones, by rebuilding the tables from the trie. Nothing to do when the flat state is
        not above ``height``; Halt when the change sets do not lead to ``state_root``."""
        marker = FlatMarker.read(batch)
        if marker.height <= height:
            return
        if batch.get(schema.flat_changes_key(height + 1)) is None:
            self._stage_rebuild(batch, state_root, height)
            return
        restored: dict[bytes, bytes | None] = {}
        root = marker.root
        for above in range(marker.height, height, -1):
            key = schema.flat_changes_key(above)
            data = batch.get(key)
            if data is None:
                raise Halt(f"flat state change set {above} is missing: cannot unwind to {height}")
            root, previous = _decode_changes(data)
            for flat_key, value in previous:
                restored[flat_key] = value
                if value is None:
                    batch.delete(flat_key)
                else:
                    batch.put(flat_key, value)
            batch.delete(key)
        if root != state_root:
            raise Halt(
                f"unwinding the flat state to {height} gives root {root.hex()}, "
                f"the block has {state_root.hex()}"
            )
        batch.put(schema.FLAT_MARKER, FlatMarker(root, height).encode())
        self._record(batch, marker.root, root, restored)

    def resume(self, state_root: Hash32, height: int) -> bool:
        """Make the flat tables hold the head's state, ``state_root`` at block ``height``, as
        they do unless the database predates them (or their marker strayed): then rebuild
        them from the trie. True if rebuilt."""
        if FlatMarker.read(self._kv) == FlatMarker(state_root, height):
            return False
        batch = self._kv.write_batch()
        self._stage_rebuild(batch, state_root, height)
        self.commit(batch)
        return True

    def commit(self, batch: WriteBatch) -> None:
        """Commit ``batch``; the cache takes its flat writes, views opened before notice."""
        self.sealed(batch)()

    def sealed(self, batch: WriteBatch) -> Callable[[], None]:
        """``commit`` of ``batch``, sealed here (``WriteBatch.seal``): calling what this returns,
        in any thread, writes it."""
        staged = self._staged.pop(batch, None)
        write = batch.seal()
        if staged is None:  # no flat writes of ours: nothing cached or viewed changes
            return write

        def commit() -> None:
            with self._batch_commits:
                self._cache.begin_commit()
                committed = False
                try:
                    write()
                    committed = True
                finally:
                    self._cache.end_commit(staged if committed else None)

        return commit

    def _stage_rebuild(self, batch: WriteBatch, state_root: Hash32, height: int) -> None:
        """Stage flat tables holding the state at ``state_root`` (``height``), read from its
        trie, in place of the ones there; no change sets below. The batch holds the whole
        state: fine for the states we run, a chunked rebuild is due for tens of millions."""
        before = FlatMarker.read(batch).root
        for prefix in (schema.FLAT_ACCOUNT_PREFIX, schema.FLAT_STORAGE_PREFIX,
                       schema.FLAT_CHANGES_PREFIX):
            for key, _ in list(batch.iterate(prefix)):
                batch.delete(key)
        nodes = NodeStore(batch)
        for account_hash, value in NodeIterator(HexaryTrie(nodes, state_root)).items():
            batch.put(schema.flat_account_key(Hash32(account_hash)), value)
            storage_root = decode_account(value).storage_root
            if storage_root == EMPTY_ROOT:
                continue
            for slot_hash, encoded in NodeIterator(HexaryTrie(nodes, storage_root)).items():
                slot_value = _rlp_decode(encoded)
                if not isinstance(slot_value, bytes):
                    raise Halt(f"malformed storage value of account {account_hash.hex()}")
                key = schema.flat_storage_key(Hash32(account_hash), Hash32(slot_hash))
                batch.put(key, slot_value)
        batch.put(schema.FLAT_MARKER, FlatMarker(state_root, height).encode())
        self._record(batch, before, state_root, None)

    def _record(
        self, batch: WriteBatch, before: Hash32, after: Hash32, written: Iterable[bytes] | None,
    ) -> None:
        """Remember the flat keys written into ``batch`` (several steps chain into one; None:
        writes the cache cannot follow)."""
        staged = self._staged.get(batch)
        if staged is None:
            self._staged[batch] = _StagedFlat(before, after, None if written is None else set(written))
            return
        if staged.writes is not None and written is not None and staged.after == before:
            staged.writes.update(written)
        else:
            staged.writes = None
        staged.after = after


class _FlatWriter:
    """Stages one diff's flat-table writes into a batch, and the change set that undoes them."""

    def __init__(self, batch: WriteBatch, packed: bool) -> None:
        self._batch = batch
        self._packed = packed  # the rows of a block staged packed (else one by one)
        self._before: dict[bytes, bytes | None] = {}  # old values of the keys written one by one
        self._hashes = b""  # the diff's accounts' trie keys (Keccak of the address), joined
        self._keys: list[bytes] = []  # their flat keys
        self._old = OldValues((), ())  # what read_old read
        self._slot_keys: list[bytes] = []  # flat keys of OldValues.slots's slots
        self._slot_names = b""  # the same after the prefix, joined
        self._slot_values: tuple[bytes, npt.NDArray[np.int64]] = (b"", np.empty(0, dtype=np.int64))
        """Their new values as flat rows hold them, back to back, and sizes (-1: none)."""
        self._undo = b""  # the change set's records of the rows staged packed
        self.writes: dict[bytes, bytes | None] = {}
        """Every key written one by one, with its new value (None: deleted)."""
        self.written: list[bytes] = []
        """Every key written, those of ``writes`` included."""

    def read_old(
        self, packed: PackedState, read_many: Callable[[list[bytes]], list[bytes | None]],
    ) -> OldValues:
        """The old rows of a packed diff's accounts and of the slots it sets in storages it
        keeps (``read_many``: one get each), kept for the change set and told to the
        committer. ``packed`` carries its trie keys (``with_trie_keys``); its arrays key a
        block's tens of thousands of accounts and a token's slots at once, not one by one."""
        if packed.paths is None or packed.slot_paths is None:
            raise ValueError("the flat writer takes a packed diff with its trie keys")
        self._hashes = packed.paths
        account_hashes = np.frombuffer(packed.paths, dtype=np.uint8).reshape(-1, 32)
        flat_keys = np.empty((len(account_hashes), 33), dtype=np.uint8)  # flat_account_key
        flat_keys[:, 0] = schema.FLAT_ACCOUNT_PREFIX[0]
        flat_keys[:, 1:] = account_hashes
        keys = self._keys = split(flat_keys, 33)
        slots = slot_rows(packed)
        slot_hashes = np.frombuffer(packed.slot_paths, dtype=np.uint8).reshape(-1, 32)
        owners, kept = kept_slots(packed)
        # flat_storage_key of each slot of a kept storage: prefix, account hash, slot hash.
        slot_keys = np.empty((int(kept.sum()), 65), dtype=np.uint8)
        slot_keys[:, 0] = schema.FLAT_STORAGE_PREFIX[0]
        slot_keys[:, 1:33] = account_hashes[owners[kept]]
        slot_keys[:, 33:] = slot_hashes[kept]
        self._slot_keys = split(slot_keys, 65)
        self._slot_names = slot_keys[:, 1:].tobytes()
        self._slot_values = slot_values(slots[kept, 32:])
        values = read_many(keys + self._slot_keys)
        self._old = OldValues(values[: len(keys)], values[len(keys) :])
        return self._old

    def stage(self, diff: StateDiff, packed: PackedState, commit: Commit) -> None:
        """Write ``diff`` (``packed``, as read_old had it), whose accounts' new rows (their
        trie values) the committer made (``commit``)."""
        kept = kept_storage(packed)
        # Deleted and wiped accounts (rare) one by one: their old slots go.
        dropped = np.flatnonzero(~kept).tolist()
        addresses = list(diff.accounts) if dropped else []  # an executor's diff makes a change when asked
        olds = self._old.accounts
        for i in dropped:
            change, key = diff.accounts[addresses[i]], self._keys[i]
            account_hash = Hash32(key[1:])
            old = self._before.setdefault(key, olds[i])
            # Only accounts with a storage root have slots: creations skip the scan.
            if old is not None and _stored_roots(old)[1:33] != EMPTY_ROOT:
                prefix = schema.flat_storage_prefix(account_hash)
                for slot_key, _ in list(self._batch.iterate(prefix)):
                    self._set(slot_key, None)
            self._set(key, commit.values[i])
            if change is not None:
                for slot, slot_value in change.storage.items():
                    slot_key = schema.flat_storage_key(account_hash, _slot_hash(slot))
                    self._set(slot_key, _int_bytes(slot_value) or None)
        # The rest (a block's tens of thousands of accounts, and the slots of the storages
        # they keep): the rows that changed and their undo records, made in C from the old
        # and new values as they lie, staged packed.
        rows = flat_changes(kept, self._hashes, 32, schema.FLAT_ACCOUNT_PREFIX,
                            self._old.packed_accounts, (commit.value_data, commit.value_lengths))
        slots = flat_changes(np.ones(len(self._slot_keys), dtype=bool), self._slot_names, 64,
                             schema.FLAT_STORAGE_PREFIX, self._old.packed_slots, self._slot_values)
        for prefix, width, staged in ((schema.FLAT_ACCOUNT_PREFIX, 32, rows),
                                      (schema.FLAT_STORAGE_PREFIX, 64, slots)):
            if self._packed:
                self._batch.put_packed(prefix, staged.names, width, staged.values, staged.sizes)
            else:  # after that step's writes, which a packed put would not override
                self._batch.write_many(
                    PackedWrites(prefix, staged.names, width, staged.values, staged.sizes).items())
        self._undo = rows.undo + slots.undo
        self.written = [*compress(self._keys, rows.changed.tolist()),
                        *compress(self._slot_keys, slots.changed.tolist()), *self.writes]

    def finish(self, before: FlatMarker, after: FlatMarker, depth: int) -> None:
        """Stage the change set (none for genesis, which never unwinds, nor with ``depth`` 0),
        forget the one ``depth`` heights below, and move the marker."""
        if depth and after.height > depth:
            self._batch.delete(schema.flat_changes_key(after.height - depth))
        if depth and after.height > 0:
            olds = [self._before[key] or b"" for key in self.writes]
            sizes = [len(value).to_bytes(2, "big") for value in olds]
            parts = chain.from_iterable(zip(self.writes, sizes, olds))
            self._batch.put(schema.flat_changes_key(after.height),
                            before.root + self._undo + b"".join(parts))
        self._batch.put(schema.FLAT_MARKER, after.encode())

    def _set(self, key: bytes, value: bytes | None) -> None:
        if key not in self._before:
            self._before[key] = self._batch.get(key)
        if self._before[key] == value and key not in self.writes:
            return
        self.writes[key] = value
        if value is None:
            self._batch.delete(key)
        else:
            self._batch.put(key, value)


DEEP_WARM_BYTES = 1 << 30
"""The node cache from which ``StateDB.warm_top`` reads depth 5 too: until the blocks after
it, its session holds about 1 KB of decoded nodes for each node it read (on a 1M-account
state, 950,000 nodes: 1.3 GB of anonymous memory after the warm, 1.0 GB after six blocks,
against 0.5-0.7 GB with a warm to depth 4)."""


def top_depth(cache_bytes: int) -> int:
    """How deep ``StateDB.warm_top`` reads with a node cache of ``cache_bytes`` (in nibbles):
    5 (a million positions; its keys are 32 MB, the next depth's would be 512) from
    ``DEEP_WARM_BYTES``, else 4 (69,905 nodes down to it, 37 MB were every one a full branch)."""
    return 5 if cache_bytes >= DEEP_WARM_BYTES else 4


def top_paths(depth: int) -> list[Hash32]:
    """A trie key for each node position at ``depth`` (at most 8): its first ``depth``
    nibbles count up, the rest are zero."""
    count = 16**depth
    first = np.arange(count, dtype=np.uint64) << np.uint64(32 - 4 * depth)
    keys = np.zeros((count, 32), dtype=np.uint8)
    keys[:, :4] = first.astype(">u4").view(np.uint8).reshape(count, 4)
    return cast(list[Hash32], split(keys, 32))


@functools.lru_cache(maxsize=1 << 16)
def _account_hash(address: bytes) -> Hash32:
    """Trie and flat key of an account (memoized: hot accounts are read again and again)."""
    return keccak256(address)


@functools.lru_cache(maxsize=1 << 16)
def _slot_hash(slot: int) -> Hash32:
    """Trie and flat key of a storage slot within its account."""
    return keccak256(slot.to_bytes(32, "big"))


def _stored_roots(account: bytes) -> bytes:
    """The RLP of an account's storage root and code hash: the last 66 bytes of its value."""
    if len(account) < 70 or account[-66] != 0xA0 or account[-33] != 0xA0:
        raise Halt("malformed account in the state")
    return account[-66:]


def _trie_get(trie: HexaryTrie, key: bytes) -> bytes:
    """The value under ``key`` (empty: none); Halt when the store lacks a node on its path."""
    try:
        value: bytes = trie.get(key)
    except MissingTrieNode as exc:
        raise Halt(f"state trie node missing under root {trie.root_hash.hex()}: {exc}") from exc
    return value


def _rlp_decode(data: bytes) -> fast_rlp.Decoded:
    """Our own stored RLP; Halt when it is not well formed (the store is corrupt)."""
    try:
        return fast_rlp.decode(data)
    except fast_rlp.DecodingError as exc:
        raise Halt(f"malformed state value: {exc}") from None


def read_code(store: Mapping[bytes, bytes], account: Account | None, address: Address) -> bytes:
    """The code of ``address`` (``account``: its account) from a node store; Halt when the
    store lacks it."""
    if account is None or account.code_hash == EMPTY_CODE_HASH:
        return b""
    try:
        return store[account.code_hash]
    except KeyError:
        raise Halt(f"code {account.code_hash.hex()} of {address.hex()} is missing") from None


def decode_account(encoded: bytes) -> Account:
    """An account from its trie (and flat) value, RLP [nonce, balance, storage root, code hash]."""
    fields = _rlp_decode(encoded)
    if isinstance(fields, list) and len(fields) == 4:
        nonce, balance, storage_root, code_hash = fields
        if (
            isinstance(nonce, bytes) and isinstance(balance, bytes)
            and isinstance(storage_root, bytes) and isinstance(code_hash, bytes)
        ):
            return Account(
                nonce=int.from_bytes(nonce, "big"),
                balance=int.from_bytes(balance, "big"),
                storage_root=Hash32(storage_root),
                code_hash=Hash32(code_hash),
            )
    raise Halt("malformed account in the state")


_FLAT_KEY_LENGTHS = {
    schema.FLAT_ACCOUNT_PREFIX: len(schema.flat_account_key(EMPTY_ROOT)),
    schema.FLAT_STORAGE_PREFIX: len(schema.flat_storage_key(EMPTY_ROOT, EMPTY_ROOT)),
}
"""Length of a flat key by its table (the change sets' entries rely on it)."""


def _flat_account(raw: bytes | None) -> Account | None:
    return None if raw is None else decode_account(raw)


def _flat_slot(raw: bytes | None) -> int:
    return 0 if raw is None else int.from_bytes(raw, "big")


def _decode_changes(data: bytes) -> tuple[Hash32, list[tuple[bytes, bytes | None]]]:
    """A change set (``schema.FLAT_CHANGES_PREFIX``): the parent root and each flat key's
    previous value (None: absent)."""
    previous: list[tuple[bytes, bytes | None]] = []
    at = 32
    while at < len(data):
        key_length = _FLAT_KEY_LENGTHS.get(data[at : at + 1])
        if key_length is None or at + key_length + 2 > len(data):
            raise Halt("corrupt flat state change set in the database")
        key = data[at : at + key_length]
        at += key_length + 2
        end = at + int.from_bytes(data[at - 2 : at], "big")
        if end > len(data):
            raise Halt("corrupt flat state change set in the database")
        previous.append((key, data[at:end] or None))
        at = end
    return Hash32(data[:32]), previous


def _int_bytes(value: int) -> bytes:
    """RLP's minimal big-endian form of an integer (zero is empty)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
