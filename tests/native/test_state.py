"""The host's state loading: batched trie walks in C, against a per-key reader and node/db's StateView."""

from __future__ import annotations

import ctypes
import functools
import itertools
from collections.abc import Sequence

import numpy as np
import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from executor_gpu.native_abi import ABI, words
from executor_gpu.native_build import cpu_library
from executor_gpu.native_state import (
    EMPTY_CODE_HASH,
    NO_CODE,
    ArrayChanges,
    StateTables,
    TrieReader,
    word_ints,
)
from executor_gpu.types import AccountChange, StateDiff
from node.db.state import GenesisAccount, StateView
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import Halt
from primitives.types import Address
from tests.native.chain import make_state

ADDRESSES = st.binary(min_size=20, max_size=20).map(Address)


def per_key_get(nodes: dict[bytes, bytes], root: bytes, path: bytes) -> bytes | None:
    """The value at ``path`` under ``root``, one node at a time (the reader the batched walk replaced)."""
    if root == EMPTY_ROOT:
        return None
    lib = cpu_library()
    out = (ctypes.c_uint64 * 3)()
    node, at = nodes[root], 0
    while True:
        kind = lib.evm_trie_step(node, len(node), path, at, out)
        if kind == 0:
            return None
        if kind < 0:
            raise Halt("malformed node")
        at += out[2]
        start = out[0]
        if kind == 1:
            return node[start : start + out[1]]
        node = nodes[node[start : start + 32]] if kind == 2 else node[start : start + out[1]]


def walk_slots(nodes: dict[bytes, bytes], root: bytes, paths: list[bytes]) -> list[int | None]:
    """Slot values at ``paths`` under ``root`` by one batched walk; None where absent."""
    n = len(paths)
    rows = np.zeros((n, ABI["SL_WORDS"]), dtype=np.uint64)
    roots = np.frombuffer(root * n, dtype=np.uint8).reshape(n, 32)
    path_rows = np.frombuffer(b"".join(paths), dtype=np.uint8).reshape(n, 32).copy()
    found = TrieReader(nodes, cpu_library()).walk(roots, path_rows, rows, None)
    values = word_ints(rows[:, ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4])
    return [value if hit else None for value, hit in zip(values, found.tolist())]


class Recording(dict[bytes, bytes]):
    """A node store that records the nodes read."""

    def __init__(self, nodes: dict[bytes, bytes]) -> None:
        super().__init__(nodes)
        self.read: list[bytes] = []

    def __getitem__(self, node_hash: bytes) -> bytes:
        self.read.append(node_hash)
        return super().__getitem__(node_hash)


def build_trie(entries: dict[bytes, int]) -> tuple[dict[bytes, bytes], bytes]:
    """A trie of raw 32-byte paths (no hashing) to RLP-encoded ints, as a node store."""
    nodes: dict[bytes, bytes] = {}
    trie = HexaryTrie(nodes)
    for path, value in entries.items():
        trie[path] = rlp.encode(value)
    return nodes, trie.root_hash


def expected(nodes: dict[bytes, bytes], root: bytes, path: bytes) -> int | None:
    value = per_key_get(nodes, root, path)
    assert value == (HexaryTrie(nodes, root).get(path) or None)
    return None if value is None else int.from_bytes(rlp.decode(value), "big")


# Paths made to share prefixes of every length, so that walks end in branches, extensions,
# and leaves small enough to be embedded in their parent (under 32 bytes).
PREFIXES = st.sampled_from([b"", b"\x12", b"\x12\x34", b"\x12\x34\x56" * 9, b"\xab" * 30, b"\xab" * 31])
PATHS = st.tuples(PREFIXES, st.binary(min_size=32, max_size=32)).map(lambda p: (p[0] + p[1])[:32])


@settings(max_examples=60, deadline=None)
@given(
    entries=st.dictionaries(PATHS, st.one_of(st.integers(1, 255), st.integers(1, 2**256 - 1)), max_size=30),
    absent=st.lists(PATHS, max_size=6),
)
def test_batched_walk_matches_the_per_key_reader(entries: dict[bytes, int], absent: list[bytes]) -> None:
    nodes, root = build_trie(entries)
    paths = [*entries, *absent]
    assert walk_slots(nodes, root, paths) == [expected(nodes, root, p) for p in paths]


def test_embedded_nodes_and_shared_prefixes() -> None:
    # Leaves differing in the last nibble are a few bytes long: embedded in their branch.
    entries = {b"\xab" * 31 + bytes([i]): i + 1 for i in range(5)}
    entries |= {b"\xab" * 30 + b"\xcd\x00": 2**200, b"\x01" * 32: 9}
    nodes, root = build_trie(entries)
    embedded = [rlp.decode(n) for n in nodes.values()]
    assert any(isinstance(item, list) for node in embedded for item in node), "no embedded node"
    paths = [*entries, b"\xab" * 31 + b"\x09", b"\xab" * 30 + b"\xcd\x01", b"\xab" * 32, b"\x01" * 31 + b"\x02"]
    got = walk_slots(nodes, root, paths)
    assert got == [expected(nodes, root, p) for p in paths]
    assert got[: len(entries)] == list(entries.values()) and got[len(entries) :] == [None] * 4


def test_missing_and_malformed_nodes_halt() -> None:
    entries = {bytes([i]) * 32: i + 1 for i in range(1, 40)}
    nodes, root = build_trie(entries)
    recording = Recording(nodes)
    per_key_get(recording, root, b"\x05" * 32)
    deep = recording.read[-1]  # the last hashed node on a path
    assert deep != root
    for broken in ({h: v for h, v in nodes.items() if h != deep}, nodes | {deep: b"\xc3\x01\x02\x03"},
                   nodes | {deep: nodes[deep][:-1]}, nodes | {root: b"\x80"}):
        with pytest.raises((Halt, KeyError)):  # the per-key reader shows which keys reach the damage
            for path in entries:
                per_key_get(broken, root, path)
        with pytest.raises(Halt):
            walk_slots(broken, root, list(entries))
    assert walk_slots(nodes, EMPTY_ROOT, list(entries)) == [None] * len(entries)
    # A value that is not an RLP string of at most 32 bytes.
    bad_value: dict[bytes, bytes] = {}
    trie = HexaryTrie(bad_value)
    trie[b"\x01" * 32] = rlp.encode([b"\x01"])
    with pytest.raises(Halt):
        walk_slots(bad_value, trie.root_hash, [b"\x01" * 32])


@functools.cache
def shared_prefix_addresses() -> list[Address]:
    """Addresses whose trie paths (Keccak-256) share their first four nibbles, in pairs."""
    by_prefix: dict[bytes, Address] = {}
    pairs: list[Address] = []
    for i in itertools.count():
        candidate = Address(keccak256(b"prefix %d" % i)[:20])
        prefix = keccak256(candidate)[:2]
        if prefix in by_prefix:
            pairs += [by_prefix.pop(prefix), candidate]
            if len(pairs) == 8:
                return pairs
        else:
            by_prefix[prefix] = candidate
    raise AssertionError("unreachable")


@settings(max_examples=25, deadline=None)
@given(
    accounts=st.dictionaries(
        ADDRESSES,
        st.tuples(st.integers(0, 2**256 - 1), st.integers(0, 2**64 - 2), st.binary(max_size=40),
                  st.dictionaries(st.integers(0, 2**256 - 1), st.integers(1, 2**256 - 1), max_size=6)),
        max_size=40,
    ),
    absent=st.lists(ADDRESSES, max_size=5),
    slots=st.lists(st.integers(0, 2**256 - 1), max_size=5),
    batched=st.booleans(),
)
def test_lookups_match_the_state_view(
    accounts: dict[Address, tuple[int, int, bytes, dict[int, int]]], absent: list[Address], slots: list[int],
    batched: bool,
) -> None:
    near = shared_prefix_addresses()
    accounts = accounts | {a: (i, i, b"", {i: i + 1}) for i, a in enumerate(near[::2])}
    absent = [*absent, *near[1::2]]
    view = make_state({
        a: GenesisAccount(balance=b, nonce=n, code=code, storage=storage)
        for a, (b, n, code, storage) in accounts.items()
    })
    tables = StateTables(view, cpu_library())
    addresses = [*accounts, *absent]
    keys = [(a, s) for a in addresses for s in [*accounts.get(a, (0, 0, b"", {}))[3], *slots]]
    if batched:  # one walk for all accounts, one for all slots, instead of one per key
        tables.load_accounts(addresses)
        tables.load_slots(a + s.to_bytes(32, "big") for a, s in keys)
    for address in addresses:
        row = tables.account_row(address)
        want = view.get_account(address)
        nonce, balance, code, exists = tables.account(row)
        assert exists == (want is not None)
        if want is not None:
            assert (nonce, balance) == (want.nonce, want.balance)
            assert tables.code_hash(row) == want.code_hash
            if want.code_hash == EMPTY_CODE_HASH:
                assert code == NO_CODE
            else:
                assert tables.code(code) == view.get_code(address)
        else:
            assert (nonce, balance, code, tables.code_hash(row)) == (0, 0, NO_CODE, EMPTY_CODE_HASH)
    for address, slot in keys:
        assert tables.slot_value(tables.slot_row(address, slot)) == view.get_storage(address, slot)
    assert tables.accounts.count == len(set(addresses))
    assert tables.slots.count == len(set(keys))
    # The flat tables (this view's) and the trie give the same rows, in the same order (a
    # batch's rows are in the order of their trie paths).
    assert view.reads_flat
    walked = StateTables(TrieOnly(view), cpu_library())
    if batched:
        walked.load_accounts(addresses)
        walked.load_slots(a + s.to_bytes(32, "big") for a, s in keys)
    for address in addresses:
        walked.account_row(address)
    for address, slot in keys:
        walked.slot_row(address, slot)
    assert np.array_equal(walked.accounts.used, tables.accounts.used)
    assert np.array_equal(walked.slots.used, tables.slots.used)
    assert np.array_equal(walked._storage_roots.used, tables._storage_roots.used)


class TrieOnly:
    """A state view without its flat tables: lookups walk the trie."""

    def __init__(self, view: StateView) -> None:
        self._view = view
        self.state_root = view.state_root
        self.node_store = view.node_store
        self.get_account = view.get_account
        self.get_code = view.get_code
        self.get_storage = view.get_storage
        self.reads_flat = False

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None] | None:
        return None

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None] | None:
        return None


def test_word_ints_converts_every_width() -> None:
    for values in ([0, 5, 2**64 - 1], [1, 2**64, 2**128 - 1], [3, 2**128, 2**256 - 1]):
        rows = np.array([words(v) for v in values], dtype=np.uint64)
        assert word_ints(rows) == values


def test_array_changes_make_each_change_from_its_columns() -> None:
    live, gone, missing = Address(b"\x01" * 20), Address(b"\x02" * 20), Address(b"\x03" * 20)
    other = Address(b"\x04" * 20)
    changes = ArrayChanges(
        [live, other, gone],
        nonces=np.array([7, 1], dtype=np.uint64),
        balances=np.array([words(2**200 + 5), words(9)], dtype=np.uint64),
        codes=[b"\x60\x00", None],
        resets=np.array([True, False]),
        slot_counts=np.array([0, 2, 0], dtype=np.uint64),
        slot_keys=np.array([words(1), words(2**255)], dtype=np.uint64),
        slot_values=np.array([words(0), words(3)], dtype=np.uint64),
    )
    assert list(changes) == [live, other, gone] and len(changes) == 3
    assert missing not in changes and gone in changes
    assert changes.keys() & {live, missing} == {live}
    assert dict(changes) == {
        live: AccountChange(7, 2**200 + 5, b"\x60\x00", {}, True),
        other: AccountChange(1, 9, None, {1: 0, 2**255: 3}, False),
        gone: None,
    }
    assert changes[other] is changes[other]  # made once
    # The nonce and balance of some, from the columns, as a diff of plain changes gives them.
    for some in ([gone, live], [other], [gone], []):
        assert StateDiff(changes).nonces_and_balances(some) == StateDiff(dict(changes)).nonces_and_balances(some)
    assert StateDiff(changes).nonces_and_balances([gone, live, other]) == ([0, 7, 1], [0, 2**200 + 5, 9])
    no_slots = np.zeros((0, 4), dtype=np.uint64)
    only_gone = ArrayChanges([gone], nonces=np.zeros(0, dtype=np.uint64), balances=no_slots, codes=[],
                             resets=np.zeros(0, dtype=bool), slot_counts=np.zeros(1, dtype=np.uint64),
                             slot_keys=no_slots, slot_values=no_slots)
    assert StateDiff(only_gone).nonces_and_balances([gone]) == ([0], [0])
    with pytest.raises(KeyError):
        changes[missing]
    with pytest.raises(ValueError, match="twice"):
        ArrayChanges([live, live], *(np.zeros(0, dtype=np.uint64),) * 2, [], np.zeros(0, dtype=bool),
                     *(np.zeros(0, dtype=np.uint64),) * 3)
