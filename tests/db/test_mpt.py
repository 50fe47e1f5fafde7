"""Batched trie updates (node.db.mpt) and StateDB.apply against py-trie and py-evm."""

from __future__ import annotations

import random
from typing import Any

import pytest
from trie.hexary import HexaryTrie

from executor_gpu.native_fallback import CommittedState
from executor_gpu.types import AccountChange, StateDiff
from node.db.memory import MemoryKV
from node.db.mpt import Node, TrieWriter, decode, encode
from node.db.state import StateDB
from primitives.blocks import EMPTY_ROOT
from primitives.errors import Halt
from primitives.types import Address


def _writer() -> tuple[TrieWriter, dict[bytes, bytes]]:
    nodes: dict[bytes, bytes] = {}
    return TrieWriter(nodes.__getitem__, nodes.__setitem__), nodes


@pytest.mark.parametrize("seed", range(12))
def test_batches_give_py_trie_roots(seed: int) -> None:
    """Random batches of sets and deletes on keys of 1-3 bytes (so that keys are prefixes of
    one another, nodes embed, branches hold values and collapse) and of 32 bytes."""
    rng = random.Random(seed)
    key_size = rng.choice([1, 2, 3, 32])
    keys = [bytes(rng.randrange(256) for _ in range(rng.randint(1, key_size))) for _ in range(60)]
    reference: Any = HexaryTrie({})  # py-trie is untyped
    writer, _ = _writer()
    root: bytes = EMPTY_ROOT
    for _ in range(8):
        changes: dict[bytes, bytes | None] = {}
        for key in rng.sample(keys, rng.randint(1, len(keys))):
            changes[key] = None if rng.random() < 0.4 else bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        for key, value in changes.items():
            if value is None:
                del reference[key]
            else:
                reference[key] = value
        root = writer.update(root, changes)
        assert root == reference.root_hash
        for key in keys:
            assert writer.get(root, key) == (reference.get(key) or None)
    every = {key: None for key in keys}
    assert writer.update(root, every) == EMPTY_ROOT


def test_missing_and_malformed_nodes_halt() -> None:
    writer, nodes = _writer()
    root = writer.update(EMPTY_ROOT, {bytes([i]) * 32: b"x" * 40 for i in range(20)})
    only_root = {root: nodes[root]}
    fresh = TrieWriter(only_root.__getitem__, only_root.__setitem__)
    with pytest.raises(Halt, match="missing"):
        fresh.update(root, {bytes([0]) * 32: None})
    with pytest.raises(Halt, match="missing"):
        fresh.get(root, bytes([1]) * 32)
    broken, broken_nodes = _writer()
    root = broken.update(EMPTY_ROOT, {b"\x01" * 32: b"v" * 40, b"\x02" * 32: b"w" * 40})
    broken_nodes[root] = broken_nodes[root][:-3]
    fresh = TrieWriter(broken_nodes.__getitem__, broken_nodes.__setitem__)
    with pytest.raises(Halt, match="malformed"):
        fresh.get(root, b"\x01" * 32)


def test_rlp_round_trip() -> None:
    items: list[Node] = [b"", b"\x00", b"\x7f", b"\x80", b"a" * 55, b"a" * 56, [b"a" * 60, [b"", [b"x"]]], [b"b"] * 17]
    for item in items:
        assert decode(encode(item)) == item


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
