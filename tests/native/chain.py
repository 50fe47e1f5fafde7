"""Helpers for the native executor's tests: signed transactions, pre-states, and the comparison
of a native result with the reference executor's."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence

import rlp

from executor_gpu.native import NativeExecutor
from executor_gpu.native_mpt import hash_keys, pack_changes
from executor_gpu.reference import PyEvmExecutor
from executor_gpu.types import BatchResult, BlockEnv, StateDiff
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateDB, StateView
from primitives.crypto import keccak256, private_key_to_address, sign_hash
from primitives.transactions import (
    AccessListEntry,
    Transaction,
    decode_transaction,
    encode_access_list,
)
from primitives.types import Address, Hash32

CHAIN_ID = 1337
COINBASE = Address(bytes.fromhex("c0ffee0000000000000000000000000000000001"))
ENV = BlockEnv(
    number=7,
    timestamp=1_700_000_000,
    coinbase=COINBASE,
    gas_limit=30_000_000,
    base_fee_per_gas=7,
    chain_id=CHAIN_ID,
    prev_randao=Hash32(b"\x42" * 32),
    block_hashes=tuple(Hash32(keccak256(bytes([i]))) for i in range(7)),
)


@functools.cache
def key(i: int) -> bytes:
    """A deterministic private key."""
    return keccak256(b"native-test-key-%d" % i)


@functools.cache
def address(i: int) -> Address:
    """The address of ``key(i)``."""
    return private_key_to_address(key(i))


def make_tx(
    sender: int,
    nonce: int,
    to: Address | None,
    value: int = 0,
    data: bytes = b"",
    gas: int = 100_000,
    max_fee: int = 20,
    tip: int = 2,
    tx_type: int = 2,
    access_list: tuple[AccessListEntry, ...] = (),
    chain_id: int = CHAIN_ID,
) -> Transaction:
    """A transaction signed by ``key(sender)``; type 0 uses ``max_fee`` as the gas price."""
    to_field = b"" if to is None else to
    if tx_type == 0:
        unsigned = [nonce, max_fee, gas, to_field, value, data]
        parity, r, s = sign_hash(keccak256(rlp.encode(unsigned + [chain_id, 0, 0])), key(sender))
        raw = rlp.encode(unsigned + [35 + 2 * chain_id + parity, r, s])
    else:
        fees = [max_fee] if tx_type == 1 else [tip, max_fee]
        unsigned = [chain_id, nonce, *fees, gas, to_field, value, data, encode_access_list(access_list)]
        prefix = bytes([tx_type])
        parity, r, s = sign_hash(keccak256(prefix + rlp.encode(unsigned)), key(sender))
        raw = prefix + rlp.encode(unsigned + [parity, r, s])
    return decode_transaction(raw)


def make_state(alloc: Mapping[Address, GenesisAccount]) -> StateView:
    """A pre-state holding ``alloc``, in memory."""
    kv = MemoryKV()
    db = StateDB(kv)
    batch = kv.write_batch()
    root = db.genesis(alloc, batch)
    batch.commit()
    return db.at(root)


@functools.cache
def native() -> NativeExecutor:
    """The CPU native executor (one per test process: it holds the built library)."""
    return NativeExecutor("cpu")


@functools.cache
def reference() -> PyEvmExecutor:
    return PyEvmExecutor()


def comparable(result: BatchResult) -> tuple[object, ...]:
    """Everything every executor must agree on (the root is the node's to compute)."""
    accounts = {
        a: None if c is None else (c.nonce, c.balance, c.code, dict(c.storage), c.storage_reset)
        for a, c in result.state_diff.accounts.items()
    }
    return result.executed, result.rejected, accounts, result.gas_used


def run_both(
    alloc: Mapping[Address, GenesisAccount], txs: Sequence[Transaction], env: BlockEnv = ENV
) -> tuple[BatchResult, BatchResult]:
    """The native and the reference results of ``txs`` on ``alloc``, checked to be identical."""
    pre = make_state(alloc)
    mine = native().execute(pre, env, txs)
    # py-evm recurses in Python for every call frame (about ten Python frames each): deep
    # EVM call chains, which the native interpreter runs in a loop, need a deeper Python stack.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 30_000))
    try:
        want = reference().execute(pre, env, txs)
    finally:
        sys.setrecursionlimit(limit)
    got, expected = comparable(mine), comparable(want)
    for name, a, b in zip(("executed", "rejected", "state diff", "gas used"), got, expected):
        assert a == b, f"{name} differs"
    assert_packed_as_its_accounts(mine.state_diff)
    return mine, want


def assert_packed_as_its_accounts(diff: StateDiff) -> None:
    """The executor's packing of ``diff`` is what the committer packs from its accounts, with
    the trie keys it hashed when it loaded them."""
    assert diff.packed is not None
    want = pack_changes(diff)
    assert diff.packed.records == want.records, "account records differ"
    assert diff.packed.slots == want.slots, "slots differ"
    assert diff.packed.counts.tolist() == want.counts.tolist(), "slot counts differ"
    assert dict(diff.packed.codes) == dict(want.codes), "codes differ"
    assert diff.packed.paths == b"".join(hash_keys(list(diff.accounts))), "account trie keys differ"
    slots = [want.slots[at : at + 32] for at in range(0, len(want.slots), 64)]
    assert diff.packed.slot_paths == b"".join(hash_keys(slots)), "slot trie keys differ"
