"""In-memory KV store, and the write batch that both backends use.

``MemoryKV`` is the test twin of ``LevelDBKV``: same semantics, no disk.
``OverlayBatch`` keeps a batch's pending writes in a dict layered over the
store, so that the batch reads its own writes; the backend applies them at once.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

from node.db.api import KVReader
from primitives.errors import StoreClosed

PendingWrites = Mapping[bytes, bytes | None]
"""Staged writes: key -> new value, or None for a delete."""


@dataclass(frozen=True)
class PackedWrites:
    """Puts (or deletes) staged as they came, concatenated (``WriteBatch.put_packed``,
    ``delete_packed``)."""

    prefix: bytes
    """What every key starts with."""
    names: bytes
    """The rest of each key, ``width`` bytes each."""
    width: int
    """Bytes of each name."""
    values: bytes | memoryview
    """The values, concatenated in the keys' order."""
    sizes: npt.NDArray[np.int64]
    """Each value's size; -1 deletes the key."""
    rows: npt.NDArray[np.int64] | None = None
    """The rows written, in order (None: every one): a store that spreads keys over
    databases hands each its share of a run without copying it apart."""

    def holds(self, key: bytes) -> bool:
        """True when ``key`` has the shape of these keys (it may be one of them)."""
        return len(key) == len(self.prefix) + self.width and key.startswith(self.prefix)

    def starts(self) -> npt.NDArray[np.int64]:
        """Where each row's value starts in ``values`` (every row, also with ``rows``)."""
        sizes = np.maximum(self.sizes, 0)
        return np.cumsum(sizes) - sizes

    def items(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Each key with its value (None: deleted)."""
        names, values, width, prefix = self.names, self.values, self.width, self.prefix
        rows = range(len(self.sizes)) if self.rows is None else self.rows.tolist()
        sizes, starts = self.sizes.tolist(), self.starts().tolist()
        for row in rows:
            key = prefix + names[row * width : (row + 1) * width]
            size = sizes[row]
            yield key, None if size < 0 else bytes(values[starts[row] : starts[row] + size])


Prepare = Callable[[PendingWrites, Sequence[PackedWrites]], Callable[[], None]]
"""A backend's atomic write of a batch, the packed puts then the pending writes: made ready
when this is called, done when what it returns is."""


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _merge(
    stored: Iterable[tuple[bytes, bytes]],
    pending: list[tuple[bytes, bytes | None]],
    reverse: bool,
) -> Iterator[tuple[bytes, bytes]]:
    """Merge two key-ordered streams; a pending write replaces (or deletes) a stored key."""

    def before(a: bytes, b: bytes) -> bool:
        return a > b if reverse else a < b

    position = 0
    for key, value in stored:
        while position < len(pending) and before(pending[position][0], key):
            new_key, new_value = pending[position]
            if new_value is not None:
                yield new_key, new_value
            position += 1
        if position < len(pending) and pending[position][0] == key:
            new_value = pending[position][1]
            if new_value is not None:
                yield key, new_value
            position += 1
        else:
            yield key, value
    for new_key, new_value in pending[position:]:
        if new_value is not None:
            yield new_key, new_value


class OverlayBatch:
    """A write batch whose reads see its own pending writes over the store's contents.

    ``commit`` hands every pending write to the backend in one call, then the
    batch is empty and can be used again. As a context manager it commits on a
    normal exit and drops its writes when the block raises.
    """

    def __init__(self, store: KVReader, prepare: Prepare) -> None:
        self._store = store
        self._prepare = prepare
        self._pending: dict[bytes, bytes | None] = {}
        self._packed: list[PackedWrites] = []

    def get(self, key: bytes) -> bytes | None:
        if self._packed and any(packed.holds(key) for packed in self._packed):
            self._unpack()
        if key in self._pending:
            return self._pending[key]
        return self._store.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if self._packed and any(packed.holds(key) for packed in self._packed for key in keys):
            self._unpack()
        pending = self._pending
        if not pending:
            return self._store.get_many(keys)
        stored = iter(self._store.get_many([key for key in keys if key not in pending]))
        return [pending[key] if key in pending else next(stored) for key in keys]

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        if any(packed.prefix.startswith(prefix) or prefix.startswith(packed.prefix)
               for packed in self._packed):
            self._unpack()
        pending = sorted(
            ((k, v) for k, v in self._pending.items() if k.startswith(prefix)), reverse=reverse
        )
        return _merge(self._store.iterate(prefix, reverse=reverse), pending, reverse)

    def put(self, key: bytes, value: bytes) -> None:
        self._pending[bytes(key)] = bytes(value)

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        self._pending.update(items)

    def write_many(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        self._pending.update(items)

    def delete(self, key: bytes) -> None:
        self._pending[bytes(key)] = None

    def delete_many(self, keys: Iterable[bytes]) -> None:
        self._pending.update(dict.fromkeys(keys))

    def put_packed(
        self, prefix: bytes, names: bytes, width: int, values: bytes | memoryview,
        sizes: npt.NDArray[np.int64],
    ) -> None:
        if width <= 0 or len(names) != width * len(sizes) or len(values) != int(np.maximum(sizes, 0).sum()):
            raise ValueError("packed keys and values do not match")
        self._packed.append(PackedWrites(prefix, names, width, values, sizes))

    def delete_packed(self, prefix: bytes, names: bytes, width: int) -> None:
        if width <= 0 or len(names) % width:
            raise ValueError("packed keys are not whole names")
        deletes = np.full(len(names) // width, -1, dtype=np.int64)
        self._packed.append(PackedWrites(prefix, names, width, b"", deletes))

    def _unpack(self) -> None:
        """Moves the packed puts into the pending writes (a read asked for one of their keys):
        the puts staged after them keep the last word."""
        unpacked: dict[bytes, bytes | None] = {}
        for packed in self._packed:
            unpacked.update(packed.items())
        unpacked.update(self._pending)
        self._pending, self._packed = unpacked, []

    def commit(self) -> None:
        self.seal()()

    def seal(self) -> Callable[[], None]:
        write = self._prepare(self._pending, self._packed)
        self._pending, self._packed = {}, []
        return write

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._pending, self._packed = {}, []


class MemoryKV:
    """An ordered in-memory KV store; a lock makes each batch visible all at once."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []  # keys of _data, sorted, for ordered iteration
        self._lock = threading.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the in-memory store is closed")

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            self._check_open()
            return self._data.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self.get(key) for key in keys]  # a get each: what test stores count

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        # Copy the range now, like LevelDB's implicit snapshot: later writes don't show.
        with self._lock:
            self._check_open()
            start = bisect.bisect_left(self._keys, prefix)
            end_key = prefix_end(prefix)
            end = len(self._keys) if end_key is None else bisect.bisect_left(self._keys, end_key)
            items = [(key, self._data[key]) for key in self._keys[start:end]]
        if reverse:
            items.reverse()
        return iter(items)

    def put(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._check_open()
            self._set(bytes(key), bytes(value))

    def delete(self, key: bytes) -> None:
        with self._lock:
            self._check_open()
            self._set(key, None)

    def write_batch(self) -> OverlayBatch:
        self._check_open()
        return OverlayBatch(self, self._prepare)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._data.clear()
            self._keys.clear()

    def _prepare(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> Callable[[], None]:
        return functools.partial(self._apply, writes, packed)

    def _apply(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> None:
        with self._lock:
            self._check_open()
            for puts in packed:
                for key, data in puts.items():
                    self._set(key, data)
            for key, value in writes.items():
                self._set(key, value)

    def _set(self, key: bytes, value: bytes | None) -> None:
        """Write or delete one key; the caller holds the lock."""
        present = key in self._data
        if value is None:
            if present:
                del self._data[key]
                del self._keys[bisect.bisect_left(self._keys, key)]
            return
        if not present:
            bisect.insort(self._keys, key)
        self._data[key] = value
