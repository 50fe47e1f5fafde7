"""The native Merkle-Patricia committer (executor_gpu.native_mpt) and StateDB.apply against
py-trie's HexaryTrie and py-evm's AccountDB, on random changes."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from executor_gpu.native_abi import enum_members
from executor_gpu.native_fallback import CommittedState
from executor_gpu.native_mpt import (
    CACHE_BYTES,
    Commit,
    OldValues,
    TrieCommitter,
    account_rows,
    flat_changes,
    pack_changes,
    slot_values,
    with_trie_keys,
)
from executor_gpu.types import AccountChange, StateDiff
from node.db.api import KV
from node.db.memory import MemoryKV, PackedWrites
from node.db.state import EMPTY_CODE_HASH, StateDB
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.types import Address

# -- keys that share long prefixes ------------------------------------------------------


_MPT = enum_members("evm_mpt.h")
_FLAGS_AT, _STORAGE_ROOT_AT = _MPT["MA_FLAGS"], _MPT["MA_STORAGE_ROOT"]
_STORAGE, _RESET = _MPT["MF_STORAGE"], _MPT["MF_RESET"]


def _near(base: bytes, nibbles: int, rng: random.Random) -> bytes:
    """A 32-byte key sharing exactly its first ``nibbles`` nibbles with ``base``."""
    if nibbles >= 64:
        return base
    digits = list(base.hex()[:nibbles])
    digits.append(rng.choice([d for d in "0123456789abcdef" if d != base.hex()[nibbles]]))
    digits += [rng.choice("0123456789abcdef") for _ in range(63 - nibbles)]
    return bytes.fromhex("".join(digits))


@st.composite
def _key_pool(draw: st.DrawFn) -> list[bytes]:
    """Keys around a few bases: neighbours diverging at any nibble (63 = the last one), so
    that paths share long prefixes, extensions split and join, and short leaves embed."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    bases = [rng.randbytes(32) for _ in range(draw(st.integers(1, 3)))]
    keys = set(bases)
    for _ in range(draw(st.integers(0, 24))):
        keys.add(_near(rng.choice(bases), draw(st.sampled_from([0, 1, 2, 5, 31, 32, 33, 56, 60, 62, 63])), rng))
    return sorted(keys)


_VALUES = st.one_of(st.binary(min_size=1, max_size=3), st.binary(min_size=1, max_size=70))


@st.composite
def _trie_batches(draw: st.DrawFn) -> list[dict[bytes, bytes | None]]:
    keys = draw(_key_pool())
    batch = st.dictionaries(st.sampled_from(keys), st.one_of(st.none(), _VALUES), min_size=1)
    batches = draw(st.lists(batch, min_size=1, max_size=6))
    if draw(st.booleans()):  # and everything deleted: back to the empty trie
        batches.append({key: None for key in keys})
    return batches


class _Store:
    """The node store of a test: a dict, with the count of reads."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.reads = 0

    def load(self, hashes: list[bytes]) -> list[bytes | None]:
        self.reads += len(hashes)
        return [self.nodes.get(node_hash) for node_hash in hashes]

    def keep(self, commit: Commit) -> None:
        """The commit's new nodes and code, split as the store's batch splits them."""
        for key, node in PackedWrites(b"", commit.hashes, 32, commit.data, commit.lengths).items():
            assert node is not None
            self.nodes[key] = node
        self.nodes.update(commit.codes)


@settings(max_examples=300, deadline=None)
@given(_trie_batches(), st.sampled_from([0, 3000, CACHE_BYTES]))
def test_trie_commits_give_py_trie_roots(batches: list[dict[bytes, bytes | None]], cache_bytes: int) -> None:
    """Batches of sets and deletes (some of absent keys) from the empty trie give py-trie's
    root after each batch, and every node the new root needs is in the store; with no node
    cache, a cache that keeps dropping, and the default one."""
    reference: Any = HexaryTrie({})  # py-trie is untyped
    store = _Store()
    root = EMPTY_ROOT
    with TrieCommitter(cache_bytes=cache_bytes) as committer:
        for changes in batches:
            for key, value in changes.items():
                if value is None:
                    del reference[key]
                else:
                    reference[key] = value
            commit = committer.commit_trie(root, changes, store.load)
            store.keep(commit)
            root = commit.root
            assert root == reference.root_hash
            # py-trie reads the new trie from the committer's nodes alone
            stored: Any = HexaryTrie(store.nodes, root)
            for key in changes:
                assert stored.get(key) == reference.get(key)


def test_commit_reads_only_touched_paths() -> None:
    """One key changed in a trie of 4,096 reads the nodes on its path, no more; only the
    leaf it lands beside when the branches are in the cache of the commit that wrote them
    (the cache keeps no leaves)."""
    rng = random.Random(7)
    store = _Store()
    with TrieCommitter() as committer:
        commit = committer.commit_trie(EMPTY_ROOT, {rng.randbytes(32): b"v" * 40 for _ in range(4096)}, store.load)
        store.keep(commit)
        assert store.reads == 0 and len(commit.lengths) > 4096
        committer.commit_trie(commit.root, {rng.randbytes(32): b"w" * 40}, store.load)
        assert store.reads <= 1
        store.reads = 0
    with TrieCommitter(cache_bytes=0) as cold:
        one = cold.commit_trie(commit.root, {rng.randbytes(32): b"w" * 40}, store.load)
    assert 1 <= store.reads <= 5 and len(one.lengths) <= 6


def test_alike_subtries_of_a_raw_trie() -> None:
    """Two places of a raw trie can hold the same subtrie (keys are anything), decoded once
    for both: different changes under each still give py-trie's root, read cold in rounds."""
    suffixes = [bytes([0x30 + i]) * 31 for i in range(2)]
    keys = [bytes([prefix]) + suffix for prefix in (0x11, 0x22) for suffix in suffixes]
    reference: Any = HexaryTrie({})  # py-trie is untyped
    store = _Store()
    with TrieCommitter() as committer:
        first = committer.commit_trie(EMPTY_ROOT, {key: b"v" * 40 for key in keys}, store.load)
    store.keep(first)
    for key in keys:
        reference[key] = b"v" * 40
    changes: dict[bytes, bytes | None] = {keys[0]: b"w" * 40, keys[2]: b"x" * 40}
    for key, value in changes.items():
        reference[key] = value
    with TrieCommitter(cache_bytes=0) as cold:
        assert cold.commit_trie(first.root, changes, store.load).root == reference.root_hash


def test_cache_keeps_current_nodes_across_rotations() -> None:
    """The cache drops what commits replaced, not what is still current: after blocks that
    rotate its generations several times, a part of the trie none of them touched still
    reads only its changed leaves (the cache keeps no leaves), and every root is py-trie's."""
    rng = random.Random(11)
    keys = [rng.randbytes(32) for _ in range(1024)]
    regions = [[key for key in keys if key[0] >> 4 == region] for region in range(16)]
    reference: Any = HexaryTrie({})  # py-trie is untyped
    store = _Store()

    def commit(committer: TrieCommitter, root: bytes, changes: dict[bytes, bytes | None]) -> bytes:
        for key, value in changes.items():
            reference[key] = value
        done = committer.commit_trie(root, changes, store.load)
        store.keep(done)
        assert done.root == reference.root_hash
        return done.root

    # A budget of 400 KB: the trie's branches (about 80 KB) fit a quarter of it; each block
    # adds about 6 KB of new branches, so 90 blocks rotate the generations at least twice.
    with TrieCommitter(cache_bytes=400_000) as committer:
        root = commit(committer, EMPTY_ROOT, {key: b"v" * 40 for key in keys})
        for block in range(90):
            root = commit(committer, root, {key: b"%d" % block * 20 for key in regions[block % 15]})
        store.reads = 0
        commit(committer, root, {key: b"w" * 40 for key in regions[15]})
        assert store.reads == len(regions[15])


def test_empty_commits() -> None:
    """No changes keep the root (even one the store lacks: nothing is read); deletions of
    absent keys keep it too; the empty trie stays empty; an empty diff keeps the state."""
    store = _Store()
    unknown = keccak256(b"no such trie")
    with TrieCommitter() as committer:
        assert committer.commit_trie(unknown, {}, store.load).root == unknown
        assert committer.commit_trie(EMPTY_ROOT, {bytes(32): None}, store.load).root == EMPTY_ROOT
        commit = committer.commit_trie(EMPTY_ROOT, {bytes(32): b"v" * 40}, store.load)
        store.keep(commit)
        again = committer.commit_trie(commit.root, {b"\xff" * 32: None}, store.load)
        assert again.root == commit.root and not len(again.lengths)
    kv = MemoryKV()
    assert StateDB(kv).apply(EMPTY_ROOT, StateDiff({}), kv.write_batch()) == EMPTY_ROOT


def test_missing_and_malformed_nodes_halt() -> None:
    store = _Store()
    keys = [bytes([i]) * 32 for i in range(20)]
    with TrieCommitter() as committer:
        commit = committer.commit_trie(EMPTY_ROOT, dict.fromkeys(keys, b"x" * 40), store.load)
        store.keep(commit)
    with TrieCommitter(cache_bytes=0) as committer:
        only_root = _Store()
        only_root.nodes[commit.root] = store.nodes[commit.root]
        with pytest.raises(Halt, match="missing"):
            committer.commit_trie(commit.root, {keys[0]: None}, only_root.load)
        broken = _Store()
        broken.nodes = dict(store.nodes)
        broken.nodes[commit.root] = broken.nodes[commit.root][:-3]
        with pytest.raises(Halt, match="malformed"):
            committer.commit_trie(commit.root, {keys[0]: None}, broken.load)
        with pytest.raises(ValueError, match="32 bytes"):
            committer.commit_trie(commit.root, {b"short": b"x"}, store.load)
        # the session goes on after a failed commit
        assert committer.commit_trie(commit.root, {keys[0]: b"y"}, store.load).root != commit.root


# -- state diffs --------------------------------------------------------------------------


def _addresses_near(count: int, nibbles: int, seed: int) -> list[Address]:
    """Addresses whose keys (Keccak-256) share their first ``nibbles`` nibbles, found by trying."""
    rng = random.Random(seed)
    found: dict[str, list[Address]] = {}
    while True:
        address = Address(rng.randbytes(20))
        group = found.setdefault(keccak256(address).hex()[:nibbles], [])
        group.append(address)
        if len(group) == count:
            return group


def _slots_near(count: int, nibbles: int) -> list[int]:
    """Slots whose keys share their first ``nibbles`` nibbles."""
    found: dict[str, list[int]] = {}
    slot = 0
    while True:
        group = found.setdefault(keccak256(slot.to_bytes(32, "big")).hex()[:nibbles], [])
        group.append(slot)
        if len(group) == count:
            return group
        slot += 1


_ADDRESSES = _addresses_near(3, 3, 1) + _addresses_near(2, 2, 2) + [Address(bytes([i]) * 20) for i in range(6)]
_SLOTS = _slots_near(3, 3) + list(range(6))


@dataclass
class _Account:
    nonce: int = 0
    balance: int = 0
    code_hash: bytes = EMPTY_CODE_HASH
    storage: dict[int, int] = field(default_factory=dict)


def _model_root(state: Mapping[Address, _Account]) -> bytes:
    """The state root py-trie computes from scratch: the oracle."""
    accounts: Any = HexaryTrie({})
    for address, account in state.items():
        storage: Any = HexaryTrie({})
        for slot, value in account.storage.items():
            storage[keccak256(slot.to_bytes(32, "big"))] = rlp.encode(value)
        accounts[keccak256(address)] = rlp.encode(
            [account.nonce, account.balance, storage.root_hash, account.code_hash]
        )
    root: bytes = accounts.root_hash
    return root


def _apply_model(state: dict[Address, _Account], diff: StateDiff) -> None:
    for address, change in diff.accounts.items():
        if change is None:
            state.pop(address, None)
            continue
        account = state.setdefault(address, _Account())
        account.nonce, account.balance = change.nonce, change.balance
        if change.code is not None:
            account.code_hash = keccak256(change.code)
        if change.storage_reset:
            account.storage.clear()
        for slot, value in change.storage.items():
            if value:
                account.storage[slot] = value
            else:
                account.storage.pop(slot, None)


_CHANGE = st.builds(
    AccountChange,
    nonce=st.sampled_from([0, 1, 2**64 - 1]),
    balance=st.sampled_from([0, 1, 255, 10**18, 2**256 - 1]),
    code=st.sampled_from([None, None, None, b"", b"\x60\x00", bytes(range(100))]),
    storage=st.dictionaries(st.sampled_from(_SLOTS), st.sampled_from([0, 0, 1, 0x7F, 0x80, 2**255]), max_size=6),
    storage_reset=st.booleans(),
)
_DIFF = st.builds(
    StateDiff, st.dictionaries(st.sampled_from(_ADDRESSES), st.one_of(st.none(), _CHANGE), min_size=1)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_DIFF, min_size=1, max_size=5), st.sampled_from([0, CACHE_BYTES]))
def test_state_diffs_give_py_trie_roots(diffs: list[StateDiff], cache_bytes: int) -> None:
    """Blocks of diffs (accounts created, changed and deleted; storage tries created, changed,
    reset and emptied; code set; keys sharing prefixes) give the root py-trie computes from
    the whole state, block after block (every node read from the store, or from the cache)."""
    kv = MemoryKV()
    state = StateDB(kv, cache_bytes)
    model: dict[Address, _Account] = {}
    root = EMPTY_ROOT
    for diff in diffs:
        _apply_model(model, diff)
        packed = with_trie_keys(pack_changes(diff))
        assert packed.paths is not None
        paths = [packed.paths[at : at + 32] for at in range(0, len(packed.paths), 32)]
        olds = state.at(root).flat_accounts(paths)
        batch = kv.write_batch()
        root = state.apply(root, diff, batch)
        batch.commit()
        assert root == _model_root(model)
        # Outside a commit, the records with the storage roots the commit found give its values.
        news = state.at(root).flat_accounts(paths)
        assert olds is not None and news is not None
        records = np.frombuffer(packed.records, dtype=np.uint8).reshape(len(paths), -1).copy()
        for i, new in enumerate(news):
            if new is not None and records[i, _FLAGS_AT] & _STORAGE:
                records[i, _STORAGE_ROOT_AT:] = np.frombuffer(rlp.decode(new)[2], dtype=np.uint8)
                records[i, _FLAGS_AT] &= 0xFF ^ _STORAGE ^ _RESET
        assert account_rows(records, olds) == news
    view = state.at(root)
    for address, account in model.items():
        for slot, value in account.storage.items():
            assert view.get_storage(address, slot) == value


@pytest.mark.parametrize("cache_bytes", [0, CACHE_BYTES])
@pytest.mark.parametrize("threads", [1, 4])
def test_large_diffs_give_py_trie_roots(cache_bytes: int, threads: int) -> None:
    """Diffs of thousands of accounts (updates, creations, deletions, storage changes) from a
    state of 6,000 accounts give py-trie's root, with the committer's cache and without: a
    restarted node's commit reads in rounds, and its later passes skip the finished subtries.
    With 4 threads the account trie's 16 subtries update in parallel."""
    rng = random.Random(5)
    addresses = [Address(rng.randbytes(20)) for _ in range(6_000)]
    kv = MemoryKV()
    state = StateDB(kv, cache_bytes, threads=threads)
    model: dict[Address, _Account] = {}
    root = EMPTY_ROOT
    genesis = StateDiff({address: AccountChange(nonce=1, balance=i) for i, address in enumerate(addresses)})
    for diff in [genesis] + [
        StateDiff({
            address: None if i % 7 == 0 else AccountChange(
                nonce=block + 2, balance=rng.randrange(2**64), storage={i % 3: block} if i % 5 == 0 else {})
            for i, address in enumerate(rng.sample(addresses, 3_000) + [Address(rng.randbytes(20)) for _ in range(500)])
        })
        for block in range(2)
    ]:
        _apply_model(model, diff)
        batch = kv.write_batch()
        root = state.apply(root, diff, batch)
        batch.commit()
        assert root == _model_root(model)


def _is_leaf(node: bytes) -> bool:
    items = rlp.decode(node)
    return len(items) == 2 and items[0][0] >> 4 >= 2


def test_old_values_spare_the_leaf_reads_and_wrong_ones_only_cost_reads() -> None:
    """Told the old values of the keys a diff updates (as the flat tables hold them), a commit
    reads branches only, none of the old leaves; wrong values are caught by the leaf's hash
    and read instead; every way gives py-trie's root."""
    rng = random.Random(3)
    addresses = [Address(rng.randbytes(20)) for _ in range(400)]
    model: dict[Address, _Account] = {}
    genesis = StateDiff({
        address: AccountChange(nonce=1, balance=i, storage={s: s + i + 1 for s in range(i % 4)})
        for i, address in enumerate(addresses)
    })
    _apply_model(model, genesis)
    store = _Store()
    with TrieCommitter(cache_bytes=0) as committer:
        first = committer.commit_state(EMPTY_ROOT, genesis, store.load)
    store.keep(first)
    # Updates of existing accounts and slots only: every old leaf is told.
    diff = StateDiff({
        address: AccountChange(nonce=2, balance=7, storage={s: 2**200 + i for s in range(i % 4)})
        for i, address in enumerate(addresses) if i % 3 == 0
    })
    _apply_model(model, diff)
    tries: Any = HexaryTrie(store.nodes, first.root)
    accounts = [tries.get(keccak256(address)) for address in diff.accounts]
    slots: list[bytes | None] = []
    for account, change in zip(accounts, diff.accounts.values()):
        storage: Any = HexaryTrie(store.nodes, rlp.decode(account)[2])
        slots += (rlp.decode(storage.get(keccak256(slot.to_bytes(32, "big"))))
                  for slot in change.storage)  # type: ignore[union-attr]
    right = OldValues(accounts, slots)
    wrong = OldValues([v[:-1] + bytes([v[-1] ^ 1]) for v in accounts], [b"\xff" * 32] * len(slots))
    reads: dict[str, list[bytes]] = {}
    for name, old in (("none", None), ("right", right), ("wrong", wrong)):
        read: list[bytes] = []

        def load(hashes: list[bytes], read: list[bytes] = read) -> list[bytes | None]:
            nodes = store.load(hashes)
            read += (node for node in nodes if node is not None)
            return nodes

        with TrieCommitter(cache_bytes=0) as committer:
            assert committer.commit_state(first.root, diff, load, old).root == _model_root(model)
        reads[name] = read
    assert not any(map(_is_leaf, reads["right"]))
    told = len(accounts) + len(slots)
    assert sum(map(_is_leaf, reads["none"])) == told == sum(map(_is_leaf, reads["wrong"]))
    assert len(reads["right"]) == len(reads["none"]) - told
    # Old values that do not follow the diff (a slot short) are the caller's mistake.
    with TrieCommitter(cache_bytes=0) as committer, pytest.raises(ValueError, match="follow the diff"):
        committer.commit_state(first.root, diff, store.load, OldValues(accounts, slots[:-1]))


def test_restarted_state_reads_rounds_in_threads(kv: KV) -> None:
    """A StateDB with an empty node cache (a restarted node) reads rounds of thousands of
    nodes, split over threads, from either backend, and gets py-trie's root."""
    model: dict[Address, _Account] = {}
    first = StateDiff({Address(keccak256(b"%d" % i)[:20]): AccountChange(nonce=1, balance=i) for i in range(6000)})
    batch = kv.write_batch()
    root = StateDB(kv).apply(EMPTY_ROOT, first, batch)
    batch.commit()
    _apply_model(model, first)
    second = StateDiff({address: AccountChange(nonce=2, balance=7) for address in list(first.accounts)[::2]})
    _apply_model(model, second)
    restarted = StateDB(kv, cache_bytes=0)
    assert restarted.apply(root, second, kv.write_batch()) == _model_root(model)


@pytest.mark.parametrize("seed", range(6))
def test_state_apply_matches_py_evm(seed: int) -> None:
    """Blocks of random diffs (new, changed and deleted accounts, storage set, cleared and
    reset, code) give py-evm's AccountDB roots, block after block."""
    rng = random.Random(seed)
    addresses = [Address(bytes(rng.randrange(256) for _ in range(20))) for _ in range(30)]
    kv = MemoryKV()
    state = StateDB(kv)
    root = EMPTY_ROOT
    for _ in range(6):
        changes: dict[Address, AccountChange | None] = {}
        for address in rng.sample(addresses, rng.randint(1, len(addresses))):
            if rng.random() < 0.15:
                changes[address] = None
                continue
            changes[address] = AccountChange(
                nonce=rng.randrange(3),
                balance=rng.choice([0, 1, rng.randrange(2**200)]),
                code=rng.choice([None, None, b"", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 70)))]),
                storage={rng.randrange(8): rng.choice([0, rng.randrange(1, 2**256)]) for _ in range(rng.randrange(5))},
                storage_reset=rng.random() < 0.1,
            )
        diff = StateDiff(accounts=changes)
        # py-evm's AccountDB applying the same diff to the same state (how apply worked before).
        expected = CommittedState(state.at(root), diff).state_root
        batch = kv.write_batch()
        root = state.apply(root, diff, batch)
        batch.commit()
        assert root == expected



_ROWS = st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.binary(max_size=90)),
                           st.one_of(st.none(), st.binary(max_size=90))), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_ROWS, st.sampled_from([32, 64]))  # an account's flat key after its prefix; a slot's
def test_flat_changes_stage_what_changed_with_its_undo_records(
    rows: list[tuple[bool, bytes | None, bytes | None]], width: int,
) -> None:
    rng = random.Random(len(rows))
    keys = [rng.randbytes(width) for _ in rows]
    # Equal old and new values are common (an account read, not changed): make some.
    rows = [(stage, new if i % 3 == 0 else old, new) for i, (stage, old, new) in enumerate(rows)]

    def packed(values: list[bytes | None]) -> tuple[bytes, np.ndarray]:
        lengths = np.array([-1 if v is None else len(v) for v in values], dtype=np.int64)
        return b"".join(v for v in values if v), lengths

    got = flat_changes(np.array([r[0] for r in rows], dtype=bool), b"".join(keys), width, b"a",
                       packed([r[1] for r in rows]), packed([r[2] for r in rows]))
    written = [i for i, (stage, old, new) in enumerate(rows) if stage and old != new]
    assert got.changed.tolist() == [i in written for i in range(len(rows))]
    assert got.names == b"".join(keys[i] for i in written)
    assert got.values == b"".join(rows[i][2] or b"" for i in written)
    assert got.sizes.tolist() == [-1 if rows[i][2] is None else len(rows[i][2] or b"") for i in written]
    assert got.undo == b"".join(b"a" + keys[i] + len(rows[i][1] or b"").to_bytes(2, "big")
                                + (rows[i][1] or b"") for i in written)


def test_slot_values_are_rows_without_leading_zeros() -> None:
    words = [bytes(32), (5).to_bytes(32, "big"), (2**255 + 1).to_bytes(32, "big"), (256).to_bytes(32, "big")]
    data, sizes = slot_values(np.frombuffer(b"".join(words), dtype=np.uint8).reshape(-1, 32))
    assert data == b"\x05" + words[2] + b"\x01\x00" and sizes.tolist() == [-1, 1, 32, 2]
