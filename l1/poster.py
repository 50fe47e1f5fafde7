"""Posts finalized L2 blocks to the L1 batch contract, a fixed number of blocks per batch.

The contract is the source of truth for what is posted: every step reads its
last batch and posts what follows, so a restarted poster never posts a batch
twice, and a fresh (empty) L1 receives every batch again from block 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from l1.api import BlockSource, L1Client
from l1.codec import batch_data_hash, batch_digest, encode_batch_data, sign_batch
from l1.types import BatchCommitment, BatchDomain, CommittedBatch
from primitives.errors import Halt, RetryLater

log = logging.getLogger(__name__)

RETRY_DELAY_S = 5.0
"""Pause after L1 trouble before ``step`` tries again."""


@dataclass(frozen=True)
class _SignedBatch:
    """A batch ready to send."""

    commitment: BatchCommitment
    """What the contract checks."""
    data: bytes
    """Encoded block data (calldata)."""
    signatures: tuple[bytes, ...]
    """Validator signatures over the batch digest, in the contract's order."""


class BatchPoster:
    """Commits batches of ``blocks_per_batch`` finalized blocks, in order, signed by this validator.

    It signs for the contract ``client`` talks to (``client.domain()``).
    """

    def __init__(
        self,
        client: L1Client,
        source: BlockSource,
        signer_key: bytes,
        blocks_per_batch: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_delay_s: float = RETRY_DELAY_S,
    ) -> None:
        if blocks_per_batch < 1:
            raise ValueError(f"blocks_per_batch must be at least 1, got {blocks_per_batch}")
        self._client = client
        self._source = source
        self._signer_key = signer_key
        self._domain: BatchDomain | None = None  # read from L1 at the first post
        self._blocks_per_batch = blocks_per_batch
        self._clock = clock
        self._retry_delay_s = retry_delay_s
        self._retry_at = float("-inf")
        # Built and signed but not yet on L1 (the send failed): sent again as is.
        self._pending: _SignedBatch | None = None

    def step(self) -> CommittedBatch | None:
        """Post the next batch when ``blocks_per_batch`` finalized blocks follow the last one.

        Returns the batch as committed, or None when there is nothing to post yet or
        L1 is unavailable (then it waits ``retry_delay_s`` before the next try).
        Raises Halt when L1 holds a batch that disagrees with the local chain.
        """
        now = self._clock()
        if now < self._retry_at:
            return None
        try:
            return self._post_next(self._blocks_per_batch)
        except RetryLater as exc:
            self._retry_at = now + self._retry_delay_s
            log.warning("L1 batch posting deferred %.0fs: %s", self._retry_delay_s, exc)
            return None

    def flush(self) -> tuple[CommittedBatch, ...]:
        """Post every finalized block not yet on L1, the last batch possibly partial.

        For shutdown and tests; raises RetryLater when L1 is unavailable.
        """
        posted = []
        while (batch := self._post_next(1)) is not None:
            posted.append(batch)
        return tuple(posted)

    def _post_next(self, min_blocks: int) -> CommittedBatch | None:
        latest = self._client.latest_batch()
        next_number = 1 if latest is None else latest.batch_number + 1
        if latest is not None:
            self._check_agrees(latest)
        if self._pending is not None and self._pending.commitment.batch_number != next_number:
            if self._pending.commitment.batch_number < next_number:
                self._check_agrees_with_pending(self._pending.commitment)
            # Either it landed after all, or L1 lost earlier batches (a reorg): rebuild.
            self._pending = None
        batch = self._pending or self._build(latest, min_blocks)
        if batch is None:
            return None
        self._pending = batch
        self._client.commit_batch(batch.commitment, batch.data, batch.signatures)
        self._pending = None
        committed = self._client.batch(batch.commitment.batch_number)
        if committed is None:
            raise RetryLater(
                f"batch {batch.commitment.batch_number} not visible on L1 after commit"
            )
        log.info(
            "committed batch %d (blocks %d..%d, state root %s) in L1 block %d",
            committed.batch_number,
            committed.first_block,
            committed.last_block,
            committed.state_root.hex()[:12],
            committed.l1_block_number,
        )
        return committed

    def _build(self, latest: CommittedBatch | None, min_blocks: int) -> _SignedBatch | None:
        first = 1 if latest is None else latest.last_block + 1
        available = self._source.head_number() - first + 1
        if available < min_blocks:
            return None
        last = first + min(available, self._blocks_per_batch) - 1
        data = encode_batch_data(self._source.block_data(n) for n in range(first, last + 1))
        commitment = BatchCommitment(
            batch_number=1 if latest is None else latest.batch_number + 1,
            prev_state_root=self._source.state_root(0) if latest is None else latest.state_root,
            state_root=self._source.state_root(last),
            first_block=first,
            last_block=last,
            data_hash=batch_data_hash(data),
        )
        if self._domain is None:
            self._domain = self._client.domain()
        signature = sign_batch(batch_digest(self._domain, commitment), self._signer_key)
        return _SignedBatch(commitment, data, (signature,))

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

    def _check_agrees_with_pending(self, pending: BatchCommitment) -> None:
        """A batch whose send seemed to fail is on L1 after all: it must be ours."""
        committed = self._client.batch(pending.batch_number)
        if committed is None or committed.commitment != pending:
            raise Halt(f"L1 holds batch {pending.batch_number} but not the one this node signed")
