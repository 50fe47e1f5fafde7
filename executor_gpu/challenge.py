"""The GPU weight challenge: as many integer matrix products as a device computes by a deadline.

An epoch's challenge for one validator is a 32-byte key (``sequencer.weights.challenge_key``:
the epoch seed, the validator's address, the chain). The work is defined once, in
``primitives.challenge`` (shared with the verifier): product ``i`` of the key and its 64-bit
fingerprint. This module runs it fast: fused CUDA kernels around cuBLAS on a GPU, numpy's
BLAS on the CPU. CuPy is imported only by the GPU prover.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from primitives.challenge import DIM, ENTRY_BITS, FingerprintArray, cpu_fingerprints, key_words
from primitives.clock import Clock

__all__ = ["DIM", "ChallengeWork", "compute", "fingerprints_of", "run_challenge"]


def compute(xp: Any, key: bytes, first: int, count: int) -> Any:
    """Fingerprints of products first .. first+count-1: the work itself."""
    if xp is not np:
        return _cuda_compute(xp, key, first, count)
    return cpu_fingerprints(key, first, count)


# The same arithmetic as primitives.challenge's ``matrices`` and ``fingerprints``, fused into
# one pass per array so that the GPU spends its time in cuBLAS, not in temporaries.
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
    stop: Callable[[], bool] = lambda: False,
) -> ChallengeWork:
    """Computes products of ``key`` in batches until ``clock.now()`` reaches ``deadline`` or
    ``stop()`` holds (both checked between batches, after the first) or ``max_products``
    are done, handing each batch's fingerprints, in order, to ``on_batch`` (the commitment).

    On a GPU the next batch is queued before the previous one's fingerprints are handed
    over, so ``on_batch`` runs on the host while the device works.
    """
    name, xp, batch = _backend(device)
    started = time.perf_counter()
    first = 0
    pending: Callable[[], FingerprintArray] | None = None
    while first < max_products and clock.now() < deadline and not (first and stop()):
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
