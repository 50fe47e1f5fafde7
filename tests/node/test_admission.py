"""Admission: group commit of the pool journal, batch submission, the in-memory head view."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pytest

from executor_gpu.types import BatchResult, RejectedTx
from node.admit import arrival_stamp, decode_stored_tx, encode_stored_tx
from node.db import schema
from node.db.memory import MemoryKV, OverlayBatch
from node.db.state import StateView
from node.journal import GroupCommitJournal
from primitives import rlp
from primitives.clock import ManualClock
from primitives.errors import Halt, InvalidTransaction, TransactionRejected
from primitives.transactions import Transaction, decode_transaction
from primitives.types import Address
from sequencer.types import PoolConfig
from tests.node.helpers import GENESIS_TIME, USERS, make_node, transfer


class CountingKV(MemoryKV):
    """MemoryKV that counts the write batches committed to it, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0
        self.fail = False
        self.in_commit = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def write_batch(self) -> OverlayBatch:
        batch = super().write_batch()
        seal = batch.seal

        def sealed() -> Callable[[], None]:
            write = seal()

            def counted() -> None:
                if self.fail:
                    raise OSError("disk full")
                self.in_commit.set()
                self.release.wait(5)
                self.commits += 1
                write()

            return counted

        batch.seal = sealed  # type: ignore[method-assign]
        return batch


def test_journal_writes_in_order_and_waits_for_its_ticket() -> None:
    kv = CountingKV()
    journal = GroupCommitJournal(kv)
    first = journal.append([(b"a", b"1"), (b"b", b"1")])
    second = journal.append([(b"a", None), (b"c", b"2")])
    journal.wait(first)  # one write takes both groups: everything queued so far
    assert kv.commits == 1
    journal.wait(second)
    assert kv.commits == 1
    assert [kv.get(k) for k in (b"a", b"b", b"c")] == [None, b"1", b"2"]


def test_journal_group_keeps_each_keys_last_write() -> None:
    kv = CountingKV()
    kv.put(b"gone", b"0")
    journal = GroupCommitJournal(kv)
    journal.append([(b"back", b"1"), (b"gone", None), (b"twice", b"1")])
    journal.append([(b"back", None), (b"twice", b"2"), (b"back", b"3")])
    journal.wait(journal.append([]))
    assert kv.commits == 1
    assert [kv.get(k) for k in (b"back", b"gone", b"twice")] == [b"3", None, b"2"]


def test_journal_groups_writers_that_queue_while_one_is_writing() -> None:
    kv = CountingKV()
    journal = GroupCommitJournal(kv)
    kv.release.clear()  # the first write blocks until released
    leader = threading.Thread(target=lambda: journal.wait(journal.append([(b"k0", b"v")])))
    leader.start()
    assert kv.in_commit.wait(5)
    followers = [
        threading.Thread(target=lambda i=i: journal.wait(journal.append([(b"k%d" % i, b"v")])))
        for i in range(1, 9)
    ]
    for thread in followers:
        thread.start()
    kv.release.set()
    for thread in (leader, *followers):
        thread.join(5)
    assert all(kv.get(b"k%d" % i) == b"v" for i in range(9))
    assert kv.commits == 2  # the leader's, then one for all eight that queued behind it


def test_journal_that_cannot_write_halts_every_waiter() -> None:
    kv = CountingKV()
    journal = GroupCommitJournal(kv)
    kv.fail = True
    with pytest.raises(OSError):
        journal.wait(journal.append([(b"a", b"1")]))
    with pytest.raises(Halt, match="disk full"):
        journal.wait(journal.append([(b"b", b"1")]))


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    yield ManualClock(GENESIS_TIME + 10)


def test_submit_many_answers_each_and_writes_once(clock: ManualClock) -> None:
    kv = CountingKV()
    node = make_node(clock, kv=kv)
    kv.commits = 0
    raws = [transfer(0, 0), transfer(0, 1), transfer(0, 1), b"\x02junk", transfer(1, 0, 1, 1)]
    outcomes = node.submit_many(raws)
    assert [type(o) for o in outcomes] == [
        Transaction, Transaction, TransactionRejected, InvalidTransaction, InvalidTransaction,
    ]
    assert str(outcomes[2]) == "already known"
    assert kv.commits == 1
    stored = [decode_stored_tx(v)[0].raw for _, v in kv.iterate(schema.POOL_PREFIX)]
    assert sorted(stored) == sorted(raws[:2])


def test_pending_nonce_and_admission_follow_the_head_without_trie_reads(
    clock: ManualClock,
) -> None:
    node = make_node(clock)
    for nonce in range(3):
        node.submit(transfer(0, nonce))
    assert node.pending_nonce(USERS[0]) == 3
    node.produce_block()
    assert len(node.pool) == 0
    # The head view was updated from the block's diff: no stale nonce lets a replay in.
    assert node.pending_nonce(USERS[0]) == 3
    with pytest.raises(TransactionRejected, match="already known|nonce too low"):
        node.submit(transfer(0, 1))
    account = node.state.at(node.head().state_root).get_account(USERS[0])
    assert account is not None and account.nonce == 3
    node.submit(transfer(0, 3))
    assert node.pending_nonce(USERS[0]) == 4


def test_a_transaction_the_executor_rejects_leaves_the_pool_whole(clock: ManualClock) -> None:
    node = make_node(clock)
    kept, refused = node.submit(transfer(0, 0)), node.submit(transfer(1, 0))
    execute = node.executor.execute

    def refusing(pre_state: object, env: object, txs: Sequence[Transaction]) -> BatchResult:
        # As an executor finds a transaction invalid against the block's state.
        result = execute(pre_state, env, [tx for tx in txs if tx != refused])  # type: ignore[arg-type]
        return replace(result, rejected=(RejectedTx(1, refused, "insufficient funds"),))

    node.executor = type("Refusing", (), {"execute": staticmethod(refusing), "name": "refusing"})()
    header = node.produce_block()
    assert [tx.hash for tx in node.chain.transactions(header.number)] == [kept.hash]
    # The refused one is gone from the pool altogether, not half.
    assert len(node.pool) == 0 and refused.hash not in node.pool
    assert node.admission.select(node.next_base_fee(), 30_000_000, 100, 10**9) == []
    assert node.pending_nonce(USERS[1]) == 0


def test_the_pool_moves_past_a_block_while_it_is_written_and_the_head_once_it_is_durable(
    clock: ManualClock,
) -> None:
    kv = CountingKV()
    node = make_node(clock, kv=kv)
    node.submit(transfer(0, 0))
    node.submit(transfer(1, 0))
    kv.in_commit.clear()
    kv.release.clear()  # the block's write waits
    producer = threading.Thread(target=node.produce_block)
    producer.start()
    try:
        assert kv.in_commit.wait(5)
        deadline = time.monotonic() + 5
        while len(node.pool) and time.monotonic() < deadline:  # the advance, beside the write
            time.sleep(0.01)
        assert len(node.pool) == 0
        assert node.pending_nonce(USERS[0]) == 1  # what admission checks: after the block
        assert node.head().number == 0  # not on disk yet: not the head
    finally:
        kv.release.set()
        producer.join(10)
    assert node.head().number == 1 == node.chain.head_number()
    assert node.pending_nonce(USERS[1]) == 1


def test_a_block_that_cannot_be_written_halts_before_it_becomes_the_head(clock: ManualClock) -> None:
    kv = CountingKV()
    node = make_node(clock, kv=kv)
    node.submit(transfer(0, 0))
    kv.fail = True
    with pytest.raises(Halt, match="block-write failed: disk full"):
        node.produce_block()
    assert node.head().number == 0 == node.chain.head_number()


def test_admission_goes_on_while_a_block_executes(clock: ManualClock) -> None:
    node = make_node(clock)
    node.submit(transfer(0, 0))
    executing = threading.Event()
    finish = threading.Event()
    execute = node.executor.execute

    def slow_execute(*args: object) -> object:
        executing.set()
        assert finish.wait(5)
        return execute(*args)  # type: ignore[arg-type]

    node.executor = type("Slow", (), {"execute": staticmethod(slow_execute), "name": "slow"})()
    producer = threading.Thread(target=node.produce_block)
    producer.start()
    try:
        assert executing.wait(5)
        admitted = threading.Event()

        def submit() -> None:
            node.submit(transfer(1, 0))
            admitted.set()

        threading.Thread(target=submit).start()
        # Admitted while the block is still executing, not after it.
        assert admitted.wait(3)
        assert node.pending_nonce(USERS[1]) == 1
    finally:
        finish.set()
        producer.join(10)
    assert node.head().number == 1
    assert len(node.pool) == 1  # user 1's transaction waits for the next block


def pooled_raws(kv: MemoryKV) -> set[bytes]:
    return {decode_stored_tx(value)[0].raw for _, value in kv.iterate(schema.POOL_PREFIX)}


def test_a_restart_keeps_arrival_times_and_forgets_expired_queued_ones(
    clock: ManualClock,
) -> None:
    kv = MemoryKV()
    lifetime = PoolConfig().queued_lifetime
    node = make_node(clock, kv=kv)
    node.submit_many([transfer(0, 0), transfer(1, 5)])  # pending; queued (nonces 0-4 missing)
    clock.advance(lifetime / 2)
    node.submit(transfer(1, 6))
    clock.advance(lifetime / 2)
    restarted = make_node(clock, kv=kv)
    assert {tx.raw for tx in restarted.pool.all()} == {transfer(0, 0), transfer(1, 6)}
    assert pooled_raws(kv) == {transfer(0, 0), transfer(1, 6)}
    # Its clock kept running across the restart: the younger one expires on time too.
    clock.advance(lifetime / 2)
    restarted.produce_block()
    assert len(restarted.pool) == 0
    journal = restarted.admission.journal
    journal.wait(journal.append([]))  # the expired one's delete goes out with the next group
    assert pooled_raws(kv) == set()


def test_a_reloaded_pool_of_gapped_transactions_does_not_block_honest_ones(
    clock: ManualClock,
) -> None:
    kv = MemoryKV()
    limits = PoolConfig(max_total=4, max_queued=4, max_queued_per_sender=2)
    node = make_node(clock, kv=kv, pool=limits)
    gapped = [transfer(user, nonce) for user in (0, 1) for nonce in (1, 2)]
    assert all(isinstance(o, Transaction) for o in node.submit_many(gapped))
    assert str(node.submit_many([transfer(2, 3)])[0]) == "transaction underpriced"
    restarted = make_node(clock, kv=kv, pool=limits)
    assert restarted.pool.queued_count == 4
    honest = [transfer(2, 0), transfer(3, 0)]
    assert all(isinstance(o, Transaction) for o in restarted.submit_many(honest))
    restarted.produce_block()
    assert set(restarted.chain.raw_transactions(1)) == set(honest)
    assert restarted.pool.queued_count == len(restarted.pool) == 2


def test_a_restart_puts_each_senders_run_back_in_nonce_order(clock: ManualClock) -> None:
    kv = MemoryKV()
    # The journal lists records by hash: out of nonce order, most would count as queued.
    limits = PoolConfig(max_queued=1, max_queued_per_sender=1)
    node = make_node(clock, kv=kv, pool=limits)
    node.submit_many([transfer(0, nonce) for nonce in range(6)])
    restarted = make_node(clock, kv=kv, pool=limits)
    assert len(restarted.pool) == 6 and restarted.pool.queued_count == 0
    assert restarted.pending_nonce(USERS[0]) == 6


def test_pool_records_keep_sender_and_arrival_and_old_rlp_records_still_read() -> None:
    tx = decode_transaction(transfer(0, 0))
    record = encode_stored_tx(tx, arrival_stamp(1_700_000_123.456))
    assert record[0] == 1  # the version byte: no RLP list starts below 0xc0
    assert decode_stored_tx(record) == (tx, 1_700_000_123.456)
    # Records written before the binary layout: RLP, with and without the arrival time.
    assert decode_stored_tx(rlp.encode([tx.raw, tx.sender, 1_700_000_123_456])) == (
        tx, 1_700_000_123.456)
    assert decode_stored_tx(rlp.encode([tx.raw, tx.sender])) == (tx, None)
    for corrupt in (record[:29], b"\x01" + bytes(40), b"\x05junk", rlp.encode([b"x"]), b"\xc5"):
        with pytest.raises(Halt, match="corrupt pool record"):
            decode_stored_tx(corrupt)


def test_a_restart_reloads_pool_records_of_the_old_rlp_layout(clock: ManualClock) -> None:
    kv = MemoryKV()
    make_node(clock, kv=kv)
    lifetime = PoolConfig().queued_lifetime
    old = [decode_transaction(transfer(0, 0)), decode_transaction(transfer(1, 3))]
    for tx in old:  # user 1's waits behind a gap, and its lifetime counts from its record
        kv.put(schema.pool_key(tx.hash), rlp.encode([tx.raw, tx.sender, int(clock.now() * 1000)]))
    clock.advance(lifetime / 2)
    restarted = make_node(clock, kv=kv)
    assert {tx.raw for tx in restarted.pool.all()} == {tx.raw for tx in old}
    assert restarted.pool.queued_count == 1
    clock.advance(lifetime / 2)
    restarted.produce_block()
    assert set(restarted.chain.raw_transactions(1)) == {old[0].raw}
    assert len(restarted.pool) == 0  # the queued one expired on its old record's time


def test_new_senders_read_in_a_batch_are_not_kept_when_a_block_moved_the_head(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admission reads the accounts of senders it does not know before taking its lock; a
    block committed in between may have changed them, and those reads are then dropped."""
    node = make_node(clock)
    node.submit(transfer(0, 0))
    node.admission._accounts.clear()  # user 0 is new to admission again (as after eviction)
    read_flat = StateView.get_accounts_flat
    reads: list[object] = []

    def block_meanwhile(view: StateView, addresses: Sequence[Address]) -> object:
        accounts = read_flat(view, addresses)
        reads.append(accounts)
        monkeypatch.setattr(StateView, "get_accounts_flat", read_flat)
        node.produce_block()  # includes nonce 0: the account just read is stale
        node.admission._accounts.clear()  # and nothing read after the block replaces it
        return accounts

    monkeypatch.setattr(StateView, "get_accounts_flat", block_meanwhile)
    node.submit(transfer(0, 1))
    assert reads and reads[0] is not None  # the batch read ran, from the flat tables
    assert node.head().number == 1
    # Nonce 1 is pending on the head's nonce 1, not queued behind a stale nonce 0.
    assert node.pending_nonce(USERS[0]) == 2
    assert node.admission.pool_counts() == (1, 0)


def test_new_senders_are_read_in_one_batch(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    node = make_node(clock)
    batches: list[list[Address]] = []
    read_flat = StateView.get_accounts_flat

    def counted(view: StateView, addresses: Sequence[Address]) -> object:
        batches.append(list(addresses))
        return read_flat(view, addresses)

    monkeypatch.setattr(StateView, "get_accounts_flat", counted)
    outcomes = node.submit_many([transfer(user, 0) for user in range(3)] + [transfer(0, 1)])
    assert all(isinstance(o, Transaction) for o in outcomes)
    assert [sorted(b) for b in batches] == [sorted(USERS[:3])]
    assert [node.pending_nonce(USERS[user]) for user in range(3)] == [2, 1, 1]
    node.submit(transfer(1, 1))  # known now: no read
    assert len(batches) == 1
