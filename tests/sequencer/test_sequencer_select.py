"""Property tests of the mempool: what select() returns and what eviction keeps."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from primitives import rlp
from primitives.clock import ManualClock
from primitives.errors import TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address
from sequencer.mempool import Mempool, block_size
from sequencer.types import AccountState, PoolConfig

Sign = Callable[..., Transaction]
SENDERS = 4
RICH = 10**30

fees = st.tuples(
    st.integers(min_value=0, max_value=20),  # tip
    st.integers(min_value=0, max_value=30),  # fee cap above the tip
    st.sampled_from([21_000, 30_000, 50_000]),  # gas limit
)
Params = tuple[int, int, int, int, int]
"""sender, nonce above the sender's state nonce, tip, fee cap above the tip, gas limit"""

any_params = st.builds(
    lambda sender, offset, fee: (sender, offset, *fee),
    st.integers(min_value=0, max_value=SENDERS - 1),
    st.integers(min_value=0, max_value=4),
    fees,
)


@st.composite
def chained_params(draw: st.DrawFn) -> list[Params]:
    """Per sender a run of nonces from its state nonce, maybe with a gap; random arrival order."""
    params: list[Params] = []
    for sender in range(SENDERS):
        run = draw(st.lists(fees, max_size=5))
        gap = draw(st.none() | st.integers(min_value=0, max_value=4))
        params += [(sender, offset, *fee) for offset, fee in enumerate(run) if offset != gap]
    return draw(st.permutations(params))


def fill(
    pool: Mempool,
    signer: Sign,
    addresses: Sequence[Address],
    params: list[Params],
    state_nonces: list[int],
    base_fee: int = 0,
) -> Iterator[tuple[Transaction, tuple[Transaction, ...]]]:
    """Add what the pool accepts; yield each accepted transaction and what it drops."""
    for sender, offset, tip, extra, gas in params:
        nonce = state_nonces[sender] + offset
        # Call data as the gas allows (16 each): sizes in a block from 110 to 1,560 bytes.
        tx = signer(sender, nonce, tip=tip, fee_cap=tip + extra, gas=gas,
                    data=b"\x01" * ((gas - 21_000) // 20))
        account = AccountState(nonce=state_nonces[sender], balance=RICH)
        try:
            dropped = pool.add(tx, account, base_fee, 30_000_000)
        except TransactionRejected:
            continue
        yield tx, dropped


def heap_select(
    pool: Mempool, state_nonces: Mapping[Address, int], base_fee: int, gas_limit: int,
    max_count: int, max_bytes: int,
) -> list[Transaction]:
    """What select() must return, the plain way: a heap of each sender's next executable
    transaction, best (-tip, depth in its run, arrival) first; the taken one's successor
    joins; one that does not fit (its gas, or its size) ends its sender's run."""
    arrival = {tx.hash: index for index, tx in enumerate(pool.all())}  # the pool's order
    runs = pool.by_sender()

    def entry(sender: Address, depth: int) -> tuple[int, int, int, Transaction] | None:
        tx = runs[sender].get(state_nonces[sender] + depth)
        if tx is None or tx.max_fee_per_gas < base_fee:
            return None
        return -tx.effective_tip(base_fee), depth, arrival[tx.hash], tx

    heap = [e for e in (entry(sender, 0) for sender in runs) if e is not None]
    heapq.heapify(heap)
    selected: list[Transaction] = []
    gas = size = 0
    while heap and len(selected) < max_count:
        _, depth, _, tx = heapq.heappop(heap)
        if gas + tx.gas_limit > gas_limit or size + block_size(tx.raw) > max_bytes:
            continue
        selected.append(tx)
        gas += tx.gas_limit
        size += block_size(tx.raw)
        after = entry(tx.sender, depth + 1)
        if after is not None:
            heapq.heappush(heap, after)
    return selected


@settings(max_examples=150, deadline=None)
@given(
    params=chained_params(),
    state_nonces=st.lists(
        st.integers(min_value=0, max_value=2), min_size=SENDERS, max_size=SENDERS
    ),
    base_fee=st.integers(min_value=0, max_value=30),
    gas_limit=st.integers(min_value=21_000, max_value=400_000),
    max_count=st.integers(min_value=1, max_value=25),
    max_bytes=st.integers(min_value=0, max_value=8_000),
)
def test_select_properties(
    signer: Sign,
    addresses: Sequence[Address],
    params: list[Params],
    state_nonces: list[int],
    base_fee: int,
    gas_limit: int,
    max_count: int,
    max_bytes: int,
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    list(fill(pool, signer, addresses, params, state_nonces))
    nonce_of = {addresses[i]: state_nonces[i] for i in range(SENDERS)}
    selected = pool.select(base_fee, gas_limit, max_count, max_bytes)

    assert selected == heap_select(pool, nonce_of, base_fee, gas_limit, max_count, max_bytes)
    size = sum(block_size(tx.raw) for tx in selected)
    assert size <= max_bytes
    assert len(selected) <= max_count
    assert len({tx.hash for tx in selected}) == len(selected)
    assert all(tx.hash in pool for tx in selected)
    assert all(tx.max_fee_per_gas >= base_fee for tx in selected)
    used = sum(tx.gas_limit for tx in selected)
    assert used <= gas_limit

    # Per sender: the state nonce first, then each next nonce, without gaps.
    expected_nonce = dict(nonce_of)
    position_of: dict[tuple[Address, int], int] = {}
    for position, tx in enumerate(selected):
        assert tx.nonce == expected_nonce[tx.sender]
        expected_nonce[tx.sender] += 1
        position_of[(tx.sender, tx.nonce)] = position

    # Tip order: when a transaction was picked, no available one paid a higher tip.
    for i, earlier in enumerate(selected):
        for later in selected[i + 1 :]:
            available_at_i = (
                later.nonce == nonce_of[later.sender]
                or position_of[(later.sender, later.nonce - 1)] < i
            )
            if available_at_i:
                assert earlier.effective_tip(base_fee) >= later.effective_tip(base_fee)

    # Nothing left behind that could still have been included.
    if len(selected) < max_count:
        pooled = {(tx.sender, tx.nonce): tx for tx in pool.all()}
        for sender, nonce in expected_nonce.items():
            waiting = pooled.get((sender, nonce))
            if waiting is not None and waiting.max_fee_per_gas >= base_fee:
                assert (used + waiting.gas_limit > gas_limit
                        or size + block_size(waiting.raw) > max_bytes)


def tails(txs: list[Transaction], queued: set[Transaction]) -> list[Transaction]:
    """Each sender's last pending and last queued transaction."""
    last: dict[tuple[Address, bool], Transaction] = {}
    for tx in txs:
        key = (tx.sender, tx in queued)
        if key not in last or last[key].nonce < tx.nonce:
            last[key] = tx
    return list(last.values())


@settings(max_examples=100, deadline=None)
@given(
    params=st.lists(any_params, min_size=2, max_size=20),
    base_fee=st.integers(min_value=0, max_value=10),
)
def test_full_pool_evicts_only_chain_tails(
    signer: Sign,
    addresses: Sequence[Address],
    params: list[Params],
    base_fee: int,
) -> None:
    pool = Mempool(PoolConfig(max_total=5, max_per_sender=4, max_queued=3), ManualClock())
    queued_before: set[Transaction] = set()
    tails_before: list[Transaction] = []
    for tx, dropped in fill(pool, signer, addresses, params, [0] * SENDERS, base_fee):
        assert len(pool) <= 5
        assert pool.queued_count <= 3
        assert tx.hash in pool
        for victim in dropped:
            assert victim.hash not in pool
            if (victim.sender, victim.nonce) == (tx.sender, tx.nonce):
                continue  # replaced, not evicted
            # A queued victim goes before any pending one; a pending newcomer takes it
            # whatever it pays, otherwise the newcomer pays more.
            assert victim in queued_before or not queued_before
            if pool.is_queued(tx) or victim not in queued_before:
                assert victim.effective_tip(base_fee) < tx.effective_tip(base_fee)
            assert not any(
                other.sender == victim.sender and other.nonce > victim.nonce for other in pool.all()
            )
            # The cheapest such tail: of the victim's kind, not a predecessor of tx.
            rivals = [other for other in tails_before
                      if (other in queued_before) == (victim in queued_before)
                      and not (other.sender == tx.sender and other.nonce < tx.nonce)]
            assert victim.effective_tip(base_fee) == min(
                other.effective_tip(base_fee) for other in rivals)
        queued_before = {other for other in pool.all() if pool.is_queued(other)}
        tails_before = tails(pool.all(), queued_before)


def test_equal_tips_take_every_senders_first_transaction_before_anyones_second(
    signer: Sign, addresses: Sequence[Address]
) -> None:
    pool = Mempool(PoolConfig(), ManualClock())
    # Sender 0's whole run arrives before sender 1's first transaction.
    for sender in (0, 1):
        for nonce in range(3):
            pool.add(signer(sender, nonce, tip=2, fee_cap=10), AccountState(0, RICH), 0, 10**9)
    order = [(addresses.index(tx.sender), tx.nonce)
             for tx in pool.select(0, 10**9, 100, 10**9)]
    assert order == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    # A better tip still goes first, whatever its depth.
    pool.add(signer(1, 3, tip=5, fee_cap=10), AccountState(0, RICH), 0, 10**9)
    pool.add(signer(2, 0, tip=1, fee_cap=10), AccountState(0, RICH), 0, 10**9)
    order = [(addresses.index(tx.sender), tx.nonce)
             for tx in pool.select(0, 10**9, 100, 10**9)]
    assert order[:3] == [(0, 0), (1, 0), (0, 1)]
    assert order[-1] == (2, 0)


def test_select_ranks_fees_beyond_64_bits(signer: Sign, addresses: Sequence[Address]) -> None:
    """Fees are 256-bit: one that no 64-bit integer holds still sorts by its value."""
    pool = Mempool(PoolConfig(), ManualClock())
    huge = 2**200
    fees = [(3, 10), (huge, huge + 5), (huge + 1, huge + 10), (2**63, 2**64)]
    for sender, (tip, fee_cap) in enumerate(fees):
        for nonce in range(2):
            tx = signer(sender, nonce, tip=tip + nonce, fee_cap=fee_cap + nonce)
            pool.add(tx, AccountState(nonce=0, balance=2**300), 1, 30_000_000)
    nonces = {addresses[sender]: 0 for sender in range(len(fees))}
    selected = pool.select(1, 30_000_000, 100, 10**9)
    assert selected == heap_select(pool, nonces, 1, 30_000_000, 100, 10**9)
    assert [(addresses.index(tx.sender), tx.nonce) for tx in selected[:3]] == [(2, 0), (2, 1), (1, 0)]


def test_block_size_is_the_rlp_string_of_the_raw_transaction() -> None:
    for size in (2, 55, 56, 255, 256, 65_535, 65_536, 1 << 24):
        raw = b"\x02" * size
        assert block_size(raw) == len(rlp.encode(raw)), size
