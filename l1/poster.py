"""Posts finalized L2 blocks to the L1 batch contract, a fixed number of blocks per batch.

The contract is the source of truth for what is posted: every step reads its last
batch and works on the one after, so a restarted poster never posts a batch twice,
and batches that an L1 reorg dropped are posted again. What the poster keeps in its
store (``PosterStore``) is only what it cannot read back from L1 or rebuild cheaply:
signed batches not yet confirmed (signatures may have taken a gossip round to
collect) and the transactions in flight with their nonces and fees.

One step, in order:

1. read L1 (head, last committed batch, validator-set epoch); halt if L1's batch
   disagrees with the local chain;
2. drop queued batches that are committed and ``confirmations`` blocks deep;
3. sign and queue new batches of ``blocks_per_batch`` finalized blocks (a batch ends at
   its epoch's last block: one epoch's validators sign it);
4. post what L1 needs next, in order: when the next block to post is in a later epoch than
   the contract's validator set, the update to the next set (updateValidators, signed by
   more than 2/3 of the set L1 holds), else the first batch L1 lacks (data parts, then the
   commit). Send its transactions at consecutive nonces, or watch the ones in flight:
   re-send one the L1 node forgot, bump the fees (same nonce, +12.5% on both caps at
   least) of one pending for ``stuck_blocks`` blocks, and start over when one was mined
   but reverted or its nonce went to another transaction.

So the contract's validator epoch is the L2 epoch of the batches it accepts: the update
for epoch e lands after the last batch of epoch e - 1 and before the first of epoch e.

L1 trouble (RetryLater) pauses posting for ``retry_delay_s``; nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from l1.api import BatchSignatures, BlockSource, L1Client, L1Rejected, PosterStore
from l1.codec import (
    batch_data_hash,
    batch_digest,
    encode_batch_data,
    sign_batch,
    validator_set_digest,
)
from l1.types import (
    BatchCommitment,
    BatchDomain,
    CommittedBatch,
    L1Call,
    L1Fees,
    L1Head,
    PostAttempt,
    PosterState,
    SentTransaction,
    SignedBatch,
    ValidatorSet,
)
from primitives.clock import Clock
from primitives.errors import Halt, RetryLater

log = logging.getLogger(__name__)

FEE_BUMP_PERCENT = 125
"""A replacement pays at least 12.5% more on both fee caps (geth's and anvil's minimum is 10%)."""


@dataclass(frozen=True)
class PosterConfig:
    """How the poster batches and how patient it is with L1."""

    blocks_per_batch: int = 10
    """L2 blocks per batch (``flush`` posts a partial last one)."""
    confirmations: int = 6
    """L1 blocks on top of a commit before its batch leaves the queue."""
    stuck_blocks: int = 3
    """L1 blocks a transaction may stay pending before its fees are bumped."""
    max_queue: int = 16
    """Most signed batches kept ahead of L1."""
    retry_delay_s: float = 5.0
    """Pause after L1 trouble before the next try."""

    def __post_init__(self) -> None:
        if self.blocks_per_batch < 1:
            raise ValueError(f"blocks_per_batch must be at least 1, got {self.blocks_per_batch}")
        if self.confirmations < 0 or self.stuck_blocks < 1 or self.max_queue < 1:
            raise ValueError(f"invalid poster config {self}")


class LocalSignatures:
    """BatchSignatures of a single validator: it signs every batch and set update itself."""

    def __init__(self, validator_key: bytes) -> None:
        self._key = validator_key

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes]:
        return (sign_batch(batch_digest(domain, commitment), self._key),)

    def validator_signatures(self, new_set: ValidatorSet, domain: BatchDomain) -> Sequence[bytes]:
        return (sign_batch(validator_set_digest(domain, new_set), self._key),)


@dataclass(frozen=True)
class _Job:
    """The L1 transactions of one post: a batch's, or a validator-set update's."""

    batch_number: int
    """The batch posted, or the one the update must precede."""
    validator_epoch: int
    """0 for a batch; else the validator-set epoch the update installs."""
    calls: tuple[L1Call, ...]
    """In nonce order."""


class MemoryPosterStore:
    """PosterStore that lives as long as the object (tests, and nodes without a database)."""

    def __init__(self) -> None:
        self._state = PosterState()

    def load(self) -> PosterState:
        return self._state

    def save(self, state: PosterState) -> None:
        self._state = state


class BatchPoster:
    """Commits finalized blocks to L1 in batches, signed through ``signer``, sent by ``client``."""

    def __init__(
        self,
        client: L1Client,
        source: BlockSource,
        signer: BatchSignatures,
        store: PosterStore,
        clock: Clock,
        config: PosterConfig = PosterConfig(),
    ) -> None:
        self._client = client
        self._source = source
        self._signer = signer
        self._store = store
        self._clock = clock
        self._config = config
        self._state = store.load()
        self._domain: BatchDomain | None = None  # read from L1 at the first signature
        # The L1 calls of the batch posted last, by its commitment and signatures: a step
        # asks for them again while it is in flight, and ABI-encoding megabytes of batch data
        # each time took the node's interpreter for nothing.
        self._calls: tuple[BatchCommitment, tuple[bytes, ...], tuple[L1Call, ...]] | None = None
        self._retry_at = float("-inf")

    @property
    def state(self) -> PosterState:
        """What the poster holds now (as saved in its store)."""
        return self._state

    def step(self) -> CommittedBatch | None:
        """One round (see the module docstring); returns L1's latest batch, None if none or no L1.

        Raises Halt when L1 holds a batch that disagrees with the local chain.
        """
        now = self._clock.now()
        if now < self._retry_at:
            return None
        try:
            return self._step(self._config.blocks_per_batch)
        except RetryLater as exc:
            self._retry_at = now + self._config.retry_delay_s
            log.warning("L1 batch posting deferred %.0fs: %s", self._config.retry_delay_s, exc)
            return None

    def flush(self) -> CommittedBatch | None:
        """A step that also queues a last partial batch (for shutdown, tools and tests).

        Raises RetryLater when L1 is unavailable.
        """
        return self._step(1)

    def _step(self, min_blocks: int) -> CommittedBatch | None:
        head = self._client.head()
        latest = self._client.latest_batch()
        if latest is not None:
            self._check_agrees(latest)
        latest_number = 0 if latest is None else latest.batch_number
        on_l1 = self._client.validator_set().epoch
        queue = self._confirmed_dropped(self._state.queue, latest_number, head)
        queue = self._filled(queue, latest, min_blocks)
        attempt = self._state.attempt
        if attempt is not None and (
            attempt.validator_epoch <= on_l1 if attempt.validator_epoch else attempt.batch_number <= latest_number
        ):
            attempt = None  # it landed
        self._save(PosterState(queue, attempt))
        job = self._next_job(queue, latest, on_l1)
        if job is not None:
            self._save(self._post(job, attempt, head))
        return latest

    def _next_job(
        self, queue: tuple[SignedBatch, ...], latest: CommittedBatch | None, on_l1: int
    ) -> _Job | None:
        """What L1 needs next: the next validator set, or the first batch it lacks; None
        while that is not signed (or not fixed) yet."""
        number = 1 if latest is None else latest.batch_number + 1
        next_block = 1 if latest is None else latest.last_block + 1
        epoch = self._source.epoch_of(next_block)
        if epoch < on_l1:
            raise Halt(
                f"the L1 contract holds validator set {on_l1}, but block {next_block}, the next "
                f"to post, is signed by epoch {epoch}'s validators: its batch can never land"
            )
        if epoch > on_l1:
            weights = self._source.validators(on_l1 + 1)
            if weights is None:
                return None
            new_set = ValidatorSet.of(on_l1 + 1, weights)
            signatures = self._signer.validator_signatures(new_set, self._domain_of_l1())
            if signatures is None:
                return None  # no quorum yet: ask again next step
            return _Job(number, new_set.epoch, (self._client.validators_call(new_set, signatures),))
        batch = next((b for b in queue if b.commitment.batch_number == number), None)
        if batch is None:
            return None
        if self._calls is None or self._calls[:2] != (batch.commitment, batch.signatures):
            calls = self._client.batch_calls(batch.commitment, batch.data, batch.signatures)
            self._calls = (batch.commitment, batch.signatures, calls)
        return _Job(number, 0, self._calls[2])

    def _domain_of_l1(self) -> BatchDomain:
        if self._domain is None:
            self._domain = self._client.domain()
        return self._domain

    def _confirmed_dropped(
        self, queue: tuple[SignedBatch, ...], latest_number: int, head: L1Head
    ) -> tuple[SignedBatch, ...]:
        """``queue`` without batches committed ``confirmations`` deep; all of it if L1 lost some."""
        kept = []
        for batch in queue:
            number = batch.commitment.batch_number
            if number <= latest_number:
                committed = self._client.batch(number)
                if committed is None:
                    raise RetryLater(f"batch {number} vanished from L1 while reading")
                if committed.commitment != batch.commitment:
                    # Another poster committed this batch with other blocks: what we queued
                    # after it no longer continues L1's chain; rebuild from L1's latest.
                    log.info("batch %d was committed by another poster", number)
                    return ()
                if committed.l1_block_number + self._config.confirmations <= head.number:
                    log.info("batch %d confirmed in L1 block %d", number, committed.l1_block_number)
                    continue
            kept.append(batch)
        if kept and kept[0].commitment.batch_number > latest_number + 1:
            # An L1 reorg deeper than ``confirmations`` dropped batches we no longer hold:
            # rebuild from the contract's latest (the queue continues from there).
            log.warning(
                "L1 lost batches %d..%d: posting them again",
                latest_number + 1,
                kept[0].commitment.batch_number - 1,
            )
            return ()
        return tuple(kept)

    def _filled(
        self, queue: tuple[SignedBatch, ...], latest: CommittedBatch | None, min_blocks: int
    ) -> tuple[SignedBatch, ...]:
        """``queue`` extended by newly signed batches of finalized blocks."""
        batches = list(queue)
        while len(batches) < self._config.max_queue:
            if batches:
                after = batches[-1].commitment
                number, first, prev_root = after.batch_number + 1, after.last_block + 1, after.state_root
            elif latest is not None:
                number, first, prev_root = latest.batch_number + 1, latest.last_block + 1, latest.state_root
            else:
                number, first, prev_root = 1, 1, self._source.state_root(0)
            available = self._source.head_number() - first + 1
            if available < 1:
                break
            last = first + min(available, self._config.blocks_per_batch) - 1
            epoch = self._source.epoch_of(first)
            while self._source.epoch_of(last) != epoch:
                last -= 1  # one epoch's validators sign a batch: it ends with the epoch
            if available < min_blocks and self._source.epoch_of(last + 1) == epoch:
                break
            data = encode_batch_data(self._source.block_data(n) for n in range(first, last + 1))
            commitment = BatchCommitment(
                batch_number=number,
                prev_state_root=prev_root,
                state_root=self._source.state_root(last),
                first_block=first,
                last_block=last,
                data_hash=batch_data_hash(data),
            )
            signatures = self._signer.signatures(commitment, self._domain_of_l1())
            if signatures is None:
                break  # no quorum yet: ask again next step
            batches.append(SignedBatch(commitment, data, tuple(signatures)))
        return tuple(batches)

    def _post(self, job: _Job, attempt: PostAttempt | None, head: L1Head) -> PosterState:
        """Send ``job`` or look after its transactions in flight; the state after that."""
        queue = self._state.queue
        number = job.batch_number
        if attempt is None or (attempt.batch_number, attempt.validator_epoch) != (number, job.validator_epoch):
            self._preflight(job, job.calls[0])
            fees = self._client.suggested_fees()
            if attempt is not None:
                # An attempt for something later: an L1 reorg dropped this. Its transactions,
                # or the dropped ones, may be back in the L1 pool at the nonces we now use.
                fees = _max_fees(fees, _bumped(_highest_fees(attempt)))
            nonce = self._client.poster_nonce()
            return PosterState(queue, self._send(job, head, (), nonce, fees))
        mined = self._client.poster_nonce()
        transactions = list(attempt.transactions)
        for index, sent in enumerate(transactions):
            if sent.nonce < mined:
                receipt = next(
                    (r for h in reversed(sent.tx_hashes) if (r := self._client.receipt(h)) is not None),
                    None,
                )
                if receipt is None:
                    log.warning(
                        "%s (nonce %d): another transaction took its nonce; posting again",
                        sent.call.what,
                        sent.nonce,
                    )
                    # Later transactions of this attempt may sit in the L1 pool at the nonces
                    # the new attempt uses: replacing them needs a bump over their fees.
                    fees = _max_fees(self._client.suggested_fees(), _bumped(_highest_fees(attempt)))
                    return PosterState(queue, self._send(job, head, (), mined, fees))
                if not receipt.success:
                    log.warning("%s (nonce %d) reverted", sent.call.what, sent.nonce)
                    if index == len(job.calls) - 1:
                        self._preflight(job, sent.call)  # the parts are on L1: the real reason
                    if job.validator_epoch:
                        return PosterState(queue)  # signatures are asked for again next step
                    # L1 moved under the batch (another poster, a reorg): sign it again
                    # from L1's state at the next step instead of repeating the revert.
                    return PosterState(tuple(b for b in queue if b.commitment.batch_number < number))
                continue
            transactions[index] = self._look_after(sent, head)
            # Saved at once: a later send failing must not lose the hash of a bump just sent.
            self._save(PosterState(queue, PostAttempt(number, tuple(transactions), job.validator_epoch)))
        last = transactions[-1]
        # A send that failed part-way (L1 went away) left the rest of the calls unsent.
        return PosterState(queue, self._send(job, head, tuple(transactions), last.nonce + 1, last.fees))

    def _preflight(self, job: _Job, call: L1Call) -> None:
        """Raise L1Rejected if ``call`` would revert for another reason than L1 moving on.

        A refusal while L1 still lacks what ``job`` posts means the batch or update itself
        is wrong (signatures, roots): posting it can never succeed. If another poster
        posted it meanwhile, RetryLater: the next step rebuilds from L1.
        """
        try:
            self._client.simulate(call)
        except L1Rejected as exc:
            if job.validator_epoch:
                landed = self._client.validator_set().epoch >= job.validator_epoch
            else:
                latest = self._client.latest_batch()
                landed = latest is not None and latest.batch_number >= job.batch_number
            if landed:
                raise RetryLater(f"{call.what}: posted meanwhile") from exc
            raise

    def _send(
        self,
        job: _Job,
        head: L1Head,
        sent: tuple[SentTransaction, ...],
        nonce: int,
        fees: L1Fees,
    ) -> PostAttempt:
        """The attempt with ``sent`` and then the rest of ``job``'s calls, sent from ``nonce``."""
        attempt = PostAttempt(job.batch_number, sent, job.validator_epoch)
        for call in job.calls[len(sent) :]:
            tx_hash = self._client.send(call, nonce, fees)
            transaction = SentTransaction(call, nonce, fees, (tx_hash,), head.number)
            attempt = PostAttempt(job.batch_number, (*attempt.transactions, transaction), job.validator_epoch)
            # Saved after each send: a crash between sends leaves the nonces accounted for.
            self._save(PosterState(self._state.queue, attempt))
            log.info("sent %s (nonce %d)", call.what, nonce)
            nonce += 1
        return attempt

    def _look_after(self, sent: SentTransaction, head: L1Head) -> SentTransaction:
        """A pending transaction: sent again if the L1 node forgot it, bumped if stuck."""
        stuck = head.number >= sent.sent_at_l1_block + self._config.stuck_blocks
        if not stuck and head.number >= sent.sent_at_l1_block:
            if not self._client.is_known(sent.tx_hashes[-1]):
                # Dropped from the pool (an L1 restart, a reorg): the same transaction again.
                self._client.send(sent.call, sent.nonce, sent.fees)
                log.info("re-sent %s (nonce %d)", sent.call.what, sent.nonce)
            return sent
        fees = _max_fees(_bumped(sent.fees), self._client.suggested_fees())
        tx_hash = self._client.send(sent.call, sent.nonce, fees)
        log.info(
            "%s (nonce %d) pending since L1 block %d: fees bumped to %d/%d",
            sent.call.what,
            sent.nonce,
            sent.sent_at_l1_block,
            fees.max_fee_per_gas,
            fees.max_priority_fee_per_gas,
        )
        return SentTransaction(sent.call, sent.nonce, fees, (*sent.tx_hashes, tx_hash), head.number)

    def _save(self, state: PosterState) -> None:
        if state != self._state:
            self._store.save(state)
            self._state = state

    def _check_agrees(self, committed: CommittedBatch) -> None:
        """L1's last batch must end on a state root the local chain has at that block."""
        if committed.last_block > self._source.head_number():
            return  # L1 is ahead of this node (still syncing): nothing to compare yet
        local = self._source.state_root(committed.last_block)
        if local != committed.state_root:
            raise Halt(
                f"L1 batch {committed.batch_number} ends block {committed.last_block} with state "
                f"root 0x{committed.state_root.hex()}, the local chain has 0x{local.hex()}"
            )


def _bumped(fees: L1Fees) -> L1Fees:
    """Both caps raised by FEE_BUMP_PERCENT (rounded up, and by at least 1 wei)."""
    return L1Fees(
        max_fee_per_gas=max(fees.max_fee_per_gas * FEE_BUMP_PERCENT // 100 + 1, fees.max_fee_per_gas + 1),
        max_priority_fee_per_gas=max(
            -(-fees.max_priority_fee_per_gas * FEE_BUMP_PERCENT // 100), fees.max_priority_fee_per_gas + 1
        ),
    )


def _max_fees(a: L1Fees, b: L1Fees) -> L1Fees:
    return L1Fees(
        max_fee_per_gas=max(a.max_fee_per_gas, b.max_fee_per_gas),
        max_priority_fee_per_gas=max(a.max_priority_fee_per_gas, b.max_priority_fee_per_gas),
    )


def _highest_fees(attempt: PostAttempt) -> L1Fees:
    return L1Fees(
        max_fee_per_gas=max(t.fees.max_fee_per_gas for t in attempt.transactions),
        max_priority_fee_per_gas=max(t.fees.max_priority_fee_per_gas for t in attempt.transactions),
    )
