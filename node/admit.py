"""The admit stage: transactions from wallets and peers into the pool, durably.

A batch of raw transactions is decoded and its senders recovered together (``decode``:
C on native threads in production), checked against an in-memory view of the head state
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
from collections.abc import Callable, Collection, Iterable, Sequence

from executor_gpu.api import StateReader
from executor_gpu.types import Account, AccountChange, StateDiff
from node.db import schema
from node.db.api import KV
from node.db.chain import ChainStore
from node.db.state import StateDB, StateView
from node.journal import GroupCommitJournal, Write
from primitives import rlp
from primitives.blocks import Header
from primitives.clock import Clock
from primitives.errors import Halt, InvalidTransaction, L2NodeError, TransactionRejected
from primitives.transactions import (
    BatchDecode,
    Transaction,
    decode_transaction,
    decode_transactions,
)
from primitives.types import Address, Hash32
from sequencer.fees import next_base_fee
from sequencer.mempool import Mempool
from sequencer.types import AccountState, PoolConfig

log = logging.getLogger("l2node")


NO_ACCOUNT = AccountState(0, 0)
"""An account the state does not have (or a block deleted)."""

HEAD_ACCOUNTS_LIMIT = 1_000_000
"""Most senders whose head-state nonce and balance admission keeps in memory."""


POOL_RECORD_VERSION = b"\x01"
"""First byte of a pool record in the binary layout; RLP records (before it) start with a
list prefix (0xc0 or above), so both are told apart and old ones still read."""
_STAMP_AT = 1 + 20
_RAW_AT = _STAMP_AT + 8


def arrival_stamp(arrived: float) -> bytes:
    """The arrival time field of a pool record: milliseconds, 8 bytes big-endian (a batch
    shares one)."""
    return int(arrived * 1000).to_bytes(8, "big")


def encode_stored_tx(tx: Transaction, stamp: bytes) -> bytes:
    """Pool record: version byte, the sender recovered at acceptance, the arrival ``stamp``
    (a queued transaction's lifetime counts from it, across restarts too) and the raw bytes.
    A fixed layout, not RLP: admission writes one per transaction."""
    return b"".join((POOL_RECORD_VERSION, tx.sender, stamp, tx.raw))


def decode_stored_tx(data: bytes) -> tuple[Transaction, float | None]:
    """Inverse of ``encode_stored_tx`` (also of the RLP records written before it), without
    signature recovery; the arrival time is None in records written before it was stored."""
    if data[:1] == POOL_RECORD_VERSION and len(data) > _RAW_AT:
        raw, sender = data[_RAW_AT:], data[1:_STAMP_AT]
        arrived: float | None = int.from_bytes(data[_STAMP_AT:_RAW_AT], "big") / 1000
    else:
        raw, sender, arrived = _decode_rlp_record(data)
    try:
        return decode_transaction(raw, sender=Address(sender)), arrived
    except InvalidTransaction as exc:
        raise Halt(f"corrupt pool record in the database: {exc}") from None


def _decode_rlp_record(data: bytes) -> tuple[bytes, bytes, float | None]:
    """Raw bytes, sender and arrival time (None when absent) of an RLP pool record."""
    try:
        fields = rlp.decode(data)
    except rlp.DecodingError:
        fields = None
    if not isinstance(fields, list) or len(fields) not in (2, 3) or not all(
        isinstance(field, bytes) for field in fields
    ):
        raise Halt("corrupt pool record in the database")
    raw, sender, *arrival = (field for field in fields if isinstance(field, bytes))
    return raw, sender, int.from_bytes(arrival[0], "big") / 1000 if arrival else None


def _head_state(account: Account | AccountChange | None) -> AccountState:
    """What admission keeps of an account at the head (None: the state has none)."""
    return NO_ACCOUNT if account is None else AccountState(account.nonce, account.balance)


def forgotten(txs: Iterable[Transaction]) -> list[Write]:
    """Journal deletes of these transactions' pool records."""
    return [(schema.pool_key(tx.hash), None) for tx in txs]


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
        clock: Clock,
        decode: BatchDecode = decode_transactions,
    ) -> None:
        self._kv = kv
        self._chain = chain
        self._state = state
        self._chain_id = chain_id
        self._gas_limit = gas_limit
        self._decode = decode
        self._clock = clock
        self.pool = Mempool(pool_config, clock)
        self.journal = GroupCommitJournal(kv)
        self._lock = threading.Lock()
        self._head: Header | None = None
        self._head_view: StateView | None = None
        """The state checks read, opened once a head (StateDB.at reads the flat marker)."""
        self._writing: tuple[Header, Callable[[], object]] | None = None
        """A block being written, which the pool already moved to, and the wait for its write
        (``advance``); the head moves to it once it is on disk (``written``)."""
        self._pending: StateReader | None = None
        """The state after the block being written, when its reads need not wait for it."""
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
        """Base fee of the block after the head, or after the block being written (EIP-1559)."""
        head = self._latest()
        return next_base_fee(head.gas_used, head.gas_limit, head.base_fee_per_gas)

    def _latest(self) -> Header:
        """The block the pool is at: the one being written, else the head."""
        writing = self._writing
        return self.head if writing is None else writing[0]

    def await_write(self) -> None:
        """Return once the block being written, if any, is on disk (raises as its write
        failed): its transactions left the pool as the write began."""
        writing = self._writing
        if writing is not None:
            writing[1]()

    def pending_nonce(self, address: Address) -> int:
        """The nonce a sender's next transaction needs: head state plus its pooled run."""
        with self._lock:
            return self.pool.pending_nonce(address, self._account(address).nonce)

    def content(
        self, address: Address | None = None
    ) -> tuple[list[Transaction], list[Transaction]]:
        """Pooled transactions (of ``address`` only, when given), by sender and nonce: those
        executable now (a contiguous run from the sender's nonce) and those queued behind a
        gap."""
        pending: list[Transaction] = []
        queued: list[Transaction] = []
        with self._lock:
            for sender, chain in sorted(self.pool.by_sender(address).items()):
                next_nonce = self._account(sender).nonce
                for nonce in sorted(chain):
                    if nonce == next_nonce:
                        pending.append(chain[nonce])
                        next_nonce += 1
                    else:
                        queued.append(chain[nonce])
        return pending, queued

    def pool_counts(self) -> tuple[int, int]:
        """(pending, queued) pooled transactions (for metrics)."""
        with self._lock:
            queued = self.pool.queued_count
            return len(self.pool) - queued, queued

    def _account(self, address: Address) -> AccountState:
        """Nonce and balance of ``address`` at the head; the caller holds the lock."""
        known = self._accounts.get(address)
        if known is not None:
            return known
        known = _head_state(self._view().get_account(address))
        if len(self._accounts) >= HEAD_ACCOUNTS_LIMIT:
            self._accounts.clear()
        self._accounts[address] = known
        return known

    def _view(self) -> StateReader:
        """The state the pool's checks read: the block being written's (once it is on disk,
        waited for here, unless ``advance`` gave a view of it), else the head's."""
        if self._pending is not None:
            return self._pending
        view, latest = self._head_view, self._latest()
        if view is None or view.state_root != latest.state_root:
            if self._writing is not None:
                self._writing[1]()
            view = self._head_view = self._state.at(latest.state_root)
        return view

    def _read_new_senders(self, txs: Sequence[Transaction | InvalidTransaction]) -> None:
        """Head accounts of the senders not known yet, read in one batch before the lock is
        taken (one read each under it held up the block path's selection and every other
        batch); kept only if no block moved the head meanwhile."""
        accounts = self._accounts
        senders = list({tx.sender for tx in txs
                        if isinstance(tx, Transaction) and tx.sender not in accounts})
        if not senders:
            return
        head = self.head
        view = self._head_view  # shared with the reads under the lock (its state is immutable)
        if self._writing is not None:
            return  # a block is being written: read under the lock, after it
        if view is None or view.state_root != head.state_root:
            view = self._head_view = self._state.at(head.state_root)
        read = view.get_accounts_flat(senders)
        if read is None:
            return
        with self._lock:
            if self._head is not head or self._writing is not None:
                return  # its block may have changed them: read under the lock, as before
            if len(accounts) + len(senders) > HEAD_ACCOUNTS_LIMIT:
                accounts.clear()
            for address, account in zip(senders, read, strict=True):
                accounts.setdefault(address, _head_state(account))

    def _nonce(self, address: Address) -> int:
        known = self._accounts.get(address)
        return (known or self._account(address)).nonce

    # -- the step ---------------------------------------------------------------------------

    def submit(self, raws: Sequence[bytes]) -> list[Transaction | L2NodeError]:
        """Validate and pool transactions in order; each one's transaction or why it was
        refused. The accepted ones are written in one group commit, durable before this
        returns (shared with concurrent callers: one synced write for all of them)."""
        return self.add(self.check(raws))

    def check(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        """What no state can change: each transaction decoded with its sender (one batch)
        and signed for this chain, or why it can never be valid here."""
        chain_id = self._chain_id
        return [
            tx if isinstance(tx, InvalidTransaction) or tx.chain_id == chain_id
            else self._replay_protected(tx)
            for tx in self._decode(raws)
        ]

    def add(
        self, checked: Sequence[Transaction | InvalidTransaction]
    ) -> list[Transaction | L2NodeError]:
        """Pool the ``check``ed transactions against the head and the pool, as ``submit``."""
        outcomes: list[Transaction | L2NodeError] = list(checked)
        writes: list[Write] = []
        self._read_new_senders(checked)
        with self._lock:
            base_fee = self.next_base_fee()
            now = self._clock.now()
            stamp = arrival_stamp(now)
            writes.extend(forgotten(self.pool.expire()))
            pool, accounts, gas_limit = self.pool, self._accounts, self._gas_limit
            for index, tx in enumerate(outcomes):
                if isinstance(tx, L2NodeError):
                    continue
                try:
                    dropped = pool.add(tx, accounts.get(tx.sender) or self._account(tx.sender),
                                       base_fee, gas_limit, now)
                except L2NodeError as exc:
                    outcomes[index] = exc
                    continue
                writes.append((schema.pool_key(tx.hash), encode_stored_tx(tx, stamp)))
                if dropped:
                    writes.extend(forgotten(dropped))
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
        """Pool the journalled transactions again (at start) under the pool's rules,
        forgetting those no longer valid at the head and queued ones past their lifetime."""
        base_fee = self.next_base_fee()
        now = self._clock.now()
        forget: list[Write] = []
        stored = [decode_stored_tx(value) for _key, value in self._kv.iterate(schema.POOL_PREFIX)]
        # Each sender's run in nonce order, so that pending ones are never counted as queued
        # (the journal's key order is the hashes').
        stored.sort(key=lambda record: (record[0].sender, record[0].nonce))
        with self._lock:
            for tx, arrived in stored:
                try:
                    dropped = self.pool.add(tx, self._account(tx.sender), base_fee,
                                            self._gas_limit, now if arrived is None else arrived)
                except TransactionRejected:
                    dropped = (tx,)
                forget.extend(forgotten(dropped))
            forget.extend(forgotten(self.pool.expire()))
        self.journal.wait(self.journal.append(forget))
        if len(self.pool):
            log.info("reloaded %d pooled transactions", len(self.pool))

    # -- for the build stage ----------------------------------------------------------------

    def select(
        self, base_fee: int, gas_limit: int, max_count: int, max_bytes: int
    ) -> list[Transaction]:
        """The next block's transactions (see Mempool.select), at the head's nonces."""
        with self._lock:
            return self.pool.select(base_fee, gas_limit, max_count, max_bytes)

    def pooled(self, tx_hashes: Sequence[Hash32]) -> list[Transaction | None]:
        """The pool's decoded copies of these transactions, where it has them."""
        with self._lock:
            return [self.pool.get(tx_hash) for tx_hash in tx_hashes]

    def decode(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        """Decode and recover, in one batch, transactions the pool does not have."""
        return self._decode(raws)

    # -- after a commit, and unwind ---------------------------------------------------------

    def advance(
        self, head: Header, diff: StateDiff, included: Collection[Hash32],
        dropped: Iterable[Hash32] = (), writing: Callable[[], object] | None = None,
        pending: StateReader | None = None,
    ) -> None:
        """Move the pool and the accounts it checks to block ``head``, whose transactions are
        ``included``, and the head with them; ``dropped``: pooled transactions its proposer
        found invalid. Or,
        while ``head`` is being written (``writing`` waits for that, raising if the write
        failed), move the pool at once and the head only with ``written``, once it is on disk:
        the pool's work runs beside the write. Meanwhile admission checks against ``head``'s
        state: ``pending`` when given (``head`` then only tells the gas and fees of the block,
        whose state root may not be known yet), else reads of what the block did not tell
        wait for its write."""
        with self._lock:
            if writing is None:
                self._head = head
            else:
                self._writing = (head, writing)
            self._head_view, self._pending = None, pending
            accounts, changes = self._accounts, diff.accounts
            known = list(accounts.keys() & changes.keys())
            accounts.update(zip(known, map(AccountState, *diff.nonces_and_balances(known))))
            # Only senders the block touched can have pooled transactions below their nonce
            # (the included ones) or queued ones it promotes; then the rejected ones go.
            # Key views: their intersection walks the smaller one (the pool's senders), 6x faster.
            left = self.pool.prune(changes.keys(), self._nonce, included)
            self.pool.remove(dropped)
            # The block's own batch deleted the records of ``included`` and ``dropped``. A
            # crash before the others' deletes are written is harmless: reloading drops them.
            self.journal.append([*forgotten(left), *forgotten(self.pool.expire())])

    def written(self, head: Header) -> None:
        """Block ``head``, advanced to while it was being written, is on disk: the head."""
        with self._lock:
            if self._writing is None or self._writing[0].number != head.number:
                raise Halt(f"block {head.number} was not being written")
            self._head, self._writing, self._pending = head, None, None

    def reset(self) -> None:
        """The head moved back (an unwind): read it and the accounts again, and move every
        pooled sender to its nonce there (pending ones above a new gap become queued)."""
        with self._lock:
            self._head = None
            self._head_view = None
            self._writing = self._pending = None
            self._accounts.clear()
            stale = self.pool.prune(self.pool.senders(), self._nonce)
            self.journal.append(forgotten(stale))
