"""One suite for every KV backend: MemoryKV and LevelDBKV must behave the same."""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from node.db.api import KV, WriteBatch
from node.db.leveldb import LAYOUT_FILE, NODE_SHARDS, LevelDBKV
from node.db.memory import prefix_end
from primitives.errors import Halt, StoreClosed
from tests.db.backends import Backend


def items(kv: KV, prefix: bytes = b"", reverse: bool = False) -> list[tuple[bytes, bytes]]:
    return list(kv.iterate(prefix, reverse=reverse))


KEYS = [
    b"",
    b"\x00",
    b"a",
    b"a\x00",
    b"a\xff",
    b"a\xff\x00",
    b"a\xff\xff",
    b"ab",
    b"b",
    b"\xff",
    b"\xff\xff",
]


def fill(kv: KV, keys: list[bytes] = KEYS) -> dict[bytes, bytes]:
    expected = {}
    for i, key in enumerate(reversed(keys)):
        value = b"v%d" % i
        kv.put(key, value)
        expected[key] = value
    return expected


def test_put_get_delete(kv: KV) -> None:
    assert kv.get(b"k") is None
    kv.put(b"k", b"one")
    assert kv.get(b"k") == b"one"
    kv.put(b"k", b"two")
    assert kv.get(b"k") == b"two"
    kv.delete(b"k")
    assert kv.get(b"k") is None
    kv.delete(b"never-written")
    assert items(kv) == []


def test_empty_and_large_values(kv: KV) -> None:
    large = bytes(range(256)) * 40_000  # 10 MiB
    kv.put(b"empty", b"")
    kv.put(b"large", large)
    assert kv.get(b"empty") == b""
    assert kv.get(b"large") == large
    assert items(kv) == [(b"empty", b""), (b"large", large)]


def test_get_many(kv: KV) -> None:
    stored = fill(kv)
    kv.put(b"empty", b"")
    large = bytes(range(256)) * 4_000
    kv.put(b"large", large)
    keys = [b"ab", b"missing", b"empty", b"", b"large", b"ab", b"\xff\xff\xff", b"a"]
    assert kv.get_many(keys) == [stored[b"ab"], None, b"", stored[b""], large, stored[b"ab"],
                                 None, stored[b"a"]]
    assert kv.get_many([]) == []


def test_get_many_of_thousands_in_any_order(kv: KV) -> None:
    """Enough keys that LevelDB reads them on several threads, each share in any order."""
    with kv.write_batch() as batch:  # type: ignore[attr-defined]
        batch.put_many((b"k%05d" % i, b"v" * (i % 7) + b"%d" % i) for i in range(0, 20_000, 2))
    keys = [b"k%05d" % ((i * 7919) % 20_000) for i in range(20_000)]
    expected = [None if i % 2 else b"v" * (i % 7) + b"%d" % i
                for i in ((i * 7919) % 20_000 for i in range(20_000))]
    assert kv.get_many(keys) == expected


def _packed(batch: WriteBatch, prefix: bytes, items: dict[bytes, bytes]) -> None:
    batch.put_packed(prefix, b"".join(items), 4, b"".join(items.values()),
                     np.array([len(value) for value in items.values()], dtype=np.int64))


def test_batch_put_packed(kv: KV) -> None:
    nodes = {b"%04d" % i: b"node %d" % i * (i % 3) for i in range(3_000)}  # some empty
    kv.put(b"n0007", b"old")
    kv.put(b"other", b"kept")
    batch = kv.write_batch()
    batch.put(b"flat", b"row")
    _packed(batch, b"n", nodes)
    batch.delete(b"other")
    assert batch.get(b"flat") == b"row" and kv.get(b"n0001") is None
    batch.commit()
    assert kv.get_many([b"n%04d" % i for i in range(3_000)]) == list(nodes.values())
    assert kv.get(b"flat") == b"row" and kv.get(b"other") is None
    assert len(items(kv, b"n")) == 3_000
    batch.put(b"after", b"1")  # the batch is empty again and reusable
    batch.commit()
    assert items(kv, b"a") == [(b"after", b"1")]


def test_batch_reads_and_iterates_its_packed_puts(kv: KV) -> None:
    kv.put(b"n0001", b"stored")
    kv.put(b"m", b"m")
    batch = kv.write_batch()
    _packed(batch, b"n", {b"0001": b"new", b"0002": b"two"})
    batch.put(b"n0003", b"three")  # a key written otherwise keeps that write
    _packed(batch, b"n", {b"0003": b"packed three", b"0004": b""})
    assert batch.get(b"m") == b"m"
    assert batch.get_many([b"n0002", b"m", b"n0004"]) == [b"two", b"m", b""]
    assert batch.get(b"n0001") == b"new" and batch.get(b"n0003") == b"three"
    assert list(batch.iterate(b"n")) == [(b"n0001", b"new"), (b"n0002", b"two"),
                                         (b"n0003", b"three"), (b"n0004", b"")]
    _packed(batch, b"n", {b"0005": b"five"})
    assert list(batch.iterate(b"n0005")) == [(b"n0005", b"five")]
    batch.commit()
    assert items(kv, b"n") == [(b"n0001", b"new"), (b"n0002", b"two"), (b"n0003", b"three"),
                               (b"n0004", b""), (b"n0005", b"five")]


def test_a_packed_put_of_size_minus_one_deletes(kv: KV) -> None:
    kv.put(b"r" + b"2" * 4, b"old")
    batch = kv.write_batch()
    batch.put_packed(b"r", b"1111" + b"2222", 4, b"new", np.array([3, -1], dtype=np.int64))
    assert batch.get(b"r2222") is None and batch.get(b"r1111") == b"new"
    batch.commit()
    assert items(kv, b"r") == [(b"r1111", b"new")]


def test_batch_write_many_puts_and_deletes_in_order(kv: KV) -> None:
    kv.put(b"gone", b"old")
    kv.put(b"kept", b"old")
    batch = kv.write_batch()
    batch.write_many([(b"new", b"1"), (b"gone", None), (b"twice", b"first"), (b"twice", None),
                      (b"again", None), (b"again", b"last")])
    assert batch.get(b"gone") is None and batch.get(b"twice") is None and batch.get(b"again") == b"last"
    batch.commit()
    assert items(kv, b"") == [(b"again", b"last"), (b"kept", b"old"), (b"new", b"1")]


def test_batch_packed_deletes(kv: KV) -> None:
    """Keys removed as a prefix and names of one width: read as gone from the batch, a key
    also put otherwise keeps that put, and they are gone once it is committed."""
    with kv.write_batch() as stored:  # type: ignore[attr-defined]
        stored.put_many([(b"p" + b"%04d" % i, b"record %d" % i) for i in range(1_000)])
        stored.put(b"q0001", b"other prefix")
    batch = kv.write_batch()
    gone = [b"%04d" % i for i in range(0, 1_000, 2)]
    batch.delete_packed(b"p", b"".join(gone), 4)
    batch.put(b"p0002", b"put again")
    assert batch.get(b"p0000") is None and batch.get(b"p0001") == b"record 1"
    assert batch.get_many([b"p0004", b"p0002", b"q0001"]) == [None, b"put again", b"other prefix"]
    batch.commit()
    assert kv.get_many([b"p%04d" % i for i in range(6)]) == [
        None, b"record 1", b"put again", b"record 3", None, b"record 5"]
    assert len(items(kv, b"p")) == 501 and kv.get(b"q0001") == b"other prefix"
    with pytest.raises(ValueError):
        kv.write_batch().delete_packed(b"p", b"abc", 4)


def test_batch_drops_packed_puts_when_the_block_raises(kv: KV) -> None:
    with pytest.raises(RuntimeError), kv.write_batch() as batch:  # type: ignore[attr-defined]
        _packed(batch, b"n", {b"0001": b"x"})
        raise RuntimeError("block failed")
    assert kv.get(b"n0001") is None
    with pytest.raises(ValueError):
        kv.write_batch().put_packed(b"n", b"abc", 4, b"", np.zeros(1, dtype=np.int64))


def test_batches_of_repeated_keys_keep_each_keys_last_write(kv: KV) -> None:
    """Random batches mixing packed runs and single writes over a few keys that share long
    prefixes: a key written several times in one batch keeps its last write."""
    rng = random.Random(7)
    model: dict[bytes, bytes] = {}
    prefixes = [b"k", b"kkkkkkk", b"kkkkkkkk", b"kkkkkkkkk"]
    for _ in range(60):
        batch = kv.write_batch()
        writes: list[tuple[bytes, bytes | None]] = []
        runs: list[tuple[bytes, list[bytes], list[bytes | None]]] = []
        for _ in range(rng.randrange(1, 6)):
            prefix = rng.choice(prefixes)
            names = [bytes(rng.choices(b"\x00ab", k=2)) for _ in range(rng.randrange(1, 40))]
            values = [None if rng.random() < 0.3 else b"v%d" % rng.randrange(1000) for _ in names]
            runs.append((prefix, names, values))
        for _ in range(rng.randrange(0, 30)):
            key = rng.choice(prefixes) + bytes(rng.choices(b"\x00ab", k=rng.randrange(0, 3)))
            writes.append((key, None if rng.random() < 0.3 else b"w%d" % rng.randrange(1000)))
        for prefix, names, values in runs:
            sizes = np.array([-1 if v is None else len(v) for v in values], dtype=np.int64)
            batch.put_packed(prefix, b"".join(names), 2, b"".join(v for v in values if v), sizes)
        batch.write_many(writes)
        # Packed runs in order, then the single writes, which keep a key they also write.
        for prefix, names, values in runs:
            for name, value in zip(names, values):
                model.pop(prefix + name, None) if value is None else model.__setitem__(prefix + name, value)
        for key, value in writes:
            model.pop(key, None) if value is None else model.__setitem__(key, value)
        batch.commit()
        assert items(kv) == sorted(model.items())


def test_a_large_batch_of_repeated_keys_keeps_each_keys_last_write(kv: KV) -> None:
    """As above, in one batch of 12,000 writes (the native write's runs and its key copies)."""
    rng = random.Random(11)
    model: dict[bytes, bytes] = {}
    batch = kv.write_batch()
    for prefix in (b"k", b"kkkkkkk", b"kkkkkkkk", b"kk"):
        names = [bytes(rng.choices(b"\x00abc", k=3)) for _ in range(3_000)]
        values = [None if rng.random() < 0.2 else b"v%d" % rng.randrange(10**6) for _ in names]
        sizes = np.array([-1 if v is None else len(v) for v in values], dtype=np.int64)
        batch.put_packed(prefix, b"".join(names), 3, b"".join(v for v in values if v), sizes)
        for name, value in zip(names, values):
            model.pop(prefix + name, None) if value is None else model.__setitem__(prefix + name, value)
    batch.commit()
    assert items(kv) == sorted(model.items())


def test_leveldb_reads_and_writes_batches_natively(tmp_path: Path) -> None:
    """On Linux with plyvel's wheel the store finds LevelDB's C API and plyvel's handle: a
    batch is then one call without the GIL, not a GIL hand-off per key."""
    kv = LevelDBKV(tmp_path / "db")
    assert kv._main.native is not None and kv.node_shards == NODE_SHARDS
    assert all(shard.native is not None for shard in kv._shards)
    with kv.write_batch() as batch:
        batch.put_many((b"%d" % i, b"x%d" % i) for i in range(5_000))
        batch.delete(b"7")
        batch.put(b"empty", b"")
    assert kv.get_many([b"6", b"7", b"4999", b"empty"]) == [b"x6", None, b"x4999", b""]
    kv.close()


def test_stored_value_is_a_copy(kv: KV) -> None:
    value = bytearray(b"abc")
    kv.put(b"k", bytes(value))
    value[0] = ord("z")
    assert kv.get(b"k") == b"abc"


@pytest.mark.parametrize(
    "prefix", [b"", b"a", b"a\xff", b"a\xff\xff", b"\xff", b"\xff\xff\xff", b"ab", b"c", b"\x00"]
)
def test_prefix_iteration_order(kv: KV, prefix: bytes) -> None:
    stored = fill(kv)
    expected = sorted((k, v) for k, v in stored.items() if k.startswith(prefix))
    assert items(kv, prefix) == expected
    assert items(kv, prefix, reverse=True) == expected[::-1]


def test_iteration_is_bytewise_not_length_first(kv: KV) -> None:
    for key in (b"\x02", b"\x01\xff\xff", b"\x01", b"\x10"):
        kv.put(key, key)
    assert [k for k, _ in items(kv)] == [b"\x01", b"\x01\xff\xff", b"\x02", b"\x10"]


@pytest.mark.parametrize("reverse", [False, True])
def test_iterator_ignores_writes_after_the_call(kv: KV, reverse: bool) -> None:
    kv.put(b"a1", b"1")
    kv.put(b"a2", b"2")
    iterator = kv.iterate(b"a", reverse=reverse)
    kv.put(b"a3", b"3")
    kv.put(b"a0", b"0")
    kv.delete(b"a1")
    expected = [(b"a1", b"1"), (b"a2", b"2")]
    assert list(iterator) == (expected[::-1] if reverse else expected)


def test_prefix_end() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\x00") == b"a\x01"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


def test_batch_invisible_before_commit(kv: KV) -> None:
    kv.put(b"keep", b"old")
    kv.put(b"gone", b"old")
    batch = kv.write_batch()
    batch.put(b"new", b"1")
    batch.put(b"keep", b"new")
    batch.delete(b"gone")
    assert kv.get(b"new") is None
    assert kv.get(b"keep") == b"old"
    assert kv.get(b"gone") == b"old"
    assert items(kv) == [(b"gone", b"old"), (b"keep", b"old")]
    batch.commit()
    assert items(kv) == [(b"keep", b"new"), (b"new", b"1")]


def test_a_sealed_batch_is_written_when_its_write_is_called_from_any_thread(kv: KV) -> None:
    kv.put(b"gone", b"old")
    batch = kv.write_batch()
    batch.put(b"new", b"1")
    batch.delete(b"gone")
    _packed(batch, b"n", {b"0001": b"node"})
    write = batch.seal()
    assert batch.get(b"new") is None  # handed over: the batch is empty again
    assert items(kv) == [(b"gone", b"old")]
    writer = threading.Thread(target=write)
    writer.start()
    writer.join(10)
    assert items(kv) == [(b"n0001", b"node"), (b"new", b"1")]


def test_a_write_sealed_before_the_store_closed_raises(kv: KV) -> None:
    batch = kv.write_batch()
    batch.put(b"a", b"1")
    write = batch.seal()
    kv.close()
    with pytest.raises(StoreClosed):
        write()


def test_batch_reads_its_own_writes(kv: KV) -> None:
    kv.put(b"a1", b"stored")
    kv.put(b"a3", b"stored")
    kv.put(b"a5", b"stored")
    kv.put(b"b", b"stored")
    batch = kv.write_batch()
    batch.put(b"a0", b"pending")
    batch.put(b"a3", b"pending")
    batch.delete(b"a5")
    batch.put(b"a6", b"pending")
    batch.put(b"c", b"pending")
    batch.delete(b"absent")
    assert batch.get(b"a0") == b"pending"
    assert batch.get(b"a1") == b"stored"
    assert batch.get(b"a3") == b"pending"
    assert batch.get(b"a5") is None
    assert batch.get(b"absent") is None
    keys = [b"a0", b"a1", b"a5", b"a3", b"absent", b"a1"]
    assert batch.get_many(keys) == [b"pending", b"stored", None, b"pending", None, b"stored"]
    assert kv.get_many(keys) == [None, b"stored", b"stored", b"stored", None, b"stored"]
    expected = [(b"a0", b"pending"), (b"a1", b"stored"), (b"a3", b"pending"), (b"a6", b"pending")]
    assert list(batch.iterate(b"a")) == expected
    assert list(batch.iterate(b"a", reverse=True)) == expected[::-1]
    everything = expected + [(b"b", b"stored"), (b"c", b"pending")]
    assert list(batch.iterate()) == everything
    assert list(batch.iterate(reverse=True)) == everything[::-1]
    batch.commit()
    assert items(kv) == everything


def test_batch_put_many(kv: KV) -> None:
    kv.put(b"a", b"stored")
    batch = kv.write_batch()
    batch.delete(b"b")
    batch.put_many([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    assert batch.get(b"a") == b"1" and batch.get(b"b") == b"2"
    batch.commit()
    assert items(kv) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]


def test_batch_delete_many(kv: KV) -> None:
    for key in (b"a", b"b", b"c"):
        kv.put(key, b"stored")
    batch = kv.write_batch()
    batch.put(b"d", b"new")
    batch.delete_many(iter([b"a", b"c", b"d", b"absent"]))
    assert batch.get(b"a") is None and batch.get(b"d") is None and batch.get(b"b") == b"stored"
    assert list(batch.iterate()) == [(b"b", b"stored")]
    batch.put_many([(b"c", b"again")])
    batch.commit()
    assert items(kv) == [(b"b", b"stored"), (b"c", b"again")]


def test_batch_put_then_delete_and_delete_then_put(kv: KV) -> None:
    kv.put(b"x", b"stored")
    batch = kv.write_batch()
    batch.put(b"y", b"1")
    batch.delete(b"y")
    batch.delete(b"x")
    batch.put(b"x", b"again")
    assert list(batch.iterate()) == [(b"x", b"again")]
    batch.commit()
    assert items(kv) == [(b"x", b"again")]


def test_state_nodes_and_other_keys_of_their_shape_in_random_batches(backend: Backend) -> None:
    """Keys shaped as the state's nodes (s + 32 bytes: LevelDB keeps them in databases of
    their own), other keys of that size or prefix, packed runs and single writes mixed: reads,
    ordered iteration and a reopened store agree with a model."""
    rng = random.Random(5)
    model: dict[bytes, bytes] = {}
    kv = backend.open()
    names = [rng.randbytes(32) for _ in range(400)] + [b"\x00" * 32, b"\xff" * 32]
    for _ in range(25):
        batch = kv.write_batch()
        chosen = rng.sample(names, rng.randrange(1, 120))
        values = [None if rng.random() < 0.1 else rng.randbytes(rng.randrange(0, 90)) for _ in chosen]
        sizes = np.array([-1 if v is None else len(v) for v in values], dtype=np.int64)
        batch.put_packed(b"s", b"".join(chosen), 32, b"".join(v for v in values if v), sizes)
        for name, value in zip(chosen, values):
            model.pop(b"s" + name, None) if value is None else model.__setitem__(b"s" + name, value)
        writes: list[tuple[bytes, bytes | None]] = []
        for _ in range(rng.randrange(0, 20)):
            key = rng.choice([b"s" + rng.choice(names), b"a" + rng.choice(names), b"s" + b"x" * 5,
                              b"s", b"t" + rng.choice(names)[:8]])
            writes.append((key, None if rng.random() < 0.3 else b"w%d" % rng.randrange(1000)))
        batch.write_many(writes)
        for key, value in writes:
            model.pop(key, None) if value is None else model.__setitem__(key, value)
        batch.commit()
    for prefix in (b"", b"s", b"s" + names[0][:1], b"a"):
        expected = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
        assert items(kv, prefix) == expected
        assert items(kv, prefix, reverse=True) == expected[::-1]
    if backend.persistent:
        kv.close()
        kv = backend.open()
    keys = sorted(model) + [b"s" + bytes(32), b"a" + bytes(32)]
    rng.shuffle(keys)
    assert kv.get_many(keys) == [model.get(key) for key in keys]
    assert [kv.get(key) for key in keys[:50]] == [model.get(key) for key in keys[:50]]
    assert items(kv) == sorted(model.items())
    kv.close()


def test_packed_runs_of_node_sized_keys_in_another_shape_keep_their_order(backend: Backend) -> None:
    """Runs whose 33-byte keys may be nodes without being a run of nodes alone (no prefix, or
    another width): each key lands where it belongs, and a later run's write of a key wins."""
    kv = backend.open()
    node, other = b"s" + b"\x90" * 32, b"a" + b"\x90" * 32
    batch = kv.write_batch()
    batch.put_packed(b"", node + other, 33, b"n1o1", np.array([2, 2], dtype=np.int64))
    batch.put_packed(b"s", b"\x90" * 32, 32, b"n2", np.array([2], dtype=np.int64))
    batch.put_packed(b"", other, 33, b"o2", np.array([2], dtype=np.int64))
    batch.commit()
    if backend.persistent:
        kv.close()
        kv = backend.open()
    assert kv.get_many([node, other]) == [b"n2", b"o2"]
    assert items(kv) == [(other, b"o2"), (node, b"n2")]
    kv.close()


def test_leveldb_writes_a_batchs_nodes_before_the_rest(tmp_path: Path) -> None:
    """A batch's nodes go to their databases first, the rest only once they are written: a
    failed node write leaves the rest unwritten (a block is never there without its nodes)."""
    kv = LevelDBKV(tmp_path / "db")
    node = b"s" + b"\x80" * 32
    failing = kv._shards[kv._place(node)]

    def refuse(*args: object) -> Callable[[], None]:
        def write() -> None:
            raise Halt("disk full")
        return write

    failing.prepare = refuse  # type: ignore[method-assign, assignment]
    batch = kv.write_batch()
    batch.put(b"head", b"block 1")
    batch.put_packed(b"s", b"\x01" * 32 + b"\x80" * 32, 32, b"ab", np.array([1, 1], dtype=np.int64))
    with pytest.raises(Halt, match="disk full"):
        batch.commit()
    assert kv.get(b"head") is None and kv.get(node) is None
    kv.close()


def test_leveldb_keeps_the_layout_it_was_made_with(tmp_path: Path) -> None:
    """A store's node databases are fixed when it is made: one made without them (as every
    store before them) keeps its nodes in its one database; a missing one stops the node."""
    one = LevelDBKV(tmp_path / "one", node_shards=0)
    one.put(b"s" + b"\x01" * 32, b"node")
    one.close()
    again = LevelDBKV(tmp_path / "one")
    assert again.node_shards == 0 and again.get(b"s" + b"\x01" * 32) == b"node"
    again.close()
    older = LevelDBKV(tmp_path / "older", node_shards=4)
    older.put(b"h", b"header")
    older.close()
    (tmp_path / "older" / LAYOUT_FILE).unlink()  # as a store made before the node databases
    reopened = LevelDBKV(tmp_path / "older")
    assert reopened.node_shards == 0 and reopened.get(b"h") == b"header"
    reopened.close()
    sharded = LevelDBKV(tmp_path / "sharded", node_shards=4)
    sharded.put(b"s" + b"\xff" * 32, b"node")
    sharded.close()
    reopened = LevelDBKV(tmp_path / "sharded", node_shards=8)
    assert reopened.node_shards == 4 and reopened.get(b"s" + b"\xff" * 32) == b"node"
    reopened.close()
    shutil.rmtree(tmp_path / "sharded" / "nodes" / "3")
    with pytest.raises(Halt, match="cannot open"):
        LevelDBKV(tmp_path / "sharded")


def test_batch_merge_matches_a_plain_store(kv: KV) -> None:
    stored = fill(kv)
    batch = kv.write_batch()
    model = dict(stored)
    for i, key in enumerate(KEYS + [b"a\x01", b"aa", b"\xfe"]):
        if i % 3 == 0:
            batch.delete(key)
            model.pop(key, None)
        elif i % 3 == 1:
            batch.put(key, b"p%d" % i)
            model[key] = b"p%d" % i
    for prefix in (b"", b"a", b"a\xff", b"\xff", b"z"):
        expected = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
        assert list(batch.iterate(prefix)) == expected
        assert list(batch.iterate(prefix, reverse=True)) == expected[::-1]
    batch.commit()
    assert items(kv) == sorted(model.items())


def test_batch_reuse_after_commit(kv: KV) -> None:
    batch = kv.write_batch()
    batch.put(b"a", b"1")
    batch.commit()
    batch.put(b"b", b"2")
    assert kv.get(b"b") is None
    batch.commit()
    assert items(kv) == [(b"a", b"1"), (b"b", b"2")]


def test_batch_context_manager(kv: KV) -> None:
    with kv.write_batch() as batch:  # type: ignore[attr-defined]
        batch.put(b"a", b"1")
    assert kv.get(b"a") == b"1"
    with pytest.raises(KeyError), kv.write_batch() as batch:  # type: ignore[attr-defined]
        batch.put(b"b", b"2")
        raise KeyError("the block failed")
    assert kv.get(b"b") is None


def test_batch_sees_store_writes_made_after_it_started(kv: KV) -> None:
    batch = kv.write_batch()
    kv.put(b"k", b"direct")
    assert batch.get(b"k") == b"direct"


def test_closed_store_raises(kv: KV) -> None:
    kv.put(b"a", b"1")
    batch = kv.write_batch()
    batch.put(b"b", b"2")
    kv.close()
    calls: list[Callable[[], object]] = [
        lambda: kv.get(b"a"),
        lambda: kv.get_many([b"a"]),
        lambda: kv.iterate(),
        lambda: kv.put(b"a", b"2"),
        lambda: kv.delete(b"a"),
        lambda: kv.write_batch(),
        lambda: batch.get(b"a"),
        lambda: batch.get_many([b"a", b"b"]),
        batch.commit,
    ]
    for call in calls:
        with pytest.raises(StoreClosed):
            call()
    kv.close()  # closing twice is harmless


def test_close_during_iteration_raises(backend: Backend) -> None:
    kv = backend.open()
    kv.put(b"a", b"1")
    kv.put(b"b", b"2")
    iterator = kv.iterate()
    kv.close()
    if backend.persistent:
        with pytest.raises(StoreClosed):
            list(iterator)
    else:  # the in-memory store copied the range at the call
        assert list(iterator) == [(b"a", b"1"), (b"b", b"2")]


def test_persists_across_reopen(tmp_path: Path) -> None:
    backend = Backend("leveldb", tmp_path)
    kv = backend.open()
    stored = fill(kv)
    with kv.write_batch() as batch:  # type: ignore[attr-defined]
        batch.put(b"batched", b"yes")
        batch.delete(b"a")
    kv.delete(b"b")
    kv.close()
    reopened = backend.open()
    stored.pop(b"a")
    stored.pop(b"b")
    stored[b"batched"] = b"yes"
    assert items(reopened) == sorted(stored.items())
    reopened.close()


def test_leveldb_open_errors(tmp_path: Path) -> None:
    with pytest.raises(Halt, match="cannot open"):
        LevelDBKV(tmp_path / "missing", create_if_missing=False)
    first = LevelDBKV(tmp_path / "db")
    with pytest.raises(Halt, match="lock"):
        LevelDBKV(tmp_path / "db")
    first.close()
