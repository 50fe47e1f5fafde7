"""GPU weights: an epoch's compute challenge, its proofs, and the weights they earn (pure).

Each epoch has a seed (from the last finalized block before it). A validator's challenge
key binds the seed, the epoch, the chain and the validator's address, so work cannot be
copied from another validator or computed before the seed is known. The work is the
numbered matrix products of ``executor_gpu.challenge`` for that key; the prover computes
products 0, 1, 2, ... until its deadline, then commits to their fingerprints::

    leaf(g)    = keccak(0x00 || fingerprints of products g*GROUP .. g*GROUP+GROUP-1)
    node(l, r) = keccak(0x01 || l || r)          (leaves padded to a power of two with zeros)

``SAMPLES`` product indexes are drawn from keccak(key, root, products, j) (Fiat-Shamir);
the proof opens the leaves that hold them and is signed by the validator. A verifier
checks the signature, the Merkle paths, and recomputes only the sampled products, in one
batched matrix product (SAMPLES products, against the hundreds of millions a GPU proves).
No valid proof, no weight; a valid proof weighs the products it claims, whatever device
computed them.

Soundness. A prover that computed a fraction f of the products it claims (and made up the
rest) passes only if every sample lands on a computed product: probability f^s for
s = SAMPLES independent samples. A made-up fingerprint passes its check with probability
2^-64 (it must equal a 64-bit hash of the true product), so guessing does not help. It
can re-roll the samples by changing one made-up fingerprint (a new leaf, root, and so new
samples; a few dozen keccaks a try), so claiming c times the work it did costs c^s tries
on average. With s = 200::

    claim 1.05x  ->  1.05^200 = 2^14.1 tries     (a measurement good to ~5% at best)
    claim 1.10x  ->  1.10^200 = 2^27.5 tries
    claim 1.25x  ->  1.25^200 = 2^64.4 tries     (f = 0.8: 0.8^200 = 2^-64.4 per try)

so a 25% overclaim needs more than 2^64 grinding tries, out of reach of any grinder
(2^64 keccaks is a large mining farm for a year), and smaller overclaims gain little.
(199 samples would give 2^-64.06; 200 is the round number above it.)

Cost. A proof opens at most SAMPLES leaves of GROUP fingerprints with a Merkle path each:
size about SAMPLES * (8 * GROUP + 33 * depth) bytes, depth = log2(products / GROUP): 179 KB
at 2^24 products, 219 KB at 2^30, 259 KB at MAX_PRODUCTS (under MAX_PROOF_BYTES). Verifying
recomputes SAMPLES products, 200 * 128^3 multiply-adds (0.84 GFLOP, one batched float64
BLAS call) plus some 200 * depth keccaks: 0.12 s of CPU measured on one core (README).

Node wiring (node/ glues the two halves)::

    key = challenge_key(chain_id, epoch, seed, me)
    commitment = Commitment()
    work = challenge.run_challenge(key, deadline, clock, on_batch=commitment.add)
    proof = make_proof(commitment, key, chain_id, epoch, seed, private_key,
                       recompute=functools.partial(challenge.fingerprints_of, key))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import rlp

from primitives.challenge import cpu_fingerprints, cpu_fingerprints_at
from primitives.crypto import (
    InvalidSignature,
    keccak256,
    private_key_to_address,
    recover_address,
    sign_hash,
)
from primitives.errors import InvalidInput
from primitives.gossip import Validation
from primitives.types import ZERO_HASH, Address, Hash32
from sequencer import election
from sequencer.types import ProofOpening, WeightProof

CHALLENGE_TAG = b"l2node/weights/challenge/1"
PROOF_TAG = b"l2node/weights/proof/1"
SAMPLE_TAG = b"l2node/weights/sample/1"

KEEP = 1 << 20
"""A commitment keeps the fingerprints of up to this many products (8 MB) for its openings;
beyond, the opened groups are recomputed."""
GROUP = 32
"""Products per Merkle leaf: an opening reveals GROUP fingerprints (256 bytes). Smaller groups
make smaller openings (8 * GROUP bytes against 33 per level of path saved) but cost the
prover a keccak per GROUP products on the host, which must keep up with the GPU."""
SAMPLES = 200
"""Products a verifier recomputes per proof: 0.8^200 = 2^-64.4 (see the module's soundness)."""
MAX_PRODUCTS = 1 << 36
"""Most products a proof may claim (keeps Merkle paths, and so proofs, bounded): over an hour
of an H100's work (about 10^7 products a second), far beyond any challenge window."""
MAX_PROOF_BYTES = 320 * 1024
"""Largest encoded proof accepted; SAMPLES openings at MAX_PRODUCTS fit in about 256 KB."""

Fingerprints = npt.NDArray[np.uint64]
Recompute = Callable[[int, int], Fingerprints]
"""Fingerprints of ``count`` products from ``first`` (on whatever device the prover has)."""


def challenge_key(chain_id: int, epoch: int, seed: Hash32, validator: Address) -> Hash32:
    """The key of ``validator``'s challenge in ``epoch``: what its products derive from."""
    return keccak256(rlp.encode([CHALLENGE_TAG, chain_id, epoch, seed, validator]))


# -- commitment --------------------------------------------------------------------------


def _leaf(prints: Fingerprints) -> Hash32:
    return keccak256(b"\x00" + prints.astype(">u8").tobytes())


def _node(left: bytes, right: bytes) -> Hash32:
    return keccak256(b"\x01" + left + right)


def _depth(products: int) -> int:
    """Levels above the leaves of a tree over ``products`` products."""
    return max(0, (-(-products // GROUP) - 1).bit_length())


class Commitment:
    """The prover's Merkle tree over product fingerprints, fed batch by batch in order.

    Keeps one hash per GROUP products, and the fingerprints only up to KEEP products:
    past that, the opened groups are recomputed once the samples are known.
    """

    def __init__(self) -> None:
        self.products = 0
        self._kept: list[Fingerprints] | None = []
        self._leaves: list[Hash32] = []
        self._partial = np.zeros(0, dtype=np.uint64)
        self._levels: list[list[Hash32]] | None = None

    def add(self, prints: Fingerprints) -> None:
        """Appends the fingerprints of the next products."""
        if self._levels is not None:
            raise ValueError("the commitment is closed")
        self.products += len(prints)
        if self._kept is not None and self.products <= KEEP:
            self._kept.append(prints)
        else:
            self._kept = None
        pending = np.concatenate([self._partial, prints]) if len(self._partial) else prints
        whole = len(pending) - len(pending) % GROUP
        self._leaves.extend(_leaf(pending[i : i + GROUP]) for i in range(0, whole, GROUP))
        self._partial = np.array(pending[whole:], dtype=np.uint64)

    def root(self) -> Hash32:
        """Closes the tree and returns its root (ZERO_HASH for no products)."""
        if self._levels is None:
            leaves = self._leaves + ([_leaf(self._partial)] if len(self._partial) else [])
            levels = [leaves + [ZERO_HASH] * ((1 << _depth(self.products)) - len(leaves))]
            while len(levels[-1]) > 1:
                below = levels[-1]
                levels.append([_node(below[i], below[i + 1]) for i in range(0, len(below), 2)])
            self._levels = levels
        return self._levels[-1][0] if self._levels[0] else ZERO_HASH

    def kept(self, first: int, count: int) -> Fingerprints | None:
        """Fingerprints of products first .. first+count-1 if they were kept, else None."""
        if self._kept is None:
            return None
        if len(self._kept) > 1:
            self._kept = [np.concatenate(self._kept)]
        return self._kept[0][first : first + count] if self._kept else None

    def leaf(self, group: int) -> Hash32:
        """Hash of leaf ``group``."""
        self.root()
        assert self._levels is not None
        return self._levels[0][group]

    def path(self, group: int) -> tuple[Hash32, ...]:
        """Sibling hashes of leaf ``group``, bottom up."""
        self.root()
        assert self._levels is not None
        return tuple(level[(group >> height) ^ 1] for height, level in enumerate(self._levels[:-1]))


# -- sampling, digest, encoding ----------------------------------------------------------


def samples(key: bytes, root: Hash32, products: int, count: int = SAMPLES) -> list[int]:
    """The ``count`` product indexes a proof must open (Fiat-Shamir over the commitment);
    only tests ask for another count than SAMPLES (to show what fewer samples would allow)."""
    return [
        int.from_bytes(keccak256(rlp.encode([SAMPLE_TAG, key, root, products, j])), "big") % products
        for j in range(count)
    ]


def _unsigned(proof: WeightProof) -> list[Any]:
    return [
        proof.epoch, proof.seed, proof.validator, proof.products, proof.root,
        [[o.group, o.fingerprints, list(o.path)] for o in proof.openings],
        proof.reveal, proof.commit,
    ]


def proof_digest(chain_id: int, proof: WeightProof) -> Hash32:
    """What the validator signs: every field but the signature, under a domain tag and the chain."""
    return keccak256(rlp.encode([PROOF_TAG, chain_id, *_unsigned(proof)]))


def encode_proof(proof: WeightProof) -> bytes:
    """RLP ``[epoch, seed, validator, products, root, [[group, fingerprints, [path]]], reveal,
    commit, signature]``."""
    return bytes(rlp.encode([*_unsigned(proof), proof.signature]))


def _uint(item: Any, what: str) -> int:
    if not isinstance(item, bytes) or item[:1] == b"\x00" or len(item) > 8:
        raise InvalidInput(f"weight proof: {what} is not a canonical 64-bit integer")
    return int.from_bytes(item, "big")


def _fixed(item: Any, size: int, what: str) -> bytes:
    if not isinstance(item, bytes) or len(item) != size:
        raise InvalidInput(f"weight proof: {what} must be {size} bytes")
    return item


def decode_proof(data: bytes) -> WeightProof:
    """Parses an encoded proof; InvalidInput for anything malformed (never another error)."""
    if len(data) > MAX_PROOF_BYTES:
        raise InvalidInput(f"weight proof of {len(data)} bytes exceeds {MAX_PROOF_BYTES}")
    try:
        items = rlp.decode(data)
    except rlp.exceptions.DecodingError as exc:
        raise InvalidInput(f"weight proof is not RLP: {exc}") from None
    if not isinstance(items, list) or len(items) != 9 or not isinstance(items[5], list):
        raise InvalidInput("weight proof must be a list of 9 items with a list of openings")
    openings = []
    for raw in items[5]:
        if not isinstance(raw, list) or len(raw) != 3 or not isinstance(raw[1], bytes) or not isinstance(raw[2], list):
            raise InvalidInput("weight proof opening must be [group, fingerprints, [path]]")
        path = tuple(Hash32(_fixed(h, 32, "path hash")) for h in raw[2])
        openings.append(ProofOpening(_uint(raw[0], "group"), raw[1], path))
    return WeightProof(
        epoch=_uint(items[0], "epoch"),
        seed=Hash32(_fixed(items[1], 32, "seed")),
        validator=Address(_fixed(items[2], 20, "validator")),
        products=_uint(items[3], "products"),
        root=Hash32(_fixed(items[4], 32, "root")),
        openings=tuple(openings),
        signature=_fixed(items[8], 65, "signature"),
        reveal=_secret(items[6], "reveal"),
        commit=_secret(items[7], "commit"),
    )


def _secret(item: Any, what: str) -> bytes:
    """A reveal or commitment: 32 bytes, or empty for none."""
    if not isinstance(item, bytes) or len(item) not in (0, 32):
        raise InvalidInput(f"weight proof: {what} must be empty or 32 bytes")
    return item


# -- proving and verifying ----------------------------------------------------------------


def make_proof(
    commitment: Commitment, key: bytes, chain_id: int, epoch: int, seed: Hash32,
    private_key: bytes, recompute: Recompute | None = None,
) -> WeightProof:
    """Closes ``commitment`` (the fingerprints of ``key``'s products, in order), opens the
    sampled groups (recomputed by ``recompute``, on the CPU by default), adds this
    validator's seed reveal for ``epoch`` and commitment for the next, and signs."""
    products = commitment.products
    if not 0 < products <= MAX_PRODUCTS:
        raise InvalidInput(f"a proof claims 1 .. {MAX_PRODUCTS} products, not {products}")
    root = commitment.root()
    again = recompute or (lambda first, count: cpu_fingerprints(key, first, count))
    openings = []
    for group in sorted({index // GROUP for index in samples(key, root, products)}):
        first = group * GROUP
        count = min(GROUP, products - first)
        kept = commitment.kept(first, count)
        prints = again(first, count) if kept is None else kept
        if _leaf(prints) != commitment.leaf(group):
            raise InvalidInput(f"recomputed group {group} differs from the committed one")
        openings.append(ProofOpening(group, prints.astype(">u8").tobytes(), commitment.path(group)))
    proof = WeightProof(
        epoch, seed, private_key_to_address(private_key), products, root, tuple(openings), b"",
        reveal=election.reveal(private_key, chain_id, epoch),
        commit=keccak256(election.reveal(private_key, chain_id, epoch + 1)),
    )
    parity, r, s = sign_hash(proof_digest(chain_id, proof), private_key)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([parity])
    return dataclasses.replace(proof, signature=signature)


def verify_proof(
    proof: WeightProof, chain_id: int, epoch: int, seed: Hash32, validators: Collection[Address],
) -> int:
    """The work units ``proof`` earns for ``epoch``; InvalidInput saying why when it earns none.

    Checks, cheapest first: the epoch and seed, the signer is a validator, the signature,
    the claim's range, the openings are exactly the sampled groups with valid Merkle paths,
    and the sampled products recomputed here match their opened fingerprints.
    """
    if proof.epoch != epoch:
        raise InvalidInput(f"proof is for epoch {proof.epoch}, not {epoch}")
    if proof.seed != seed:
        raise InvalidInput("proof answers another seed than the epoch's")
    if proof.validator not in validators:
        raise InvalidInput(f"0x{proof.validator.hex()} is not a validator")
    try:
        signer = recover_address(
            proof_digest(chain_id, proof), proof.signature[64],
            int.from_bytes(proof.signature[:32], "big"), int.from_bytes(proof.signature[32:64], "big"),
        )
    except (InvalidSignature, IndexError) as exc:
        raise InvalidInput(f"proof signature is invalid: {exc}") from None
    if signer != proof.validator:
        raise InvalidInput(f"proof is signed by 0x{signer.hex()}, not by 0x{proof.validator.hex()}")
    products = proof.products
    if not 0 < products <= MAX_PRODUCTS:
        raise InvalidInput(f"a proof claims 1 .. {MAX_PRODUCTS} products, not {products}")
    key = challenge_key(chain_id, epoch, seed, proof.validator)
    picked = samples(key, proof.root, products)
    opened = {o.group: o for o in proof.openings}
    if [o.group for o in proof.openings] != sorted({index // GROUP for index in picked}):
        raise InvalidInput("proof does not open exactly the sampled groups, in order")
    depth = _depth(products)
    for o in proof.openings:
        first = o.group * GROUP
        if len(o.fingerprints) != 8 * min(GROUP, products - first) or len(o.path) != depth:
            raise InvalidInput(f"opening of group {o.group} has the wrong size")
        node = keccak256(b"\x00" + o.fingerprints)
        for height, sibling in enumerate(o.path):
            node = _node(sibling, node) if (o.group >> height) & 1 else _node(node, sibling)
        if node != proof.root:
            raise InvalidInput(f"opening of group {o.group} is not under the committed root")
    # All samples recomputed in one batched product: verifying costs one BLAS call.
    truth = cpu_fingerprints_at(key, np.array(picked, dtype=np.uint64)).tolist()
    for index, want in zip(picked, truth, strict=True):
        at = 8 * (index % GROUP)
        if int.from_bytes(opened[index // GROUP].fingerprints[at : at + 8], "big") != want:
            raise InvalidInput(f"product {index} is wrong: the claimed work was not done")
    return products


def check_proof_message(
    data: bytes, chain_id: int, epoch: int, seed: Hash32, validators: Collection[Address],
) -> Validation:
    """Gate of the proofs topic: REJECT what is malformed, forged or wrong; IGNORE proofs
    of another epoch (late or early, not a fault); ACCEPT a valid proof."""
    try:
        proof = decode_proof(data)
    except InvalidInput:
        return Validation.REJECT
    if proof.epoch != epoch:
        return Validation.IGNORE
    try:
        verify_proof(proof, chain_id, epoch, seed, validators)
    except InvalidInput:
        return Validation.REJECT
    return Validation.ACCEPT


def epoch_weights(
    proofs: Iterable[WeightProof], chain_id: int, epoch: int, seed: Hash32,
    validators: Collection[Address],
) -> dict[Address, int]:
    """Weights earned by ``epoch``'s proofs: the verified products of each validator's best
    valid proof. Validators without a valid proof are absent (no proof, no weight)."""
    weights: dict[Address, int] = {}
    for proof in proofs:
        try:
            work = verify_proof(proof, chain_id, epoch, seed, validators)
        except InvalidInput:
            continue
        weights[proof.validator] = max(work, weights.get(proof.validator, 0))
    return weights


def cap_shares(weights: Mapping[Address, int]) -> dict[Address, int]:
    """``weights`` with no share above what a validator may hold, at any validator count.

    Work-based weights can hand one fast machine a third of the weight or more, and then
    that one validator going down stops finality for everyone (and one holding more than
    2/3 decides alone). The rule, over the validators with weight (zero weights are dropped:
    no work, no weight):

    - four or more: the largest weights are lowered to the largest cap ``c`` that keeps
      3 * c < total (of the capped weights), so every share is below 1/3;
    - one to three: every weight is lowered to the smallest, so each holds exactly 1/n.
      No cap can keep shares below 1/3 there, and none is needed for liveness: with n <= 3
      equal weights, > 2/3 takes every validator, so the chain already needs all of them,
      whatever the weights. What equal weights add is that no one of them can decide
      alone or be drawn as proposer more than 1/n of the time, however much work it
      claims: a fast (or cheating) validator gets no more than the share it would have
      among equals. (One earner holds everything only when the others proved nothing:
      the inclusion rule of sequencer.election keeps their proofs from being censored.)
    """
    capped = {address: weight for address, weight in weights.items() if weight > 0}
    if 0 < len(capped) < 4:
        floor = min(capped.values())
        return {address: floor for address in capped}
    if not capped or 3 * max(capped.values()) < sum(capped.values()):
        return capped

    def fits(cap: int) -> bool:
        return 3 * cap < sum(min(w, cap) for w in capped.values())

    # sum(min(w, c)) - 3c is concave in c and positive at c = 1 (four or more weights of
    # at least 1), so the caps that fit form a range starting at 1: find its top.
    low, high = 1, max(capped.values())
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return {address: min(weight, low) for address, weight in capped.items()}
