"""GPU weights on the chain: epochs, their seeds, proofs carried by blocks, and the weights
that follow from them (the rules are sequencer/weights.py; this reads the chain for them).

Heights 1 .. E are epoch 0, E+1 .. 2E epoch 1, and so on (E = ``epoch_length``). The seed
of epoch 0 is the genesis hash; that of epoch e + 1 mixes the seed reveals carried in epoch
e's window (sequencer.election.next_seed: commit-reveal through the proofs, a reveal must
open its validator's commitment of the epoch before), fixed when that window closes. From
then each validator proves work on its challenge for that seed, gossips the proof, and
proposers include proofs in the blocks of the epoch's challenge window (the first D
blocks, sequencer.election.ChallengeWindow; each validator's at most once per epoch).
The weights of epoch e + 1 are the verified work of the proofs included in epoch e; epoch
0 runs on the genesis weights, and an epoch whose predecessor included no valid proof
keeps its predecessor's weights (the chain never loses every validator at once). Earned
weights are capped (sequencer.weights.cap_shares: below 1/3 each with four or more earners,
equal below four). Weights and verified proofs are cached for the last KEEP_EPOCHS epochs.
With ``epoch_length`` 0, the genesis weights hold forever and blocks carry no proofs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from node.db.chain import ChainStore
from primitives.crypto import keccak256
from primitives.errors import Halt, InvalidInput
from primitives.types import Address, Hash32
from sequencer.election import MAX_PROOFS, ChallengeWindow, counted_reveals, next_seed
from sequencer.types import WeightProof
from sequencer.weights import cap_shares, decode_proof, verify_proof

MAX_PROOFS_PER_BLOCK = MAX_PROOFS
"""A block carries at most this many proofs."""
KEEP_EPOCHS = 8
"""Epochs whose weights and verified proofs stay cached (older ones are recomputed)."""


class Epochs:
    """Epoch arithmetic and weights over one node's finalized chain (thread-safe)."""

    def __init__(
        self, chain: ChainStore, chain_id: int, epoch_length: int,
        genesis_weights: Mapping[Address, int],
    ) -> None:
        self.chain = chain
        self.chain_id = chain_id
        self.epoch_length = epoch_length
        self.genesis_weights = dict(genesis_weights)
        self.window = ChallengeWindow.of(epoch_length)
        self._lock = threading.Lock()
        self._weights: dict[int, dict[Address, int]] = {0: self.genesis_weights}
        self._seeds: dict[int, Hash32] = {}
        self._verified: dict[tuple[Hash32, int], int] = {}

    @property
    def enabled(self) -> bool:
        """Whether blocks carry proofs and weights change per epoch."""
        return self.epoch_length > 0

    def epoch_of(self, height: int) -> int:
        return self.window.epoch_of(height)

    def first_height(self, epoch: int) -> int:
        return self.window.first_height(epoch)

    def seed(self, epoch: int) -> Hash32:
        """The seed of ``epoch``: the genesis hash for epoch 0 (and without epochs), then
        sequencer.election.next_seed of each window's reveals; Halt when the window that
        fixes it is not final here yet."""
        with self._lock:
            known = max((e for e in self._seeds if e <= epoch), default=None)
        if known is None:
            genesis = self.chain.header(0)
            if genesis is None:
                raise Halt("no genesis block")
            known, seed = 0, genesis.hash
        else:
            seed = self._seeds[known]
        if not self.enabled:
            return seed
        for current in range(known + 1, epoch + 1):
            if self.chain.header(self.window.seed_height(current)) is None:
                raise Halt(f"the seed of epoch {current} is not final here yet")
            reveals = {v: p.reveal for v, p in self._carried(current - 1).items()}
            commits = {v: p.commit for v, p in self._carried(current - 2).items()}
            seed = next_seed(current - 1, seed, counted_reveals(reveals, commits))
            with self._lock:
                self._seeds[current] = seed
        with self._lock:
            for old in [e for e in self._seeds if e < epoch - KEEP_EPOCHS]:
                del self._seeds[old]
        return seed

    def _carried(self, epoch: int) -> dict[Address, WeightProof]:
        """The proofs carried in ``epoch``'s window, by validator (none before epoch 0)."""
        carried: dict[Address, WeightProof] = {}
        if epoch < 0:
            return carried
        for height in range(self.window.first_height(epoch), self.window.last_height(epoch) + 1):
            for data in self.chain.proofs(height):
                proof = decode_proof(data)
                carried[proof.validator] = proof
        return carried

    def weights(self, epoch: int) -> dict[Address, int]:
        """Validator weights of ``epoch`` (needs the challenge window of the epoch before it).

        Stored blocks had their proofs verified before they were committed, so their
        claims count as they stand.
        """
        with self._lock:
            known = max(e for e in self._weights if e <= epoch)
            result = self._weights[known]
        for current in range(known + 1, epoch + 1):
            earned: dict[Address, int] = {}
            window = self.window
            for height in range(window.first_height(current - 1), window.last_height(current - 1) + 1):
                if self.chain.header(height) is None:
                    raise Halt(f"the weights of epoch {current} need block {height}")
                for data in self.chain.proofs(height):
                    proof = decode_proof(data)
                    earned[proof.validator] = max(proof.products, earned.get(proof.validator, 0))
            result = cap_shares(earned) or result
            with self._lock:
                self._weights[current] = result
                self._forget_before(current - KEEP_EPOCHS)
        return result

    def forget_above(self, height: int) -> None:
        """The chain was unwound to ``height``: drop what was derived from blocks above it
        (the weights and seeds of the epochs after the one ``height`` is in, and every
        verdict, since a verdict depends on the seed and the proofs before)."""
        epoch = self.epoch_of(height)
        with self._lock:
            for cache in (self._weights, self._seeds):
                for later in [e for e in cache if e > epoch]:
                    del cache[later]
            self._verified.clear()

    def _forget_before(self, epoch: int) -> None:
        """Drop cached weights and verdicts of epochs before ``epoch`` (not the genesis')."""
        for old in [e for e in self._weights if 0 < e < epoch]:
            del self._weights[old]
        for key in [k for k in self._verified if k[1] < epoch]:
            del self._verified[key]

    def included(self, epoch: int, below: int) -> set[Address]:
        """Validators whose proof a block of ``epoch`` under height ``below`` carries."""
        found = set()
        for height in range(self.first_height(epoch), below):
            for data in self.chain.proofs(height):
                found.add(decode_proof(data).validator)
        return found

    def check_block_proofs(self, height: int, proofs: Sequence[bytes]) -> None:
        """InvalidInput unless ``proofs`` may be carried by block ``height``: valid proofs
        for its epoch, of distinct validators whose proof no earlier block of the epoch has."""
        if not proofs:
            return
        if not self.enabled:
            raise InvalidInput("this chain's blocks carry no weight proofs")
        if not self.window.may_carry(height):
            raise InvalidInput(f"block {height} is past its epoch's challenge window: no proofs")
        if len(proofs) > MAX_PROOFS_PER_BLOCK:
            raise InvalidInput(f"{len(proofs)} proofs, at most {MAX_PROOFS_PER_BLOCK}")
        epoch = self.epoch_of(height)
        seen = self.included(epoch, height)
        for data in proofs:
            validator, _ = self._work(data, epoch)
            if validator in seen:
                raise InvalidInput(f"a second proof of 0x{validator.hex()} in epoch {epoch}")
            seen.add(validator)

    def add_own(self, data: bytes, epoch: int, work: int) -> None:
        """Remember this node's own proof as verified (it did the work itself)."""
        with self._lock:
            self._verified[(keccak256(data), epoch)] = work

    def verified(self, data: bytes, epoch: int) -> Address:
        """The validator of a proof that earns weight in ``epoch``; InvalidInput if none."""
        return self._work(data, epoch)[0]

    def _work(self, data: bytes, epoch: int) -> tuple[Address, int]:
        """(validator, verified work) of an encoded proof for ``epoch``; InvalidInput if it
        earns nothing. Verification recomputes sampled products: each proof is checked once."""
        proof = decode_proof(data)
        key = (keccak256(data), epoch)
        with self._lock:
            work = self._verified.get(key)
        if work is None:
            # Rule: its reveal opens what its proof of the epoch before committed to, so the
            # seed it feeds was fixed an epoch ago (withholding is the only choice left).
            before = self._carried(epoch - 1).get(proof.validator)
            if before is not None and keccak256(proof.reveal) != before.commit:
                raise InvalidInput(f"the seed reveal of 0x{proof.validator.hex()} does not open "
                                   f"its commitment of epoch {epoch - 1}")
            work = verify_proof(proof, self.chain_id, epoch, self.seed(epoch), self.genesis_weights)
            with self._lock:
                self._verified[key] = work
        return proof.validator, work
