"""StateDB over both KV backends: roots against independent computations, diffs, batches."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import rlp
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from trie.hexary import HexaryTrie

from executor_gpu.types import Account, AccountChange, StateDiff
from node.db.api import KV
from node.db.leveldb import LevelDBKV
from node.db.memory import MemoryKV
from node.db.state import EMPTY_CODE_HASH, GenesisAccount, StateDB
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32


@pytest.fixture(params=["memory", "leveldb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KV]:
    store: KV = MemoryKV() if request.param == "memory" else LevelDBKV(tmp_path / "db")
    yield store
    store.close()


class Model:
    """Plain-dict state with a root computed from scratch with trie.HexaryTrie."""

    def __init__(self) -> None:
        self.accounts: dict[Address, tuple[int, int, bytes, dict[int, int]]] = {}

    def apply(self, diff: StateDiff) -> None:
        for address, change in diff.accounts.items():
            if change is None:
                self.accounts.pop(address, None)
                continue
            _, _, code, storage = self.accounts.get(address, (0, 0, b"", {}))
            storage = {} if change.storage_reset else dict(storage)
            for slot, value in change.storage.items():
                if value:
                    storage[slot] = value
                else:
                    storage.pop(slot, None)
            code = code if change.code is None else change.code
            self.accounts[address] = (change.nonce, change.balance, code, storage)

    def root(self) -> Hash32:
        accounts = HexaryTrie({})
        for address, (nonce, balance, code, storage) in self.accounts.items():
            slots = HexaryTrie({})
            for slot, value in storage.items():
                slots[keccak256(slot.to_bytes(32, "big"))] = rlp.encode(value)
            accounts[keccak256(address)] = rlp.encode(
                [nonce, balance, slots.root_hash, keccak256(code)]
            )
        return Hash32(accounts.root_hash)


def address(n: int) -> Address:
    return Address(n.to_bytes(20, "big"))


def random_diff(rng: random.Random, model: Model, size: int) -> StateDiff:
    """Creations, updates, storage writes and deletions, resets and account deletions."""
    changes: dict[Address, AccountChange | None] = {}
    for _ in range(size):
        target = address(rng.randrange(1, 40))
        roll = rng.random()
        if roll < 0.1 and target in model.accounts:
            changes[target] = None
            continue
        existing = model.accounts.get(target, (0, 0, b"", {}))[3]
        storage = {
            slot: rng.choice([0, rng.randrange(1, 2**256)]) for slot in rng.sample(range(20), 4)
        }
        storage.update({slot: 0 for slot in list(existing)[:2]})  # deletions of live slots
        changes[target] = AccountChange(
            nonce=rng.randrange(0, 2**64),
            balance=rng.randrange(0, 2**256),
            code=bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50)))
            if roll > 0.8
            else None,
            storage=storage,
            storage_reset=0.1 <= roll < 0.2,
        )
    return StateDiff(changes)


def test_genesis_root_matches_py_evm_account_db(kv: KV) -> None:
    rng = random.Random(1)
    alloc = {
        address(n): GenesisAccount(
            balance=rng.randrange(2**200),
            nonce=rng.randrange(5),
            code=bytes(rng.randrange(256) for _ in range(n % 7)),
            storage={rng.randrange(2**256): rng.randrange(2**256) for _ in range(n % 4)} | {9: 0},
        )
        for n in range(1, 60)
    }
    batch = kv.write_batch()
    root = StateDB(kv).genesis(alloc, batch)
    batch.commit()

    expected = AccountDB(AtomicDB())
    for addr, account in alloc.items():
        expected.set_balance(addr, account.balance)
        expected.set_nonce(addr, account.nonce)
        if account.code:
            expected.set_code(addr, account.code)
        for slot, value in account.storage.items():
            expected.set_storage(addr, slot, value)
    expected.persist()
    assert root == expected.state_root


def test_empty_genesis_has_the_empty_root(kv: KV) -> None:
    assert StateDB(kv).genesis({}, kv.write_batch()) == EMPTY_ROOT


def test_random_diffs_match_a_from_scratch_trie(kv: KV) -> None:
    rng = random.Random(7)
    state = StateDB(kv)
    model = Model()
    root = EMPTY_ROOT
    for _ in range(12):
        diff = random_diff(rng, model, size=rng.randrange(1, 12))
        batch = kv.write_batch()
        root = state.apply(root, diff, batch)
        batch.commit()
        model.apply(diff)
        assert root == model.root()


def test_views_read_accounts_code_and_storage(kv: KV) -> None:
    state = StateDB(kv)
    batch = kv.write_batch()
    root = state.genesis(
        {
            address(1): GenesisAccount(balance=5, nonce=2, code=b"\x60\x00", storage={3: 4}),
            address(2): GenesisAccount(balance=7),
        },
        batch,
    )
    batch.commit()
    view = state.at(root)
    assert view.state_root == root
    contract = view.get_account(address(1))
    assert contract is not None
    assert (contract.nonce, contract.balance, contract.code_hash) == (2, 5, keccak256(b"\x60\x00"))
    assert view.get_code(address(1)) == b"\x60\x00"
    assert view.get_storage(address(1), 3) == 4
    assert view.get_storage(address(1), 4) == 0
    assert view.get_account(address(2)) == Account(0, 7, EMPTY_ROOT, EMPTY_CODE_HASH)
    assert view.get_code(address(2)) == b""
    assert view.get_storage(address(2), 3) == 0
    assert view.get_account(address(3)) is None
    assert view.node_store[root] == kv.get(b"s" + root)
    assert root in view.node_store
    assert len(view.node_store) == len(list(view.node_store))


def test_deleted_account_and_reset_storage(kv: KV) -> None:
    state = StateDB(kv)
    batch = kv.write_batch()
    root = state.genesis(
        {
            address(1): GenesisAccount(balance=1, storage={1: 1, 2: 2}),
            address(2): GenesisAccount(balance=2, storage={1: 1}),
        },
        batch,
    )
    new_root = state.apply(
        root,
        StateDiff(
            {
                address(1): AccountChange(nonce=1, balance=1, storage={3: 3}, storage_reset=True),
                address(2): None,
            }
        ),
        batch,
    )
    batch.commit()
    view = state.at(new_root)
    assert [view.get_storage(address(1), slot) for slot in (1, 2, 3)] == [0, 0, 3]
    assert view.get_account(address(2)) is None
    # Archive: the parent state is still readable.
    assert state.at(root).get_storage(address(1), 2) == 2
    assert state.at(root).get_account(address(2)) is not None


def test_reads_through_a_batch_before_commit(kv: KV) -> None:
    state = StateDB(kv)
    batch = kv.write_batch()
    first = state.genesis({address(1): GenesisAccount(balance=10, storage={1: 1})}, batch)
    # A second block on top of the first, in the same uncommitted batch.
    second = state.apply(first, StateDiff({address(1): AccountChange(1, 9, storage={1: 2})}), batch)
    with pytest.raises(InvalidInput):
        state.at(second)
    pending = state.at(second, reader=batch)
    assert pending.get_storage(address(1), 1) == 2
    assert state.at(first, reader=batch).get_storage(address(1), 1) == 1
    batch.commit()
    assert state.at(second).get_account(address(1)) == pending.get_account(address(1))


def test_unknown_root_is_invalid_input(kv: KV) -> None:
    with pytest.raises(InvalidInput):
        StateDB(kv).at(Hash32(b"\x01" * 32))
