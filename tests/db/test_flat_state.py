"""The flat state (node/db/state.py) over both KV backends: its reads equal the trie's at the
same root, staged batches stay out of the committed view and the cache, unwinding restores the
parent's flat state, views opened before a commit keep their own state, and a reopened database
resumes it."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from executor_gpu.types import AccountChange, StateDiff
from node.db import schema
from node.db.api import KV
from node.db.memory import OverlayBatch, PackedWrites, PendingWrites
from node.db.state import (
    FlatMarker,
    GenesisAccount,
    NodeStore,
    StateDB,
    StateOptions,
    StateView,
)
from primitives.crypto import keccak256
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32
from tests.db.backends import NAMES, Backend

ADDRESSES = [Address(bytes([n]) * 20) for n in range(1, 7)]
SLOTS = range(4)
A, B = ADDRESSES[:2]

changes = st.one_of(
    st.none(),  # the account is deleted
    st.builds(
        AccountChange,
        nonce=st.integers(0, 3),
        balance=st.integers(0, 3) | st.integers(0, 2**256 - 1),
        code=st.none() | st.binary(min_size=1, max_size=40),
        storage=st.dictionaries(
            st.sampled_from(SLOTS), st.integers(0, 2) | st.integers(0, 2**256 - 1)
        ),
        storage_reset=st.booleans(),
    ),
)
diffs = st.dictionaries(st.sampled_from(ADDRESSES), changes, max_size=4).map(StateDiff)


def flat_tables(kv: KV) -> dict[bytes, bytes]:
    accounts = kv.iterate(schema.FLAT_ACCOUNT_PREFIX)
    return dict(accounts) | dict(kv.iterate(schema.FLAT_STORAGE_PREFIX))


def assert_flat_matches_trie(kv: KV, state: StateDB, root: Hash32) -> None:
    """Flat reads (uncached, then cached) equal trie reads, and the tables hold nothing more."""
    trie = StateView(kv, root)
    accounts = HexaryTrie(NodeStore(kv), root)
    expected: dict[bytes, bytes] = {}
    for view in (state.at(root), state.at(root)):
        assert view.reads_flat
        for address in ADDRESSES:
            assert view.get_account(address) == trie.get_account(address)
            assert view.get_code(address) == trie.get_code(address)
            for slot in SLOTS:
                assert view.get_storage(address, slot) == trie.get_storage(address, slot)
    for address in ADDRESSES:
        account_hash = keccak256(address)
        if leaf := accounts.get(account_hash):
            expected[schema.flat_account_key(account_hash)] = leaf
        for slot in SLOTS:
            if value := trie.get_storage(address, slot):
                key = schema.flat_storage_key(account_hash, keccak256(slot.to_bytes(32, "big")))
                expected[key] = value.to_bytes((value.bit_length() + 7) // 8, "big")
    assert flat_tables(kv) == expected


def commit_diff(kv: KV, state: StateDB, root: Hash32, diff: StateDiff) -> Hash32:
    batch = kv.write_batch()
    new_root = state.apply(root, diff, batch)
    state.commit(batch)
    return new_root


def commit_genesis(kv: KV, state: StateDB) -> Hash32:
    batch = kv.write_batch()
    root = state.genesis(
        {A: GenesisAccount(balance=1, storage={1: 1}), B: GenesisAccount(code=b"\x60\x00")}, batch
    )
    state.commit(batch)
    return root


def unwind(kv: KV, state: StateDB, height: int, root: Hash32) -> None:
    batch = kv.write_batch()
    state.stage_unwind(batch, height, root)
    state.commit(batch)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None)
@given(
    blocks=st.lists(diffs, min_size=1, max_size=6),
    unwind_to=st.integers(0, 6),
    depth=st.integers(0, 7),
)
def test_flat_reads_equal_trie_reads_through_blocks_and_unwinds(
    name: str, blocks: list[StateDiff], unwind_to: int, depth: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        kv = Backend(name, Path(folder)).open()
        try:
            # A small cache, so evictions happen; change sets for ``depth`` heights.
            state = StateDB(kv, options=StateOptions(cache_entries=8, unwind_depth=depth))
            roots = [commit_genesis(kv, state)]
            for diff in blocks:
                roots.append(commit_diff(kv, state, roots[-1], diff))
                assert_flat_matches_trie(kv, state, roots[-1])
            kept = range(max(1, len(blocks) - depth + 1), len(blocks) + 1) if depth else range(0)
            assert [key for key, _ in kv.iterate(schema.FLAT_CHANGES_PREFIX)] == [
                schema.flat_changes_key(height) for height in kept
            ]
            target = min(unwind_to, len(blocks))
            unwind(kv, state, target, roots[target])
            assert FlatMarker.read(kv) == FlatMarker(roots[target], target)
            # Below the kept change sets the unwind rebuilds the tables, keeping none.
            by_change_sets = target == len(blocks) or target + 1 in kept
            assert [key for key, _ in kv.iterate(schema.FLAT_CHANGES_PREFIX)] == (
                [schema.flat_changes_key(height) for height in kept if height <= target]
                if by_change_sets else []
            )
            assert_flat_matches_trie(kv, state, roots[target])
            for height, diff in enumerate(blocks[target:], start=target + 1):
                assert commit_diff(kv, state, roots[height - 1], diff) == roots[height]
            assert_flat_matches_trie(kv, state, roots[-1])
        finally:
            kv.close()


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(blocks=st.lists(diffs, min_size=2, max_size=5))
def test_blocks_chained_in_one_batch_leave_the_flat_tables_of_their_last_root(
    name: str, blocks: list[StateDiff]
) -> None:
    # The first block's rows go in packed, before the batch's other writes; a later block's
    # one by one, after them (an account deleted, then made again, keeps its new row).
    with tempfile.TemporaryDirectory() as folder:
        kv = Backend(name, Path(folder)).open()
        try:
            state = StateDB(kv)
            root = commit_genesis(kv, state)
            batch = kv.write_batch()
            for diff in blocks:
                root = state.apply(root, diff, batch)
            state.commit(batch)
            assert_flat_matches_trie(kv, state, root)
        finally:
            kv.close()


def test_a_staged_batch_stays_out_of_the_committed_view_and_cache(kv: KV) -> None:
    state = StateDB(kv)
    root = commit_genesis(kv, state)
    assert state.at(root).get_account(A).balance == 1  # type: ignore[union-attr]
    assert state.at(root).get_storage(A, 1) == 1
    account_key = schema.flat_account_key(keccak256(A))
    assert state.cache.get(account_key) is not None

    staged = kv.write_batch()
    staged_root = state.apply(root, StateDiff({A: AccountChange(1, 2, storage={1: 2})}), staged)
    pending = state.at(staged_root, reader=staged)
    assert pending.reads_flat
    assert pending.get_account(A).balance == 2  # type: ignore[union-attr]
    assert pending.get_storage(A, 1) == 2
    head = state.at(root)
    assert head.reads_flat
    assert head.get_account(A).balance == 1  # type: ignore[union-attr]
    assert head.get_storage(A, 1) == 1
    with pytest.raises(InvalidInput):
        state.at(staged_root)

    # Another candidate for the same height commits; the staged one is dropped.
    other_root = commit_diff(kv, state, root, StateDiff({A: AccountChange(1, 3, storage={1: 3})}))
    assert state.cache.root == other_root
    assert state.cache.get(account_key) is None  # a commit drops what it changed
    committed = state.at(other_root)
    assert committed.reads_flat
    assert committed.get_account(A).balance == 3  # type: ignore[union-attr]
    assert state.cache.get(account_key).balance == 3  # type: ignore[union-attr]  # read again
    assert committed.get_storage(A, 1) == 3
    with pytest.raises(InvalidInput):
        state.at(staged_root)
    old = state.at(root)  # archive read: the trie
    assert not old.reads_flat
    assert old.get_account(A).balance == 1  # type: ignore[union-attr]


def test_a_view_opened_before_a_commit_keeps_reading_its_own_root(kv: KV) -> None:
    state = StateDB(kv)
    root = commit_genesis(kv, state)
    view = state.at(root)
    assert view.get_account(A).balance == 1  # type: ignore[union-attr]
    commit_diff(kv, state, root, StateDiff({A: AccountChange(1, 5, storage={1: 5})}))
    assert view.get_account(A).balance == 1  # type: ignore[union-attr]
    assert view.get_storage(A, 1) == 1
    assert not view.reads_flat


def test_a_commit_that_bypasses_the_state_db_does_not_serve_stale_cache(kv: KV) -> None:
    state = StateDB(kv)
    root = commit_genesis(kv, state)
    assert state.at(root).get_account(A).balance == 1  # type: ignore[union-attr]
    batch = kv.write_batch()
    new_root = state.apply(root, StateDiff({A: AccountChange(1, 9)}), batch)
    batch.commit()  # not through state.commit: the cache learns nothing
    view = state.at(new_root)
    assert view.reads_flat
    assert view.get_account(A).balance == 9  # type: ignore[union-attr]


def test_diffs_on_another_root_leave_the_flat_state_alone(kv: KV) -> None:
    state = StateDB(kv)
    root = commit_genesis(kv, state)
    head = commit_diff(kv, state, root, StateDiff({A: AccountChange(1, 2)}))
    fork = commit_diff(kv, state, root, StateDiff({A: AccountChange(1, 7)}))
    assert FlatMarker.read(kv) == FlatMarker(head, 1)
    assert state.at(head).reads_flat
    assert not state.at(fork).reads_flat
    assert state.at(fork).get_account(A).balance == 7  # type: ignore[union-attr]


def test_the_cache_is_bounded(kv: KV) -> None:
    state = StateDB(kv, options=StateOptions(cache_entries=5))
    batch = kv.write_batch()
    many = [Address(n.to_bytes(20, "big")) for n in range(1, 21)]
    root = state.genesis({address: GenesisAccount(balance=1) for address in many}, batch)
    state.commit(batch)
    view = state.at(root)
    assert all(view.get_account(address) is not None for address in many)
    assert len(state.cache) == 5


def test_a_reopened_database_resumes_the_flat_state(tmp_path: Path) -> None:
    backend = Backend("leveldb", tmp_path)  # the one store that persists
    kv = backend.open()
    state = StateDB(kv)
    genesis = commit_genesis(kv, state)
    root = commit_diff(kv, state, genesis, StateDiff({A: AccountChange(1, 4)}))
    kv.close()
    kv = backend.open()
    try:
        state = StateDB(kv)
        assert FlatMarker.read(kv) == FlatMarker(root, 1)
        assert_flat_matches_trie(kv, state, root)
        unwind(kv, state, 0, genesis)
        assert_flat_matches_trie(kv, state, genesis)
    finally:
        kv.close()


def test_resume_rebuilds_flat_tables_missing_from_an_older_database(kv: KV) -> None:
    state = StateDB(kv)
    root = commit_genesis(kv, state)
    for diff in (
        StateDiff({A: AccountChange(1, 2, storage={2: 5, 3: 2**255}), B: None}),
        StateDiff({ADDRESSES[2]: AccountChange(0, 1, code=b"\x00", storage={0: 1})}),
    ):
        root = commit_diff(kv, state, root, diff)
    expected = flat_tables(kv)
    assert not state.resume(root, 2)
    for prefix in (schema.FLAT_ACCOUNT_PREFIX, schema.FLAT_STORAGE_PREFIX, schema.FLAT_MARKER):
        for key, _ in kv.iterate(prefix):
            kv.delete(key)
    assert not state.at(root).reads_flat
    assert state.resume(root, 2)
    assert flat_tables(kv) == expected
    assert list(kv.iterate(schema.FLAT_CHANGES_PREFIX)) == []  # nothing below it to unwind to
    assert_flat_matches_trie(kv, state, root)


def test_views_read_one_state_each_while_blocks_commit_beside_them(kv: KV) -> None:
    state = StateDB(kv, options=StateOptions(cache_entries=64))
    roots = [commit_genesis(kv, state)]
    committed = [0]  # the height readers open views at
    mixed: list[str] = []
    done = threading.Event()

    def expected(height: int) -> int:
        return 1 if height == 0 else 100 + height  # A's balance and slot 1

    def read() -> None:
        while not done.is_set():
            height = committed[0]
            view = state.at(roots[height])
            for _ in range(20):
                account = view.get_account(A)
                seen = (0 if account is None else account.balance, view.get_storage(A, 1))
                if seen != (expected(height), expected(height)):
                    mixed.append(f"view of {height} read {seen}")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for height in range(1, 40):
            value = expected(height)
            diff = StateDiff({A: AccountChange(1, value, storage={1: value})})
            roots.append(commit_diff(kv, state, roots[-1], diff))
            committed[0] = height
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert mixed == []


class _CountingReads:
    """A KV reader that counts the gets of flat rows (and reads through to ``kv``)."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self.flat_gets = 0

    def get(self, key: bytes) -> bytes | None:
        if key.startswith((schema.FLAT_ACCOUNT_PREFIX, schema.FLAT_STORAGE_PREFIX)):
            self.flat_gets += 1
        return self.kv.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def iterate(self, prefix: bytes = b"", *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self.kv.iterate(prefix, reverse=reverse)


def test_apply_reuses_the_rows_a_view_read_in_bulk_and_only_while_they_hold(kv: KV) -> None:
    state = StateDB(kv)
    root = commit_genesis(kv, state)
    view = state.at(root)
    paths = [keccak256(a) for a in (A, B, ADDRESSES[2])]  # the third is absent
    assert view.flat_accounts(paths) is not None
    slot_path = keccak256(A) + keccak256((1).to_bytes(32, "big"))
    assert view.flat_slots([slot_path]) is not None
    known = view.bulk_reads()
    assert len(known) == 4 and known[schema.flat_account_key(keccak256(ADDRESSES[2]))] is None
    diff = StateDiff({A: AccountChange(1, 5, storage={1: 7}), B: AccountChange(0, 9),
                      ADDRESSES[2]: AccountChange(0, 1)})

    def staged(reuse: bool) -> tuple[Hash32, dict[bytes, bytes | None], int]:
        counting, written = _CountingReads(kv), dict[bytes, bytes | None]()

        def record(pending: PendingWrites, packed: Sequence[PackedWrites]) -> Callable[[], None]:
            for puts in packed:
                written.update(puts.items())
            written.update(pending)
            return lambda: None

        batch = OverlayBatch(counting, record)
        new_root = state.apply(root, diff, batch, view.bulk_reads() if reuse else None)
        batch.commit()  # into ``written``, not the store
        return new_root, written, counting.flat_gets

    reused, fresh = staged(True), staged(False)
    assert reused[:2] == fresh[:2]  # same root, same writes (change set included)
    assert fresh[2] >= 4 and reused[2] == fresh[2] - 4
    commit_diff(kv, state, root, StateDiff({B: AccountChange(0, 2)}))
    assert view.bulk_reads() == {}  # a commit moved the tables: nothing is taken from the view
