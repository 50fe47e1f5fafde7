"""One suite for every PosterStore: the in-memory twin and the KV store over both KV backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp

from l1.api import PosterStore
from l1.poster import MemoryPosterStore
from l1.types import (
    BatchCommitment,
    L1Call,
    L1Fees,
    PostAttempt,
    PosterState,
    SentTransaction,
    SignedBatch,
)
from node.db.leveldb import LevelDBKV
from node.db.memory import MemoryKV
from node.db.schema import POSTER_META, poster_batch_key, poster_tx_key
from node.poster_store import KVPosterStore
from primitives.crypto import keccak256
from primitives.errors import Halt


def signed_batch(number: int) -> SignedBatch:
    return SignedBatch(
        BatchCommitment(
            batch_number=number,
            prev_state_root=keccak256(b"root %d" % (number - 1)),
            state_root=keccak256(b"root %d" % number),
            first_block=2 * number - 1,
            last_block=2 * number,
            data_hash=keccak256(b"data %d" % number),
        ),
        data=b"\x01" + bytes(range(256)) * number,
        signatures=(b"\x1b" * 65, b"\x1c" * 65),
    )


STATES = [
    PosterState(),
    PosterState(queue=(signed_batch(1), signed_batch(2))),
    PosterState(
        queue=(signed_batch(7),),
        attempt=PostAttempt(
            7,
            (
                SentTransaction(
                    L1Call(b"\xaa" * 300, 90_000, "batch 7 data part 0"),
                    nonce=0,
                    fees=L1Fees(2_000_000_001, 1),
                    tx_hashes=(keccak256(b"a"), keccak256(b"b")),
                    sent_at_l1_block=12,
                ),
                SentTransaction(
                    L1Call(b"", 21_000, "commit batch 7 ✓"),
                    nonce=1,
                    fees=L1Fees(0, 0),
                    tx_hashes=(keccak256(b"c"),),
                    sent_at_l1_block=0,
                ),
            ),
        ),
    ),
    PosterState(
        queue=(signed_batch(8),),
        attempt=PostAttempt(
            8,
            (SentTransaction(L1Call(b"\xbb" * 40, 260_000, "validator set 3"), 4,
                             L1Fees(3, 1), (keccak256(b"d"),), 20),),
            validator_epoch=3,
        ),
    ),
]


@pytest.fixture(params=["memory-twin", "kv-memory", "kv-leveldb"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A factory that opens the store again (a restart, for the durable ones)."""
    if request.param == "memory-twin":
        twin = MemoryPosterStore()
        yield lambda: twin
    elif request.param == "kv-memory":
        kv = MemoryKV()
        yield lambda: KVPosterStore(kv)
    else:
        opened: list[LevelDBKV] = []

        def open_leveldb() -> PosterStore:
            for db in opened:
                db.close()
            opened.clear()
            opened.append(LevelDBKV(tmp_path / "db"))
            return KVPosterStore(opened[0])

        yield open_leveldb
        for db in opened:
            db.close()


@pytest.mark.parametrize("state", STATES)
def test_saved_state_comes_back(reopen: object, state: PosterState) -> None:
    store: PosterStore = reopen()  # type: ignore[operator]
    assert store.load() == PosterState()
    store.save(state)
    assert store.load() == state
    again: PosterStore = reopen()  # type: ignore[operator]
    assert again.load() == state
    again.save(PosterState())
    assert again.load() == PosterState()


def test_corrupt_record_halts() -> None:
    kv = MemoryKV()
    for junk in (b"\xff", b"\xc3\x01\x02\x03", b"\xc3\x05\xc0\xc0"):
        kv.put(POSTER_META, junk)
        with pytest.raises(Halt, match="poster record"):
            KVPosterStore(kv).load()


def test_a_record_from_before_validator_set_updates_reads_as_a_batch_attempt() -> None:
    kv = MemoryKV()
    tx = [b"\xaa", 21_000, b"commit batch 7", 1, 3, 1, [keccak256(b"c")], 9]
    kv.put(POSTER_META, bytes(rlp.encode([1, [], [7, [tx]]])))
    attempt = KVPosterStore(kv).load().attempt
    assert attempt is not None and (attempt.batch_number, attempt.validator_epoch) == (7, 0)


def sent(nonce: int) -> SentTransaction:
    return SentTransaction(L1Call(b"\xaa" * 1000, 90_000, f"batch 1 data part {nonce}"), nonce,
                           L1Fees(2, 1), (keccak256(b"%d" % nonce),), 12)


class RecordingKV(MemoryKV):
    """MemoryKV that records the keys its write batches put."""

    def __init__(self) -> None:
        super().__init__()
        self.put_keys: list[bytes] = []

    def write_batch(self) -> Any:
        batch, kv = super().write_batch(), self

        class Recording:
            def put(self, key: bytes, value: bytes) -> None:
                kv.put_keys.append(key)
                batch.put(key, value)

            def __getattr__(self, name: str) -> Any:
                return getattr(batch, name)

        return Recording()


def test_a_save_writes_only_what_changed_and_deletes_what_left() -> None:
    kv = RecordingKV()
    store = KVPosterStore(kv)
    queue = (signed_batch(1), signed_batch(2))
    store.save(PosterState(queue, PostAttempt(1, (sent(0),))))
    kv.put_keys.clear()
    # One more L1 transaction sent for batch 1: the batches' data is not written again.
    grown = PosterState(queue, PostAttempt(1, (sent(0), sent(1))))
    store.save(grown)
    assert sorted(kv.put_keys) == sorted([POSTER_META, poster_tx_key(1)])
    assert KVPosterStore(kv).load() == grown
    # Batch 1 confirmed, its attempt over, batch 3 queued.
    kv.put_keys.clear()
    later = PosterState((signed_batch(2), signed_batch(3)))
    store.save(later)
    assert sorted(kv.put_keys) == sorted([POSTER_META, poster_batch_key(3)])
    for gone in (poster_batch_key(1), poster_tx_key(0), poster_tx_key(1)):
        assert kv.get(gone) is None
    assert KVPosterStore(kv).load() == later


def test_a_version_1_record_is_read_and_saved_as_version_2() -> None:
    kv = MemoryKV()
    state = STATES[2]
    assert state.attempt is not None
    batches = [[b.commitment.batch_number, b.commitment.prev_state_root, b.commitment.state_root,
                b.commitment.first_block, b.commitment.last_block, b.commitment.data_hash,
                b.data, list(b.signatures)] for b in state.queue]
    txs = [[t.call.data, t.call.gas, t.call.what.encode(), t.nonce, t.fees.max_fee_per_gas,
            t.fees.max_priority_fee_per_gas, list(t.tx_hashes), t.sent_at_l1_block]
           for t in state.attempt.transactions]
    kv.put(POSTER_META, bytes(rlp.encode([1, batches, [7, txs, 0]])))
    store = KVPosterStore(kv)
    assert store.load() == state
    store.save(state)
    assert rlp.decode(kv.get(POSTER_META))[0] == b"\x02"
    assert KVPosterStore(kv).load() == state


def test_a_missing_batch_record_halts() -> None:
    kv = MemoryKV()
    KVPosterStore(kv).save(STATES[1])
    kv.delete(poster_batch_key(2))
    with pytest.raises(Halt, match="poster record"):
        KVPosterStore(kv).load()
