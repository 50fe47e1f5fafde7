"""Weight challenge throughput: products per second on the GPU and on the CPU, commitment included.

Each device runs the challenge of one key for ``--seconds`` (the prover's own loop, with the
Merkle leaves hashed as batches arrive), then the proof is closed, signed and verified.
Prints the machine; never fails for being slow.

    python -m bench.challenge --seconds 5
"""

from __future__ import annotations

import argparse
import functools
import time

from bench.executor import machine
from executor_gpu.challenge import DIM, fingerprints_of, run_challenge
from executor_gpu.native_build import cuda_available
from primitives.clock import SystemClock
from primitives.crypto import keccak256, private_key_to_address
from primitives.types import Hash32
from sequencer.weights import Commitment, challenge_key, encode_proof, make_proof, verify_proof

KEY = keccak256(b"bench challenge validator")
SEED = Hash32(keccak256(b"bench challenge seed"))


def run(device: str, seconds: float) -> str:
    me = private_key_to_address(KEY)
    key = challenge_key(1, 0, SEED, me)
    fingerprints_of(key, 0, 64, device)  # warm up: compilers, cuBLAS handles, memory pools
    commitment = Commitment()
    clock = SystemClock()
    work = run_challenge(key, clock.now() + seconds, clock, device=device, on_batch=commitment.add)
    started = time.perf_counter()
    proof = make_proof(commitment, key, 1, 0, SEED, KEY,
                       recompute=functools.partial(fingerprints_of, key, device=device))
    closing = time.perf_counter() - started
    started = time.perf_counter()
    verify_proof(proof, 1, 0, SEED, [me])
    checking = time.perf_counter() - started
    rate = work.products / work.seconds
    return (f"{device:5} {work.products:>13,} products in {work.seconds:5.2f}s  {rate:>12,.0f} products/s"
            f"  ({rate * 2 * DIM**3 / 1e9:8.1f} GFLOP/s of {DIM}x{DIM} float64 products)"
            f"  proof {len(encode_proof(proof)):,} B closed in {closing:.2f}s, verified in {checking:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="challenge time per device")
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"], choices=["cuda", "cpu"])
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for device in args.devices:
        if device == "cuda" and not cuda_available():
            print("cuda: no CUDA device here, skipped")
            continue
        print(run(device, args.seconds), flush=True)


if __name__ == "__main__":
    main()
