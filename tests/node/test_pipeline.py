"""Pipelined block production (``Node.produce_pipelined``): each block executes on the state
after the one whose root and write are still running, and the chain is the one that one
block at a time makes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor_gpu.api import Executor
from executor_gpu.native_mpt import pack_changes, with_trie_keys
from executor_gpu.native_tx import create_address
from executor_gpu.types import AccountChange, StateDiff
from node.db import schema
from node.db.memory import MemoryKV
from node.db.pending import PENDING_ROOT, PendingView, reads_block_context
from node.db.state import GenesisAccount
from node.node import ChainParams, Node
from primitives.blocks import EMPTY_ROOT
from primitives.clock import ManualClock
from primitives.errors import TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address
from sequencer.types import PoolConfig
from tests.native.chain import CHAIN_ID, address, make_tx, native, reference
from tests.native.programs import program

STORE = Address(b"\x51" * 20)
"""Stores its call data's first word at the slot of its caller."""
STORE_CODE = bytes.fromhex("600035335500")
CLOCK = Address(b"\x52" * 20)
"""Stores the hash of its block's parent at slot 0 (BLOCKHASH of NUMBER - 1)."""
CLOCK_CODE = bytes.fromhex("600143034060005500")
PARAMS = ChainParams(chain_id=CHAIN_ID, gas_limit=30_000_000, initial_base_fee=7,
                     genesis_timestamp=1_700_000_000, max_txs_per_block=100)
ALLOC = {
    **{address(i): GenesisAccount(balance=10**21) for i in range(4)},
    STORE: GenesisAccount(code=STORE_CODE),
    CLOCK: GenesisAccount(code=CLOCK_CODE),
}


def make_node(executor: Executor) -> Node:
    node = Node(MemoryKV(), PARAMS, PoolConfig(), executor, reference(), b"\x07" * 32,
                ManualClock(PARAMS.genesis_timestamp))
    node.init_or_resume(ALLOC)
    return node


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def fresh(i: int) -> Address:
    return Address(i.to_bytes(20, "big"))


DEPLOY = bytes.fromhex("602a600055" "6006601160003960066000f3") + STORE_CODE
"""Sets slot 0 to 42, then deploys STORE's code."""


def rounds() -> list[list[Transaction]]:
    """Each round's transactions (a block each): transfers, chains of one sender's, slots
    set and then only cleared (a storage that may or may not be empty after it), BLOCKHASH
    of the block in flight, creations, and calls of a contract the block in flight made."""
    nonces = [0] * 4

    def tx(sender: int, to: Address | None, data: bytes = b"", value: int = 0) -> Transaction:
        nonces[sender] += 1
        return make_tx(sender, nonces[sender] - 1, to, value, data, max_fee=10**9, tip=1)

    return [
        [tx(0, STORE, word(5)), tx(1, fresh(1), value=3), tx(1, fresh(2), value=4), tx(2, STORE, word(9))],
        [tx(0, STORE, word(0)), tx(2, STORE, word(0)), tx(3, fresh(3), value=1)],
        [tx(0, STORE, word(7)), tx(1, CLOCK), tx(3, fresh(1), value=2)],
        [tx(2, None, b"\x00"), tx(3, CLOCK), tx(0, fresh(4), value=1)],
        [tx(1, fresh(5), value=1), tx(1, fresh(6), value=1), tx(2, STORE, word(1))],
        [],
        [tx(0, fresh(7), value=1), tx(3, None, DEPLOY)],
        [tx(1, MADE, word(8)), tx(2, MADE, word(0)), tx(0, MADE, word(9))],
        [tx(1, MADE, word(0)), tx(3, fresh(8), value=1)],
    ]


def produce(node: Node, pipelined: bool, blocks: Sequence[Sequence[Transaction]]) -> None:
    for txs in blocks:
        outcomes = node.submit_many([tx.raw for tx in txs])
        assert all(isinstance(o, Transaction) for o in outcomes), outcomes
        if pipelined:
            node.produce_pipelined()
        else:
            node.produce_block()
    node.drain()


MADE = create_address(address(3), 3)
"""The contract DEPLOY makes (sender 3's fourth transaction)."""


def test_a_pipelined_chain_is_the_chain_made_one_block_at_a_time() -> None:
    one_by_one, pipelined = make_node(native()), make_node(native())
    blocks = rounds()
    produce(one_by_one, False, blocks)
    produce(pipelined, True, blocks)
    assert pipelined.head().number == one_by_one.head().number == len(blocks)
    for number in range(1, len(blocks) + 1):
        assert pipelined.chain.header(number) == one_by_one.chain.header(number), number
    # BLOCKHASH of the block in flight read its final hash (its block ran again).
    clock = pipelined.state.at(pipelined.head().state_root).get_storage(CLOCK, 0)
    parent = pipelined.chain.header(3)
    assert parent is not None and clock == int.from_bytes(parent.hash, "big")
    # The contract made while the block after it executed: its constructor's slot and calls.
    made = pipelined.state.at(pipelined.head().state_root)
    assert made.get_code(MADE) == STORE_CODE and made.get_storage(MADE, 0) == 42
    assert made.get_storage(MADE, int.from_bytes(address(0), "big")) == 9
    assert made.get_storage(MADE, int.from_bytes(address(1), "big")) == 0


def test_the_reference_executor_runs_pipelined_on_the_final_state() -> None:
    one_by_one, pipelined = make_node(reference()), make_node(reference())
    blocks = rounds()[:3]
    produce(one_by_one, False, blocks)
    produce(pipelined, True, blocks)
    assert pipelined.head() == one_by_one.head()


def test_admission_sees_the_block_in_flight() -> None:
    node = make_node(native())
    first = make_tx(0, 0, fresh(1), 1, max_fee=10**9, tip=1)
    node.submit_many([first.raw])
    node.produce_pipelined()
    assert first.hash not in node.pool  # it left the pool once its block executed
    assert node.pending_nonce(address(0)) == 1
    with pytest.raises(TransactionRejected, match="already known|nonce too low"):
        node.submit(first.raw)
    (second,) = node.submit_many([make_tx(0, 1, fresh(2), 1, max_fee=10**9, tip=1).raw])
    assert isinstance(second, Transaction)
    node.produce_pipelined()
    assert node.drain() == node.head()
    assert node.head().number == 2
    account = node.state.at(node.head().state_root).get_account(address(0))
    assert account is not None and account.nonce == 2


def test_a_restart_after_drain_resumes_at_the_block_that_was_in_flight() -> None:
    node = make_node(native())
    node.submit_many([make_tx(0, 0, fresh(1), 1, max_fee=10**9, tip=1).raw])
    node.produce_pipelined()
    header = node.drain()
    assert header is not None and header.number == 1
    again = Node(node.kv, PARAMS, PoolConfig(), native(), reference(), b"\x07" * 32,
                 ManualClock(PARAMS.genesis_timestamp))
    assert again.init_or_resume(ALLOC) == header
    assert len(again.pool) == 0


def test_pending_view_exactness() -> None:
    node = make_node(native())
    view = node.state.at(node.head().state_root)
    # BLOCKHASH and the creations count as instructions only, not inside PUSH data.
    assert reads_block_context(CLOCK_CODE)
    assert not reads_block_context(STORE_CODE)
    assert not reads_block_context(bytes.fromhex("6140f0") + bytes.fromhex("7f") + b"\x40" * 32)
    assert reads_block_context(bytes.fromhex("614040") + b"\xf5")
    # Nor after an instruction that ends a run (data after the code), unless a JUMPDEST
    # follows.
    assert not reads_block_context(bytes.fromhex("00fe40f0f5"))
    assert reads_block_context(bytes.fromhex("00fe5b40"))
    assert not reads_block_context(bytes.fromhex("605b56") + b"\x40")  # 5b is PUSH data
    # A view that served CLOCK's code, or a block with a creation, is not exact.

    packed = with_trie_keys(pack_changes(StateDiff({})))
    pending = PendingView(packed, view, lambda: view)
    transfer = make_tx(0, 0, fresh(1), 1)
    assert pending.exact([transfer])
    assert not pending.exact([make_tx(0, 0, None, 0, b"\x00")])
    assert pending.get_code(CLOCK) == CLOCK_CODE
    assert not pending.exact([transfer])


def test_pending_rows_tell_whether_a_storage_is_empty() -> None:

    node = make_node(native())
    node.submit_many([make_tx(0, 0, STORE, 0, word(5), max_fee=10**9, tip=1).raw])
    node.produce_block()  # STORE now holds a slot
    view = node.state.at(node.head().state_root)
    caller = int.from_bytes(address(0), "big")
    stored = view.get_account(STORE)
    assert stored is not None and stored.storage_root != EMPTY_ROOT
    old_root = stored.storage_root

    def pending(change: AccountChange) -> PendingView:
        packed = with_trie_keys(pack_changes(StateDiff({STORE: change})))
        return PendingView(packed, view, lambda: view)

    cases = [
        (AccountChange(0, 0, storage={caller: 6}), PENDING_ROOT, True),
        (AccountChange(0, 0, storage={caller: 0}), old_root, False),  # emptied? not told
        (AccountChange(0, 0, storage={caller: 0}, storage_reset=True), EMPTY_ROOT, True),
        (AccountChange(0, 0, storage={}, storage_reset=True), EMPTY_ROOT, True),
    ]
    for change, root, exact in cases:
        reader = pending(change)
        account = reader.get_account(STORE)
        assert account is not None and account.storage_root == root, change
        assert reader.exact([]) is exact, change
        assert reader.get_storage(STORE, caller) == change.storage.get(caller, 0), change
    kept = pending(AccountChange(0, 9))
    account = kept.get_account(STORE)
    assert account is not None and account.balance == 9
    assert account.storage_root == old_root
    assert kept.get_storage(STORE, caller) == 5


def test_without_flat_tables_each_block_is_written_before_the_next() -> None:
    node = make_node(native())
    node.kv.delete(schema.FLAT_MARKER)  # the flat tables no longer hold the head's state
    for nonce in range(2):
        node.submit_many([make_tx(0, nonce, fresh(nonce + 1), 1, max_fee=10**9, tip=1).raw])
        node.produce_pipelined()
        assert node.head().number == nonce + 1  # written in the step: nothing in flight
    assert node.drain() is None
    account = node.state.at(node.head().state_root).get_account(address(0))
    assert account is not None and account.nonce == 2


PEERS = [0xC0DE0001, 0xC0DE0002, 0xC0DE0003]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=st.lists(program(PEERS), min_size=3, max_size=3),
    blocks=st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.binary(max_size=40)),
                             max_size=4), min_size=2, max_size=4),
    storage=st.dictionaries(st.integers(0, 4), st.integers(1, 2**256 - 1), max_size=3),
)
def test_random_programs_make_the_same_chain_pipelined(
    codes: list[bytes], blocks: list[list[tuple[int, int, bytes]]], storage: dict[int, int]
) -> None:
    """Random contracts (storage set and cleared, calls, creations, BLOCKHASH, self-destructs,
    logs) called over a few blocks: pipelined, the chain is the one made a block at a time."""
    alloc = {**ALLOC, **{Address(peer.to_bytes(20, "big")): GenesisAccount(balance=10**9, code=code,
                                                                         storage=storage)
                         for peer, code in zip(PEERS, codes)}}
    nonces = [0] * 4
    rounds = []
    for calls in blocks:
        txs = []
        for sender, target, data in calls:
            txs.append(make_tx(sender, nonces[sender], Address(PEERS[target].to_bytes(20, "big")), 0,
                               data, gas=300_000, max_fee=10**9, tip=1))
            nonces[sender] += 1
        rounds.append(txs)
    made = []
    for pipelined in (False, True):
        node = Node(MemoryKV(), PARAMS, PoolConfig(), native(), reference(), b"\x07" * 32,
                    ManualClock(PARAMS.genesis_timestamp))
        node.init_or_resume(alloc)
        produce(node, pipelined, rounds)
        made.append([node.chain.header(n) for n in range(1, len(rounds) + 1)])
    assert made[0] == made[1]
