"""A plyvel database's batch reads and writes in one native call each (``kernels/evm_kv.h``).

plyvel releases the GIL around each get and each write batch put. A thread that gives the
GIL up must take it back, and while another thread runs Python it waits for that thread's
switch interval: on a node accepting transactions, a block's 50,000 account reads cost
seconds instead of 40 ms (50,000 gets beside one busy Python thread: 23 s against 38 ms
alone, 2-core box). Here a batch is one call, made without the GIL, to LevelDB's C API in
the library plyvel loaded, on the database plyvel opened.

The handle comes out of plyvel's ``DB`` object (a Cython class: the object header, its
method table, then the ``leveldb::DB*``), checked before use: the object it points to must
be one of that library's, and a read through it must equal plyvel's. Where any of that
fails (another plyvel build, no C compiler), ``attach`` returns None and the store reads
key by key through plyvel.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from executor_gpu.native_build import HOST_THREADS, NativeUnavailable, cpu_library
from node.db.memory import PackedWrites
from primitives.errors import Halt, StoreClosed

_POINTER = ctypes.sizeof(ctypes.c_void_p)
_DB_FIELD = 3 * _POINTER
"""Offset of plyvel's ``leveldb::DB* _db`` in its ``DB`` object (plyvel 1.x)."""
_ABSENT, _FAILED = -1, -2
_NO_MEMORY = 2**64 - 1
_C_API = ("leveldb_get", "leveldb_free", "leveldb_readoptions_create", "leveldb_writeoptions_create",
          "leveldb_writeoptions_set_sync", "leveldb_writebatch_create", "leveldb_writebatch_put",
          "leveldb_writebatch_delete", "leveldb_write", "leveldb_writebatch_destroy",
          "leveldb_readoptions_destroy", "leveldb_writeoptions_destroy")


class NativeLevelDB:
    """Batch reads and writes on one open plyvel database; valid while it stays open."""

    def __init__(self, leveldb: ctypes.CDLL, handle: int) -> None:
        self._lib = cpu_library()
        self._leveldb = leveldb
        # The C API's leveldb_t is a struct holding the DB*: a pointer to a copy of it.
        self._handle = ctypes.c_void_p(handle)
        self._db = ctypes.addressof(self._handle)
        self._get, self._free = _address(leveldb, "leveldb_get"), _address(leveldb, "leveldb_free")
        self._batch_functions = [_address(leveldb, name) for name in (
            "leveldb_writebatch_create", "leveldb_writebatch_put", "leveldb_writebatch_delete",
            "leveldb_write", "leveldb_writebatch_destroy", "leveldb_free")]
        self._read_options = leveldb.leveldb_readoptions_create()
        self._write_options = leveldb.leveldb_writeoptions_create()
        leveldb.leveldb_writeoptions_set_sync(self._write_options, 1)  # durable on return

    def close(self) -> None:
        """Frees the options (the database itself is plyvel's to close)."""
        if self._read_options:
            self._leveldb.leveldb_readoptions_destroy(self._read_options)
            self._leveldb.leveldb_writeoptions_destroy(self._write_options)
            self._read_options = self._write_options = None

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The value of each key (None: absent), read in one call over threads, in key order
        (the C side sorts them)."""
        count = len(keys)
        if count == 0:
            return []
        offsets = np.fromiter(accumulate(map(len, keys), initial=0), dtype=np.uint64, count=count + 1)
        values = np.zeros(count, dtype=np.uint64)  # the C side's copies, until gathered
        lengths = np.empty(count, dtype=np.int64)
        total = self._lib.kv_get_many(
            self._get, self._free, self._db, self._read_options, count, b"".join(keys),
            offsets.ctypes.data, values.ctypes.data, lengths.ctypes.data, HOST_THREADS,
        )
        if total == _NO_MEMORY:
            raise MemoryError(f"no memory to order {count} keys for reading")
        out = np.empty(total, dtype=np.uint8)  # not zero-filled: the gather writes all of it
        self._lib.kv_gather(self._free, count, values.ctypes.data, lengths.ctypes.data, out.ctypes.data)
        if (lengths == _FAILED).any():
            raise Halt("LevelDB failed to read a key (see its LOG)")
        data = out.tobytes()
        sizes = np.maximum(lengths, 0)
        ends = np.cumsum(sizes)
        # Sliced in C loops, then the absent ones (a block's new accounts: often half) marked.
        found: list[bytes | None] = list(map(data.__getitem__, map(slice, (ends - sizes).tolist(),
                                                                    ends.tolist())))
        for absent in np.flatnonzero(lengths == _ABSENT).tolist():
            found[absent] = None
        return found

    def prepare(
        self, writes: Mapping[bytes, bytes | None], packed: Sequence[PackedWrites] = ()
    ) -> Callable[[], None]:
        """The write of ``packed`` then ``writes`` (None deletes a key) in one atomic, synced
        batch, a key also written in ``writes`` keeping that write: laid out here for C, made
        by the function returned (without the GIL: another thread may call it). The packed
        parts go as they are (their keys a prefix and names of one width): joining a block's
        tens of megabytes of trie nodes into one blob took most of this."""
        keys, values = list(writes), list(writes.values())
        key_data, value_data = b"".join(keys), b"".join(filter(None, values))  # b"" adds nothing
        key_offsets = np.zeros(len(keys) + 1, dtype=np.uint64)
        np.cumsum(np.fromiter(map(len, keys), dtype=np.uint64, count=len(keys)), out=key_offsets[1:])
        sizes = np.array([-1 if value is None else len(value) for value in values], dtype=np.int64)
        # The buffers the runs point into, kept alive until the write.
        parts: list[object] = [key_data, value_data, key_offsets, sizes]
        runs = (_Run * (len(packed) + 1))()
        for run, puts in zip(runs, packed):
            put_sizes = np.ascontiguousarray(puts.sizes, dtype=np.int64)
            parts += [puts.prefix, puts.names, puts.values, put_sizes]
            run.prefix, run.prefix_len = _address_of(puts.prefix), len(puts.prefix)
            run.n, run.keys, run.key_offsets = len(put_sizes), _address_of(puts.names), None
            run.width, run.vals, run.sizes = puts.width, _address_of(puts.values), put_sizes.ctypes.data
            if puts.rows is not None:
                rows = np.ascontiguousarray(puts.rows, dtype=np.uint64)
                starts = np.ascontiguousarray(puts.starts(), dtype=np.uint64)
                parts += [rows, starts]
                run.n, run.rows, run.starts = len(rows), rows.ctypes.data, starts.ctypes.data
        last = runs[len(packed)]
        last.prefix, last.prefix_len, last.n = None, 0, len(keys)
        last.keys, last.key_offsets, last.width = _address_of(key_data), key_offsets.ctypes.data, 0
        last.vals, last.sizes = _address_of(value_data), sizes.ctypes.data
        return functools.partial(self._write, runs, parts)

    def _write(self, runs: ctypes.Array[_Run], parts: list[object]) -> None:
        """Write ``runs`` (``parts``: the buffers they point into, alive while this can run)."""
        if not self._write_options:
            raise StoreClosed("the LevelDB store was closed before the write")
        error = ctypes.create_string_buffer(256)
        if not self._lib.kv_write_many(
            *self._batch_functions, self._db, self._write_options, len(runs), runs, error, len(error),
        ):
            raise Halt(f"LevelDB write failed: {error.value.decode(errors='replace')}")


class _Run(ctypes.Structure):
    """``kv_run`` (kernels/evm_kv.h): one part of a write batch."""

    _fields_ = [("prefix", ctypes.c_void_p), ("prefix_len", ctypes.c_uint64), ("n", ctypes.c_uint64),
                ("keys", ctypes.c_void_p), ("key_offsets", ctypes.c_void_p), ("width", ctypes.c_uint64),
                ("vals", ctypes.c_void_p), ("sizes", ctypes.c_void_p), ("rows", ctypes.c_void_p),
                ("starts", ctypes.c_void_p)]


def _address_of(data: bytes | memoryview) -> int:
    """Where the bytes of ``data`` are (valid while it lives; C only reads them)."""
    if isinstance(data, memoryview):
        return int(np.frombuffer(data, dtype=np.uint8).ctypes.data) if len(data) else 0
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0


def attach(db: Any) -> NativeLevelDB | None:
    """Batch access to the plyvel database ``db`` where it can be had and checked, else None."""
    api = _leveldb_api()
    if api is None or type(db).__basicsize__ < _DB_FIELD + _POINTER:
        return None
    leveldb, ranges = api
    handle = ctypes.c_void_p.from_address(id(db) + _DB_FIELD).value
    if not handle:
        return None
    # A leveldb::DB* points at an object whose method table is in that library's memory.
    table = ctypes.c_void_p.from_address(handle).value or 0
    if not any(start <= table < end for start, end in ranges):
        return None
    native = NativeLevelDB(leveldb, handle)
    if not _agrees(native, db):
        native.close()
        return None
    return native


@functools.cache
def _leveldb_api() -> tuple[ctypes.CDLL, list[tuple[int, int]]] | None:
    """LevelDB's C API in the library this process mapped (plyvel's), with its address
    ranges, once per process; None where there is no single such library or no CPU build."""
    mapped = _leveldb_library()
    if mapped is None:
        return None
    path, ranges = mapped
    try:
        leveldb = ctypes.CDLL(path)
        for name in _C_API:
            getattr(leveldb, name)
        cpu_library()
    except (OSError, AttributeError, NativeUnavailable):
        return None
    leveldb.leveldb_readoptions_create.restype = ctypes.c_void_p
    leveldb.leveldb_writeoptions_create.restype = ctypes.c_void_p
    for name in ("leveldb_readoptions_destroy", "leveldb_writeoptions_destroy"):
        getattr(leveldb, name).argtypes = [ctypes.c_void_p]
    leveldb.leveldb_writeoptions_set_sync.argtypes = [ctypes.c_void_p, ctypes.c_ubyte]
    return leveldb, ranges


def _agrees(native: NativeLevelDB, db: Any) -> bool:
    """True when reads through ``native`` equal plyvel's: a stored key (if any) and an absent one."""
    probe = [b"\xff" * 40 + os.urandom(8)]
    with db.iterator(include_value=False) as keys:
        probe += [key for key, _ in zip(keys, range(2))]
    return native.get_many(probe) == [db.get(key) for key in probe]


def _leveldb_library() -> tuple[str, list[tuple[int, int]]] | None:
    """The LevelDB library this process mapped (plyvel's) and its address ranges."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    found: dict[str, list[tuple[int, int]]] = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and Path(fields[5]).name.startswith("libleveldb"):
            start, end = (int(part, 16) for part in fields[0].split("-"))
            found.setdefault(fields[5], []).append((start, end))
    if len(found) != 1:
        return None
    return next(iter(found.items()))


def _address(lib: ctypes.CDLL, name: str) -> int | None:
    """Where function ``name`` of ``lib`` starts (handed to the C side as a pointer)."""
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
