"""The KV seam: an ordered byte-keyed store with atomic write batches.

Every backend (LevelDB via plyvel, in-memory) passes the one shared suite in
tests/db/test_kv.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt


class KVReader(Protocol):
    """Point reads and ordered iteration."""

    def get(self, key: bytes) -> bytes | None:
        """Value stored at ``key``, or None."""
        ...

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The value of each key, or None: a block's tens of thousands of reads in one call
        (LevelDB's in native threads, without a GIL hand-off per key)."""
        ...

    def iterate(self, prefix: bytes = b"", *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with ``prefix``, in key order (or reversed)."""
        ...


class WriteBatch(KVReader, Protocol):
    """Pending writes, applied all at once by ``commit``; reads see the pending writes."""

    def put(self, key: bytes, value: bytes) -> None:
        """Stage ``key`` -> ``value``."""
        ...

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Stage every (key, value) of ``items`` (bytes, not views): a block's tens of
        thousands of trie nodes without a Python call each."""
        ...

    def write_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Stage every (key, value) of ``items``, None removing the key, in order (a key given
        twice keeps its last value): puts and deletes mixed, without a Python call each."""
        ...

    def delete(self, key: bytes) -> None:
        """Stage the removal of ``key``."""
        ...

    def put_packed(
        self, prefix: bytes, names: bytes, width: int, values: bytes | memoryview,
        sizes: npt.NDArray[np.int64],
    ) -> None:
        """Stage a put of ``prefix`` + each ``width``-byte name of ``names`` -> its value,
        ``sizes[i]`` bytes of ``values`` in order (-1: a delete): a block's trie nodes and flat
        rows as the committer hands them over, never split into Python objects. For keys that
        no other write of the batch touches: a key also put or deleted otherwise keeps that
        write."""
        ...

    def delete_packed(self, prefix: bytes, names: bytes, width: int) -> None:
        """Stage the removal of ``prefix`` + each ``width``-byte name of ``names`` (a block's
        pool records, keyed by its transactions' hashes joined), like ``put_packed``'s puts:
        a key also put or deleted otherwise keeps that write."""
        ...

    def delete_many(self, keys: Iterable[bytes]) -> None:
        """Stage the removal of every key of ``keys`` (bytes): a block's pool entries without a
        Python call each."""
        ...

    def commit(self) -> None:
        """Apply every staged write atomically (all or nothing, durable on return)."""
        ...

    def seal(self) -> Callable[[], None]:
        """The batch's write, made ready here (its Python work) and done when called, once,
        by any thread (a native store's write then runs without the GIL); the batch is left
        empty, as after ``commit``."""
        ...


class KV(KVReader, Protocol):
    """A key-value store."""

    def put(self, key: bytes, value: bytes) -> None:
        """Write one key (atomic, durable)."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove one key."""
        ...

    def write_batch(self) -> WriteBatch:
        """Start an atomic batch over this store."""
        ...

    def close(self) -> None:
        """Release the store; further calls fail."""
        ...
