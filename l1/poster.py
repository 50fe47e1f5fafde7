"""Posts finalized L2 blocks to the L1 batch contract, a fixed number of blocks per batch.

The contract is the source of truth for what is posted: every step reads its last
batch and works on the one after, so a restarted poster never posts a batch twice,
and batches that an L1 reorg dropped are posted again. What the poster keeps in its
store (``PosterStore``) is only what it cannot read back from L1 or rebuild cheaply:
signed batches not yet confirmed (signatures may have taken a gossip round to
collect) and the transactions in flight with their nonces and fees.

One step, in order:

1. read L1 (head, last committed batch); halt if L1's batch disagrees with the local chain;
2. drop queued batches that are committed and ``confirmations`` blocks deep;
3. sign and queue new batches of ``blocks_per_batch`` finalized blocks;
4. post the first batch L1 lacks: send its transactions (data parts, then the commit)
   at consecutive nonces, or watch the ones in flight: re-send one the L1 node
   forgot, bump the fees (same nonce, +12.5% on both caps at least) of one pending for
   ``stuck_blocks`` blocks, and start over when one was mined but reverted or its
   nonce went to another transaction.

L1 trouble (RetryLater) pauses posting for ``retry_delay_s``; nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from l1.api import BatchSignatures, BlockSource, L1Client, L1Rejected, PosterStore
from l1.codec import batch_data_hash, batch_digest, encode_batch_data, sign_batch
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
    """BatchSignatures of a single validator: it signs every batch itself."""

    def __init__(self, validator_key: bytes) -> None:
        self._key = validator_key

    def signatures(self, commitment: BatchCommitment, domain: BatchDomain) -> Sequence[bytes]:
        return (sign_batch(batch_digest(domain, commitment), self._key),)


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
        queue = self._confirmed_dropped(self._state.queue, latest_number, head)
        queue = self._filled(queue, latest, min_blocks)
        attempt = self._state.attempt
        if attempt is not None and attempt.batch_number <= latest_number:
            attempt = None  # it landed
        self._save(PosterState(queue, attempt))
        pending = next((b for b in queue if b.commitment.batch_number == latest_number + 1), None)
        if pending is not None:
            self._save(self._post(pending, attempt, head))
        return latest

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
            if available < min_blocks:
                break
            last = first + min(available, self._config.blocks_per_batch) - 1
            data = encode_batch_data(self._source.block_data(n) for n in range(first, last + 1))
            commitment = BatchCommitment(
                batch_number=number,
                prev_state_root=prev_root,
                state_root=self._source.state_root(last),
                first_block=first,
                last_block=last,
                data_hash=batch_data_hash(data),
            )
            if self._domain is None:
                self._domain = self._client.domain()
            signatures = self._signer.signatures(commitment, self._domain)
            if signatures is None:
                break  # no quorum yet: ask again next step
            batches.append(SignedBatch(commitment, data, tuple(signatures)))
        return tuple(batches)

    def _post(self, batch: SignedBatch, attempt: PostAttempt | None, head: L1Head) -> PosterState:
        """Send ``batch`` or look after its transactions in flight; the state after that."""
        queue = self._state.queue
        number = batch.commitment.batch_number
        batch_calls = self._client.batch_calls(batch.commitment, batch.data, batch.signatures)
        if attempt is None or attempt.batch_number != number:
            self._preflight(batch, batch_calls[0])
            fees = self._client.suggested_fees()
            if attempt is not None:
                # An attempt for a later batch: an L1 reorg dropped this one. Its transactions,
                # or the dropped ones, may be back in the L1 pool at the nonces we now use.
                fees = _max_fees(fees, _bumped(_highest_fees(attempt)))
            nonce = self._client.poster_nonce()
            return PosterState(queue, self._send(batch, batch_calls, head, (), nonce, fees))
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
                    return PosterState(queue, self._send(batch, batch_calls, head, (), mined, fees))
                if not receipt.success:
                    log.warning("%s (nonce %d) reverted", sent.call.what, sent.nonce)
                    if index == len(batch_calls) - 1:
                        self._preflight(batch, sent.call)  # the parts are on L1: the real reason
                    # L1 moved under the batch (another poster, a reorg): sign it again
                    # from L1's state at the next step instead of repeating the revert.
                    return PosterState(tuple(b for b in queue if b.commitment.batch_number < number))
                continue
            transactions[index] = self._look_after(sent, head)
            # Saved at once: a later send failing must not lose the hash of a bump just sent.
            self._save(PosterState(queue, PostAttempt(number, tuple(transactions))))
        last = transactions[-1]
        # A send that failed part-way (L1 went away) left the rest of the calls unsent.
        rest_from = last.nonce + 1
        return PosterState(
            queue, self._send(batch, batch_calls, head, tuple(transactions), rest_from, last.fees)
        )

    def _preflight(self, batch: SignedBatch, call: L1Call) -> None:
        """Raise L1Rejected if ``call`` would revert for another reason than L1 moving on.

        A refusal while L1's latest batch still precedes ``batch`` means the batch itself
        is wrong (signatures, roots): posting it can never succeed. If another poster
        committed meanwhile, RetryLater: the next step rebuilds from L1.
        """
        try:
            self._client.simulate(call)
        except L1Rejected as exc:
            latest = self._client.latest_batch()
            if latest is not None and latest.batch_number >= batch.commitment.batch_number:
                raise RetryLater(f"batch {batch.commitment.batch_number} was committed meanwhile") from exc
            raise

    def _send(
        self,
        batch: SignedBatch,
        calls: tuple[L1Call, ...],
        head: L1Head,
        sent: tuple[SentTransaction, ...],
        nonce: int,
        fees: L1Fees,
    ) -> PostAttempt:
        """The attempt with ``sent`` and then the rest of ``calls``, sent from ``nonce``."""
        commitment = batch.commitment
        attempt = PostAttempt(commitment.batch_number, sent)
        for call in calls[len(sent) :]:
            tx_hash = self._client.send(call, nonce, fees)
            transaction = SentTransaction(call, nonce, fees, (tx_hash,), head.number)
            attempt = PostAttempt(commitment.batch_number, (*attempt.transactions, transaction))
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
