"""The admit stage: transactions from wallets and peers into the pool, durably.

A batch of raw transactions is decoded and its senders recovered together (``recover``:
native threads in production), checked against an in-memory view of the head state
(nonce and balance of each sender, read once from the state and then moved by every
committed block's diff) and the pool, pooled, and journalled with group commit: the
batch is durable when ``submit`` returns. The head header, the head view and the pool
change together under one lock, so RPC reads (``pending_nonce``) never see a block's
transactions gone from the pool but not yet in the head state.

Step: ``submit`` (or ``check`` then ``add``: gossip checks a batch before pooling it). After a block commits: ``advance``. Unwind (the head moved back):
``reset``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from executor_gpu.types import StateDiff
from node.db import schema
from node.db.api import KV
from node.db.chain import ChainStore
from node.db.state import StateDB
from node.journal import GroupCommitJournal, Write
from primitives import rlp
from primitives.blocks import Header
from primitives.crypto import BatchRecover
from primitives.errors import Halt, InvalidTransaction, L2NodeError, TransactionRejected
from primitives.transactions import Transaction, decode_transaction, decode_transactions
from primitives.types import Address, Hash32
from sequencer.fees import next_base_fee
from sequencer.mempool import Mempool
from sequencer.types import AccountState, PoolConfig

log = logging.getLogger("l2node")

HEAD_ACCOUNTS_LIMIT = 1_000_000
"""Most senders whose head-state nonce and balance admission keeps in memory."""


def encode_stored_tx(tx: Transaction) -> bytes:
    """Pool record: raw bytes plus the sender recovered at acceptance."""
    return rlp.encode([tx.raw, tx.sender])


def decode_stored_tx(data: bytes) -> Transaction:
    """Inverse of ``encode_stored_tx``, without signature recovery."""
    raw, sender = rlp.decode(data)
    if not isinstance(raw, bytes) or not isinstance(sender, bytes):
        raise Halt("corrupt pool record in the database")
    return decode_transaction(raw, sender=Address(sender))


class Admission:
    """The pool, its journal and the head view it checks transactions against."""

    def __init__(
        self,
        kv: KV,
        chain: ChainStore,
        state: StateDB,
        pool_config: PoolConfig,
        chain_id: int,
        gas_limit: int,
        recover: BatchRecover,
    ) -> None:
        self._kv = kv
        self._chain = chain
        self._state = state
        self._chain_id = chain_id
        self._gas_limit = gas_limit
        self._recover = recover
        self.pool = Mempool(pool_config)
        self.journal = GroupCommitJournal(kv)
        self._lock = threading.Lock()
        self._head: Header | None = None
        self._accounts: dict[Address, AccountState] = {}

    # -- the head ---------------------------------------------------------------------------

    @property
    def head(self) -> Header:
        """The latest block's header (read from the database once, then moved by ``advance``)."""
        head = self._head
        if head is None:
            head = self._head = self._chain.require_head()
        return head

    def next_base_fee(self) -> int:
        """Base fee of the block after the head (EIP-1559)."""
        head = self.head
        return next_base_fee(head.gas_used, head.gas_limit, head.base_fee_per_gas)

    def pending_nonce(self, address: Address) -> int:
        """The nonce a sender's next transaction needs: head state plus its pooled run."""
        with self._lock:
            return self.pool.pending_nonce(address, self._account(address).nonce)

    def _account(self, address: Address) -> AccountState:
        """Nonce and balance of ``address`` at the head; the caller holds the lock."""
        known = self._accounts.get(address)
        if known is not None:
            return known
        account = self._state.at(self.head.state_root).get_account(address)
        known = AccountState(0, 0) if account is None else AccountState(account.nonce,
                                                                         account.balance)
        if len(self._accounts) >= HEAD_ACCOUNTS_LIMIT:
            self._accounts.clear()
        self._accounts[address] = known
        return known

    def _nonce(self, address: Address) -> int:
        return self._account(address).nonce

    # -- the step ---------------------------------------------------------------------------

    def submit(self, raws: Sequence[bytes]) -> list[Transaction | L2NodeError]:
        """Validate and pool transactions in order; each one's transaction or why it was
        refused. The accepted ones are written in one group commit, durable before this
        returns (shared with concurrent callers: one synced write for all of them)."""
        return self.add(self.check(raws))

    def check(
        self, raws: Sequence[bytes], stop_at_invalid: bool = False
    ) -> list[Transaction | InvalidTransaction]:
        """What no state can change: each transaction decoded with its sender (one batch
        recovery) and signed for this chain, or why it can never be valid here.
        ``stop_at_invalid``: as decode_transactions (only ``[why]`` when one is found)."""
        return [
            tx if isinstance(tx, InvalidTransaction) else self._replay_protected(tx)
            for tx in decode_transactions(raws, self._recover, stop_at_invalid=stop_at_invalid)
        ]

    def add(
        self, checked: Sequence[Transaction | InvalidTransaction]
    ) -> list[Transaction | L2NodeError]:
        """Pool the ``check``ed transactions against the head and the pool, as ``submit``."""
        outcomes: list[Transaction | L2NodeError] = list(checked)
        writes: list[Write] = []
        with self._lock:
            base_fee = self.next_base_fee()
            for index, tx in enumerate(outcomes):
                if isinstance(tx, L2NodeError):
                    continue
                # An included transaction needs no lookup: its nonce is below the head's.
                try:
                    dropped = self.pool.add(tx, self._account(tx.sender), base_fee,
                                            self._gas_limit)
                except L2NodeError as exc:
                    outcomes[index] = exc
                    continue
                writes.append((schema.pool_key(tx.hash), encode_stored_tx(tx)))
                writes.extend((schema.pool_key(old.hash), None) for old in dropped)
            # Queued under the lock: the journal's order is the pool's.
            ticket = self.journal.append(writes)
        self.journal.wait(ticket)
        return outcomes

    def unpayable(self, txs: Sequence[Transaction]) -> int:
        """How many of ``txs`` their sender could not pay for at the head (balance below the
        gas limit times the fee cap, plus the value), whatever the pool's rules."""
        with self._lock:
            return sum(tx.upfront_cost > self._account(tx.sender).balance for tx in txs)

    def _replay_protected(self, tx: Transaction) -> Transaction | InvalidTransaction:
        """``tx`` when it is signed for this chain, else why not."""
        if tx.chain_id is None:
            return InvalidTransaction("only replay-protected (EIP-155) transactions are allowed")
        if tx.chain_id != self._chain_id:
            return InvalidTransaction(
                f"invalid chain id: got {tx.chain_id}, this chain is {self._chain_id}"
            )
        return tx

    def reload(self) -> None:
        """Pool the journalled transactions again (at start), forgetting those no longer
        valid at the head."""
        base_fee = self.next_base_fee()
        forget: list[Write] = []
        with self._lock:
            for _key, value in self._kv.iterate(schema.POOL_PREFIX):
                tx = decode_stored_tx(value)
                try:
                    dropped = self.pool.add(tx, self._account(tx.sender), base_fee,
                                            self._gas_limit)
                except TransactionRejected:
                    dropped = (tx,)
                forget.extend((schema.pool_key(old.hash), None) for old in dropped)
        self.journal.wait(self.journal.append(forget))
        if len(self.pool):
            log.info("reloaded %d pooled transactions", len(self.pool))

    # -- for the build stage ----------------------------------------------------------------

    def select(self, base_fee: int, gas_limit: int, max_count: int) -> list[Transaction]:
        """The next block's transactions (see Mempool.select), at the head's nonces."""
        with self._lock:
            return self.pool.select(self._nonce, base_fee, gas_limit, max_count)

    def pooled(self, tx_hashes: Sequence[Hash32]) -> list[Transaction | None]:
        """The pool's decoded copies of these transactions, where it has them."""
        with self._lock:
            return [self.pool.get(tx_hash) for tx_hash in tx_hashes]

    def decode(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        """Decode and recover, in one batch, transactions the pool does not have."""
        return decode_transactions(raws, self._recover)

    # -- after a commit, and unwind ---------------------------------------------------------

    def advance(self, head: Header, diff: StateDiff, done: Iterable[Hash32]) -> None:
        """Block ``head`` is on disk: move the head, its accounts and the pool together."""
        with self._lock:
            self._head = head
            for address, change in diff.accounts.items():
                if address in self._accounts:
                    self._accounts[address] = (
                        AccountState(0, 0) if change is None
                        else AccountState(change.nonce, change.balance)
                    )
            self.pool.remove(done)
            # Only senders the block touched can have pooled transactions below their nonce.
            stale = self.pool.prune(diff.accounts, self._nonce)
            # A crash before these deletes are written is harmless: reloading drops them again.
            self.journal.append((schema.pool_key(tx.hash), None) for tx in stale)

    def reset(self) -> None:
        """The head moved back (an unwind): read it and the accounts again."""
        with self._lock:
            self._head = None
            self._accounts.clear()
