"""The GPU-weight challenge window and the inclusion rule that keeps proofs from being censored (pure).

The chain, not a node's config, says how long everyone may compute. For epoch ``e`` with
``E`` blocks an epoch (heights e*E+1 .. e*E+E)::

    seed block       (e-1)*E+D                the last block of the window before: it fixes
                                              e's seed (``next_seed``); everyone starts then
    window           e*E+1 .. e*E+D           blocks that may carry epoch e's proofs (D = deadline)
    cutoff           e*E+D-C                  a proof a validator holds when it starts this
                                              height must be in a block by e*E+D
    honest stop      start of cutoff-1        an honest prover stops computing here, leaving a
                                              block for its proof to spread and be verified

A proof carried after the window (or in another epoch's blocks) makes the block invalid, so
it earns nothing: a node that computes longer than the window gains nothing, and one that
stops at the honest stop loses at most the last C+1 blocks' worth of work to a prover that
computes right up to the deadline and then needs a block of its own in the last C+1 heights
to carry it (honest proposers carry only what they held at the cutoff; see ``carry``).

Censorship: every proposer must carry the proofs it has seen (``carry``), and from the
cutoff to the deadline a validator prevotes nil for a block that leaves out a proof it held
at the cutoff (``missing``). A proof gossiped before the cutoff is held by every honest
validator (> 2/3 of the weight), so a block without it cannot gather > 2/3 of the prevotes:
the round fails and the next proposer carries it. A full block (``MAX_PROOFS`` proofs) is
never faulted for what it could not fit. Extra proofs are never a reason for a nil vote, so
honest validators that saw a late proof at different moments cannot deadlock the deadline.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import rlp

from primitives.crypto import keccak256
from primitives.types import Address, Hash32

REVEAL_TAG = b"l2node/election/reveal/1"
SEED_TAG = b"l2node/election/seed/1"

MAX_PROOFS = 8
"""A block carries at most this many weight proofs (each at most 320 KB: 2.5 MB in all, under
the 4 MB gossip limit with a block's transactions)."""


@dataclass(frozen=True)
class ChallengeWindow:
    """When an epoch's proofs may be computed and carried, in block heights (the same on
    every node: derived from the genesis' ``epoch_length``)."""

    epoch_length: int
    """Blocks per epoch (E); 0: no epochs, no proofs."""
    deadline: int
    """Blocks after the seed block by which a proof must be carried (D, 1 <= D <= E)."""
    cutoff: int
    """Blocks before the deadline from which proofs a validator holds must be carried (C < D)."""

    @classmethod
    def of(cls, epoch_length: int) -> ChallengeWindow:
        """The window of a chain with ``epoch_length``: the first two thirds of the epoch
        (D = E - E // 3: 20 of 30 blocks), cutoff one block before the deadline when the
        window has room for it. The last third lets the next epoch's challenge start (at the
        seed block) before that epoch does, and its proofs reach the first blocks."""
        deadline = epoch_length - epoch_length // 3
        return cls(epoch_length, deadline, 1 if deadline > 2 else 0)

    def epoch_of(self, height: int) -> int:
        """The epoch of block ``height`` (heights 1 .. E are epoch 0)."""
        return 0 if self.epoch_length <= 0 else max(height - 1, 0) // self.epoch_length

    def seed_height(self, epoch: int) -> int:
        """The block that fixes ``epoch``'s seed (the last of the window before; genesis for
        epoch 0): the challenge starts once it is final."""
        return 0 if epoch == 0 else self.last_height(epoch - 1)

    def first_height(self, epoch: int) -> int:
        return epoch * self.epoch_length + 1

    def last_height(self, epoch: int) -> int:
        """The last block that may carry ``epoch``'s proofs (the inclusion deadline)."""
        return epoch * self.epoch_length + self.deadline

    def cutoff_height(self, epoch: int) -> int:
        """At the start of this height a validator fixes the proofs it requires by the deadline."""
        return self.last_height(epoch) - self.cutoff

    def stop_height(self, epoch: int) -> int:
        """An honest prover stops computing when it starts this height (at least the first)."""
        return max(self.cutoff_height(epoch) - 1, self.first_height(epoch))

    def proving_epoch(self, height: int) -> int:
        """The epoch whose challenge runs while ``height`` is decided: its own until its
        window closes, then the next one (whose seed that closing fixed)."""
        epoch = self.epoch_of(height)
        return epoch + 1 if self.epoch_length > 0 and height > self.last_height(epoch) else epoch

    def may_carry(self, height: int) -> bool:
        """Whether block ``height`` may carry proofs of its epoch at all."""
        return self.epoch_length > 0 and height <= self.last_height(self.epoch_of(height))

    def must_carry(self, height: int) -> bool:
        """Whether the proofs held at the cutoff are required from block ``height`` on."""
        epoch = self.epoch_of(height)
        return self.epoch_length > 0 and self.cutoff_height(epoch) <= height <= self.last_height(epoch)


def carry(held: Mapping[Address, bytes], included: Collection[Address],
          due: Collection[Address] | None) -> list[bytes]:
    """What an honest proposer carries: every proof it holds of a validator without one in
    the epoch yet (``due`` None: before the cutoff), or only those it held at the cutoff
    (after it: a proof first seen later was computed past the honest stop), at most
    MAX_PROOFS, the due ones first."""
    wanted = [v for v in sorted(held) if v not in included and (due is None or v in due)]
    return [held[v] for v in wanted[:MAX_PROOFS]]


def missing(height: int, window: ChallengeWindow, due: Collection[Address],
            included: Collection[Address], carried: Collection[Address],
            round: int = 0, validators: int = 1) -> set[Address]:
    """Validators whose proof block ``height`` must carry and does not: those in ``due``
    (held at the cutoff) with no proof in the epoch's earlier blocks (``included``) nor in
    this one (``carried``). A non-empty answer is a nil prevote.

    Empty outside [cutoff, deadline], for a full block, and from round ``validators`` on:
    by then every validator has proposed at this height (sequencer.leader: round r is the
    r-th of a permutation), and honest proposers carry every proof they hold at the
    cutoff, so if none of their blocks passed, what is asked for is held by too few to be
    carried (a proof that did not spread): insisting would stop the chain, and a
    censoring proposer cannot get here without every honest proposer failing first."""
    if not window.must_carry(height) or len(carried) >= MAX_PROOFS or round >= validators:
        return set()
    return set(due) - set(included) - set(carried)


# -- the seed: commit-reveal through the proofs ------------------------------------------


def reveal(private_key: bytes, chain_id: int, epoch: int) -> bytes:
    """The secret a validator reveals in its proof of ``epoch`` (committed to, by its keccak,
    in its proof of the epoch before). Derived from its key, so there is nothing to store,
    and unknown to anyone else until revealed."""
    return keccak256(rlp.encode([REVEAL_TAG, chain_id, epoch, private_key]))


def counted_reveals(carried: Mapping[Address, bytes],
                    commits: Mapping[Address, bytes]) -> dict[Address, bytes]:
    """The reveals carried in an epoch's window (validator -> reveal) that open the
    commitment the same validator's proof made in the epoch before (``commits``); a
    validator without one there reveals nothing that counts."""
    return {v: r for v, r in carried.items() if v in commits and keccak256(r) == commits[v]}


def next_seed(epoch: int, seed: Hash32, reveals: Mapping[Address, bytes]) -> Hash32:
    """The seed of ``epoch`` + 1: keccak of ``epoch``'s seed and its counted reveals, in
    address order.

    Fixed once the window of ``epoch`` closes (block ``last_height(epoch)``): E - D blocks
    before the epoch it keys, so that no block's proposer seals it (the old seed, a block
    hash, could be ground by its proposer over transactions and timestamp). Residual bias:
    every reveal was committed an epoch earlier, so the only choice left is to withhold
    one. A validator that withholds forgoes its proof, and so its whole weight in the
    next epoch (no proof, no weight); the inclusion rule stops a proposer from dropping
    reveals gossiped before the cutoff. So a coalition of k validators can choose among
    2^k seeds, each choice costing the withholders their next epoch's weight, and a
    single validator gains nothing from the schedule it picks (it has no weight in it).
    Epoch 1's seed mixes no reveal (nothing was committed before epoch 0): predictable
    from genesis, but chosen by no one."""
    return keccak256(rlp.encode([SEED_TAG, epoch + 1, seed, [[v, reveals[v]] for v in sorted(reveals)]]))
