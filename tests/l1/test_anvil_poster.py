"""BatchPoster against a real L1 (anvil): parts, stuck transactions, reorgs, an L1 restart."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest
from web3 import Web3

from l1.api import L1Client, PosterStore
from l1.client import Web3L1Client, _gas_bound, deploy_batch_inbox
from l1.codec import DATA_PIECE_BYTES, decode_batch_data
from l1.poster import BatchPoster, LocalSignatures, MemoryPosterStore, PosterConfig
from l1.types import L1Call, L1Fees, ValidatorSet
from node.db.leveldb import LevelDBKV
from node.poster_store import KVPosterStore
from primitives.clock import ManualClock
from primitives.crypto import private_key_to_address
from primitives.errors import RetryLater
from primitives.types import Hash32
from tests.anvil import DEV_KEYS, Anvil
from tests.l1.conftest import GENESIS_ROOT, L2_CHAIN_ID, VALIDATOR_KEYS, ChainSource, make_block

KEY = VALIDATOR_KEYS[0]
DEPLOYER, POSTER = DEV_KEYS[0], DEV_KEYS[1]


def setup(anvil: Anvil, max_part_bytes: int = 120 * 1024) -> tuple[Web3, Web3L1Client]:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    address = deploy_batch_inbox(
        w3, DEPLOYER, L2_CHAIN_ID, GENESIS_ROOT, [private_key_to_address(KEY)], [1]
    )
    return w3, Web3L1Client(w3, address, POSTER, max_part_bytes=max_part_bytes)


def make_poster(
    client: Web3L1Client, source: ChainSource, store: PosterStore | None = None, **config: int
) -> BatchPoster:
    return BatchPoster(
        client,
        source,
        LocalSignatures(KEY),
        store or MemoryPosterStore(),
        ManualClock(),
        PosterConfig(**{"blocks_per_batch": 3, "confirmations": 2, "retry_delay_s": 0, **config}),
    )


def ranges(client: Web3L1Client) -> list[tuple[int, int, int]]:
    latest = client.latest_batch()
    out = []
    for n in range(1, 1 + (0 if latest is None else latest.batch_number)):
        batch = client.batch(n)
        assert batch is not None
        out.append((n, batch.first_block, batch.last_block))
    return out


def poster_receipts(w3: Web3) -> list[Any]:
    """Receipts of every transaction the poster account got mined."""
    sender = w3.eth.account.from_key(POSTER).address
    found = []
    for number in range(w3.eth.block_number + 1):
        block: Any = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == sender:
                found.append(w3.eth.get_transaction_receipt(tx["hash"]))
    return found


def test_large_batch_in_parts_round_trips_within_gas_bounds(anvil: Anvil) -> None:
    w3, client = setup(anvil, max_part_bytes=2 * DATA_PIECE_BYTES)
    source = ChainSource(head=400)
    poster = make_poster(client, source, blocks_per_batch=400)
    poster.step()
    poster.step()
    latest = client.latest_batch()
    assert latest is not None and latest.last_block == 400
    reader = Web3L1Client(w3, client.contract_address)
    assert decode_batch_data(reader.batch_data(latest)) == tuple(make_block(n) for n in range(1, 401))
    receipts = poster_receipts(w3)
    assert len(receipts) >= 3 and all(r["status"] == 1 for r in receipts)
    for receipt in receipts:
        tx: Any = w3.eth.get_transaction(receipt["transactionHash"])
        assert receipt["gasUsed"] < tx["gas"] <= _gas_bound(len(tx["input"]), 1)


def test_stuck_transaction_gets_higher_fees_at_the_same_nonce(anvil: Anvil) -> None:
    w3, client = setup(anvil)
    poster = make_poster(client, ChainSource(head=3), stuck_blocks=2)
    anvil.set_automine(False)
    poster.step()
    attempt = poster.state.attempt
    assert attempt is not None
    (first,) = attempt.transactions
    # Base fees jump far above the transaction's cap: it cannot be included.
    anvil.set_next_base_fee(first.fees.max_fee_per_gas * 20)
    anvil.mine()
    assert client.receipt(first.tx_hashes[0]) is None
    poster.step()  # one block: not stuck yet
    assert poster.state.attempt == attempt
    anvil.mine()
    poster.step()
    attempt = poster.state.attempt
    assert attempt is not None
    (bumped,) = attempt.transactions
    assert bumped.nonce == first.nonce and len(bumped.tx_hashes) == 2
    assert bumped.fees.max_fee_per_gas * 1000 >= first.fees.max_fee_per_gas * 1125
    assert bumped.fees.max_priority_fee_per_gas * 1000 >= first.fees.max_priority_fee_per_gas * 1125
    anvil.mine()
    receipt = w3.eth.get_transaction_receipt(bumped.tx_hashes[-1])
    assert receipt["status"] == 1
    poster.step()
    assert ranges(client) == [(1, 1, 3)] and poster.state.attempt is None


def test_reorg_that_drops_commitments_gets_them_posted_again(anvil: Anvil) -> None:
    w3, client = setup(anvil)
    source = ChainSource(head=6)
    poster = make_poster(client, source, confirmations=10)
    snapshot = anvil.snapshot()
    poster.step()
    poster.step()
    assert ranges(client) == [(1, 1, 3), (2, 4, 6)]
    before = poster.state.attempt
    assert before is not None and before.batch_number == 2
    anvil.revert(snapshot)  # the L1 blocks holding both commitments are gone
    assert client.latest_batch() is None
    poster.step()
    again = poster.state.attempt
    assert again is not None and again.batch_number == 1
    # Over the fees of what may still sit in an L1 pool at these nonces.
    assert again.transactions[0].fees.max_fee_per_gas > before.transactions[0].fees.max_fee_per_gas
    for _ in range(3):
        poster.step()
    assert ranges(client) == [(1, 1, 3), (2, 4, 6)]
    assert all(r["status"] == 1 for r in poster_receipts(w3))


def test_l1_down_for_a_while_loses_nothing(anvil: Anvil, caplog: pytest.LogCaptureFixture) -> None:
    w3, client = setup(anvil)
    source = ChainSource(head=3)
    poster = make_poster(client, source)
    caplog.set_level(logging.INFO, logger="l1.poster")
    anvil.set_automine(False)
    poster.step()  # batch 1 sent, waiting in the pool
    anvil.stop()
    source.head = 9
    for _ in range(3):
        assert poster.step() is None  # L1 unavailable: deferred, nothing lost
    anvil.start()  # the chain is back, its pool empty
    anvil.set_automine(True)
    for _ in range(5):
        poster.step()
    assert ranges(client) == [(1, 1, 3), (2, 4, 6), (3, 7, 9)]
    receipts = poster_receipts(w3)
    assert len(receipts) == 3 and all(r["status"] == 1 for r in receipts)  # none doubled
    assert "re-sent commit batch 1" in caplog.text  # the restarted L1 had forgotten it


def test_restart_with_a_transaction_in_flight_sends_nothing_new(anvil: Anvil, tmp_path: Path) -> None:
    w3, client = setup(anvil)
    source = ChainSource(head=3)
    kv = LevelDBKV(tmp_path / "db")
    try:
        anvil.set_automine(False)
        first = make_poster(client, source, store=KVPosterStore(kv))
        first.step()  # sent; the node "crashes" before seeing it mined
        attempt = first.state.attempt
        assert attempt is not None
        kv.close()
        kv = LevelDBKV(tmp_path / "db")
        restarted = make_poster(client, source, store=KVPosterStore(kv))
        assert restarted.state == first.state
        restarted.step()  # the stored attempt is still pending: watched, not sent again
        assert restarted.state.attempt == attempt
        anvil.mine()
        restarted.step()
        assert ranges(client) == [(1, 1, 3)]
        assert len(poster_receipts(w3)) == 1
    finally:
        kv.close()


class FailSecondBump:
    """Wraps the client: after ``arm()``, the second send fails (L1 refuses it)."""

    def __init__(self, inner: Web3L1Client) -> None:
        self.inner = inner
        self.sends_left: int | None = None

    def arm(self) -> None:
        self.sends_left = 1

    def send(self, call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        if self.sends_left is not None:
            if self.sends_left == 0:
                raise RetryLater("replacement transaction underpriced")
            self.sends_left -= 1
        return self.inner.send(call, nonce, fees)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_bump_that_fails_half_way_keeps_the_hashes_already_sent(anvil: Anvil) -> None:
    w3, client = setup(anvil, max_part_bytes=DATA_PIECE_BYTES)
    flaky = FailSecondBump(client)
    poster = BatchPoster(
        cast(L1Client, flaky), ChainSource(head=50), LocalSignatures(KEY), MemoryPosterStore(),
        ManualClock(), PosterConfig(blocks_per_batch=50, stuck_blocks=1, retry_delay_s=0),
    )
    anvil.set_automine(False)
    poster.step()
    attempt = poster.state.attempt
    assert attempt is not None and len(attempt.transactions) == 2
    anvil.set_next_base_fee(attempt.transactions[0].fees.max_fee_per_gas * 20)
    anvil.mine()
    flaky.arm()
    poster.step()  # bumps the part, then the commit's bump is refused
    attempt = poster.state.attempt
    assert attempt is not None
    part, commit = attempt.transactions
    assert len(part.tx_hashes) == 2 and len(commit.tx_hashes) == 1
    flaky.sends_left = None
    anvil.mine()
    poster.step()  # the commit gets its bump now
    anvil.mine()
    poster.step()
    assert ranges(client) == [(1, 1, 50)]
    assert all(r["status"] == 1 for r in poster_receipts(w3))


def test_validator_sets_are_read_again_after_a_reorg(anvil: Anvil) -> None:
    """validators_at keeps the sets it read; an L1 reorg that moved a set update makes it
    read them again, so a batch is never checked against a set from a dropped branch."""
    _, client = setup(anvil)
    validator = private_key_to_address(KEY)
    first, second = ValidatorSet.of(0, {validator: 1}), ValidatorSet.of(1, {validator: 2})
    snapshot = anvil.snapshot()
    source = ChainSource(head=6, epoch_length=3, epoch_weights={1: {validator: 2}})
    poster = make_poster(client, source, confirmations=0)
    for _ in range(4):
        poster.step()
    assert ranges(client) == [(1, 1, 3), (2, 4, 6)]
    batches = [client.batch(n) for n in (1, 2)]
    assert [client.validators_at(b) for b in batches if b is not None] == [first, second]
    anvil.revert(snapshot)  # the update and both batches are gone; epoch 1 never came here
    anvil.mine(10)  # this branch's batch 1 lands after where the dropped update was
    again = make_poster(client, ChainSource(head=3, epoch_length=3), confirmations=0)
    again.step()
    batch = client.batch(1)
    assert batch is not None and batch.l1_block_number > batches[1].l1_block_number  # type: ignore[union-attr]
    assert client.validators_at(batch) == first
