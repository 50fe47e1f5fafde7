"""One suite for every PosterStore: the in-memory twin and the KV store over both KV backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from node.db.schema import POSTER_META
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
