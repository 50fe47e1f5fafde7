"""The committer's warm (TrieCommitter.warm) and StateDB.prefetch: a commit after a warm gives
exactly the root and nodes of a commit alone, and reads fewer nodes; a warm stopped or cut
short anywhere leaves the next commit right."""

from __future__ import annotations

import functools
import random
import threading
import time
from typing import Any
from unittest import mock

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from executor_gpu import native_mpt
from executor_gpu.native_mpt import CACHE_BYTES, Commit, OldValues, TrieCommitter, hash_keys
from executor_gpu.types import AccountChange, StateDiff
from node.db import schema
from node.db.memory import MemoryKV
from node.db.state import Prefetch, StateDB, top_paths
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.types import Address
from tests.db.test_flat_state import commit_diff
from tests.db.test_mpt import (
    _DIFF,
    _Account,
    _apply_model,
    _is_leaf,
    _model_root,
    _Store,
    _trie_batches,
)


def _never() -> bool:
    return False


def _same(one: Commit, other: Commit) -> None:
    assert (one.root, one.hashes, one.data, one.lengths.tolist(), one.values) == (
        other.root, other.hashes, other.data, other.lengths.tolist(), other.values)


@settings(max_examples=300, deadline=None)
@given(_trie_batches(), st.sampled_from([3000, CACHE_BYTES]), st.sampled_from([1, 2, 4096]),
       st.sampled_from([None, 0, 1, 2, 3, 5]))
def test_warm_then_commit_is_the_commit_alone(
    batches: list[dict[bytes, bytes | None]], cache_bytes: int, chunk: int, stop_after: int | None
) -> None:
    """Batches of sets and deletes of keys sharing long prefixes: a committer that warms each
    batch's keys first (to the end, or stopped after some chunks of reads) gives the same root
    and new nodes as one that does not, and py-trie's root. With the default cache (which
    never drops a node here) it reads no more, and none at all when the warm finished, but for
    a deletion's sibling. (A small cache drops nodes at other times in the two.)"""
    reference: Any = HexaryTrie({})  # py-trie is untyped
    store = _Store()
    root = EMPTY_ROOT
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return stop_after is not None and asked > stop_after

    with (TrieCommitter(cache_bytes=cache_bytes) as plain, TrieCommitter(cache_bytes=cache_bytes) as warmed,
          mock.patch.object(native_mpt, "WARM_CHUNK", chunk)):
        for changes in batches:
            for key, value in changes.items():
                if value is None:
                    del reference[key]
                else:
                    reference[key] = value
            store.reads = 0
            alone = plain.commit_trie(root, changes, store.load)
            cold_reads = store.reads
            asked = 0
            complete = warmed.warm(root, list(changes), store.load, stop).complete
            store.reads = 0
            after = warmed.commit_trie(root, changes, store.load)
            _same(after, alone)
            assert after.root == reference.root_hash
            if cache_bytes == CACHE_BYTES:
                assert store.reads <= cold_reads
                if complete and all(value for value in changes.values()):
                    assert store.reads == 0
            store.keep(after)
            root = after.root


@settings(max_examples=100, deadline=None)
@given(st.lists(_DIFF, min_size=1, max_size=5))
def test_warmed_state_commits_are_the_commits_alone(diffs: list[StateDiff]) -> None:
    """State diffs (accounts created, changed and deleted, storage tries, addresses sharing
    prefixes): warming the accounts' paths before each commit changes no root and no node."""
    store = _Store()
    root = EMPTY_ROOT
    with TrieCommitter() as plain, TrieCommitter() as warmed:
        for diff in diffs:
            alone = plain.commit_state(root, diff, store.load)
            warmed.warm(root, hash_keys(list(diff.accounts)), store.load, _never)
            _same(warmed.commit_state(root, diff, store.load), alone)
            store.keep(alone)
            root = alone.root


@settings(max_examples=100, deadline=None)
@given(st.lists(_DIFF, min_size=1, max_size=5))
def test_prefetched_blocks_store_what_blocks_alone_store(diffs: list[StateDiff]) -> None:
    """StateDB.apply after a prefetch told the executor's rows (the node's path: the warm's
    walks prove old leaves by those rows, its commit goes on from them) writes exactly what
    apply alone writes: trie nodes, flat rows, change sets."""
    alone_kv, prefetched_kv = MemoryKV(), MemoryKV()
    alone, prefetched = StateDB(alone_kv), StateDB(prefetched_kv)
    model: dict[Address, _Account] = {}
    root = EMPTY_ROOT
    for diff in diffs:
        _apply_model(model, diff)
        expected = commit_diff(alone_kv, alone, root, diff)
        with prefetched.prefetch(root, diff.accounts) as prefetch:
            view = prefetched.at(root)
            view.flat_accounts(hash_keys(list(diff.accounts)))
            while not prefetch.done:
                time.sleep(0.001)
            batch = prefetched_kv.write_batch()
            assert prefetched.apply(root, diff, batch, view.bulk_reads()) == expected == _model_root(model)
            batch.commit()
        assert list(prefetched_kv.iterate(b"")) == list(alone_kv.iterate(b""))
        root = expected


def _state(accounts: int, seed: int) -> tuple[_Store, bytes, list[Address], dict[Address, _Account]]:
    """A state of ``accounts`` accounts committed to a store: its root, addresses, model."""
    rng = random.Random(seed)
    addresses = [Address(rng.randbytes(20)) for _ in range(accounts)]
    genesis = StateDiff({address: AccountChange(nonce=1, balance=i) for i, address in enumerate(addresses)})
    model: dict[Address, _Account] = {}
    _apply_model(model, genesis)
    store = _Store()
    with TrieCommitter(cache_bytes=0) as committer:
        first = committer.commit_state(EMPTY_ROOT, genesis, store.load)
    store.keep(first)
    return store, first.root, addresses, model


def test_after_a_warm_updates_and_creations_read_nothing() -> None:
    """On a state the committer has not seen (a restarted node), a block of updates and new
    accounts reads hundreds of nodes; warmed first, it reads none: the warm read them."""
    store, root, addresses, model = _state(3000, 1)
    rng = random.Random(2)
    diff = StateDiff({address: AccountChange(nonce=2, balance=7) for address in rng.sample(addresses, 400)}
                     | {Address(rng.randbytes(20)): AccountChange(nonce=0, balance=1) for _ in range(100)})
    _apply_model(model, diff)
    with TrieCommitter() as cold:
        alone = cold.commit_state(root, diff, store.load)
    cold_reads, store.reads = store.reads, 0
    with TrieCommitter() as committer:
        warmed = committer.warm(root, hash_keys(list(diff.accounts)), store.load, _never)
        assert warmed.complete and warmed.nodes == store.reads >= cold_reads > 400
        store.reads = 0
        after = committer.commit_state(root, diff, store.load)
    assert store.reads == 0
    _same(after, alone)
    assert after.root == _model_root(model)


def test_a_warm_told_old_values_reads_no_leaf_of_theirs() -> None:
    """Told the old values of the keys it walks (the flat rows the executor read), a warm reads
    none of their leaves, only branches (and the leaf a new key lands beside); a wrong value
    costs the leaf's read. The commit after it, told the same, reads nothing."""
    store, root, addresses, model = _state(3000, 7)
    rng = random.Random(8)
    updated = rng.sample(addresses, 300)
    diff = StateDiff({address: AccountChange(nonce=4, balance=4) for address in updated}
                     | {Address(rng.randbytes(20)): AccountChange(nonce=0, balance=1) for _ in range(50)})
    _apply_model(model, diff)
    trie: Any = HexaryTrie(store.nodes, root)  # py-trie is untyped
    paths = hash_keys(list(diff.accounts))
    rows: dict[bytes, bytes] = {path: trie.get(path) for path in paths}
    old = OldValues([rows[path] or None for path in paths], [])
    wrong = dict(rows)
    wrong[paths[0]] = rows[paths[0]][:-1] + b"\x00"
    for values, leaves in ((rows, 0), (wrong, 1)):
        told = (b"".join(values), list(values.values()))
        read: list[bytes] = []

        def load(hashes: list[bytes], read: list[bytes] = read) -> list[bytes | None]:
            nodes = store.load(hashes)
            read.extend(node for node in nodes if node is not None)
            return nodes

        nothing: tuple[bytes, list[bytes | None]] = (b"", [])  # told in the first round, nothing after
        with TrieCommitter() as committer:
            warmed = committer.warm(root, paths, load, _never, functools.partial(next, iter([told]), nothing))
            assert warmed.complete
            own = sum(1 for node in read if _is_leaf(node) and keccak256(node) in _own_leaves(trie, updated))
            assert own == leaves
            store.reads = 0
            assert committer.commit_state(root, diff, store.load, old).root == _model_root(model)
            assert store.reads == 0


def test_rows_told_mid_round_spare_the_leaves_not_read_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows told while a round is being read (the executor's reads land mid-warm): the nodes of
    the round not read yet are listed again, without the leaves the rows make known; the
    warm still ends complete, and the commit after it reads nothing."""
    monkeypatch.setattr(native_mpt, "WARM_CHUNK", 20)
    store, root, addresses, model = _state(3000, 9)
    updated = random.Random(10).sample(addresses, 300)
    diff = StateDiff({address: AccountChange(nonce=6, balance=6) for address in updated})
    _apply_model(model, diff)
    trie: Any = HexaryTrie(store.nodes, root)  # py-trie is untyped
    paths = hash_keys(updated)
    rows: dict[bytes, bytes] = {path: trie.get(path) for path in paths}
    own = _own_leaves(trie, updated)
    read: list[bytes] = []
    asked = 0

    def load(hashes: list[bytes]) -> list[bytes | None]:
        nodes = store.load(hashes)
        read.extend(node for node in nodes if node is not None)
        return nodes

    def told() -> tuple[bytes, list[bytes | None]]:
        """The rows, once, as soon as the warm has read some of their leaves."""
        nonlocal asked
        if asked or not any(keccak256(node) in own for node in read):
            return b"", []
        asked += 1
        return b"".join(rows), list(rows.values())

    with TrieCommitter() as committer:
        assert committer.warm(root, paths, load, _never, told).complete
        leaves = sum(keccak256(node) in own for node in read)
        assert 0 < leaves <= 20 < len(updated)
        store.reads = 0
        old = OldValues([rows[path] for path in paths], [])
        assert committer.commit_state(root, diff, store.load, old).root == _model_root(model)
        assert store.reads == 0


def _own_leaves(trie: Any, addresses: list[Address]) -> set[bytes]:
    """The hashes of the leaves of ``addresses`` in ``trie`` (the last node of each proof)."""
    return {keccak256(rlp.encode(trie.get_proof(keccak256(address))[-1])) for address in addresses}


@pytest.mark.parametrize("stop_after", [0, 1, 2, 5, 9])
def test_a_warm_stopped_anywhere_leaves_the_next_commit_right(
    stop_after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped before any read, between rounds or within one (chunks of 50 nodes), a warm
    ends quietly with what it read kept; the commit after it reads the rest and is right,
    and a later warm on the same session goes on from there."""
    monkeypatch.setattr(native_mpt, "WARM_CHUNK", 50)
    store, root, addresses, model = _state(2000, 3)
    diff = StateDiff({address: AccountChange(nonce=5, balance=9) for address in addresses[::4]})
    _apply_model(model, diff)
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > stop_after

    paths = hash_keys(list(diff.accounts))
    with TrieCommitter() as committer:
        warmed = committer.warm(root, paths, store.load, stop)
        assert not warmed.complete and warmed.nodes == store.reads
        # asked before the first round's step (nothing read yet), then between chunks
        assert asked == stop_after + 1 and (store.reads > 0) == (stop_after > 1)
        commit = committer.commit_state(root, diff, store.load)
        assert commit.root == _model_root(model)
        store.keep(commit)
        # the next block's warm on the new root, then its commit
        again = StateDiff({address: AccountChange(nonce=6, balance=1) for address in addresses[1::4]})
        _apply_model(model, again)
        assert committer.warm(commit.root, hash_keys(list(again.accounts)), store.load, _never).complete
        store.reads = 0
        assert committer.commit_state(commit.root, again, store.load).root == _model_root(model)
        assert store.reads == 0


def test_a_warm_interrupted_in_its_walk_leaves_the_commit_right() -> None:
    """interrupt_warm (from the thread of a commit that wants the session) ends the warm's next
    walk at once, in C: the warm ends incomplete, and the commit after it is right."""
    store, root, addresses, model = _state(2000, 12)
    diff = StateDiff({address: AccountChange(nonce=8, balance=8) for address in addresses[1::3]})
    _apply_model(model, diff)
    with TrieCommitter() as committer:

        def load(hashes: list[bytes]) -> list[bytes | None]:
            if len(hashes) > 1:  # the second round's reads: the commit arrives meanwhile
                committer.interrupt_warm()
            return store.load(hashes)

        warmed = committer.warm(root, hash_keys(list(diff.accounts)), load, _never)
        assert not warmed.complete and warmed.nodes == store.reads > 1
        assert committer.commit_state(root, diff, store.load).root == _model_root(model)
        # the next warm is not stopped by the last one's interrupt
        assert committer.warm(root, hash_keys(list(diff.accounts)), store.load, _never).complete


def test_a_warm_cut_short_by_a_failing_read_leaves_the_commit_right() -> None:
    """A read that raises mid-warm (the store failing) leaves nodes listed and never handed
    over: the commit after it lists them again, reads them and is right."""
    store, root, addresses, model = _state(2000, 11)
    diff = StateDiff({address: AccountChange(nonce=7, balance=7) for address in addresses[::3]})
    _apply_model(model, diff)
    calls = 0

    def failing(hashes: list[bytes]) -> list[bytes | None]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the store failed")
        return store.load(hashes)

    with TrieCommitter() as committer:
        with pytest.raises(RuntimeError):
            committer.warm(root, hash_keys(list(diff.accounts)), failing, _never)
        assert committer.commit_state(root, diff, store.load).root == _model_root(model)


def test_a_missing_node_ends_a_warm_quietly() -> None:
    """A warm that meets a node the store lacks (or the wrong root) stops there, not raising;
    commits go on."""
    store, root, addresses, model = _state(500, 4)
    diff = StateDiff({address: AccountChange(nonce=3, balance=3) for address in addresses[:50]})
    _apply_model(model, diff)
    partial = _Store()
    partial.nodes = {key: value for i, (key, value) in enumerate(store.nodes.items()) if i % 3}
    with TrieCommitter() as committer:
        assert not committer.warm(root, hash_keys(list(diff.accounts)), partial.load, _never).complete
        unknown = committer.warm(bytes(32), hash_keys(list(diff.accounts)), store.load, _never)
        assert unknown == native_mpt.Warmed(0, False)
        assert committer.commit_state(root, diff, store.load).root == _model_root(model)
        with pytest.raises(ValueError, match="32 bytes"):
            committer.warm(root, [b"short"], store.load, _never)


class _CountingKV(MemoryKV):
    """MemoryKV counting the trie nodes read (through it or its batches); a node read waits
    for ``nodes_open`` (so that a test decides when a warm goes on)."""

    node_reads = 0

    def __init__(self) -> None:
        super().__init__()
        self.nodes_open = threading.Event()
        self.nodes_open.set()

    def get(self, key: bytes) -> bytes | None:
        if key.startswith(schema.STATE_NODE_PREFIX):
            self.nodes_open.wait()
            self.node_reads += 1
        return super().get(key)


def test_state_prefetch_runs_beside_blocks() -> None:
    """StateDB.prefetch before each block's execution (the node's order), on a node restarted
    every other block (its node cache empty): apply stops a warm still running and every root
    is right; a warm left to finish, told the rows the executor read, has read every node the
    block's apply then needs, and no more leaves than it."""
    kv = _CountingKV()
    state = StateDB(kv)
    rng = random.Random(6)
    addresses = [Address(rng.randbytes(20)) for _ in range(3000)]
    model: dict[Address, _Account] = {}
    root = EMPTY_ROOT
    for block in range(6):
        chosen = addresses if block == 0 else rng.sample(addresses, 500)
        diff = StateDiff({address: AccountChange(nonce=block, balance=rng.randrange(2**64)) for address in chosen})
        _apply_model(model, diff)
        if block % 2:
            state = StateDB(kv)
            kv.nodes_open.clear()  # the warm reads the root once the executor has read its rows
        with state.prefetch(root, diff.accounts) as prefetch:
            view = state.at(root)  # the executor's bulk read, told to the warm
            view.flat_accounts(hash_keys(list(diff.accounts)))
            kv.nodes_open.set()
            if block % 2:  # let it finish
                _wait(prefetch)
                assert prefetch.warmed is not None and prefetch.warmed.complete
            kv.node_reads = 0
            batch = kv.write_batch()
            root = state.apply(root, diff, batch, view.bulk_reads())
            batch.commit()
        assert prefetch.done and prefetch.warmed is not None
        assert root == _model_root(model)
        if block % 2:
            # its branches only: told none of the rows, it read the 500 leaves too
            assert kv.node_reads == 0 and 0 < prefetch.warmed.nodes < len(diff.accounts)
    view = state.at(root)
    for address, account in model.items():
        found = view.get_account(address)
        assert found is not None and found.balance == account.balance


def _nodes_by_depth(nodes: dict[bytes, bytes], root: bytes, leaves: bool = True) -> dict[int, int]:
    """How many stored (hashed) nodes the trie under ``root`` has at each depth, in nibbles
    (``leaves``: leaves too, else branches and extensions): walked here from the RLP, apart
    from the committer."""
    counts: dict[int, int] = {}

    def walk(ref: Any, depth: int) -> None:
        if ref == b"":
            return
        node = rlp.decode(nodes[ref]) if isinstance(ref, bytes) and len(ref) == 32 else ref
        leaf = len(node) == 2 and node[0][0] >> 4 >= 2
        if isinstance(ref, bytes) and len(ref) == 32 and (leaves or not leaf):
            counts[depth] = counts.get(depth, 0) + 1
        if len(node) == 17:
            for nibble in range(16):
                walk(node[nibble], depth + 1)
        elif node[0][0] >> 4 < 2:  # an extension: its path's nibbles, then its child
            odd = node[0][0] >> 4 == 1
            walk(node[1], depth + 2 * len(node[0]) - (1 if odd else 2))

    walk(root, 0)
    return counts


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_a_warm_to_a_depth_reads_the_nodes_down_to_it(depth: int) -> None:
    """A warm of every position at a depth (StateDB.warm_top's keys), told to stop there,
    reads exactly the trie's nodes at that depth and above, and a commit after it, of
    updates told their old values, reads none of those."""
    store, root, addresses, model = _state(3000, 3)
    by_depth = _nodes_by_depth(store.nodes, root)
    assert by_depth[3] > 0  # 3,000 keys reach depth 3
    with TrieCommitter() as committer:
        warmed = committer.warm(root, top_paths(depth), store.load, _never, depth=depth)
        assert warmed.complete
        assert warmed.nodes == store.reads == sum(n for d, n in by_depth.items() if d <= depth)
        trie: Any = HexaryTrie(store.nodes, root)  # py-trie is untyped
        updated = random.Random(4).sample(addresses, 200)
        diff = StateDiff({address: AccountChange(nonce=3, balance=3) for address in updated})
        paths = hash_keys(updated)
        old = OldValues([trie.get(path) for path in paths], [])
        _apply_model(model, diff)
        store.reads = 0
        assert committer.commit_state(root, diff, store.load, old).root == _model_root(model)
        assert store.reads <= sum(n for d, n in by_depth.items() if d > depth)


def test_state_warm_top_spares_a_restarted_node_its_reads() -> None:
    """StateDB.warm_top on a restarted node (an empty node cache), left to finish: the next
    block of updates told their old values reads none of the trie's nodes down to depth 4,
    where the default cache's warm ends: at most the few branches below it (keys sharing five
    nibbles and more); without it, the same block reads hundreds."""
    kv = _CountingKV()
    rng = random.Random(9)
    addresses = [Address(rng.randbytes(20)) for _ in range(3000)]
    genesis = StateDiff({address: AccountChange(nonce=1, balance=1) for address in addresses})
    root = commit_diff(kv, StateDB(kv), EMPTY_ROOT, genesis)
    diff = StateDiff({address: AccountChange(nonce=2, balance=2) for address in rng.sample(addresses, 500)})
    reads = []
    for warm in (False, True):
        state = StateDB(kv)
        if warm:
            with state.warm_top(root) as warming:
                _wait(warming)
                assert warming.warmed is not None and warming.warmed.complete
        view = state.at(root)
        view.flat_accounts(hash_keys(list(diff.accounts)))
        kv.node_reads = 0
        batch = kv.write_batch()
        state.apply(root, diff, batch, view.bulk_reads())
        reads.append(kv.node_reads)
    nodes = {key[len(schema.STATE_NODE_PREFIX):]: value for key, value in kv.iterate(schema.STATE_NODE_PREFIX)}
    deep = sum(n for depth, n in _nodes_by_depth(nodes, root, leaves=False).items() if depth > 4)
    assert reads[0] > 300 and reads[1] <= deep < 10


def test_a_top_warm_a_block_stopped_resumes_after_its_write() -> None:
    """A restarted node's top warm, stopped by its first block's state work before it was
    done: ``resume_warm`` after that block's write starts it again on the new root, so the
    next block reads at most the few branches below depth 4 (without it: over a hundred), and
    once it finished there is nothing left to resume."""
    rng = random.Random(11)
    addresses = [Address(rng.randbytes(20)) for _ in range(3000)]
    genesis = StateDiff({address: AccountChange(nonce=1, balance=1) for address in addresses})
    blocks = [StateDiff({address: AccountChange(nonce=n, balance=n) for address in rng.sample(addresses, 500)})
              for n in (2, 3)]
    reads = []
    for resume in (False, True):
        kv = _CountingKV()  # each its own: the flat tables follow one chain
        root = commit_diff(kv, StateDB(kv), EMPTY_ROOT, genesis)
        state = StateDB(kv)
        kv.nodes_open.clear()  # the warm waits in its first read until the block comes
        warming = state.warm_top(root)
        for number, diff in enumerate(blocks):
            if number == 0:
                warming.stop()  # the first block's state work stops it
                kv.nodes_open.set()
                warming.close()
                assert warming.warmed is not None and not warming.warmed.complete
            kv.node_reads = 0
            root = commit_diff(kv, state, root, diff)
            if resume and number == 0:
                resumed = state.resume_warm(root)
                assert resumed is not None
                _wait(resumed)
                assert resumed.warmed is not None and resumed.warmed.complete
        reads.append(kv.node_reads)
        assert (state.resume_warm(root) is None) == resume
        state.stop_warm()
    nodes = {key[len(schema.STATE_NODE_PREFIX):]: value for key, value in kv.iterate(schema.STATE_NODE_PREFIX)}
    deep = sum(n for depth, n in _nodes_by_depth(nodes, root, leaves=False).items() if depth > 4)
    assert reads[0] > 100 and reads[1] <= deep < 10, (reads, deep)


def _wait(warming: Prefetch) -> None:
    deadline = time.monotonic() + 60
    while not warming.done and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_warm_with_a_budget_ends_once_it_read_that_much() -> None:
    """A warm reads the trie level by level: given the bytes of the top two levels as its
    budget, it reads those and no more, and a warm of them after it reads nothing."""
    store, root, _, _ = _state(3000, 3)
    with TrieCommitter() as committer:
        top = committer.warm(root, top_paths(1), store.load, _never, depth=1)
    assert top.complete and top.nodes == 17
    store.reads = 0
    with TrieCommitter() as committer:
        warmed = committer.warm(root, top_paths(3), store.load, _never, depth=3, budget=top.size)
        assert (warmed.nodes, warmed.size, warmed.complete) == (17, top.size, False)
        assert committer.warm(root, top_paths(1), store.load, _never, depth=1).nodes == 0
    assert store.reads == 17


def test_a_top_warm_that_filled_its_budget_is_done() -> None:
    """StateDB.warm_top reads half the node cache at most; one that read that much is not
    resumed (it read what the cache is to keep), and one that finished is not either."""
    kv = _CountingKV()
    rng = random.Random(12)
    genesis = StateDiff({Address(rng.randbytes(20)): AccountChange(nonce=1, balance=1) for _ in range(3000)})
    root = commit_diff(kv, StateDB(kv), EMPTY_ROOT, genesis)
    for cache_bytes, complete in ((64 << 10, False), (CACHE_BYTES, True)):
        state = StateDB(kv, cache_bytes)
        warming = state.warm_top(root)
        _wait(warming)
        assert warming.warmed is not None and warming.warmed.complete == complete
        assert warming.warmed.size >= cache_bytes // 2 or complete
        assert state.resume_warm(root) is None
