"""The mempool: transactions by sender and nonce, pending or queued, ordered for blocks by tip.

A sender's transactions whose nonces run without a gap from its state nonce are *pending*
(executable now); those above a gap are *queued*. As in go-ethereum's pool, queued ones
cost their sender nothing until the gap is filled, so they are held to small limits (per
sender and overall), expire after ``PoolConfig.queued_lifetime``, and are the first to go
when the pool is full: a full pool takes an executable transaction by evicting a queued
one, or else the cheapest pending one (by effective tip at the next base fee), always the
last of its sender's run so that no gap strands the others. A newcomer is "underpriced"
only when it pays no more than the transaction it would evict.

Rejections raise TransactionRejected with go-ethereum's wording, which wallets match on.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Collection, Iterable
from collections.abc import Set as AbstractSet
from itertools import chain, repeat
from operator import attrgetter

import numpy as np

from primitives.clock import Clock
from primitives.errors import TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from sequencer.fees import MAX_INITCODE_SIZE, TX_GAS, intrinsic_gas
from sequencer.types import AccountState, PoolConfig

ALREADY_KNOWN = "already known"
NONCE_TOO_LOW = "nonce too low"
NONCE_TOO_HIGH = "nonce too high"
INSUFFICIENT_FUNDS = "insufficient funds for gas * price + value"
FEE_CAP_TOO_LOW = "max fee per gas less than block base fee"
UNDERPRICED = "transaction underpriced"
REPLACE_UNDERPRICED = "replacement transaction underpriced"
GAS_LIMIT_EXCEEDED = "exceeds block gas limit"
INTRINSIC_GAS_TOO_LOW = "intrinsic gas too low"
INITCODE_TOO_LARGE = "max initcode size exceeded"
POOL_FULL = "txpool is full"
ACCOUNT_LIMIT = "account limit exceeded"

_hash = attrgetter("hash")
_consume: Callable[[Iterable[object]], None] = deque[object](maxlen=0).extend
"""Runs an iterator to its end at C speed (a map of deletions)."""

_Keys = tuple[int, int, int, int, float, int]
"""A pooled transaction's tip, fee cap, gas limit, arrival order, arrival time and size in a
block (``block_size``)."""
_KEYS = 6
"""Fields of a ``_Keys``."""


def block_size(raw: bytes) -> int:
    """Bytes a raw transaction takes in a block's list of them: an RLP string (its header:
    one byte under 56 bytes, else one more per byte of the length)."""
    size = len(raw)
    return size + 1 if size < 56 else size + 1 + (size.bit_length() + 7) // 8


def _arrival(keys: _Keys) -> tuple[float, int]:
    """When a transaction arrived, and its arrival order (expiry's order)."""
    return keys[4], keys[3]

_Entry = tuple[int, int, Transaction]
"""Eviction heap entry: effective tip at the heaps' base fee, minus arrival order, the tail."""


def _integers(rows: list[_Keys]) -> np.ndarray:
    """Pooled transactions' keys as a 64-bit array (a row each; the arrival time truncated),
    or where one does not fit (a fee no one could pay) as Python numbers: select() computes
    alike on both. Read flat (a third faster than ``np.array`` of the tuples)."""
    try:
        return np.fromiter(chain.from_iterable(rows), dtype=np.int64,
                           count=_KEYS * len(rows)).reshape(-1, _KEYS)
    except OverflowError:
        return np.array(rows, dtype=object)


class _Sender:
    """One sender's pooled transactions and where its pending run ends."""

    __slots__ = ("cost", "keys", "nonce", "pending_tail", "queued_tail", "ready", "top", "txs")

    def __init__(self, nonce: int) -> None:
        self.nonce = nonce
        """The sender's state nonce as the pool last learnt it."""
        self.txs: dict[int, Transaction] = {}
        """Pooled transactions by nonce, all at or above ``nonce``."""
        self.keys: dict[int, _Keys] = {}
        """Per nonce what select() orders by and expiry and eviction read: tip, fee cap, gas
        limit, arrival order, arrival time (kept together: reading a block's worth of
        transactions' own fields cost 6x more, and a pool-wide dict per field a delete each)."""
        self.ready = nonce
        """First nonce missing above ``nonce``: pending ones are ``nonce .. ready - 1``."""
        self.top = -1
        """Highest pooled nonce (the queued tail when above ``ready``)."""
        self.cost = 0
        """Sum of the pooled transactions' upfront costs."""
        self.pending_tail: Transaction | None = None
        """Pending tail last pushed on the eviction heap (not pushed twice)."""
        self.queued_tail: Transaction | None = None
        """Queued tail last pushed on the eviction heap."""

    @property
    def queued(self) -> int:
        """How many of its transactions wait behind a gap."""
        return len(self.txs) - (self.ready - self.nonce)


class Mempool:
    """Transactions accepted but not yet in a block; not thread-safe (the node serializes calls)."""

    def __init__(self, config: PoolConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._by_hash: dict[Hash32, Transaction] = {}
        self._senders: dict[Address, _Sender] = {}
        # Arrival order breaks tip ties in select(), so earlier senders go first.
        self._next_order = 0
        self._queued = 0
        # Queued transactions by arrival time, for expiry; entries of transactions promoted
        # or gone meanwhile are skipped when they come up.
        self._expiry: list[tuple[float, int, Transaction]] = []
        # Eviction candidates: each sender's pending tail and queued tail, cheapest first at
        # ``_heap_fee``. Built at the first eviction, rebuilt when the base fee moves; stale
        # entries (no longer a tail) are skipped when they come up.
        self._heap_fee: int | None = None
        self._pending_tails: list[_Entry] = []
        self._queued_tails: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    @property
    def queued_count(self) -> int:
        """How many pooled transactions wait behind a nonce gap."""
        return self._queued

    def get(self, tx_hash: Hash32) -> Transaction | None:
        """A pooled transaction by hash."""
        return self._by_hash.get(tx_hash)

    def is_queued(self, tx: Transaction) -> bool:
        """True when pooled ``tx`` waits behind a nonce gap of its sender."""
        return tx.nonce > self._senders[tx.sender].ready

    def all(self) -> list[Transaction]:
        """Every pooled transaction, oldest first (for persistence)."""
        return list(self._by_hash.values())

    def senders(self) -> list[Address]:
        """Every sender with pooled transactions."""
        return list(self._senders)

    def by_sender(self, address: Address | None = None) -> dict[Address, dict[int, Transaction]]:
        """Pooled transactions by sender and nonce (of ``address`` only, when given); a copy."""
        senders = self._senders
        if address is not None:
            return {address: dict(senders[address].txs)} if address in senders else {}
        return {sender: dict(state.txs) for sender, state in senders.items()}

    def pending_nonce(self, address: Address, state_nonce: int) -> int:
        """Next nonce for ``address``: the state nonce plus its contiguous run of pooled nonces."""
        sender = self._senders.get(address)
        if sender is None:
            return state_nonce
        if sender.nonce == state_nonce:
            return sender.ready
        nonce = state_nonce
        while nonce in sender.txs:
            nonce += 1
        return nonce

    def add(
        self, tx: Transaction, account: AccountState, base_fee: int, block_gas_limit: int,
        arrived: float | None = None,
    ) -> tuple[Transaction, ...]:
        """Validate ``tx`` against the sender's ``account`` and pool it.

        ``base_fee`` is the next block's; ``arrived`` when it first arrived (default: now).
        Returns the transactions it pushed out (the one it replaced, the one evicted to make
        room, those ``account``'s nonce shows included), so that the caller can forget them
        too. Raises TransactionRejected.
        """
        if tx.hash in self._by_hash:
            raise TransactionRejected(ALREADY_KNOWN)
        self._check_static(tx, base_fee, block_gas_limit)
        if tx.nonce < account.nonce:
            raise TransactionRejected(NONCE_TOO_LOW)
        if tx.nonce >= account.nonce + self._config.max_per_sender:
            raise TransactionRejected(NONCE_TOO_HIGH)
        sender = self._senders.get(tx.sender)
        stale: tuple[Transaction, ...] = ()
        if sender is not None and sender.nonce != account.nonce:
            # A nonce the pool has not seen yet (it follows blocks through prune()): catch up.
            stale = self.prune((tx.sender,), lambda _: account.nonce)
            sender = self._senders.get(tx.sender)
        replaced = None if sender is None else sender.txs.get(tx.nonce)
        # The sender must afford this transaction together with its other pooled ones.
        committed = 0 if sender is None else sender.cost
        if replaced is not None:
            committed -= replaced.upfront_cost
        if committed + tx.upfront_cost > account.balance:
            raise TransactionRejected(INSUFFICIENT_FUNDS)
        if replaced is not None:
            self._check_replacement(replaced, tx)
            self._replace(replaced, tx, arrived)
            return (*stale, replaced)
        queued = tx.nonce > (account.nonce if sender is None else sender.ready)
        if queued and (0 if sender is None else sender.queued) >= (
            self._config.max_queued_per_sender
        ):
            raise TransactionRejected(ACCOUNT_LIMIT)
        victim = None
        if len(self._by_hash) >= self._config.max_total or queued:
            victim = self._make_room(tx, queued, base_fee)
        if victim is not None:
            sender = self._senders.get(tx.sender)  # the victim may have been its last other one
        self._insert(tx, sender, account.nonce, arrived)
        return (*stale, victim) if victim is not None else stale

    def select(
        self, base_fee: int, gas_limit: int, max_count: int, max_bytes: int
    ) -> list[Transaction]:
        """Executable transactions for the next block, best effective tip first: at most
        ``max_count`` of them, using ``gas_limit`` gas and taking ``max_bytes`` bytes in the
        block (``block_size``) at most.

        Each sender's pending transactions come in nonce order from its state nonce; a
        sender whose next transaction's fee cap is below ``base_fee`` stops there. A
        transaction whose gas limit or size no longer fits ends its sender's run (its
        successors cannot go first), and smaller ones of other senders may still fill it.
        Among equal tips, every sender's first transaction goes before anyone's second
        (then arrival order): consecutive transactions of one sender depend on each other,
        and the executor runs independent neighbours in parallel.

        That is the greedy choice of a heap of each sender's next transaction, keyed by
        (-tip, depth, arrival); it is computed by one sort instead: a transaction that the
        heap would take right after its predecessor (it pays more) is keyed as that
        predecessor, and so follows it.
        """
        runs = [sender for sender in self._senders.values() if sender.ready > sender.nonce]
        # Every pending transaction, run after run, each run in nonce order.
        txs = [sender.txs[nonce] for sender in runs for nonce in range(sender.nonce, sender.ready)]
        if not txs:
            return []
        count = len(txs)
        fields = _integers([sender.keys[nonce] for sender in runs
                            for nonce in range(sender.nonce, sender.ready)])
        tips, fee_caps, gas, arrival, _, sizes = fields.T
        lengths = np.fromiter((sender.ready - sender.nonce for sender in runs), dtype=np.int64,
                              count=len(runs))
        run_of = np.repeat(np.arange(len(runs), dtype=np.int64), lengths)
        starts = np.cumsum(lengths) - lengths
        position = np.arange(count, dtype=np.int64)
        depth = position - starts[run_of]
        # Each one's tip as its rank among the tips, best first (fees of any size rank right).
        distinct, rank = np.unique(-np.minimum(tips, fee_caps - base_fee), return_inverse=True)
        rank = rank.astype(np.int64)
        # A fee cap below the base fee (a negative tip: tips are not) ends its sender's run.
        below = (rank >= np.searchsorted(distinct, 0, side="right")).astype(np.int64)
        failed = np.cumsum(below)
        alive = failed == (failed - below)[starts][run_of]
        # The key of a transaction the heap takes right after its predecessor (it pays more)
        # is its predecessor's: the last one up its run that paid the most so far.
        spread = run_of * len(distinct)
        best_so_far = np.maximum.accumulate(spread + rank) - spread
        keyed_by = np.maximum.accumulate(np.where(rank == best_so_far, position, 0))
        arrival = arrival.astype(np.int64)
        candidates = np.flatnonzero(alive)
        source = keyed_by[candidates]
        sequence = candidates[np.lexsort((depth[candidates], arrival[source], depth[source],
                                          rank[source]))]
        ordered = list(map(txs.__getitem__, sequence.tolist()))
        # The best ones up to the first that does not fit, at once; then each of the rest.
        gas_used = np.cumsum(gas[sequence[:max_count]].astype(np.int64))
        bytes_used = np.cumsum(sizes[sequence[:max_count]].astype(np.int64))
        fit = min(int(np.searchsorted(gas_used, gas_limit, side="right")),
                  int(np.searchsorted(bytes_used, max_bytes, side="right")))
        selected = ordered[:fit]
        if fit == len(ordered) or fit == max_count:
            return selected
        used, size = (int(gas_used[fit - 1]), int(bytes_used[fit - 1])) if fit else (0, 0)
        ended: set[Address] = set()
        for tx, tx_size in zip(ordered[fit:], sizes[sequence[fit:]].tolist()):
            if gas_limit - used < TX_GAS:  # full: every pooled transaction needs this much
                break
            if tx.sender in ended:
                continue
            if used + tx.gas_limit > gas_limit or size + tx_size > max_bytes:
                ended.add(tx.sender)
                continue
            selected.append(tx)
            used += tx.gas_limit
            size += tx_size
            if len(selected) == max_count:
                break
        return selected

    def remove(self, tx_hashes: Iterable[Hash32]) -> None:
        """Forget these transactions (found invalid); unknown hashes are ignored. Their
        sender's later transactions wait behind the gap (queued) until it is filled."""
        by_hash = self._by_hash
        # Usually none is pooled (a block's own were pruned): find those in one C pass.
        for tx_hash in by_hash.keys() & tx_hashes:
            self._drop(by_hash[tx_hash])

    def prune(
        self, senders: Iterable[Address], state_nonce: Callable[[Address], int],
        included: Collection[Hash32] = (),
    ) -> tuple[Transaction, ...]:
        """After a block (or an unwind): move ``senders`` (those whose nonce it may have
        changed) to their new state nonce. Drops their transactions below it, and returns
        those not in ``included`` (in no particular order); promotes queued ones that now
        follow it without a gap, demotes pending ones that no longer do. ``included``: the
        hashes of the block's transactions, all of them from ``senders`` (the pooled ones are
        forgotten by these, without reading a transaction)."""
        pooled, by_hash = self._senders, self._by_hash
        # One pass over a block's tens of thousands of hashes (each one a cache miss or two).
        pooled_before = len(by_hash)
        _consume(map(by_hash.pop, included, repeat(None)))
        known = pooled_before - len(by_hash)
        stale: list[Transaction] = []
        # A block changes tens of thousands of accounts, mostly not senders here: they are
        # passed over in one C pass.
        for address in pooled.keys() & senders:
            sender = pooled[address]
            nonce = state_nonce(address)
            if sender.nonce <= nonce <= sender.ready and nonce <= sender.top:
                # The usual case after a block: it took the first of the pending run (every
                # nonce below ``ready`` is pooled), whose rest, the queued ones and so the tails
                # stay as they are. Inline, in a plain loop: a block moves thousands of
                # senders by one or two nonces each, and calls and maps cost more than that.
                txs, keys, cost = sender.txs, sender.keys, 0
                for below in range(sender.nonce, nonce):
                    tx = txs.pop(below)
                    del keys[below]
                    cost += tx.upfront_cost
                    stale.append(tx)
                sender.cost -= cost
                sender.nonce = nonce
                continue
            if nonce <= sender.top:
                stale.extend(self._set_nonce(sender, nonce))
                continue
            # The usual case after a block: it included everything the sender had pooled.
            del pooled[address]
            self._queued -= len(sender.txs) - (sender.ready - sender.nonce)
            stale.extend(sender.txs.values())
        if len(stale) == known:  # the usual case: what went stale is what was included
            return ()
        included = included if isinstance(included, AbstractSet) else set(included)
        left = [tx for tx in stale if tx.hash not in included]  # replaced by the included
        _consume(map(by_hash.pop, map(_hash, left), repeat(None)))
        return tuple(left)

    def expire(self) -> tuple[Transaction, ...]:
        """Drop queued transactions older than the queued lifetime; returns them."""
        cutoff = self._clock.now() - self._config.queued_lifetime
        expired: list[Transaction] = []
        while self._expiry and self._expiry[0][0] <= cutoff:
            _, _, tx = heapq.heappop(self._expiry)
            if self._by_hash.get(tx.hash) is tx and self.is_queued(tx):
                self._drop(tx)
                expired.append(tx)
        # Entries of promoted or dropped transactions pile up: rebuild (O(n)) once they
        # outnumber the pool, so that each costs O(1) over time.
        if len(self._expiry) > 2 * len(self._by_hash) + 64:
            self._expiry = [(*_arrival(sender.keys[tx.nonce]), tx)
                            for sender in self._senders.values() if sender.queued
                            for tx in sender.txs.values() if tx.nonce > sender.ready]
            heapq.heapify(self._expiry)
        return tuple(expired)

    # -- checks -----------------------------------------------------------------------------

    def _check_static(self, tx: Transaction, base_fee: int, block_gas_limit: int) -> None:
        """Checks that need no account state."""
        if tx.to is None and len(tx.data) > MAX_INITCODE_SIZE:
            raise TransactionRejected(INITCODE_TOO_LARGE)
        if tx.gas_limit > block_gas_limit:
            raise TransactionRejected(GAS_LIMIT_EXCEEDED)
        if tx.gas_limit < intrinsic_gas(tx):
            raise TransactionRejected(INTRINSIC_GAS_TOO_LOW)
        if tx.max_priority_fee_per_gas < self._config.min_tip:
            raise TransactionRejected(UNDERPRICED)
        if tx.max_fee_per_gas < base_fee:
            raise TransactionRejected(FEE_CAP_TOO_LOW)

    def _check_replacement(self, old: Transaction, new: Transaction) -> None:
        """A replacement must raise both fee cap and tip strictly, and by the price bump."""
        factor = 100 + self._config.price_bump_percent
        if (
            new.max_fee_per_gas <= old.max_fee_per_gas
            or new.max_priority_fee_per_gas <= old.max_priority_fee_per_gas
            or new.max_fee_per_gas * 100 < old.max_fee_per_gas * factor
            or new.max_priority_fee_per_gas * 100 < old.max_priority_fee_per_gas * factor
        ):
            raise TransactionRejected(REPLACE_UNDERPRICED)

    # -- eviction ---------------------------------------------------------------------------

    def _make_room(self, tx: Transaction, queued: bool, base_fee: int) -> Transaction | None:
        """Evict what ``tx`` needs evicted to enter (None when there is room), or raise.

        A queued newcomer may only push out a queued transaction; a pending one takes any
        queued one first (whatever it pays: it cannot execute), else the cheapest pending
        tail. Either must pay more than its victim, except a pending one over a queued one.
        """
        config = self._config
        if len(self._by_hash) < config.max_total and not (
            queued and self._queued >= config.max_queued
        ):
            return None
        over_queued = queued or self._queued > 0
        victim = self._cheapest_tail(tx, over_queued, base_fee)
        if victim is None:
            raise TransactionRejected(POOL_FULL)
        if (queued or not over_queued) and (
            tx.effective_tip(base_fee) <= victim.effective_tip(base_fee)
        ):
            raise TransactionRejected(UNDERPRICED)
        self._drop(victim)
        return victim

    def _cheapest_tail(
        self, incoming: Transaction, queued: bool, base_fee: int
    ) -> Transaction | None:
        """The cheapest queued (or pending) tail of a sender's transactions, never a
        nonce-predecessor of ``incoming``; lowest tip first, then the newest."""
        if self._heap_fee != base_fee:
            self._build_heaps(base_fee)
        heap = self._queued_tails if queued else self._pending_tails
        kept: _Entry | None = None
        victim: Transaction | None = None
        while heap:
            tx = heap[0][2]
            if not self._is_tail(tx, queued):
                heapq.heappop(heap)
            elif tx.sender == incoming.sender and tx.nonce < incoming.nonce:
                kept = heapq.heappop(heap)  # only this sender's tail (or copies of it)
            else:
                victim = tx
                break
        if kept is not None:
            heapq.heappush(heap, kept)
        return victim

    def _is_tail(self, tx: Transaction, queued: bool) -> bool:
        """True when ``tx`` is still pooled and its sender's queued (or pending) tail."""
        if self._by_hash.get(tx.hash) is not tx:
            return False
        sender = self._senders[tx.sender]
        return tx.nonce == sender.top > sender.ready if queued else tx.nonce == sender.ready - 1

    def _build_heaps(self, base_fee: int) -> None:
        self._heap_fee = base_fee
        self._pending_tails, self._queued_tails = [], []
        for sender in self._senders.values():
            sender.pending_tail = sender.queued_tail = None
            self._push_tails(sender)
        heapq.heapify(self._pending_tails)
        heapq.heapify(self._queued_tails)

    def _push_tails(self, sender: _Sender) -> None:
        """Put ``sender``'s current tails on the eviction heaps (when they are built)."""
        if self._heap_fee is None:
            return
        if sender.ready > sender.nonce:
            tail = sender.txs[sender.ready - 1]
            if tail is not sender.pending_tail:
                sender.pending_tail = tail
                heapq.heappush(self._pending_tails, self._eviction_entry(tail))
        if sender.top > sender.ready:
            tail = sender.txs[sender.top]
            if tail is not sender.queued_tail:
                sender.queued_tail = tail
                heapq.heappush(self._queued_tails, self._eviction_entry(tail))
        # Too many stale entries: rebuild at the next eviction instead.
        if len(self._pending_tails) + len(self._queued_tails) > 4 * len(self._senders) + 64:
            self._heap_fee = None
            self._pending_tails, self._queued_tails = [], []

    def _eviction_entry(self, tx: Transaction) -> _Entry:
        """Lowest tip first; among equals, the newest goes first."""
        assert self._heap_fee is not None
        return tx.effective_tip(self._heap_fee), -_arrival(self._senders[tx.sender].keys[tx.nonce])[1], tx

    # -- bookkeeping ------------------------------------------------------------------------

    def _insert(
        self, tx: Transaction, sender: _Sender | None, state_nonce: int, arrived: float | None
    ) -> None:
        """Pool ``tx`` of ``sender`` (None: a new one, at ``state_nonce``)."""
        if sender is None:
            sender = self._senders[tx.sender] = _Sender(state_nonce)
        self._remember(sender, tx, arrived)
        sender.top = max(sender.top, tx.nonce)
        if tx.nonce == sender.ready:
            # Pending, and it may close a gap: the queued ones after it are promoted.
            ready = tx.nonce + 1
            while ready in sender.txs:
                ready += 1
            self._queued -= ready - tx.nonce - 1
            sender.ready = ready
        elif tx.nonce > sender.ready:
            self._queued += 1
            self._expire_later(tx)
        self._push_tails(sender)

    def _replace(self, old: Transaction, new: Transaction, arrived: float | None) -> None:
        """Put ``new`` in ``old``'s place (same sender and nonce): pending or queued alike."""
        sender = self._senders[old.sender]
        self._forget(sender, [old])
        self._remember(sender, new, arrived)
        if self.is_queued(new):
            self._expire_later(new)
        self._push_tails(sender)

    def _drop(self, tx: Transaction) -> None:
        """Forget ``tx``; a pending one's successors become queued."""
        sender = self._senders[tx.sender]
        self._forget(sender, [tx])
        if tx.nonce < sender.ready:
            for nonce in range(tx.nonce + 1, sender.ready):
                self._expire_later(sender.txs[nonce])
            self._queued += sender.ready - tx.nonce - 1
            sender.ready = tx.nonce
        else:
            self._queued -= 1
        if not sender.txs:
            del self._senders[tx.sender]
            return
        if tx.nonce == sender.top:
            sender.top = max(sender.txs)
        self._push_tails(sender)

    def _set_nonce(self, sender: _Sender, nonce: int) -> list[Transaction]:
        """Move ``sender`` to state nonce ``nonce``, at most its highest pooled nonce: drop
        (and return) what lies below it, then find its pending run again."""
        queued_before, ready_before = sender.queued, sender.ready
        stale = [sender.txs[n] for n in range(sender.nonce, nonce) if n in sender.txs]
        self._forget(sender, stale)
        sender.nonce = ready = nonce
        while ready in sender.txs:
            ready += 1
        sender.ready = ready
        self._queued += sender.queued - queued_before
        # Demoted (an unwind moved the nonce back): from now on they can expire.
        for n in range(ready + 1, ready_before):
            if n in sender.txs:
                self._expire_later(sender.txs[n])
        sender.top = max(sender.txs)
        self._push_tails(sender)
        return stale

    def _remember(self, sender: _Sender, tx: Transaction, arrived: float | None) -> None:
        self._by_hash[tx.hash] = tx
        sender.txs[tx.nonce] = tx
        sender.keys[tx.nonce] = (tx.max_priority_fee_per_gas, tx.max_fee_per_gas, tx.gas_limit,
                                 self._next_order, self._clock.now() if arrived is None else arrived,
                                 block_size(tx.raw))
        self._next_order += 1
        sender.cost += tx.upfront_cost

    def _forget(self, sender: _Sender, txs: list[Transaction]) -> None:
        """Forget ``txs`` of ``sender`` (its run below a new nonce, after a block: a few each,
        for which a plain loop beats maps run through ``_consume``)."""
        by_hash, pooled, keys = self._by_hash, sender.txs, sender.keys
        cost = 0
        for tx in txs:
            by_hash.pop(tx.hash, None)  # a block's included ones may be gone already (``prune``)
            del pooled[tx.nonce], keys[tx.nonce]
            cost += tx.upfront_cost
        sender.cost -= cost

    def _expire_later(self, tx: Transaction) -> None:
        heapq.heappush(self._expiry, (*_arrival(self._senders[tx.sender].keys[tx.nonce]), tx))
