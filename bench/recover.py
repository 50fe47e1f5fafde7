"""Batch sender recovery: recoveries per second on CPU threads (libsecp256k1, every core) and
with the GPU kernel (the interpreter's own secp256k1 code, one thread per signature), per
batch size, and admission's decode-and-recover of signed transfers both ways. The batch size
where the GPU starts to win is what ``executor_gpu.recover.GPU_MIN_BATCH`` should be.

    python -m bench.recover [--sizes 1000 10000 60000] [--blocks 64 128 256]

Prints; never fails for being slow. Without a GPU it prints the CPU figures and the CPU
build of the GPU's code.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial

from bench.executor import machine
from executor_gpu.recover import (
    GPU_MIN_BATCH,
    KernelRecover,
    NativeDecode,
    NativeRecover,
    gpu_recover,
    pack_signatures,
)
from primitives import rlp
from primitives.crypto import Signature, keccak256, sign_hash


def signatures(count: int) -> list[Signature]:
    """``count`` valid signatures by distinct keys over distinct hashes."""
    found: list[Signature] = []
    for i in range(count):
        message = keccak256(b"bench message %d" % i)
        found.append((message, *sign_hash(message, keccak256(b"bench key %d" % i))))
    return found


def transfers(count: int) -> list[bytes]:
    """``count`` signed EIP-1559 transfers as wallets send them, each from its own key."""
    raws: list[bytes] = []
    for i in range(count):
        fields: list[rlp.Item] = [7, 0, 10**9, 2 * 10**9, 21_000, b"\x22" * 20, 1, b"", []]
        y, r, s = sign_hash(keccak256(b"\x02" + rlp.encode(fields)), keccak256(b"bench key %d" % i))
        raws.append(b"\x02" + rlp.encode([*fields, y, r, s]))
    return raws


def best_rate(count: int, run: Callable[[], object], repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 1000, 4096, 10000, 60000])
    parser.add_argument("--blocks", type=int, nargs="+", default=[KernelRecover.block],
                        help="GPU threads per block to try")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    print(f"machine: {machine()}")
    cpu = NativeRecover(threads)
    gpu = gpu_recover()
    if gpu is None:
        print("no working GPU here: the GPU's code runs on the CPU build instead")
    kernel = gpu or KernelRecover("cpu", threads)
    signed = signatures(max(args.sizes))
    raws = transfers(max(args.sizes))
    kernel_label = "GPU kernel" if gpu else f"GPU code on CPU ({threads} thr)"
    print(f"\nrecoveries/s  {'batch':>7} {f'libsecp256k1 {threads} thr':>22} "
          + " ".join(f"{f'{kernel_label} b{block}':>26}" for block in args.blocks) + f" {'ratio':>7}")
    for size in args.sizes:
        packed = pack_signatures(signed[:size])
        assert kernel.recover_packed(size, *packed) == cpu.recover_packed(size, *packed)
        cpu_rate = best_rate(size, partial(cpu.recover_packed, size, *packed), args.repeat)
        rates = []
        for block in args.blocks:
            kernel.block = block
            rates.append(best_rate(size, partial(kernel.recover_packed, size, *packed), args.repeat))
        print(f"{'':13} {size:>7} {cpu_rate:>22,.0f} " + " ".join(f"{rate:>26,.0f}" for rate in rates)
              + f" {max(rates) / cpu_rate:>6.2f}x", flush=True)
    kernel.block = KernelRecover.block
    if gpu is None:
        return
    print(f"\ndecode + recover transfers/s {'batch':>7} {'C threads':>12} {'C + GPU recovery':>17} {'ratio':>7}")
    on_cpu = NativeDecode(cpu)
    on_gpu = NativeDecode(NativeRecover(threads, gpu=gpu, gpu_from=0))
    for size in args.sizes:
        batch = raws[:size]
        assert on_gpu(batch) == on_cpu(batch)
        cpu_rate = best_rate(size, partial(on_cpu, batch), args.repeat)
        gpu_rate = best_rate(size, partial(on_gpu, batch), args.repeat)
        print(f"{'':28} {size:>7} {cpu_rate:>12,.0f} {gpu_rate:>17,.0f} {gpu_rate / cpu_rate:>6.2f}x", flush=True)
    print(f"\nGPU_MIN_BATCH is {GPU_MIN_BATCH}: batches this large or larger go to the GPU")


if __name__ == "__main__":
    main()
