"""The GPU weight challenge's definition: the numbered matrix products of a challenge key.

Shared by the prover (``executor_gpu.challenge`` runs it on a GPU or the CPU) and the
verifier (``sequencer.weights`` recomputes sampled products), so both see one definition
of the work and neither package imports the other.

Product ``i`` of a 32-byte key is ``C_i = A_i @ B_i`` for two ``DIM x DIM`` matrices of
16-bit entries that a counter-based hash of (key, i, position) defines, so any product can
be regenerated alone. The entries are small enough that float64 arithmetic is exact (every
partial sum is an integer below 2^39 < 2^53, whatever the summation order), so cuBLAS on a
GPU, BLAS on a CPU and any other correct code give the same integers. Each product is
reduced to a 64-bit fingerprint, a wrapping sum of a mixing hash of every entry and its
position: it cannot be had without every entry of C_i.

The functions take the array module (numpy, or cupy on a GPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

DIM = 128
"""Rows and columns of each matrix: one product is DIM^3 multiply-adds."""
ENTRY_BITS = 16
"""Matrix entries are in [0, 2^ENTRY_BITS): a DIM-term sum of products stays exact in float64."""

FingerprintArray = npt.NDArray[np.uint64]

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def key_words(key: bytes) -> tuple[int, int, int, int]:
    """The challenge key as four 64-bit words: A's stream, B's stream, the fingerprint's mix."""
    if len(key) != 32:
        raise ValueError(f"a challenge key is 32 bytes, got {len(key)}")
    w = [int.from_bytes(key[i : i + 8], "little") for i in range(0, 32, 8)]
    return w[0], w[1], w[2], w[3]


def _mix(xp: Any, z: Any) -> Any:
    """SplitMix64's finalizer on a uint64 array (wrapping arithmetic, same on numpy and cupy)."""
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(MIX1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(MIX2)
    return z ^ (z >> xp.uint64(31))


def _positions(xp: Any, indexes: Any) -> Any:
    """Global counters (product * DIM^2 + row * DIM + column) of the products ``indexes``."""
    base = xp.asarray(indexes, dtype=xp.uint64)[:, None]
    return base * xp.uint64(DIM * DIM) + xp.arange(DIM * DIM, dtype=xp.uint64)[None, :]


def matrices(xp: Any, key: bytes, indexes: Any) -> tuple[Any, Any]:
    """A_i and B_i for the products ``indexes``, as float64 arrays (len(indexes), DIM, DIM)."""
    k_a, k_b, _, _ = key_words(key)
    at = _positions(xp, indexes)
    shift = xp.uint64(64 - ENTRY_BITS)
    out = []
    for stream in (k_a, k_b):
        z = _mix(xp, (at + xp.uint64(stream)) * xp.uint64(GOLDEN))
        out.append((z >> shift).astype(xp.float64).reshape(len(at), DIM, DIM))
    return out[0], out[1]


def fingerprints(xp: Any, key: bytes, indexes: Any, products: Any) -> Any:
    """64-bit fingerprints of ``products`` (len(indexes), DIM, DIM) of the products ``indexes``,
    exact integers held as float64."""
    _, _, k_mix, k_pos = key_words(key)
    count = products.shape[0]
    entries = products.reshape(count, DIM * DIM).astype(xp.uint64)
    salt = _mix(xp, (_positions(xp, indexes) ^ xp.uint64(k_pos)) * xp.uint64(GOLDEN))
    mixed = _mix(xp, (entries + xp.uint64(k_mix)) ^ salt)
    return mixed.sum(axis=1, dtype=xp.uint64)


def cpu_fingerprints_at(key: bytes, indexes: Any) -> FingerprintArray:
    """Fingerprints of the products ``indexes`` (any order, any gaps), computed here with
    numpy: one batched float64 matrix product (BLAS), exact as the module says."""
    a, b = matrices(np, key, indexes)
    prints: FingerprintArray = fingerprints(np, key, indexes, np.matmul(a, b))
    return prints


def cpu_fingerprints(key: bytes, first: int, count: int) -> FingerprintArray:
    """Fingerprints of products first .. first+count-1, computed here with numpy."""
    return cpu_fingerprints_at(key, np.arange(first, first + count, dtype=np.uint64))
