"""KV store on LevelDB (plyvel): every write is synced, so an acknowledged one survives a crash.

The state's content-addressed entries (trie nodes and contract code, ``schema.STATE_NODE_PREFIX``
+ their hash) are most of what a block writes: a 50,000-transfer block on a 1M-account state
stages 263,000 nodes, 61 MB. One LevelDB inserts a batch key by key into one memtable, and
compacts on one thread per database: a new store keeps those entries in ``node_shards``
databases of their own (``nodes/<i>`` in its folder, each a range of hashes), whose shares of a
batch are written at once on as many threads. They are never overwritten nor deleted (an
archive node), so they are written before the rest of the batch: a crash in between leaves
nodes that nothing refers to yet, never a block without its nodes. A store made before the
shards (no layout record) keeps every entry in its one database.
"""

from __future__ import annotations

import functools
import heapq
import os
import resource
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import plyvel

from node.db import schema
from node.db.memory import OverlayBatch, PackedWrites, PendingWrites, prefix_end
from node.db.native_kv import NativeLevelDB, attach
from primitives.errors import Halt, StoreClosed

LRU_CACHE_BYTES = 128 * 1024 * 1024
"""Uncompressed blocks the main database keeps in memory (LevelDB's default is 8 MiB)."""
NODE_LRU_CACHE_BYTES = 64 * 1024 * 1024
"""The same for the node databases, together: the committer's node cache is in front of them."""
WRITE_BUFFER_BYTES = 16 * 1024 * 1024
"""Writes gathered in memory before a table file is written (default 4 MiB). A block's one
batch goes into one memtable whatever its size (10,000 transfers: 77,000 entries, 25 MB), and
inserting it into a memtable that already held earlier blocks cost more: the persist of such
a block on a 1M-account state took 180-500 ms with 64 MiB, 100-200 ms with 16 MiB (2-core box,
runs interleaved)."""
NODE_WRITE_BUFFER_BYTES = 4 * 1024 * 1024
"""The same for each node database: a block's share (1/8 of 61 MB) then starts a fresh one."""
NODE_SHARDS = 8
"""Node databases of a new store. 263,000 nodes of 230 bytes a batch (2-core box, 24 batches
back to back): one database 540-1,030 ms a write, eight 130-380 ms (and twice a stall of 2-4 s
while LevelDB's one compaction thread caught up: 11.7 s in all against 17.5)."""
NODE_KEY_SIZE = len(schema.STATE_NODE_PREFIX) + 32
_NODE_BYTE = schema.STATE_NODE_PREFIX[0]
LAYOUT_FILE = "NODE_SHARDS"
"""The file in a store's folder that records how many node databases it has."""
_MIN_OPEN_FILES = 74
"""LevelDB's least ``max_open_files``."""


def _max_open_files() -> int:
    """Table files LevelDB keeps open. A get in a table that is not open first opens it and
    reads its index and filter: a 10M-account state is about 3,000 tables of 2 MB, and with
    LevelDB's default of 1,000 a random get cost 52 us, with 8,000 13 us (each open table
    holds some 25 KB). Half the process's file limit, leaving the rest to sockets; never below
    the default."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1000, min(soft // 2, 50_000))


class _Database:
    """One plyvel database and its native batch access."""

    def __init__(self, path: str, create_if_missing: bool, lru_cache_size: int,
                 write_buffer_size: int, max_open_files: int) -> None:
        self.path = path
        try:
            self.db: Any = plyvel.DB(
                path, create_if_missing=create_if_missing,
                # A get of an absent key (a new transaction's hash, a new account) would
                # otherwise read a block of every table file it might be in.
                bloom_filter_bits=10,
                lru_cache_size=lru_cache_size,
                write_buffer_size=write_buffer_size,
                # Trie nodes are hashes, which do not compress: snappy on each flushed and
                # compacted table took 40% of a block commit's CPU.
                compression=None,
                max_open_files=max(_MIN_OPEN_FILES, max_open_files),
            )
        except plyvel.Error as exc:
            # Missing directory, or another process holds the lock: the node cannot run.
            raise Halt(f"cannot open LevelDB at {path}: {exc}") from exc
        self.native: NativeLevelDB | None = attach(self.db)
        """Batch reads and writes in one call each, where plyvel's handle can be used."""

    def open_db(self) -> Any:
        if self.db is None:
            raise StoreClosed(f"LevelDB at {self.path} is closed")
        return self.db

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        db = self.open_db()
        if self.native is not None:
            return self.native.get_many(keys)
        found = {key: db.get(key) for key in sorted(keys)}  # sorted: LevelDB reads them faster
        return [found[key] for key in keys]

    def iterate(self, prefix: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        # plyvel's own reverse range iterator yields nothing for a range of one key
        # (plyvel 1.5.1), so we walk a raw iterator. It is created here, not lazily,
        # so that its snapshot is taken at the call.
        raw = self.open_db().raw_iterator()
        if not reverse:
            raw.seek(prefix)
        else:
            end = prefix_end(prefix)
            if end is not None:
                raw.seek(end)
            if end is not None and raw.valid():
                raw.prev()
            else:
                raw.seek_to_last()
        return self._items(raw, prefix, reverse)

    def _items(self, raw: Any, prefix: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        try:
            while raw.valid():
                key: bytes = raw.key()
                if not key.startswith(prefix):
                    return
                yield key, raw.value()
                if reverse:
                    raw.prev()
                else:
                    raw.next()
        except RuntimeError as exc:
            if self.db is None:  # plyvel's "Database or iterator is closed"
                raise StoreClosed(f"LevelDB at {self.path} closed during iteration") from exc
            raise
        finally:
            raw.close()

    def prepare(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> Callable[[], None]:
        self.open_db()
        if self.native is not None:
            return self.native.prepare(writes, packed)
        return functools.partial(self._apply, writes, packed)

    def _apply(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> None:
        with self.open_db().write_batch(sync=True) as batch:
            for puts in packed:
                for key, data in puts.items():
                    if data is None:
                        batch.delete(key)
                    else:
                        batch.put(key, data)
            for key, value in writes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)

    def close(self) -> None:
        if self.db is not None:
            if self.native is not None:
                self.native.close()
                self.native = None
            self.db.close()
            self.db = None


class LevelDBKV:
    """A LevelDB store in the directory ``path``; a new one keeps the state's nodes in
    ``node_shards`` databases under it (0: in its one database)."""

    def __init__(self, path: str | os.PathLike[str], create_if_missing: bool = True,
                 node_shards: int = NODE_SHARDS) -> None:
        self._path = os.fspath(path)
        if not 0 <= node_shards <= 256:
            raise ValueError("node_shards must be 0..256")
        files = _max_open_files()
        self._main = _Database(self._path, create_if_missing, LRU_CACHE_BYTES,
                               WRITE_BUFFER_BYTES, files // 2)
        self._shards: list[_Database] = []
        self._writers: ThreadPoolExecutor | None = None
        try:
            count, new = self._layout(node_shards)
            for index in range(count):
                self._shards.append(_Database(
                    os.path.join(self._path, "nodes", str(index)), new,
                    NODE_LRU_CACHE_BYTES // count, NODE_WRITE_BUFFER_BYTES, files // (2 * count)))
        except BaseException:
            self.close()
            raise
        if len(self._shards) > 1:
            self._writers = ThreadPoolExecutor(len(self._shards), "leveldb-nodes")

    def _layout(self, wanted: int) -> tuple[int, bool]:
        """How many node databases this store has, recorded in its folder at its creation (a
        store with data but no record has none: it was made before them); True when new.
        Outside the key space, which stays the schema's alone."""
        record = Path(self._path, LAYOUT_FILE)
        if record.exists():
            return int(record.read_text()), False
        with self._main.open_db().iterator(include_value=False) as keys:
            if next(keys, None) is not None:
                return 0, False
        if wanted:
            Path(self._path, "nodes").mkdir(exist_ok=True)
        written = record.with_suffix(".new")
        with open(written, "w") as out:
            out.write(f"{wanted}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(written, record)
        folder = os.open(self._path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return wanted, True

    @property
    def node_shards(self) -> int:
        """Node databases of this store (0: the nodes are in the main one)."""
        return len(self._shards)

    def _open_db(self) -> Any:
        if self._main.db is None:
            raise StoreClosed(f"LevelDB at {self._path} is closed")
        return self._main.db

    def _place(self, key: bytes) -> int:
        """Which database holds ``key``: a node database's index, or their count for the main."""
        if self._shards and len(key) == NODE_KEY_SIZE and key[0] == _NODE_BYTE:
            return key[1] * len(self._shards) >> 8
        return len(self._shards)

    def _database(self, place: int) -> _Database:
        return self._shards[place] if place < len(self._shards) else self._main

    def _places(self, keys: Sequence[bytes]) -> npt.NDArray[np.int64]:
        """Each key's database (``_place``), in C loops."""
        places = np.full(len(keys), len(self._shards), dtype=np.int64)
        if not self._shards or not keys:
            return places
        sizes = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        joined = np.frombuffer(b"".join(keys), dtype=np.uint8)
        at = np.flatnonzero(sizes == NODE_KEY_SIZE)
        starts = (np.cumsum(sizes) - sizes)[at]
        node = joined[starts] == _NODE_BYTE
        places[at[node]] = joined[starts[node] + 1].astype(np.int64) * len(self._shards) >> 8
        return places

    def get(self, key: bytes) -> bytes | None:
        self._open_db()
        value: bytes | None = self._database(self._place(key)).open_db().get(key)
        return value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self._open_db()
        places = self._places(keys)
        if (places == len(self._shards)).all():
            return self._main.get_many(keys)
        found = np.empty(len(keys), dtype=object)
        for place in np.unique(places).tolist():
            at = np.flatnonzero(places == place)
            found[at] = self._database(place).get_many(list(map(keys.__getitem__, at.tolist())))
        values: list[bytes | None] = found.tolist()
        return values

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._open_db()
        main = self._main.iterate(prefix, reverse)
        if not self._shards or not schema.STATE_NODE_PREFIX.startswith(prefix[:1]):
            return main
        # Each node database holds a range of node keys, the main one all the others.
        parts = [main, *(shard.iterate(prefix, reverse) for shard in self._shards)]
        return heapq.merge(*parts, key=itemgetter(0), reverse=reverse)

    def put(self, key: bytes, value: bytes) -> None:
        self._open_db()
        self._database(self._place(key)).open_db().put(key, value, sync=True)

    def delete(self, key: bytes) -> None:
        self._open_db()
        self._database(self._place(key)).open_db().delete(key, sync=True)

    def write_batch(self) -> OverlayBatch:
        self._open_db()
        return OverlayBatch(self, self._prepare)

    def compact(self) -> None:
        """Compacts the whole store now (after a bulk load, so that later writes do not stall)."""
        self._open_db()
        for database in (self._main, *self._shards):
            database.open_db().compact_range()

    def close(self) -> None:
        if self._writers is not None:
            self._writers.shutdown()
            self._writers = None
        for database in (*self._shards, self._main):
            database.close()

    def _prepare(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> Callable[[], None]:
        self._open_db()
        if not self._shards:
            return self._main.prepare(writes, packed)
        count = len(self._shards)
        # Each database's writes: packed runs, then single keys (which win over a run's).
        runs: list[list[PackedWrites]] = [[] for _ in range(count + 1)]
        singles: list[dict[bytes, bytes | None]] = [{} for _ in range(count + 1)]
        if any(_mixes_nodes(puts) for puts in packed):
            # A run of another shape whose keys may be nodes (none is staged so): every run
            # key by key, in order, so that a later run's write of a key still wins.
            for puts in packed:
                for key, value in puts.items():
                    singles[self._place(key)][key] = value
            packed = ()
        for puts in packed:
            if puts.prefix == schema.STATE_NODE_PREFIX and puts.width == 32 and puts.rows is None:
                # A block's nodes: each database gets its rows of the run, not a copy.
                places = np.frombuffer(puts.names, dtype=np.uint8)[::32].astype(np.int64) * count >> 8
                for place in np.unique(places).tolist():
                    runs[place].append(replace(puts, rows=np.flatnonzero(places == place)))
            else:
                runs[count].append(puts)
        keys = list(writes)
        places = self._places(keys)
        main: PendingWrites = writes
        if (places < count).any() or singles[count]:
            for key, place in zip(keys, places.tolist()):  # a batch's few node keys, or none
                singles[place][key] = writes[key]
            main = singles[count]
        firsts = [shard.prepare(singles[i], runs[i])
                  for i, shard in enumerate(self._shards) if singles[i] or runs[i]]
        return functools.partial(self._write, firsts, self._main.prepare(main, runs[count]))

    def _write(self, firsts: list[Callable[[], None]], last: Callable[[], None]) -> None:
        """The node databases' writes at once, then (only if they all succeeded) the main one."""
        writers = self._writers
        if len(firsts) > 1 and writers is not None:
            for done in [writers.submit(write) for write in firsts]:
                done.result()
        else:
            for write in firsts:
                write()
        last()


def _mixes_nodes(puts: PackedWrites) -> bool:
    """True for a packed run that may hold node keys but is not a run of nodes alone."""
    if puts.prefix == schema.STATE_NODE_PREFIX and puts.width == 32:
        return puts.rows is not None
    return (len(puts.prefix) + puts.width == NODE_KEY_SIZE
            and schema.STATE_NODE_PREFIX.startswith(puts.prefix[:1]))
