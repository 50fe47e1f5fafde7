"""BatchPoster against the embedded L1 with an in-test chain of blocks.

Faults the embedded L1 cannot show (stuck transactions, reorgs, an L1 restart) are
tested against anvil in test_anvil_poster.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from l1.api import L1Client, L1Rejected, PosterStore
from l1.client import Web3L1Client
from l1.codec import (
    DATA_PIECE_BYTES,
    batch_digest,
    decode_batch_data,
    order_signatures,
    sign_batch,
    validator_set_digest,
)
from l1.poster import BatchPoster, LocalSignatures, MemoryPosterStore, PosterConfig
from l1.types import BatchCommitment, BatchDomain, L1Call, L1Fees, ValidatorSet
from primitives.clock import ManualClock
from primitives.crypto import keccak256
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
    validator_address,
)

KEY = VALIDATOR_KEYS[0]


@dataclass
class FlakyL1:
    """Wraps a real L1Client: the next ``fail_reads`` head reads and ``fail_sends`` sends fail.

    A failing send raises RetryLater before sending, or after sending when ``lose_answer``
    (as when the connection drops before the answer comes).
    """

    inner: L1Client
    fail_reads: int = 0
    fail_sends: int = 0
    lose_answer: bool = False
    swallow_sends: int = 0
    """Sends that pretend to succeed but never reach L1 (the node dropped them)."""
    sent: list[tuple[L1Call, int, L1Fees]] = field(default_factory=list)
    reads: int = 0

    def head(self) -> Any:
        self.reads += 1
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise RetryLater("L1 node down")
        return self.inner.head()

    def send(self, call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        if self.swallow_sends > 0:
            self.swallow_sends -= 1
            return keccak256(call.data + nonce.to_bytes(8, "big"))
        if self.fail_sends > 0:
            self.fail_sends -= 1
            if self.lose_answer:
                self.inner.send(call, nonce, fees)
            raise RetryLater("connection reset")
        self.sent.append((call, nonce, fees))
        return self.inner.send(call, nonce, fees)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class SlowQuorum:
    """BatchSignatures that has no quorum until ``ready``."""

    ready: bool = False
    asked: list[int] = field(default_factory=list)

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes] | None:
        self.asked.append(commitment.batch_number)
        return LocalSignatures(KEY).signatures(commitment, domain) if self.ready else None

    def validator_signatures(self, new_set: ValidatorSet, domain: BatchDomain) -> Sequence[bytes] | None:
        return LocalSignatures(KEY).validator_signatures(new_set, domain) if self.ready else None


@pytest.fixture
def inbox() -> Inbox:
    return deploy_inbox((KEY,), [1])


def make_poster(
    client: L1Client | FlakyL1,
    source: ChainSource,
    *,
    store: PosterStore | None = None,
    clock: ManualClock | None = None,
    key: bytes = KEY,
    **config: Any,
) -> BatchPoster:
    return BatchPoster(
        cast(L1Client, client),
        source,
        LocalSignatures(key),
        store or MemoryPosterStore(),
        clock or ManualClock(),
        PosterConfig(**{"blocks_per_batch": 3, "confirmations": 2, **config}),
    )


def committed_ranges(inbox: Inbox) -> list[tuple[int, int, int]]:
    latest = inbox.client.latest_batch()
    found = []
    for n in range(1, 1 + (0 if latest is None else latest.batch_number)):
        b = inbox.client.batch(n)
        assert b is not None
        found.append((b.batch_number, b.first_block, b.last_block))
    return found


def test_posts_full_batches_in_order_then_flushes_the_rest(inbox: Inbox) -> None:
    source = ChainSource()
    poster = make_poster(inbox.client, source)
    assert poster.step() is None  # genesis only
    source.head = 2
    poster.step()
    assert inbox.client.latest_batch() is None  # not a full batch yet
    source.head = 3
    poster.step()
    first = inbox.client.latest_batch()
    assert first is not None
    assert first.commitment == BatchCommitment(1, GENESIS_ROOT, state_root_of(3), 1, 3, first.data_hash)
    assert decode_batch_data(inbox.client.batch_data(first)) == tuple(make_block(n) for n in (1, 2, 3))

    source.head = 7
    poster.step()
    second = inbox.client.latest_batch()
    assert second is not None and (second.first_block, second.last_block) == (4, 6)
    assert second.prev_state_root == first.state_root == state_root_of(3)
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 6)]  # block 7 alone is not a batch
    poster.flush()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 6), (3, 7, 7)]
    poster.flush()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 6), (3, 7, 7)]


def test_queue_keeps_batches_until_confirmed(inbox: Inbox) -> None:
    source = ChainSource(head=3)
    poster = make_poster(inbox.client, source, confirmations=1)
    poster.step()
    assert [b.commitment.batch_number for b in poster.state.queue] == [1]
    assert poster.state.attempt is not None
    poster.step()  # committed in the L1 head block: not yet confirmed
    assert [b.commitment.batch_number for b in poster.state.queue] == [1]
    assert poster.state.attempt is None
    source.head = 6
    poster.step()  # batch 2 sent, on top of batch 1's L1 block
    poster.step()
    assert [b.commitment.batch_number for b in poster.state.queue] == [2]


def test_restarted_poster_does_not_post_again(inbox: Inbox) -> None:
    source = ChainSource(head=5)
    store = MemoryPosterStore()
    first = make_poster(inbox.client, source, store=store, blocks_per_batch=2)
    for _ in range(4):
        first.flush()
    assert committed_ranges(inbox) == [(1, 1, 2), (2, 3, 4), (3, 5, 5)]
    l1_head = inbox.l1.w3.eth.block_number

    # With its store, or with none (the contract alone says what is posted).
    for restarted_store in (store, MemoryPosterStore()):
        restarted = make_poster(inbox.client, source, store=restarted_store, blocks_per_batch=2)
        restarted.step()
        restarted.flush()
        assert inbox.l1.w3.eth.block_number == l1_head  # no transaction sent
    source.head = 7
    restarted.step()
    assert committed_ranges(inbox)[-1] == (4, 6, 7)


def test_l1_trouble_keeps_the_batch_and_waits(inbox: Inbox) -> None:
    clock = ManualClock()
    flaky = FlakyL1(inbox.client, fail_reads=1)
    poster = make_poster(flaky, ChainSource(head=3), clock=clock, retry_delay_s=5)
    assert poster.step() is None
    reads = flaky.reads
    clock.advance(4)
    poster.step()
    assert flaky.reads == reads  # still waiting: L1 not asked
    clock.advance(1)
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3)]
    flaky.fail_reads = 1
    with pytest.raises(RetryLater):  # flush leaves the decision to its caller
        poster.flush()


def test_send_failing_part_way_resumes_with_the_rest(inbox: Inbox) -> None:
    client = Web3L1Client(
        inbox.l1.w3, inbox.address, inbox.l1.poster_key, max_part_bytes=DATA_PIECE_BYTES
    )
    source = ChainSource(head=100)  # about 14 kB of batch data: four parts
    flaky = FlakyL1(client)
    clock = ManualClock()
    poster = make_poster(flaky, source, clock=clock, blocks_per_batch=100, retry_delay_s=1)
    real_send = flaky.send
    calls = 0

    def send_then_fail(call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RetryLater("L1 gone mid-batch")
        return real_send(call, nonce, fees)

    flaky.send = send_then_fail  # type: ignore[method-assign]
    poster.step()
    attempt = poster.state.attempt
    assert attempt is not None and len(attempt.transactions) == 2
    clock.advance(1)
    poster.step()
    poster.step()
    latest = client.latest_batch()
    assert latest is not None and latest.last_block == 100
    data = client.batch_data(latest)
    assert decode_batch_data(data) == tuple(make_block(n) for n in range(1, 101))
    assert len(client.batch_calls(latest.commitment, data, [b"s" * 65])) == len(flaky.sent) == 4
    nonces = [nonce for _, nonce, _ in flaky.sent]
    assert nonces == sorted(set(nonces))  # every transaction sent once, nonces consecutive


def test_send_that_landed_despite_an_error_is_not_sent_twice(inbox: Inbox) -> None:
    clock = ManualClock()
    flaky = FlakyL1(inbox.client, fail_sends=1, lose_answer=True)
    source = ChainSource(head=3)
    poster = make_poster(flaky, source, clock=clock, retry_delay_s=1)
    poster.step()  # sent, but the poster could not tell
    clock.advance(1)
    poster.step()  # L1 has it: nothing left to post
    assert committed_ranges(inbox) == [(1, 1, 3)]
    assert flaky.sent == []
    source.head = 6
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 6)]


def test_nonce_taken_by_another_transaction_posts_again_with_higher_fees(inbox: Inbox) -> None:
    flaky = FlakyL1(inbox.client, swallow_sends=1)
    poster = make_poster(flaky, ChainSource(head=3))
    poster.step()  # the L1 node lost the commit
    attempt = poster.state.attempt
    assert attempt is not None
    lost = attempt.transactions[0]
    # Meanwhile the operator uses the poster key by hand: the nonce goes to another transaction.
    w3 = inbox.l1.w3
    account = w3.eth.account.from_key(inbox.l1.poster_key)
    other = account.sign_transaction({
        "nonce": lost.nonce, "to": account.address, "value": 0, "gas": 21_000,
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": w3.eth.chain_id,
        "type": 2,
    })
    w3.eth.send_raw_transaction(other.raw_transaction)
    poster.step()
    again = poster.state.attempt
    assert again is not None and again.transactions[0].nonce == lost.nonce + 1
    assert again.transactions[0].fees.max_fee_per_gas * 100 >= lost.fees.max_fee_per_gas * 112.5
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3)]


@dataclass
class CountedCalls(FlakyL1):
    """Counts the batches whose L1 calls were encoded."""

    encoded: list[int] = field(default_factory=list)

    def batch_calls(self, commitment: BatchCommitment, data: bytes,
                    signatures: Sequence[bytes]) -> tuple[L1Call, ...]:
        self.encoded.append(commitment.batch_number)
        return self.inner.batch_calls(commitment, data, signatures)


def test_a_batch_in_flight_is_encoded_for_l1_once(inbox: Inbox) -> None:
    client = CountedCalls(inbox.client, swallow_sends=1)
    poster = make_poster(client, ChainSource(head=3))
    poster.step()  # sent, and lost by the L1 node
    assert poster.state.attempt is not None
    poster.step()  # looked after: sent again
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3)]
    assert client.encoded == [1]


def test_waits_for_the_quorum(inbox: Inbox) -> None:
    quorum = SlowQuorum()
    source = ChainSource(head=6)
    poster = BatchPoster(
        inbox.client, source, quorum, MemoryPosterStore(), ManualClock(), PosterConfig(3)
    )
    poster.step()
    assert quorum.asked == [1] and inbox.client.latest_batch() is None
    quorum.ready = True
    poster.step()
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 6)]


def test_halts_when_l1_disagrees_with_the_local_chain(inbox: Inbox) -> None:
    poster = make_poster(inbox.client, ChainSource(head=4), blocks_per_batch=2)
    poster.step()
    poster.step()
    forked = make_poster(inbox.client, ChainSource(head=6, fork_at=3), blocks_per_batch=2)
    with pytest.raises(Halt, match="L1 batch 2 ends block 4"):
        forked.step()


def test_contract_refuses_what_the_poster_cannot_sign_for() -> None:
    inbox = deploy_inbox(VALIDATOR_KEYS[:2], [1, 1])
    with pytest.raises(L1Rejected, match=r"^InsufficientWeight\(signed=1, total=2\)$"):
        make_poster(inbox.client, ChainSource(head=1), blocks_per_batch=1).step()
    with pytest.raises(L1Rejected, match=r"^UnknownSigner\(index=0, "):
        make_poster(inbox.client, ChainSource(head=1), key=VALIDATOR_KEYS[3], blocks_per_batch=1).step()
    wrong_genesis = ChainSource(head=1, genesis_root=state_root_of(99))
    with pytest.raises(L1Rejected, match=r"^PrevStateRootMismatch\("):
        make_poster(inbox.client, wrong_genesis, blocks_per_batch=1).step()
    assert inbox.client.latest_batch() is None
    assert inbox.l1.w3.eth.get_transaction_count(
        inbox.l1.w3.eth.account.from_key(inbox.l1.poster_key).address
    ) == 0  # refused before any fee was spent


def test_batch_committed_by_another_poster_is_not_posted_again(inbox: Inbox) -> None:
    source = ChainSource(head=6)
    mine = make_poster(inbox.client, source, blocks_per_batch=3)
    other = make_poster(inbox.client, source, blocks_per_batch=2)
    other.step()  # batch 1 = blocks 1..2
    mine.step()  # its batch 1 (1..3) loses; rebuilt from L1's batch 1
    mine.step()
    mine.step()
    assert committed_ranges(inbox)[:2] == [(1, 1, 2), (2, 3, 5)]


@pytest.mark.parametrize(
    "config", [{"blocks_per_batch": 0}, {"stuck_blocks": 0}, {"confirmations": -1}, {"max_queue": 0}]
)
def test_config_is_checked(config: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PosterConfig(**config)


@dataclass
class QuorumOf:
    """BatchSignatures from several local keys, ordered as the contract wants."""

    keys: tuple[bytes, ...]

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes]:
        digest = batch_digest(domain, commitment)
        return order_signatures(digest, [sign_batch(digest, key) for key in self.keys])

    def validator_signatures(self, new_set: ValidatorSet, domain: BatchDomain) -> Sequence[bytes]:
        digest = validator_set_digest(domain, new_set)
        return order_signatures(digest, [sign_batch(digest, key) for key in self.keys])


def test_multi_validator_quorum_signatures_are_posted() -> None:
    inbox = deploy_inbox(VALIDATOR_KEYS, [1, 1, 1, 1])
    source = ChainSource(head=6)
    poster = BatchPoster(
        inbox.client, source, QuorumOf(VALIDATOR_KEYS[1:]), MemoryPosterStore(), ManualClock(),
        PosterConfig(3),
    )
    poster.step()
    poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 6)]
    assert all(len(b.signatures) == 3 for b in poster.state.queue)


def test_each_epochs_validator_set_lands_between_its_batches_and_the_epoch_befores() -> None:
    # Epochs of 4 blocks: epoch 0's batches are signed by the deployed set, then
    # updateValidators installs epoch 1's weights, then epoch 1's batches, and so on.
    inbox = deploy_inbox(VALIDATOR_KEYS, [1, 1, 1, 1])
    addresses = [validator_address(k) for k in VALIDATOR_KEYS]
    epoch_1 = {addresses[0]: 5, addresses[1]: 4, addresses[2]: 4, addresses[3]: 3}
    epoch_2 = {addresses[1]: 7, addresses[2]: 6, addresses[3]: 6}  # validator 0 proved nothing
    source = ChainSource(head=11, epoch_length=4, epoch_weights={1: epoch_1})
    poster = BatchPoster(
        inbox.client, source, QuorumOf(VALIDATOR_KEYS[1:]), MemoryPosterStore(), ManualClock(),
        PosterConfig(3, confirmations=0),
    )
    for _ in range(8):
        poster.step()
    # Batches end with their epoch; epoch 2's weights are not fixed yet: nothing past epoch 1.
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 4), (3, 5, 7), (4, 8, 8)]
    assert inbox.client.validator_set() == ValidatorSet.of(1, epoch_1)
    source.epoch_weights[2] = epoch_2
    source.head = 13
    for _ in range(6):
        poster.step()
    assert committed_ranges(inbox) == [(1, 1, 3), (2, 4, 4), (3, 5, 7), (4, 8, 8), (5, 9, 11),
                                       (6, 12, 12)]
    assert inbox.client.validator_set() == ValidatorSet.of(2, epoch_2)
    # Each batch was checked against its own epoch's set (the contract's record of it).
    expected = {0: ValidatorSet(0, tuple((a, 1) for a in addresses)),
                1: ValidatorSet.of(1, epoch_1), 2: ValidatorSet.of(2, epoch_2)}
    for number, first, _last in committed_ranges(inbox):
        batch = inbox.client.batch(number)
        assert batch is not None
        assert inbox.client.validators_at(batch) == expected[source.epoch_of(first)]
        assert len(inbox.client.batch_signatures(batch)) == 3
    assert poster.state.attempt is None or poster.state.attempt.validator_epoch == 0


def test_a_contract_past_the_next_blocks_epoch_halts_the_poster() -> None:
    inbox = deploy_inbox(VALIDATOR_KEYS, [1, 1, 1, 1])
    new_set = ValidatorSet.of(1, {validator_address(k): 2 for k in VALIDATOR_KEYS})
    inbox.client.update_validators(new_set, QuorumOf(VALIDATOR_KEYS).validator_signatures(
        new_set, inbox.client.domain()))
    source = ChainSource(head=6, epoch_length=4)
    poster = BatchPoster(inbox.client, source, QuorumOf(VALIDATOR_KEYS), MemoryPosterStore(),
                         ManualClock(), PosterConfig(3))
    with pytest.raises(Halt, match="holds validator set 1, but block 1"):
        poster.step()
