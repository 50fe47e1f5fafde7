"""Pending vs queued (nonce-gapped) transactions: limits, expiry, eviction order, promotion and
demotion, on a fake clock."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from primitives.clock import ManualClock
from primitives.errors import TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address
from sequencer.mempool import Mempool
from sequencer.types import AccountState, PoolConfig
from tests.sequencer.conftest import ADDRESSES, sign

Sign = Callable[..., Transaction]
RICH = 10**30
BASE_FEE = 10
GAS_LIMIT = 30_000_000
LIFETIME = 600.0


def make_pool(clock: ManualClock | None = None, **limits: float) -> Mempool:
    config = PoolConfig(queued_lifetime=LIFETIME, **limits)  # type: ignore[arg-type]
    return Mempool(config, clock or ManualClock())


def admit(pool: Mempool, tx: Transaction, nonce: int = 0, base_fee: int = BASE_FEE
          ) -> tuple[Transaction, ...]:
    return pool.add(tx, AccountState(nonce=nonce, balance=RICH), base_fee, GAS_LIMIT)


def rejected(pool: Mempool, tx: Transaction, message: str, base_fee: int = BASE_FEE) -> None:
    with pytest.raises(TransactionRejected) as info:
        admit(pool, tx, base_fee=base_fee)
    assert str(info.value) == message
    assert tx.hash not in pool


def queued(pool: Mempool) -> set[Transaction]:
    return {tx for tx in pool.all() if pool.is_queued(tx)}


def selected(pool: Mempool) -> list[Transaction]:
    return pool.select(BASE_FEE, GAS_LIMIT, 1_000, 10**9)


def test_gapped_transactions_are_queued_until_the_gap_fills(signer: Sign) -> None:
    pool = make_pool()
    a0, a2, a3 = signer(0, 0), signer(0, 2), signer(0, 3)
    for tx in (a0, a2, a3):
        admit(pool, tx)
    assert queued(pool) == {a2, a3} and pool.queued_count == 2
    assert selected(pool) == [a0]
    a1 = signer(0, 1)
    admit(pool, a1)  # fills the gap: a2 and a3 are promoted
    assert pool.queued_count == 0
    assert selected(pool) == [a0, a1, a2, a3]


def test_a_block_raising_the_nonce_promotes_queued_ones(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = make_pool()
    a3, a4 = signer(0, 3), signer(0, 4)
    admit(pool, a3)
    admit(pool, a4)
    assert selected(pool) == [] and pool.queued_count == 2
    # Nonces 0..2 were included (sent elsewhere): the state nonce is now 3.
    assert pool.prune([addresses[0]], lambda address: 3) == ()
    assert pool.queued_count == 0
    assert selected(pool) == [a3, a4]
    assert pool.pending_nonce(addresses[0], 3) == 5


def test_per_sender_queued_limit(signer: Sign) -> None:
    pool = make_pool(max_queued_per_sender=2)
    for nonce in (2, 3):
        admit(pool, signer(0, nonce))
    rejected(pool, signer(0, 5), "account limit exceeded")
    # Executable transactions are not limited by it, nor are other senders' queued ones.
    for nonce in (0, 1):
        admit(pool, signer(0, nonce))
    assert pool.queued_count == 0
    admit(pool, signer(0, 5))
    admit(pool, signer(1, 3))


def test_global_queued_limit_keeps_the_better_paying(signer: Sign) -> None:
    pool = make_pool(max_queued=3)
    cheap = signer(2, 1, tip=2)
    for tx in (signer(0, 1, tip=5), signer(1, 1, tip=5), cheap):
        admit(pool, tx)
    rejected(pool, signer(3, 1, tip=2), "transaction underpriced")  # no more than the cheapest
    better = signer(3, 1, tip=3)
    assert admit(pool, better) == (cheap,)
    assert pool.queued_count == 3 and better.hash in pool
    # The queue's limit does not hold back executable transactions.
    for sender in range(4):
        admit(pool, signer(sender, 0, tip=1))
    assert len(pool) == 7


def test_queued_transactions_expire_after_their_lifetime(signer: Sign) -> None:
    clock = ManualClock()
    pool = make_pool(clock)
    old_pending, old_queued = signer(0, 0), signer(1, 2)
    admit(pool, old_pending)
    admit(pool, old_queued)
    clock.advance(LIFETIME / 2)
    young_queued = signer(1, 3)
    admit(pool, young_queued)
    clock.advance(LIFETIME / 2 - 1)
    assert pool.expire() == ()
    clock.advance(1)
    assert pool.expire() == (old_queued,)
    assert old_pending.hash in pool  # executable ones never expire
    clock.advance(LIFETIME / 2)
    assert pool.expire() == (young_queued,)
    assert pool.all() == [old_pending] and pool.queued_count == 0


def test_expiry_counts_from_the_given_arrival_time(signer: Sign) -> None:
    clock = ManualClock()
    pool = make_pool(clock)
    tx = signer(0, 1)
    pool.add(tx, AccountState(0, RICH), BASE_FEE, GAS_LIMIT, arrived=clock.now() - LIFETIME)
    assert pool.expire() == (tx,)


def test_promoted_transactions_do_not_expire_and_demoted_ones_do(signer: Sign) -> None:
    clock = ManualClock()
    pool = make_pool(clock)
    a0, a1, a2 = signer(0, 0), signer(0, 1), signer(0, 2)
    admit(pool, a1)
    admit(pool, a2)
    admit(pool, a0)  # a1 and a2 promoted
    clock.advance(LIFETIME)
    assert pool.expire() == ()
    # a0 turns out invalid: a1 and a2 wait behind the gap again, and their time is up.
    pool.remove([a0.hash])
    assert queued(pool) == {a1, a2}
    assert selected(pool) == []
    assert set(pool.expire()) == {a1, a2}
    assert len(pool) == 0


def test_an_unwind_demotes_pending_ones_above_the_new_gap(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = make_pool()
    a3, a4 = signer(0, 3), signer(0, 4)
    admit(pool, a3, nonce=3)
    admit(pool, a4, nonce=3)
    assert selected(pool) == [a3, a4]
    # The blocks that raised the nonce to 3 were unwound: nonces 1 and 2 are missing again.
    pool.prune([addresses[0]], lambda address: 1)
    assert queued(pool) == {a3, a4}
    assert selected(pool) == []
    assert pool.pending_nonce(addresses[0], 1) == 1


def test_full_pool_evicts_queued_before_pending_whatever_they_pay(signer: Sign) -> None:
    pool = make_pool(max_total=3)
    rich_gap, pending = signer(0, 1, tip=1_000, fee_cap=2_000), signer(1, 0, tip=1)
    admit(pool, rich_gap)
    admit(pool, pending)
    admit(pool, signer(2, 0, tip=1))
    honest = signer(3, 0, tip=1)
    assert admit(pool, honest) == (rich_gap,)
    assert pool.queued_count == 0
    # No queued one left: now the newcomer must pay more than the cheapest pending tail.
    rejected(pool, signer(4, 0, tip=1), "transaction underpriced")
    assert admit(pool, signer(4, 0, tip=2)) == (honest,)  # among equal tips the newest goes


def test_queued_newcomer_never_evicts_a_pending_transaction(signer: Sign) -> None:
    pool = make_pool(max_total=2)
    admit(pool, signer(0, 0, tip=1))
    admit(pool, signer(1, 0, tip=1))
    rejected(pool, signer(2, 1, tip=1_000, fee_cap=2_000), "txpool is full")


def test_queued_newcomer_evicts_the_cheapest_queued_tail(signer: Sign) -> None:
    pool = make_pool(max_total=4)
    b1, b2 = signer(1, 1, tip=1), signer(1, 2, tip=9)
    for tx in (signer(0, 0, tip=1), signer(0, 2, tip=5), b1, b2):
        admit(pool, tx)
    # b1 is the cheapest queued one but b2 waits behind it: b2 is the tail to go.
    rejected(pool, signer(2, 1, tip=5), "transaction underpriced")
    newcomer = signer(2, 1, tip=6)
    assert admit(pool, newcomer) == (signer(0, 2, tip=5),)
    assert admit(pool, signer(3, 1, tip=10)) == (newcomer,)
    assert admit(pool, signer(4, 1, tip=10)) == (b2,)
    assert b1.hash in pool


def test_pending_eviction_takes_the_end_of_a_run_and_strands_nothing(signer: Sign) -> None:
    pool = make_pool(max_total=4)
    run = [signer(0, nonce, tip=tip) for nonce, tip in enumerate((1, 1, 20))]
    for tx in run:
        admit(pool, tx)
    admit(pool, signer(1, 0, tip=25))
    # The run's cheapest transactions are its first ones, but only its end may go.
    assert admit(pool, signer(2, 0, tip=21)) == (run[2],)
    assert admit(pool, signer(3, 0, tip=21)) == (run[1],)
    assert pool.queued_count == 0
    assert run[0] in selected(pool)


def test_a_sender_never_evicts_its_own_predecessor(signer: Sign) -> None:
    pool = make_pool(max_total=2)
    admit(pool, signer(0, 0, tip=1))
    admit(pool, signer(0, 1, tip=1))
    rejected(pool, signer(0, 2, tip=50), "txpool is full")


def test_eviction_follows_the_base_fee(signer: Sign) -> None:
    pool = make_pool(max_total=2)
    capped, plain = signer(0, 0, tip=10, fee_cap=15), signer(1, 0, tip=6, fee_cap=100)
    admit(pool, capped, base_fee=0)
    admit(pool, plain, base_fee=0)
    # At base fee 0 the capped one earns 10 and the plain one 6: the plain one is cheapest.
    newcomer = signer(2, 0, tip=7, fee_cap=100)
    assert admit(pool, newcomer, base_fee=0) == (plain,)
    # At base fee 10 the capped one earns only 5.
    assert admit(pool, signer(3, 0, tip=6, fee_cap=100), base_fee=10) == (capped,)


def test_replacing_a_queued_transaction_keeps_it_queued(signer: Sign) -> None:
    pool = make_pool(max_queued=1, max_total=2)
    original = signer(0, 2, tip=1, fee_cap=100)
    admit(pool, original)
    admit(pool, signer(1, 0))
    replacement = signer(0, 2, tip=2, fee_cap=200)
    assert admit(pool, replacement) == (original,)  # full pool and queue: no eviction needed
    assert queued(pool) == {replacement}
    rejected(pool, signer(0, 2, tip=2, fee_cap=210), "replacement transaction underpriced")


def test_a_flood_of_gapped_transactions_leaves_room_for_honest_ones(signer: Sign) -> None:
    pool = make_pool(max_total=17, max_queued=16, max_queued_per_sender=4)
    for sender in range(6):
        for nonce in range(1, 64):
            try:
                admit(pool, signer(sender, nonce, tip=1_000, fee_cap=2_000))
            except TransactionRejected as exc:
                assert str(exc) in ("account limit exceeded", "transaction underpriced")
    assert pool.queued_count == len(pool) == 16
    honest = [signer(sender, 0, tip=tip) for sender, tip in ((6, 1), (7, 100))]
    for tx in honest:
        admit(pool, tx)
    assert pool.queued_count == 15  # the second honest one took a queued one's place
    assert selected(pool) == [honest[1], honest[0]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 2), st.integers(0, 4)),
    st.tuples(st.just("block"), st.integers(0, 2), st.integers(-2, 3), st.booleans()),
), max_size=40))
# A run pooled, a block taking its first two, then an unwind of one: the rest is queued again.
@example([("add", 0, 0), ("add", 0, 1), ("add", 0, 2), ("add", 0, 3), ("block", 0, 2, True),
          ("block", 0, -1, False)])
def test_runs_follow_adds_and_blocks(steps: list[tuple[str, int, int] | tuple[str, int, int, bool]]) -> None:
    """Whatever order of adds (any nonce) and blocks moving a sender's state nonce (forward,
    or back as an unwind does; with the hashes of the pooled ones a block included, as the
    node passes them, or without), the pool's pending and queued transactions are what the
    state nonces and the pooled nonces say, and its hash index holds exactly those."""
    pool = make_pool()
    state = [0, 0, 0]
    for kind, sender, number, *told in steps:
        if kind == "add":
            with contextlib.suppress(TransactionRejected):
                admit(pool, sign(sender, state[sender] + number), nonce=state[sender])
        else:
            state[sender] = max(0, state[sender] + number)
            included = {tx.hash for tx in pool.all()
                        if tx.sender == ADDRESSES[sender] and tx.nonce < state[sender]} if told[0] else set()
            pool.prune([ADDRESSES[sender]], lambda address: state[ADDRESSES.index(address)], included)
        pooled: dict[int, set[int]] = {}
        for tx in pool.all():
            pooled.setdefault(ADDRESSES.index(tx.sender), set()).add(tx.nonce)
        by_sender = pool.by_sender()
        assert {(ADDRESSES.index(a), n) for a, txs in by_sender.items() for n in txs} == {
            (who, n) for who, nonces in pooled.items() for n in nonces}
        assert len(pool) == sum(map(len, by_sender.values()))
        expected_queued = set()
        for who, nonces in pooled.items():
            assert min(nonces) >= state[who]  # nothing below the state nonce stays
            ready = state[who]
            while ready in nonces:
                ready += 1
            assert pool.pending_nonce(ADDRESSES[who], state[who]) == ready
            expected_queued |= {(who, n) for n in nonces if n > ready}
        assert {(ADDRESSES.index(tx.sender), tx.nonce) for tx in queued(pool)} == expected_queued
        assert pool.queued_count == len(expected_queued)
