"""The weight challenge on the GPU: the same work as the CPU's, and proofs that verify.

Needs an NVIDIA GPU with CuPy: ``python -m pytest tests/native -m gpu``.
"""

from __future__ import annotations

import functools
import time

import pytest

from executor_gpu.challenge import fingerprints_of, run_challenge
from primitives.challenge import cpu_fingerprints
from primitives.clock import SystemClock
from primitives.crypto import keccak256, private_key_to_address
from primitives.types import Hash32
from sequencer.weights import Commitment, challenge_key, make_proof, verify_proof

pytestmark = pytest.mark.gpu

KEY = keccak256(b"validator key")
SEED = Hash32(keccak256(b"seed"))


def test_cuda_products_equal_the_cpu_ones() -> None:
    key = challenge_key(1, 0, SEED, private_key_to_address(KEY))
    first = 2**33 + 5  # far counters too
    assert (fingerprints_of(key, first, 300, "cuda") == cpu_fingerprints(key, first, 300)).all()


def test_cuda_proof_verifies() -> None:
    me = private_key_to_address(KEY)
    key = challenge_key(1, 0, SEED, me)
    commitment = Commitment()
    clock = SystemClock()
    work = run_challenge(key, clock.now() + 2.0, clock, device="cuda", on_batch=commitment.add)
    started = time.perf_counter()
    proof = make_proof(commitment, key, 1, 0, SEED, KEY,
                       recompute=functools.partial(fingerprints_of, key, device="cuda"))
    proving = time.perf_counter() - started
    started = time.perf_counter()
    assert verify_proof(proof, 1, 0, SEED, [me]) == work.products > 100_000
    print(f"\n{work.products:,} products in {work.seconds:.2f}s on cuda "
          f"({work.products / work.seconds:,.0f}/s); proof closed in {proving:.2f}s, "
          f"verified in {time.perf_counter() - started:.2f}s")
