"""The mempool: pending transactions by sender and nonce, ordered for blocks by effective tip.

Rejections raise TransactionRejected with go-ethereum's wording, which wallets match on.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from primitives.errors import TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address, Hash32
from sequencer.fees import MAX_INITCODE_SIZE, intrinsic_gas
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


class Mempool:
    """Transactions accepted but not yet in a block; not thread-safe (the node serializes calls)."""

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._by_hash: dict[Hash32, Transaction] = {}
        self._by_sender: dict[Address, dict[int, Transaction]] = {}
        # Arrival order breaks tip ties in select(), so earlier senders go first.
        self._arrival: dict[Hash32, int] = {}
        self._next_arrival = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: Hash32) -> Transaction | None:
        """A pooled transaction by hash."""
        return self._by_hash.get(tx_hash)

    def all(self) -> list[Transaction]:
        """Every pooled transaction, oldest first (for persistence)."""
        return list(self._by_hash.values())

    def pending_nonce(self, address: Address, state_nonce: int) -> int:
        """Next nonce for ``address``: the state nonce plus its contiguous run of pooled nonces."""
        chain = self._by_sender.get(address, {})
        nonce = state_nonce
        while nonce in chain:
            nonce += 1
        return nonce

    def pending_count(self, state_nonce: Callable[[Address], int]) -> int:
        """Pooled transactions executable in order from their senders' state nonces (the
        others wait behind a nonce gap: queued)."""
        count = 0
        for sender in self._by_sender:
            nonce = state_nonce(sender)
            count += self.pending_nonce(sender, nonce) - nonce
        return count

    def add(
        self, tx: Transaction, account: AccountState, base_fee: int, block_gas_limit: int
    ) -> tuple[Transaction, ...]:
        """Validate ``tx`` against the sender's ``account`` and pool it.

        ``base_fee`` is the next block's. Returns the transactions it pushed out (the one it
        replaced, or the one evicted to make room), so that the caller can forget them too.
        Raises TransactionRejected.
        """
        if tx.hash in self._by_hash:
            raise TransactionRejected(ALREADY_KNOWN)
        self._check_static(tx, base_fee, block_gas_limit)
        if tx.nonce < account.nonce:
            raise TransactionRejected(NONCE_TOO_LOW)
        if tx.nonce >= account.nonce + self._config.max_per_sender:
            raise TransactionRejected(NONCE_TOO_HIGH)
        chain = self._by_sender.get(tx.sender, {})
        replaced = chain.get(tx.nonce)
        # The sender must afford this transaction together with its other pooled ones.
        committed = sum(
            other.upfront_cost
            for nonce, other in chain.items()
            if nonce >= account.nonce and nonce != tx.nonce
        )
        if committed + tx.upfront_cost > account.balance:
            raise TransactionRejected(INSUFFICIENT_FUNDS)
        if replaced is not None:
            self._check_replacement(replaced, tx)
            self._drop(replaced)
            self._insert(tx)
            return (replaced,)
        if len(self._by_hash) < self._config.max_total:
            self._insert(tx)
            return ()
        victim = self._cheapest_evictable(tx, base_fee)
        if victim is None:
            raise TransactionRejected(POOL_FULL)
        if tx.effective_tip(base_fee) <= victim.effective_tip(base_fee):
            raise TransactionRejected(UNDERPRICED)
        self._drop(victim)
        self._insert(tx)
        return (victim,)

    def select(
        self,
        state_nonce: Callable[[Address], int],
        base_fee: int,
        gas_limit: int,
        max_count: int,
    ) -> list[Transaction]:
        """Executable transactions for the next block, best effective tip first.

        Each sender's transactions come in nonce order from its state nonce, without gaps;
        a sender whose next transaction's fee cap is below ``base_fee`` stops there. A
        transaction whose gas limit no longer fits ends its sender's run (its successors
        cannot go first), and smaller ones of other senders may still fill the block.
        Among equal tips, every sender's first transaction goes before anyone's second
        (then arrival order): consecutive transactions of one sender depend on each other,
        and the executor runs independent neighbours in parallel.
        """
        heads: list[tuple[int, int, int, Transaction]] = []
        for sender, chain in self._by_sender.items():
            self._push_head(heads, chain.get(state_nonce(sender)), base_fee, 0)
        selected: list[Transaction] = []
        gas = 0
        while heads and len(selected) < max_count:
            _, depth, _, tx = heapq.heappop(heads)
            if gas + tx.gas_limit > gas_limit:
                continue
            selected.append(tx)
            gas += tx.gas_limit
            self._push_head(heads, self._by_sender[tx.sender].get(tx.nonce + 1), base_fee,
                            depth + 1)
        return selected

    def remove(self, tx_hashes: Iterable[Hash32]) -> None:
        """Forget these transactions (included, or found invalid); unknown hashes are ignored."""
        for tx_hash in tx_hashes:
            tx = self._by_hash.get(tx_hash)
            if tx is not None:
                self._drop(tx)

    def prune(
        self, senders: Iterable[Address], state_nonce: Callable[[Address], int]
    ) -> tuple[Transaction, ...]:
        """After a block: drop the transactions of ``senders`` (those whose nonce it may have
        moved) below their new state nonce."""
        stale: list[Transaction] = []
        for sender in senders:
            chain = self._by_sender.get(sender)
            if chain:
                first_live = state_nonce(sender)
                stale.extend(tx for nonce, tx in chain.items() if nonce < first_live)
        for tx in stale:
            self._drop(tx)
        return tuple(stale)

    def _check_static(self, tx: Transaction, base_fee: int, block_gas_limit: int) -> None:
        """Checks that need no account state."""
        if tx.is_create and len(tx.data) > MAX_INITCODE_SIZE:
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

    def _cheapest_evictable(self, incoming: Transaction, base_fee: int) -> Transaction | None:
        """Lowest-tip tail of a sender's chain, never a nonce-predecessor of ``incoming``."""
        cheapest: Transaction | None = None
        for sender, chain in self._by_sender.items():
            tail = chain[max(chain)]
            if sender == incoming.sender and tail.nonce < incoming.nonce:
                continue
            if cheapest is None or self._eviction_key(tail, base_fee) < self._eviction_key(
                cheapest, base_fee
            ):
                cheapest = tail
        return cheapest

    def _eviction_key(self, tx: Transaction, base_fee: int) -> tuple[int, int]:
        """Lowest tip first; among equals, the newest goes first."""
        return tx.effective_tip(base_fee), -self._arrival[tx.hash]

    def _push_head(
        self, heads: list[tuple[int, int, int, Transaction]], tx: Transaction | None,
        base_fee: int, depth: int,
    ) -> None:
        if tx is not None and tx.max_fee_per_gas >= base_fee:
            heapq.heappush(heads, (-tx.effective_tip(base_fee), depth, self._arrival[tx.hash], tx))

    def _insert(self, tx: Transaction) -> None:
        self._by_hash[tx.hash] = tx
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx
        self._arrival[tx.hash] = self._next_arrival
        self._next_arrival += 1

    def _drop(self, tx: Transaction) -> None:
        del self._by_hash[tx.hash]
        del self._arrival[tx.hash]
        chain = self._by_sender[tx.sender]
        del chain[tx.nonce]
        if not chain:
            del self._by_sender[tx.sender]
