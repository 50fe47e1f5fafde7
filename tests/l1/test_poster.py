"""BatchPoster against the embedded L1 with an in-test chain of blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hexbytes import HexBytes

from l1.api import L1Client, L1Rejected
from l1.codec import decode_batch_data
from l1.poster import BatchPoster
from l1.types import BatchCommitment, BatchDomain, CommittedBatch
from primitives.errors import Halt, RetryLater
from primitives.types import Hash32
from tests.l1.conftest import (
    GENESIS_ROOT,
    VALIDATOR_KEYS,
    ChainSource,
    Inbox,
    deploy_inbox,
    make_block,
    state_root_of,
)

KEY = VALIDATOR_KEYS[0]


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FlakyL1:
    """Wraps a real L1Client; the next ``fail_reads`` reads and ``fail_commits`` commits fail.

    A failing commit raises RetryLater before sending, or after sending when ``lose_receipt``
    (as when the receipt does not come in time).
    """

    inner: L1Client
    fail_reads: int = 0
    fail_commits: int = 0
    lose_receipt: bool = False
    commits: list[tuple[BatchCommitment, bytes, tuple[bytes, ...]]] = field(default_factory=list)
    reads: int = 0

    def domain(self) -> BatchDomain:
        return self.inner.domain()

    def latest_batch(self) -> CommittedBatch | None:
        self.reads += 1
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise RetryLater("L1 node down")
        return self.inner.latest_batch()

    def batch(self, number: int) -> CommittedBatch | None:
        return self.inner.batch(number)

    def batch_data(self, batch: CommittedBatch) -> bytes:
        return self.inner.batch_data(batch)

    def commit_batch(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> Hash32:
        self.commits.append((commitment, data, tuple(signatures)))
        if self.fail_commits > 0:
            self.fail_commits -= 1
            if self.lose_receipt:
                self.inner.commit_batch(commitment, data, signatures)
            raise RetryLater("no receipt")
        return self.inner.commit_batch(commitment, data, signatures)


@pytest.fixture
def inbox() -> Inbox:
    return deploy_inbox((KEY,), [1])


def committed_numbers(inbox: Inbox) -> list[tuple[int, int, int]]:
    latest = inbox.client.latest_batch()
    found = []
    for n in range(1, 1 + (0 if latest is None else latest.batch_number)):
        b = inbox.client.batch(n)
        assert b is not None
        found.append((b.batch_number, b.first_block, b.last_block))
    return found


def test_posts_full_batches_in_order_then_flushes_the_rest(inbox: Inbox) -> None:
    source = ChainSource()
    poster = BatchPoster(inbox.client, source, KEY, blocks_per_batch=3)
    assert poster.step() is None  # genesis only
    source.head = 2
    assert poster.step() is None  # not a full batch yet
    source.head = 3
    first = poster.step()
    assert first is not None
    assert first.commitment == BatchCommitment(
        1, GENESIS_ROOT, state_root_of(3), 1, 3, first.data_hash
    )
    tx = inbox.l1.w3.eth.get_transaction(HexBytes(first.l1_tx_hash))
    _, args = inbox.contract.decode_function_input(tx["input"])
    assert decode_batch_data(args["data"]) == tuple(make_block(n) for n in (1, 2, 3))

    source.head = 7
    second = poster.step()
    assert second is not None and (second.first_block, second.last_block) == (4, 6)
    assert second.prev_state_root == first.state_root == state_root_of(3)
    assert poster.step() is None  # block 7 alone is not a full batch
    flushed = poster.flush()
    assert [(b.batch_number, b.first_block, b.last_block) for b in flushed] == [(3, 7, 7)]
    assert flushed[0].state_root == state_root_of(7)
    assert poster.flush() == ()
    assert committed_numbers(inbox) == [(1, 1, 3), (2, 4, 6), (3, 7, 7)]


def test_restarted_poster_does_not_post_again(inbox: Inbox) -> None:
    source = ChainSource(head=5)
    BatchPoster(inbox.client, source, KEY, blocks_per_batch=2).flush()
    assert committed_numbers(inbox) == [(1, 1, 2), (2, 3, 4), (3, 5, 5)]
    l1_head = inbox.l1.w3.eth.block_number

    restarted = BatchPoster(inbox.client, source, KEY, blocks_per_batch=2)
    assert restarted.step() is None
    assert restarted.flush() == ()
    assert inbox.l1.w3.eth.block_number == l1_head  # no transaction sent
    source.head = 7
    posted = restarted.step()
    assert posted is not None and (posted.batch_number, posted.first_block) == (4, 6)


def test_fresh_l1_receives_every_batch_from_block_one() -> None:
    source = ChainSource(head=7)
    inbox = deploy_inbox((KEY,), [1])
    poster = BatchPoster(inbox.client, source, KEY, blocks_per_batch=3)
    while poster.step() is not None:
        pass
    assert committed_numbers(inbox) == [(1, 1, 3), (2, 4, 6)]


def test_l1_trouble_keeps_the_batch_and_waits(inbox: Inbox) -> None:
    clock = FakeClock()
    flaky = FlakyL1(inbox.client, fail_commits=1)
    poster = BatchPoster(flaky, ChainSource(head=2), KEY, 2, clock=clock, retry_delay_s=5)
    assert poster.step() is None
    assert inbox.client.latest_batch() is None
    reads = flaky.reads
    clock.now += 4
    assert poster.step() is None and flaky.reads == reads  # still waiting: L1 not asked
    clock.now += 1
    posted = poster.step()
    assert posted is not None and posted.batch_number == 1
    assert len(flaky.commits) == 2 and flaky.commits[0] == flaky.commits[1]  # the same batch

    flaky.fail_reads = 1
    clock.now += 10
    assert poster.step() is None
    with pytest.raises(RetryLater):  # flush leaves the decision to its caller
        flaky.fail_reads = 1
        poster.flush()


def test_commit_that_landed_despite_an_error_is_not_sent_again(inbox: Inbox) -> None:
    clock = FakeClock()
    flaky = FlakyL1(inbox.client, fail_commits=1, lose_receipt=True)
    source = ChainSource(head=2)
    poster = BatchPoster(flaky, source, KEY, 2, clock=clock, retry_delay_s=1)
    assert poster.step() is None  # sent, but the poster could not tell
    clock.now += 1
    assert poster.step() is None  # L1 has it: nothing left to post
    assert len(flaky.commits) == 1
    source.head = 4
    posted = poster.step()
    assert posted is not None and posted.batch_number == 2
    assert committed_numbers(inbox) == [(1, 1, 2), (2, 3, 4)]


def test_halts_when_l1_disagrees_with_the_local_chain(inbox: Inbox) -> None:
    BatchPoster(inbox.client, ChainSource(head=4), KEY, 2).flush()
    forked = BatchPoster(inbox.client, ChainSource(head=6, fork_at=3), KEY, 2)
    with pytest.raises(Halt, match="L1 batch 2 ends block 4"):
        forked.step()


def test_contract_refuses_what_the_poster_cannot_sign_for() -> None:
    inbox = deploy_inbox(VALIDATOR_KEYS[:2], [1, 1])
    with pytest.raises(L1Rejected, match=r"^InsufficientWeight\(signed=1, total=2\)$"):
        BatchPoster(inbox.client, ChainSource(head=1), VALIDATOR_KEYS[0], 1).step()
    with pytest.raises(L1Rejected, match=r"^UnknownSigner\(index=0, "):
        BatchPoster(inbox.client, ChainSource(head=1), VALIDATOR_KEYS[3], 1).step()
    wrong_genesis = ChainSource(head=1, genesis_root=state_root_of(99))
    with pytest.raises(L1Rejected, match=r"^PrevStateRootMismatch\("):
        BatchPoster(inbox.client, wrong_genesis, VALIDATOR_KEYS[0], 1).step()
    assert inbox.client.latest_batch() is None


def test_blocks_per_batch_must_be_positive(inbox: Inbox) -> None:
    with pytest.raises(ValueError):
        BatchPoster(inbox.client, ChainSource(), KEY, 0)
