"""KV store on LevelDB (plyvel): every write is synced, so an acknowledged one survives a crash."""

from __future__ import annotations

import functools
import os
import resource
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import plyvel

from node.db.memory import OverlayBatch, PackedWrites, PendingWrites, prefix_end
from node.db.native_kv import NativeLevelDB, attach
from primitives.errors import Halt, StoreClosed

LRU_CACHE_BYTES = 128 * 1024 * 1024
"""Uncompressed blocks LevelDB keeps in memory (its default is 8 MiB)."""
WRITE_BUFFER_BYTES = 16 * 1024 * 1024
"""Writes gathered in memory before a table file is written (default 4 MiB). A block's one
batch goes into one memtable whatever its size (10,000 transfers: 77,000 entries, 25 MB), and
inserting it into a memtable that already held earlier blocks cost more: the persist of such
a block on a 1M-account state took 180-500 ms with 64 MiB, 100-200 ms with 16 MiB (2-core box,
runs interleaved)."""


def _max_open_files() -> int:
    """Table files LevelDB keeps open. A get in a table that is not open first opens it and
    reads its index and filter: a 10M-account state is about 3,000 tables of 2 MB, and with
    LevelDB's default of 1,000 a random get cost 52 us, with 8,000 13 us (each open table
    holds some 25 KB). Half the process's file limit, leaving the rest to sockets; never below
    the default."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1000, min(soft // 2, 50_000))


class LevelDBKV:
    """A LevelDB database in the directory ``path``."""

    def __init__(self, path: str | os.PathLike[str], create_if_missing: bool = True) -> None:
        self._path = os.fspath(path)
        try:
            self._db: Any = plyvel.DB(
                self._path, create_if_missing=create_if_missing,
                # A get of an absent key (a new transaction's hash, a new account) would
                # otherwise read a block of every table file it might be in.
                bloom_filter_bits=10,
                lru_cache_size=LRU_CACHE_BYTES,
                write_buffer_size=WRITE_BUFFER_BYTES,
                # Trie nodes are hashes, which do not compress: snappy on each flushed and
                # compacted table took 40% of a block commit's CPU.
                compression=None,
                max_open_files=_max_open_files(),
            )
        except plyvel.Error as exc:
            # Missing directory, or another process holds the lock: the node cannot run.
            raise Halt(f"cannot open LevelDB at {self._path}: {exc}") from exc
        self._native: NativeLevelDB | None = attach(self._db)
        """Batch reads and writes in one call each, where plyvel's handle can be used."""

    def _open_db(self) -> Any:
        if self._db is None:
            raise StoreClosed(f"LevelDB at {self._path} is closed")
        return self._db

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._open_db().get(key)
        return value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        db = self._open_db()
        if self._native is not None:
            return self._native.get_many(keys)
        found = {key: db.get(key) for key in sorted(keys)}  # sorted: LevelDB reads them faster
        return [found[key] for key in keys]

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        # plyvel's own reverse range iterator yields nothing for a range of one key
        # (plyvel 1.5.1), so we walk a raw iterator. It is created here, not lazily,
        # so that its snapshot is taken at the call.
        raw = self._open_db().raw_iterator()
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
            if self._db is None:  # plyvel's "Database or iterator is closed"
                raise StoreClosed(f"LevelDB at {self._path} closed during iteration") from exc
            raise
        finally:
            raw.close()

    def put(self, key: bytes, value: bytes) -> None:
        self._open_db().put(key, value, sync=True)

    def delete(self, key: bytes) -> None:
        self._open_db().delete(key, sync=True)

    def write_batch(self) -> OverlayBatch:
        self._open_db()
        return OverlayBatch(self, self._prepare)

    def compact(self) -> None:
        """Compacts the whole store now (after a bulk load, so that later writes do not stall)."""
        self._open_db().compact_range()

    def close(self) -> None:
        if self._db is not None:
            if self._native is not None:
                self._native.close()
                self._native = None
            self._db.close()
            self._db = None

    def _prepare(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> Callable[[], None]:
        self._open_db()
        if self._native is not None:
            return self._native.prepare(writes, packed)
        return functools.partial(self._apply, writes, packed)

    def _apply(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> None:
        with self._open_db().write_batch(sync=True) as batch:
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
