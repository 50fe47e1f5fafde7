"""Derivation from L1: rebuild the L2 chain from committed batches alone and check every root.

The watcher walks the BatchInbox batches in order. For each one it fetches the
posted block data, re-executes the blocks on its own chain (a ``DerivedChain``:
the node's storage and executor behind a narrow seam) and compares the state
root it reaches with the root the validators signed. A batch is OK when every
rule holds, else a MISMATCH naming the first rule broken:

1. continuity: ``prev_state_root`` is the root of the last verified batch (the
   genesis root for batch 1) and ``first_block`` follows its last block;
2. signers: the batch's blocks are in one epoch e (``DerivedChain.epoch_of``); the
   validator set L1 checked its signatures against (the last ValidatorsUpdated before
   its commit) is set e with the weights of epoch e on the derived chain (the poster
   installs one set per epoch, from the proofs the chain carries); and its signatures,
   read from the commit transaction, are by distinct members of that set in ascending
   address order holding more than 2/3 of its weight: the contract's quorum rule, so the
   watcher and the contract agree on who may sign each batch;
3. data: the payload matches ``data_hash`` and decodes (l1.codec) into exactly
   the blocks ``first_block..last_block``, in order;
4. execution: every block re-executes under the chain's rules
   (``DerivedChain.replay`` raises InvalidInput otherwise);
5. result: the state root after the last block is the posted ``state_root``.

After a MISMATCH the local state cannot follow the posted chain: the batch's
blocks are unwound, and later batches are only fetched and decoded, reported as
UNVERIFIED, until L1 replaces the bad batch (a reorg); then verification resumes.

Reorgs: each step compares the newest verified batch with what L1 holds now.
When it moved, the watcher walks back to the newest batch whose signed
commitment L1 still holds (a commitment pins the data by its hash and the
previous root, so a batch equal on L1 vouches for the chain below it) and
unwinds the local chain to it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from l1.api import L1Client
from l1.codec import batch_data_hash, batch_digest, decode_batch_data, recover_batch_signer
from l1.types import CommittedBatch, L2BlockData
from primitives.errors import InvalidInput
from primitives.types import Address, Hash32


class DerivedChain(Protocol):
    """The watcher's own L2 chain: blocks re-executed from L1 data, and the batches verified.

    Blocks are appended one at a time by ``replay``; a batch becomes verified when
    ``mark_verified`` records it. Blocks above the last verified batch (a crash or a
    MISMATCH in the middle of a batch) are removed with ``unwind``.
    """

    def genesis_root(self) -> Hash32:
        """State root of block 0, from the genesis file."""
        ...

    def head_block(self) -> int:
        """Number of the last block replayed (0 at genesis)."""
        ...

    def last_verified(self) -> CommittedBatch | None:
        """The newest batch recorded as verified, or None when none is."""
        ...

    def verified(self, number: int) -> CommittedBatch | None:
        """Verified batch ``number`` as it was found on L1, or None when it is not verified."""
        ...

    def epoch_of(self, block: int) -> int:
        """The validator-set epoch of block ``block``."""
        ...

    def validators(self, epoch: int) -> Mapping[Address, int] | None:
        """The weights of ``epoch``'s validators on this chain; None while the blocks that fix
        them are not replayed here."""
        ...

    def replay(self, block: L2BlockData) -> Hash32:
        """Re-execute ``block`` on top of the head and append it; the state root after it.

        Raises InvalidInput, and appends nothing, when the block breaks a chain rule.
        """
        ...

    def mark_verified(self, batch: CommittedBatch) -> None:
        """Record ``batch`` as verified (its blocks are in the chain); replaces a record."""
        ...

    def unwind(self, batch_number: int) -> None:
        """Drop every block after batch ``batch_number``'s last one and the later records
        (0: back to genesis), atomically."""
        ...


class Status(enum.Enum):
    """What the watcher concluded about one batch."""

    OK = "OK"
    """Re-executed; the posted state root is the one reached here."""
    MISMATCH = "MISMATCH"
    """A rule is broken (see the module docstring); the reason says which."""
    UNVERIFIED = "UNVERIFIED"
    """Follows a MISMATCH: its data was read but it cannot be re-executed here."""


@dataclass(frozen=True)
class BatchReport:
    """The verdict on one batch."""

    batch: CommittedBatch
    """The batch as found on L1."""
    status: Status
    """OK, MISMATCH or UNVERIFIED."""
    txs: int | None
    """Transactions in the posted data; None when the data could not be decoded."""
    derived_root: Hash32 | None = None
    """State root this watcher reached; None when re-execution did not get to the end."""
    reason: str = ""
    """Why the batch is not OK (empty when it is)."""

    def line(self) -> str:
        """One line for the user, e.g. ``batch 12 blocks 111-120 txs 37 OK root 0x...``."""
        b = self.batch
        txs = "?" if self.txs is None else str(self.txs)
        head = f"batch {b.batch_number} blocks {b.first_block}-{b.last_block} txs {txs}"
        if self.status is Status.OK:
            return f"{head} OK root 0x{b.state_root.hex()}"
        if self.status is Status.UNVERIFIED:
            return f"{head} UNVERIFIED: {self.reason}"
        derived = "-" if self.derived_root is None else "0x" + self.derived_root.hex()
        return (
            f"{head} MISMATCH expected {derived} posted 0x{b.state_root.hex()}: {self.reason}"
        )


@dataclass(frozen=True)
class Unwound:
    """An L1 reorg removed or replaced batches this watcher had verified."""

    first_batch: int
    """First batch dropped from the local chain."""
    last_batch: int
    """Last batch dropped (the newest that was verified)."""

    def line(self) -> str:
        return (
            f"reorg: L1 no longer holds batches {self.first_batch}-{self.last_batch} as verified; "
            f"unwound to batch {self.first_batch - 1}"
        )


class _Mismatch(Exception):
    """A broken rule, with what was derived up to it."""

    def __init__(self, reason: str, txs: int | None = None) -> None:
        super().__init__(reason)
        self.txs = txs


class Watcher:
    """Verifies the batches of one BatchInbox, in order, one per ``step``."""

    def __init__(self, l1: L1Client, chain: DerivedChain) -> None:
        self._l1 = l1
        self._chain = chain
        # The batch that did not verify, and the last batch reported after it.
        self._diverged: CommittedBatch | None = None
        self._last_reported: CommittedBatch | None = None

    @property
    def diverged(self) -> CommittedBatch | None:
        """The batch whose MISMATCH the local state cannot pass, or None."""
        return self._diverged

    def check_genesis(self) -> None:
        """Raise InvalidInput unless the contract's genesis root is the genesis file's."""
        posted = self._l1.genesis_state_root()
        local = self._chain.genesis_root()
        if posted != local:
            raise InvalidInput(
                f"the genesis file gives state root 0x{local.hex()}, the contract's "
                f"genesisStateRoot is 0x{posted.hex()}: wrong --genesis or --contract"
            )

    def next_batch(self) -> int:
        """Number of the batch the next ``step`` reports."""
        last = self._last_reported or self._diverged or self._chain.last_verified()
        return 1 if last is None else last.batch_number + 1

    def step(self) -> BatchReport | Unwound | None:
        """Handle a reorg or the next batch; None when every batch on L1 has been reported.

        Raises RetryLater when L1 is unavailable (nothing changed; call again later).
        """
        self._drop_unverified_blocks()
        unwound = self._follow_reorg()
        if unwound is not None:
            return unwound
        batch = self._l1.batch(self.next_batch())
        if batch is None:
            return None
        if self._diverged is not None:
            self._last_reported = batch
            return self._check_data_only(batch)
        report = self._verify(batch, self._chain.last_verified())
        if report.status is Status.OK:
            self._chain.mark_verified(batch)
        else:
            self._chain.unwind(batch.batch_number - 1)
            self._diverged = batch
        return report

    def _drop_unverified_blocks(self) -> None:
        """Blocks replayed past the last verified batch (a crash mid-batch) go."""
        last = self._chain.last_verified()
        if self._chain.head_block() != (0 if last is None else last.last_block):
            self._chain.unwind(0 if last is None else last.batch_number)

    def _follow_reorg(self) -> Unwound | None:
        diverged = self._diverged
        if diverged is not None and self._l1.batch(diverged.batch_number) != diverged:
            # The bad batch was reorged out: verify whatever L1 holds now.
            self._diverged = self._last_reported = None
        last = self._chain.last_verified()
        if last is None or self._l1.batch(last.batch_number) == last:
            return None
        keep = last.batch_number
        while keep > 0:
            stored = self._chain.verified(keep)
            posted = self._l1.batch(keep)
            if stored is not None and posted is not None and posted.commitment == stored.commitment:
                if posted != stored:  # the same batch, included again elsewhere on L1
                    self._chain.mark_verified(posted)
                break
            keep -= 1
        if keep == last.batch_number:
            return None
        self._chain.unwind(keep)
        self._diverged = self._last_reported = None
        return Unwound(keep + 1, last.batch_number)

    def _verify(self, batch: CommittedBatch, last: CommittedBatch | None) -> BatchReport:
        try:
            self._check_continuity(batch, last)
            self._check_signers(batch)
            blocks = self._blocks(batch)
        except _Mismatch as exc:
            return BatchReport(batch, Status.MISMATCH, exc.txs, reason=str(exc))
        txs = sum(len(block.transactions) for block in blocks)
        root = batch.prev_state_root
        for block in blocks:
            try:
                root = self._chain.replay(block)
            except InvalidInput as exc:
                return BatchReport(
                    batch, Status.MISMATCH, txs, reason=f"block {block.number} is invalid: {exc}"
                )
        if root != batch.state_root:
            return BatchReport(
                batch, Status.MISMATCH, txs, root,
                f"re-executing blocks {batch.first_block}-{batch.last_block} gives another root",
            )
        return BatchReport(batch, Status.OK, txs, root)

    def _check_continuity(self, batch: CommittedBatch, last: CommittedBatch | None) -> None:
        # Rule: a batch starts from the state and the block where the previous one ended.
        # The contract enforces it too; the watcher trusts no contract it did not check.
        prev_root = self._chain.genesis_root() if last is None else last.state_root
        if batch.prev_state_root != prev_root:
            raise _Mismatch(
                f"prev state root 0x{batch.prev_state_root.hex()} is not the state root "
                f"0x{prev_root.hex()} of batch {batch.batch_number - 1}"
            )
        first = 1 if last is None else last.last_block + 1
        if batch.first_block != first or batch.last_block < batch.first_block:
            raise _Mismatch(f"blocks do not continue the chain at block {first}")

    def _check_signers(self, batch: CommittedBatch) -> None:
        # Rule: one epoch's validators sign a batch, L1 checked them against that epoch's
        # set as this chain derives it, and they hold the contract's quorum of it.
        epoch = self._chain.epoch_of(batch.first_block)
        if self._chain.epoch_of(batch.last_block) != epoch:
            raise _Mismatch(
                f"blocks span epochs {epoch}-{self._chain.epoch_of(batch.last_block)}: "
                "a batch is signed by one epoch's validators"
            )
        weights = self._chain.validators(epoch)
        if weights is None:
            raise _Mismatch(f"the blocks that fix epoch {epoch}'s validators are not verified here")
        on_l1 = self._l1.validators_at(batch)
        if on_l1.epoch != epoch or on_l1.weights != weights:
            raise _Mismatch(
                f"L1 checked its signatures against validator set {on_l1.epoch} "
                f"{_weights_text(on_l1.weights)}, not epoch {epoch}'s {_weights_text(weights)}"
            )
        digest = batch_digest(self._l1.domain(), batch.commitment)
        try:
            signers = [recover_batch_signer(digest, s) for s in self._l1.batch_signatures(batch)]
        except InvalidInput as exc:
            raise _Mismatch(f"signatures: {exc}") from None
        if any(b <= a for a, b in pairwise(signers)):
            raise _Mismatch("signers are not in strictly ascending address order")
        strangers = [s for s in signers if s not in weights]
        if strangers:
            raise _Mismatch(f"0x{strangers[0].hex()} signed but is not in epoch {epoch}'s set")
        signed, total = sum(weights[s] for s in signers), sum(weights.values())
        if 3 * signed <= 2 * total:
            raise _Mismatch(f"signatures hold {signed} of {total} weight: not more than 2/3")

    def _blocks(self, batch: CommittedBatch) -> Sequence[L2BlockData]:
        data = self._l1.batch_data(batch)
        # Rule: the data is what the validators signed (the client checks it; so does the watcher).
        if batch_data_hash(data) != batch.data_hash:
            raise _Mismatch(f"posted data hashes to 0x{batch_data_hash(data).hex()}, not data_hash")
        try:
            blocks = decode_batch_data(data)
        except InvalidInput as exc:
            raise _Mismatch(f"malformed data: {exc}") from None
        txs = sum(len(block.transactions) for block in blocks)
        # Rule: the data holds exactly the batch's blocks, in order.
        numbers = [block.number for block in blocks]
        if numbers != list(range(batch.first_block, batch.last_block + 1)):
            shown = f"{numbers[0]}-{numbers[-1]} ({len(numbers)} blocks)" if numbers else "none"
            raise _Mismatch(f"data holds blocks {shown}, not the batch's range", txs)
        return blocks

    def _check_data_only(self, batch: CommittedBatch) -> BatchReport:
        assert self._diverged is not None
        try:
            txs: int | None = sum(len(b.transactions) for b in self._blocks(batch))
        except _Mismatch as exc:
            return BatchReport(batch, Status.MISMATCH, exc.txs, reason=str(exc))
        return BatchReport(
            batch, Status.UNVERIFIED, txs,
            reason=f"follows batch {self._diverged.batch_number}, which did not verify",
        )


def _weights_text(weights: Mapping[Address, int]) -> str:
    return "{" + ", ".join(f"0x{a.hex()[:8]}..: {w}" for a, w in sorted(weights.items())) + "}"
