"""The GPU weight challenge: as many integer matrix products as a device computes by a deadline.

An epoch's challenge for one validator is a 32-byte key (``sequencer.weights.challenge_key``:
the epoch seed, the validator's address, the chain). Product ``i`` of the key is
``C_i = A_i @ B_i`` for two ``DIM x DIM`` matrices of 16-bit entries that a counter-based
hash of (key, i, position) defines, so any product can be regenerated alone. The entries
are small enough that float64 arithmetic is exact (sums stay below 2^53), so cuBLAS on a
GPU, BLAS on a CPU and any other correct code give the same integers. Each product is
reduced to a 64-bit fingerprint, a wrapping sum of a mixing hash of every entry and its
position: it cannot be had without every entry of C_i, and it is what the prover commits to.

The functions take the array module (numpy, or cupy on a GPU) so that the prover and the
verifier share one definition of the work. CuPy is imported only by the GPU prover.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from primitives.clock import Clock

DIM = 128
"""Rows and columns of each matrix: one product is DIM^3 multiply-adds."""
ENTRY_BITS = 16
"""Matrix entries are in [0, 2^ENTRY_BITS): a DIM-term sum of products stays exact in float64."""

FingerprintArray = npt.NDArray[np.uint64]

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1


def key_words(key: bytes) -> tuple[int, int, int, int]:
    """The challenge key as four 64-bit words: A's stream, B's stream, the fingerprint's mix."""
    if len(key) != 32:
        raise ValueError(f"a challenge key is 32 bytes, got {len(key)}")
    w = [int.from_bytes(key[i : i + 8], "little") for i in range(0, 32, 8)]
    return w[0], w[1], w[2], w[3]


def _mix(xp: Any, z: Any) -> Any:
    """SplitMix64's finalizer on a uint64 array (wrapping arithmetic, same on numpy and cupy)."""
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(_MIX1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(_MIX2)
    return z ^ (z >> xp.uint64(31))


def _positions(xp: Any, first: int, count: int) -> Any:
    """Global counters (product * DIM^2 + row * DIM + column) of ``count`` products from ``first``."""
    base = xp.arange(count, dtype=xp.uint64)[:, None] + xp.uint64(first)
    return base * xp.uint64(DIM * DIM) + xp.arange(DIM * DIM, dtype=xp.uint64)[None, :]


def matrices(xp: Any, key: bytes, first: int, count: int) -> tuple[Any, Any]:
    """A_i and B_i for products first .. first+count-1, as float64 arrays (count, DIM, DIM)."""
    k_a, k_b, _, _ = key_words(key)
    at = _positions(xp, first, count)
    shift = xp.uint64(64 - ENTRY_BITS)
    out = []
    for stream in (k_a, k_b):
        z = _mix(xp, (at + xp.uint64(stream)) * xp.uint64(_GOLDEN))
        out.append((z >> shift).astype(xp.float64).reshape(count, DIM, DIM))
    return out[0], out[1]


def fingerprints(xp: Any, key: bytes, first: int, products: Any) -> Any:
    """64-bit fingerprints of ``products`` (count, DIM, DIM), exact integers held as float64."""
    _, _, k_mix, k_pos = key_words(key)
    count = products.shape[0]
    entries = products.reshape(count, DIM * DIM).astype(xp.uint64)
    salt = _mix(xp, (_positions(xp, first, count) ^ xp.uint64(k_pos)) * xp.uint64(_GOLDEN))
    mixed = _mix(xp, (entries + xp.uint64(k_mix)) ^ salt)
    return mixed.sum(axis=1, dtype=xp.uint64)


def compute(xp: Any, key: bytes, first: int, count: int) -> Any:
    """Fingerprints of products first .. first+count-1: the work itself."""
    if xp is not np:
        return _cuda_compute(xp, key, first, count)
    a, b = matrices(xp, key, first, count)
    return fingerprints(xp, key, first, xp.matmul(a, b))


# The same arithmetic as ``matrices`` and ``fingerprints``, fused into one pass per array so
# that the GPU spends its time in the matrix products (cuBLAS), not in temporaries.
_CUDA_MIX = """
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
"""
_CUDA_ENTRY = (
    "unsigned long long z = (base + (unsigned long long)i + stream) * 0x9E3779B97F4A7C15ull;"
    + _CUDA_MIX + f"out = (double)(z >> {64 - ENTRY_BITS});"
)
_CUDA_PRINT = (
    "unsigned long long z = ((base + (unsigned long long)i) ^ k_pos) * 0x9E3779B97F4A7C15ull;"
    + _CUDA_MIX + "unsigned long long salt = z; z = ((unsigned long long)c + k_mix) ^ salt;"
    + _CUDA_MIX + "out = z;"
)
_cuda_kernels: dict[str, Any] = {}


def _cuda_compute(cp: Any, key: bytes, first: int, count: int) -> Any:
    if not _cuda_kernels:
        _cuda_kernels["entry"] = cp.ElementwiseKernel(
            "uint64 base, uint64 stream", "float64 out", _CUDA_ENTRY, "l2node_challenge_entry")
        _cuda_kernels["print"] = cp.ElementwiseKernel(
            "float64 c, uint64 base, uint64 k_pos, uint64 k_mix", "uint64 out", _CUDA_PRINT,
            "l2node_challenge_print")
    k_a, k_b, k_mix, k_pos = key_words(key)
    base = np.uint64(first * DIM * DIM)
    entry = _cuda_kernels["entry"]
    a = entry(base, np.uint64(k_a), size=count * DIM * DIM).reshape(count, DIM, DIM)
    b = entry(base, np.uint64(k_b), size=count * DIM * DIM).reshape(count, DIM, DIM)
    mixed = _cuda_kernels["print"](cp.matmul(a, b), base, np.uint64(k_pos), np.uint64(k_mix))
    return mixed.reshape(count, DIM * DIM).sum(axis=1, dtype=cp.uint64)


def fingerprints_of(key: bytes, first: int, count: int, device: str = "auto") -> FingerprintArray:
    """Fingerprints of products first .. first+count-1 computed on ``device``, on the host."""
    _, xp, _ = _backend(device)
    prints = compute(xp, key, first, count)
    host: FingerprintArray = prints if xp is np else prints.get()
    return host


@dataclass(frozen=True)
class ChallengeWork:
    """What a device computed for one challenge key by the deadline."""

    key: bytes
    """The challenge key the products were derived from."""
    products: int
    """Products computed (0 .. products - 1): the work units claimed."""
    device: str
    """Where it ran: "cuda" or "cpu" (informational: the score is the verified count)."""
    seconds: float
    """Wall time from start to the last finished batch."""


def _backend(device: str) -> tuple[str, Any, int]:
    """(device name, array module, products per batch) for "cuda", "cpu" or "auto"."""
    from executor_gpu.native_build import NativeUnavailable, cuda_available

    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if device == "cpu":
        return "cpu", np, 16
    if device != "cuda":
        raise NativeUnavailable(f"unknown device {device!r}: use cpu, cuda or auto")
    if not cuda_available():
        raise NativeUnavailable("the CUDA challenge needs CuPy and a CUDA device")
    import cupy

    # 2048 products keep the GPU busy (~0.8 GB of float64 operands) between deadline checks.
    return "cuda", cupy, 2048


def run_challenge(
    key: bytes, deadline: float, clock: Clock, *, device: str = "auto",
    on_batch: Callable[[FingerprintArray], None], max_products: int = 1 << 40,
) -> ChallengeWork:
    """Computes products of ``key`` in batches until ``clock.now()`` reaches ``deadline``
    (checked between batches) or ``max_products`` are done, handing each batch's
    fingerprints, in order, to ``on_batch`` (the commitment).

    On a GPU the next batch is queued before the previous one's fingerprints are handed
    over, so ``on_batch`` runs on the host while the device works.
    """
    name, xp, batch = _backend(device)
    started = time.perf_counter()
    first = 0
    pending: Callable[[], FingerprintArray] | None = None
    while first < max_products and clock.now() < deadline:
        count = min(batch, max_products - first)
        queued = _queue(xp, key, first, count)
        first += count
        if pending is not None:
            on_batch(pending())
        pending = queued
    if pending is not None:
        on_batch(pending())
    return ChallengeWork(key, first, name, time.perf_counter() - started)


def _queue(xp: Any, key: bytes, first: int, count: int) -> Callable[[], FingerprintArray]:
    """Starts a batch; the returned call waits for its fingerprints on the host."""
    prints = compute(xp, key, first, count)
    if xp is np:
        return lambda: prints
    # Copy back asynchronously behind the batch, so that waiting for this copy does not
    # wait for the batch queued after it.
    import cupyx

    host = cupyx.empty_pinned((count,), dtype=np.uint64)
    prints.get(out=host, blocking=False)
    copied = xp.cuda.Event()
    copied.record()

    def wait() -> FingerprintArray:
        copied.synchronize()
        return np.array(host)

    return wait
