"""One long transaction: nanoseconds per EVM step of the native executors.

A batch runs one transaction per thread (per GPU thread on CUDA), so a long transaction goes
as fast as one thread walks the interpreter. Two loops of ten steps an iteration: one with a
256-bit MUL, one of stack moves (PUSH, DUP, POP, SWAP, SUB, JUMPI). Each executor runs the
transaction once to warm up, then once timed. Prints the machine and GPU; never fails for
being slow.

    python -m bench.steps --iterations 200000
"""

from __future__ import annotations

import argparse
import time

from bench.executor import CHAIN_ID, COINBASE, _keys, _sign, asm, machine, pre_state, push
from executor_gpu.native import NativeExecutor
from executor_gpu.native_build import cuda_available
from executor_gpu.types import BlockEnv
from node.db.state import GenesisAccount
from primitives.types import Address, Hash32

CONTRACT = Address(b"\x42" * 20)
STEPS_PER_ITERATION = 10
SWAP1, DUP1, MUL, SUB, JUMPI, STOP, POP = 0x90, 0x80, 0x02, 0x03, 0x57, 0x00, 0x50


def programs(iterations: int) -> dict[str, bytes]:
    """The loops, each ``STEPS_PER_ITERATION`` steps an iteration besides its JUMPDEST."""
    count = push(iterations, 3)
    return {
        "mul loop": asm(push(3**70 % 2**256, 32), count, "@loop", SWAP1, DUP1, MUL, SWAP1, push(1),
                        SWAP1, SUB, DUP1, "loop", JUMPI, STOP),
        "stack loop": asm(count, "@loop", push(7), DUP1, POP, POP, push(1), SWAP1, SUB, DUP1,
                          "loop", JUMPI, STOP),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--executors", nargs="+", default=["native-cpu", "native-cuda"],
                        choices=["native-cpu", "native-cuda"])
    args = parser.parse_args()
    names = [n for n in args.executors if n != "native-cuda" or cuda_available()]
    if len(names) < len(args.executors):
        print("native-cuda: no CUDA device here, skipped")
    print(f"machine: {machine()}")
    key, sender = _keys(1)[0]
    env = BlockEnv(number=1, timestamp=1_700_000_000, coinbase=COINBASE, gas_limit=2**40,
                   base_fee_per_gas=10**9, chain_id=CHAIN_ID, prev_randao=Hash32(b"\x01" * 32))
    tx = _sign(key, 0, CONTRACT, 0, b"", 10**9)
    steps = args.iterations * STEPS_PER_ITERATION
    for name in names:
        executor = NativeExecutor("cpu" if name == "native-cpu" else "cuda")
        for label, code in programs(args.iterations).items():
            pre = pre_state({sender: GenesisAccount(balance=10**24), CONTRACT: GenesisAccount(code=code)})
            executor.execute(pre, env, [tx])
            start = time.perf_counter()
            result = executor.execute(pre, env, [tx])
            seconds = time.perf_counter() - start
            assert result.executed and result.executed[0].receipt.succeeded, "the loop did not run"
            print(f"{name:12} {label:11} {steps:>11,} steps  {seconds * 1e3:9.1f} ms"
                  f"  {seconds / steps * 1e9:7.1f} ns/step  gas {result.gas_used:,}", flush=True)


if __name__ == "__main__":
    main()
