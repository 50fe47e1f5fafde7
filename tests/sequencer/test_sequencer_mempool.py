"""Mempool validation (go-ethereum's error strings), replacement, eviction, nonces."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from primitives.clock import ManualClock
from primitives.errors import TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address
from sequencer.mempool import Mempool, block_size
from sequencer.types import AccountState, PoolConfig

Sign = Callable[..., Transaction]
RICH = 10**30
BASE_FEE = 10
GAS_LIMIT = 30_000_000


def admit(
    pool: Mempool,
    tx: Transaction,
    nonce: int = 0,
    balance: int = RICH,
    base_fee: int = BASE_FEE,
    gas_limit: int = GAS_LIMIT,
) -> tuple[Transaction, ...]:
    return pool.add(tx, AccountState(nonce=nonce, balance=balance), base_fee, gas_limit)


def rejected(pool: Mempool, tx: Transaction, message: str, **kwargs: int) -> None:
    with pytest.raises(TransactionRejected) as info:
        admit(pool, tx, **kwargs)
    assert str(info.value) == message
    assert tx.hash not in pool


def test_added_transactions_can_be_found(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    first, second = signer(nonce=0), signer(sender=1, nonce=0, tx_type=0)
    assert admit(pool, first) == ()
    assert admit(pool, second) == ()
    assert len(pool) == 2
    assert first.hash in pool and second.hash in pool
    assert pool.get(first.hash) == first
    assert pool.get(signer(nonce=1).hash) is None
    assert pool.all() == [first, second]


def test_same_transaction_twice_is_already_known(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    tx = signer()
    admit(pool, tx)
    with pytest.raises(TransactionRejected, match="^already known$"):
        admit(pool, tx)
    assert len(pool) == 1


def test_nonce_window(signer: Sign) -> None:
    pool = Mempool(PoolConfig(max_per_sender=4), ManualClock())
    rejected(pool, signer(nonce=4), "nonce too low", nonce=5)
    rejected(pool, signer(nonce=9), "nonce too high", nonce=5)
    admit(pool, signer(nonce=8), nonce=5)  # a gap is fine inside the window
    admit(pool, signer(nonce=5), nonce=5)


def test_sender_must_afford_gas_and_value(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    tx = signer(fee_cap=100, value=5)
    cost = 21_000 * 100 + 5
    rejected(pool, tx, "insufficient funds for gas * price + value", balance=cost - 1)
    admit(pool, tx, balance=cost)


def test_pooled_transactions_of_the_sender_count_against_its_balance(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    cost = 21_000 * 100
    admit(pool, signer(nonce=0, fee_cap=100), balance=2 * cost - 1)
    rejected(
        pool,
        signer(nonce=1, fee_cap=100),
        "insufficient funds for gas * price + value",
        balance=2 * cost - 1,
    )
    # A replacement only needs to be affordable instead of the one it replaces.
    admit(pool, signer(nonce=0, fee_cap=110, tip=2), balance=2 * cost - 1)
    # Transactions below the state nonce are already paid for.
    admit(pool, signer(nonce=1, fee_cap=100), nonce=1, balance=cost)


def test_fee_cap_below_base_fee(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    rejected(pool, signer(fee_cap=9, tip=1), "max fee per gas less than block base fee")
    rejected(pool, signer(fee_cap=9, tx_type=0), "max fee per gas less than block base fee")
    admit(pool, signer(fee_cap=10, tip=1))


def test_tip_below_pool_minimum_is_underpriced(signer: Sign) -> None:
    pool = Mempool(PoolConfig(min_tip=3), ManualClock())
    rejected(pool, signer(tip=2), "transaction underpriced")
    admit(pool, signer(tip=3))


def test_gas_limit_bounds(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    rejected(pool, signer(gas=30_000_001), "exceeds block gas limit")
    rejected(pool, signer(gas=21_000, data=b"\x01"), "intrinsic gas too low")
    rejected(pool, signer(gas=52_999, create=True), "intrinsic gas too low")
    admit(pool, signer(gas=21_016, data=b"\x01"))


def test_oversized_init_code(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    rejected(
        pool,
        signer(gas=2_000_000, create=True, data=b"\x01" * 49_153),
        "max initcode size exceeded",
    )
    admit(pool, signer(gas=2_000_000, create=True, data=b"\x01" * 49_152))


def test_replacement_needs_the_price_bump_on_both_fees(signer: Sign) -> None:
    pool = Mempool(PoolConfig(price_bump_percent=10), ManualClock())
    original = signer(tip=10, fee_cap=100)
    admit(pool, original)
    for tip, fee_cap in ((11, 109), (10, 110), (10, 200), (100, 100), (9, 120)):
        rejected(pool, signer(tip=tip, fee_cap=fee_cap), "replacement transaction underpriced")
    replacement = signer(tip=11, fee_cap=110)
    assert admit(pool, replacement) == (original,)
    assert original.hash not in pool
    assert pool.get(replacement.hash) == replacement
    assert len(pool) == 1


def test_legacy_replacement_bumps_the_gas_price(signer: Sign) -> None:
    pool = Mempool(PoolConfig(price_bump_percent=10), ManualClock())
    original = signer(tx_type=0, fee_cap=100)
    admit(pool, original)
    rejected(pool, signer(tx_type=0, fee_cap=109), "replacement transaction underpriced")
    assert admit(pool, signer(tx_type=0, fee_cap=110)) == (original,)


def test_bump_on_tiny_prices_still_needs_a_strict_increase(signer: Sign) -> None:
    pool = Mempool(PoolConfig(price_bump_percent=10), ManualClock())
    admit(pool, signer(tip=1, fee_cap=10))
    # 10% of 1 rounds to nothing, but an equal tip is no replacement.
    rejected(pool, signer(tip=1, fee_cap=20), "replacement transaction underpriced")
    admit(pool, signer(tip=2, fee_cap=11))


def test_full_pool_evicts_the_cheapest_chain_tail(signer: Sign) -> None:
    pool = Mempool(PoolConfig(max_total=3), ManualClock())
    a0, a1, b0 = (
        signer(0, 0, tip=1, fee_cap=50),
        signer(0, 1, tip=9, fee_cap=50),
        signer(1, 0, tip=3),
    )
    for tx in (a0, a1, b0):
        admit(pool, tx)
    # a0 has the lowest tip but a1 depends on it: b0 is the cheapest evictable.
    rejected(pool, signer(2, 0, tip=3), "transaction underpriced")
    newcomer = signer(2, 0, tip=4)
    assert admit(pool, newcomer) == (b0,)
    assert len(pool) == 3
    assert b0.hash not in pool and a0.hash in pool and newcomer.hash in pool


def test_eviction_compares_effective_tips_at_the_base_fee(signer: Sign) -> None:
    pool = Mempool(PoolConfig(max_total=1), ManualClock())
    capped = signer(0, 0, tip=15, fee_cap=15)  # earns only 15 - 10 = 5 at base fee 10
    admit(pool, capped)
    assert admit(pool, signer(1, 0, tip=6, fee_cap=100)) == (capped,)


def test_full_pool_never_evicts_a_predecessor_of_the_newcomer(signer: Sign) -> None:
    pool = Mempool(PoolConfig(max_total=2), ManualClock())
    admit(pool, signer(0, 0, tip=1))
    admit(pool, signer(0, 1, tip=1))
    rejected(pool, signer(0, 2, tip=50), "txpool is full")


def test_replacement_in_a_full_pool_needs_no_eviction(signer: Sign) -> None:
    pool = Mempool(PoolConfig(max_total=1), ManualClock())
    original = signer(tip=1, fee_cap=100)
    admit(pool, original)
    assert admit(pool, signer(tip=2, fee_cap=200)) == (original,)
    assert len(pool) == 1


def test_pending_nonce_counts_the_contiguous_run(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    for nonce in (0, 1, 3):
        admit(pool, signer(nonce=nonce))
    assert pool.pending_nonce(addresses[0], 0) == 2
    assert pool.pending_nonce(addresses[0], 3) == 4
    assert pool.pending_nonce(addresses[0], 7) == 7
    assert pool.pending_nonce(addresses[1], 5) == 5


def test_prune_drops_what_the_new_state_nonce_covers(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    a0, a1, a2, b0 = signer(0, 0), signer(0, 1), signer(0, 2), signer(1, 0)
    for tx in (a0, a1, a2, b0):
        admit(pool, tx)
    nonces = {addresses[0]: 2, addresses[1]: 0}
    assert set(pool.prune(nonces, lambda address: nonces[address])) == {a0, a1}
    assert pool.all() == [a2, b0]
    assert pool.pending_nonce(addresses[0], 2) == 3
    # Only the senders named are looked at: the others' nonces did not move.
    assert pool.prune([addresses[0]], lambda address: 5) == (a2,)
    assert pool.all() == [b0]


def test_prune_forgets_a_blocks_own_by_its_hashes_and_the_ones_it_replaced(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    a0, a1, b0, c0 = signer(0, 0), signer(0, 1), signer(1, 0), signer(2, 0)
    for tx in (a0, a1, b0, c0):
        admit(pool, tx)
    # The block included a0 and, for sender 1, another transaction of nonce 0 than b0.
    other_b0 = signer(1, 0, tip=2)
    nonces = {addresses[0]: 1, addresses[1]: 1}
    left = pool.prune(nonces, lambda address: nonces[address], {a0.hash, other_b0.hash})
    assert left == (b0,)  # stale and not included: its record is for the caller to forget
    assert pool.all() == [a1, c0]
    for gone in (a0, b0):
        assert gone.hash not in pool and pool.get(gone.hash) is None
    assert pool.pending_nonce(addresses[0], 1) == 2


def test_remove_forgets_transactions(signer: Sign) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    a0, a1 = signer(0, 0), signer(0, 1)
    admit(pool, a0)
    admit(pool, a1)
    pool.remove([a0.hash, signer(5, 5).hash])
    assert pool.all() == [a1]
    pool.remove([a1.hash])
    assert len(pool) == 0
    admit(pool, a0)  # a removed transaction is not "already known"


def test_select_orders_by_tip_and_keeps_nonce_order(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    a0, a1 = signer(0, 0, tip=1, fee_cap=100), signer(0, 1, tip=9, fee_cap=100)
    b0, c0 = signer(1, 0, tip=5, fee_cap=100), signer(2, 0, tip=12, fee_cap=12)
    for tx in (a0, a1, b0, c0):
        admit(pool, tx)
    # c0's tip is capped at 12 - 10 = 2; a1 waits for a0.
    assert pool.select(10, GAS_LIMIT, 10, 10**9) == [b0, c0, a0, a1]
    # At base fee 13, c0 cannot pay and is skipped.
    assert pool.select(13, GAS_LIMIT, 10, 10**9) == [b0, a0, a1]
    assert pool.select(10, GAS_LIMIT, 2, 10**9) == [b0, c0]
    # Room for two transactions of 21000 gas only.
    assert pool.select(10, 63_000 - 1, 10, 10**9) == [b0, c0]
    # A block included a0: the pool learns the sender's new nonce, a1 leads.
    assert pool.prune([addresses[0]], lambda address: 1) == (a0,)
    assert pool.select(10, GAS_LIMIT, 10, 10**9) == [a1, b0, c0]


def test_select_skips_a_sender_whose_next_transaction_does_not_fit(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    big, after_big = signer(0, 0, tip=9, gas=40_000), signer(0, 1, tip=9)
    small = signer(1, 0, tip=1)
    for tx in (big, after_big, small):
        admit(pool, tx)
    assert pool.select(10, 50_000, 10, 10**9) == [big]
    assert pool.select(10, 39_999, 10, 10**9) == [small]


def test_select_skips_a_sender_whose_next_transaction_takes_more_bytes_than_are_left(
    signer: Sign,
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    big = signer(0, 0, tip=9, gas=60_000, data=b"\x01" * 2_000)
    after_big, small = signer(0, 1, tip=9), signer(1, 0, tip=1)
    for tx in (big, after_big, small):
        admit(pool, tx)
    room = block_size(big.raw)
    assert room == len(big.raw) + 3  # an RLP string header of three bytes (0xb9 and two)
    assert pool.select(10, GAS_LIMIT, 10, room) == [big]
    assert pool.select(10, GAS_LIMIT, 10, room - 1) == [small]
    assert pool.select(10, GAS_LIMIT, 10, room + block_size(after_big.raw)) == [big, after_big]


def test_add_catches_up_with_a_state_nonce_the_pool_has_not_seen(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    txs = [signer(nonce=n) for n in range(3)]
    for tx in txs:
        admit(pool, tx)
    # A block included nonces 0 and 1, and the pool was not told: the next add finds out.
    later = signer(nonce=3)
    assert set(admit(pool, later, nonce=2)) == {txs[0], txs[1]}
    assert [tx.nonce for tx in pool.select(BASE_FEE, GAS_LIMIT, 10, 10**9)] == [2, 3]
    assert len(pool) == 2 and pool.queued_count == 0
    # Then everything it had: the sender starts afresh at its new nonce.
    assert set(admit(pool, signer(nonce=5), nonce=4)) == {txs[2], later}
    assert pool.senders() == [addresses[0]] and len(pool) == 1
    assert pool.pending_nonce(addresses[0], 4) == 4 and pool.queued_count == 1
    waiting = tuple(pool.all())
    assert pool.prune([addresses[0], addresses[1]], lambda address: 6) == waiting
    assert len(pool) == 0 and pool.queued_count == 0 and pool.senders() == []
