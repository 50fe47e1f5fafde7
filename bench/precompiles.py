"""Precompiles 0x05-0x0a: the native interpreter against py-evm, per call and per block.

Per call: each precompile on one input, on the CPU build (its ``evm_test_precompile`` hook,
which runs the interpreter's own precompile code) and as the reference executor runs it
(py-evm's precompile function), in the same process; the outputs must agree. Per batch: a block of direct
calls of each precompile through the native executors (on the GPU: one launch runs them all).
Per block: a block
of transactions that each call a pairing verifier (a contract calling the pairing check on 2
pairs, as a Groth16 verifier does) through the reference and the native executors (native-cuda
where a GPU works). Prints the machine; never fails for being slow.

    python -m bench.precompiles --calls 20 --block 1000 --reference-block 10
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import ckzg
import numpy as np
from eth.abc import ComputationAPI
from eth.exceptions import OutOfGas, VMError
from eth_typing import Address as EthAddress
from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128.optimized_curve import G1, G2, curve_order, is_inf, multiply, normalize

from bench.executor import CHAIN_ID, COINBASE, _keys, _sign, genesis_state, machine
from executor_gpu.api import Executor
from executor_gpu.native_abi import ABI
from executor_gpu.native_build import cpu_library, cuda_available
from executor_gpu.native_precompiles import kzg_verifier
from executor_gpu.reference import _ReferenceComputation, kzg_settings
from executor_gpu.types import BatchResult, BlockEnv
from node.db.state import GenesisAccount
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import Address, Hash32

BLS_MODULUS = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
VERIFIER = Address(bytes.fromhex("fe11f1e700000000000000000000000000000001"))


# ---- one call, natively and on the reference ---------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What a call of a precompile gives its caller."""

    ok: bool
    """True when the call succeeded."""
    output: bytes
    """Output (empty on failure)."""
    gas_left: int
    """Gas returned to the caller (0 on failure)."""
    refused: bool = False
    """The input was refused, as opposed to the gas running out (the error a direct call reports)."""


class _Buffers:
    """The hook's scratch and output buffers, made once (fresh pages would cost each call)."""

    def __init__(self, scratch: int) -> None:
        self.scratch = np.zeros(scratch, dtype=np.uint8)
        self.ret = np.zeros(1 << 20, dtype=np.uint8)
        self.out = np.zeros(1 << 20, dtype=np.uint8)
        self.res = np.zeros(ABI["RS_WORDS"], dtype=np.uint64)


@functools.cache
def _buffers(scratch: int) -> _Buffers:
    return _Buffers(scratch)


def native_call(precompile: int, data: bytes, gas: int, scratch: int = 1 << 22) -> Outcome:
    """``precompile`` on the CPU build, as a transaction calling it directly would run it."""
    lib, b = cpu_library(), _buffers(scratch)
    buf = ctypes.create_string_buffer(data, len(data) or 1)
    kzg = kzg_verifier() if precompile == 0x0A else (0, 0)  # loading the setup takes seconds
    left = lib.evm_test_precompile(precompile, buf, len(data), gas, b.scratch.ctypes.data, scratch, b.ret.ctypes.data,
                                   b.out.ctypes.data, len(b.out), b.res.ctypes.data, *kzg)
    status = int(b.res[ABI["RS_STATUS"]])
    assert status < ABI["ST_CONTROL_FIRST"], f"stopped with control status {status}"
    if status != ABI["ST_SUCCESS"]:
        return Outcome(False, b"", 0, status == ABI["ST_PRECOMPILE_FAILURE"])
    return Outcome(True, b.out[: int(b.res[ABI["RS_OUT_LEN"]])].tobytes(), int(left))


class _Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.data_as_bytes = data


class _Computation:
    """The parts of a py-evm computation its precompile functions use."""

    def __init__(self, data: bytes, gas: int) -> None:
        self.msg = _Msg(data)
        self.gas = gas
        self.output = b""

    def consume_gas(self, amount: int, reason: str) -> None:
        if amount > self.gas:
            raise OutOfGas(reason)
        self.gas -= amount


def reference_call(precompile: int, data: bytes, gas: int) -> Outcome:
    """``precompile`` as the reference executor runs it (py-evm's function, with the
    reference's MODEXP correction)."""
    function = _ReferenceComputation.get_precompiles()[EthAddress(precompile.to_bytes(20, "big"))]
    computation = _Computation(data, gas)
    try:
        function(cast(ComputationAPI, computation))
    except OutOfGas:
        return Outcome(False, b"", 0)
    except VMError:
        return Outcome(False, b"", 0, True)
    return Outcome(True, computation.output, computation.gas)


# ---- inputs ----------------------------------------------------------------------------------

def g1_bytes(point: tuple[FQ, FQ, FQ]) -> bytes:
    """A G1 point as 64 bytes ((0, 0) for the infinity)."""
    if is_inf(point):
        return bytes(64)
    x, y = normalize(point)
    return int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big")


def g2_bytes(point: tuple[FQ2, FQ2, FQ2]) -> bytes:
    """A twist point as 128 bytes in EIP-197's order (imaginary parts first)."""
    if is_inf(point):
        return bytes(128)
    x, y = normalize(point)
    return b"".join(int(c).to_bytes(32, "big") for c in (x.coeffs[1], x.coeffs[0], y.coeffs[1], y.coeffs[0]))


def g1(k: int) -> bytes:
    """k times G1's generator."""
    return g1_bytes(multiply(G1, k))


def g2(k: int) -> bytes:
    """k times G2's generator."""
    return g2_bytes(multiply(G2, k))


def pairing_that_holds(a: int, b: int) -> bytes:
    """Two pairs whose product is 1: e(aG1, bG2) e(-abG1, G2)."""
    return g1(a) + g2(b) + g1(curve_order - a * b % curve_order) + g2(1)


def modexp_input(base: bytes, exponent: bytes, modulus: bytes) -> bytes:
    return b"".join(len(x).to_bytes(32, "big") for x in (base, exponent, modulus)) + base + exponent + modulus


@functools.cache
def point_evaluation_input(seed: int, z: int) -> bytes:
    """A valid point evaluation input: the commitment to a random blob, its value at z, the proof."""
    rng = random.Random(seed)
    blob = b"".join((rng.getrandbits(256) % BLS_MODULUS).to_bytes(32, "big") for _ in range(4096))
    settings = kzg_settings()
    commitment = ckzg.blob_to_kzg_commitment(blob, settings)
    proof, y = ckzg.compute_kzg_proof(blob, z.to_bytes(32, "big"), settings)
    versioned = b"\x01" + hashlib.sha256(commitment).digest()[1:]
    return bytes(versioned + z.to_bytes(32, "big") + y + commitment + proof)


def blake2f_input(rounds: int) -> bytes:
    rng = random.Random(rounds)
    return rounds.to_bytes(4, "big") + rng.randbytes(208) + b"\x01"


def call_cases() -> list[tuple[str, int, bytes]]:
    """(name, precompile, input) of each timed call."""
    rng = random.Random(7)
    odd = (rng.getrandbits(2048) | 1 | 1 << 2047).to_bytes(256, "big")
    return [
        ("MODEXP 256-byte operands, odd modulus", 5, modexp_input(rng.randbytes(256), rng.randbytes(256), odd)),
        ("MODEXP 32-byte operands", 5, modexp_input(rng.randbytes(32), rng.randbytes(32), rng.randbytes(32))),
        ("ECADD", 6, g1(rng.randrange(curve_order)) + g1(rng.randrange(curve_order))),
        ("ECMUL", 7, g1(rng.randrange(curve_order)) + rng.getrandbits(256).to_bytes(32, "big")),
        ("ECPAIRING 2 pairs", 8, pairing_that_holds(rng.randrange(1, curve_order), rng.randrange(1, curve_order))),
        ("BLAKE2F 12 rounds", 9, blake2f_input(12)),
        ("BLAKE2F 10,000 rounds", 9, blake2f_input(10_000)),
        ("POINT EVALUATION", 10, point_evaluation_input(0, 12345)),
    ]


def _per_call(call: Callable[[int, bytes, int], Outcome], precompile: int, data: bytes, calls: int) -> float:
    """Seconds per call: the best of three runs of ``calls`` calls (a busy machine only adds)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            call(precompile, data, 10**8)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


# ---- a block of pairing verifiers --------------------------------------------------------------

def verifier_code() -> bytes:
    """Calls the pairing check (0x08) with its call data; stores the result word in the slot
    named by the caller (so that transactions of distinct senders do not conflict)."""
    return (
        b"\x36\x5f\x5f\x37"  # CALLDATACOPY(0, 0, CALLDATASIZE)
        + b"\x60\x20\x5f\x36\x5f\x60\x08\x5a\xfa"  # STATICCALL(GAS, 8, 0, CALLDATASIZE, 0, 32)
        + b"\x50\x5f\x51\x33\x55"  # POP; SSTORE(CALLER, MLOAD(0))
    )


def call_block(n: int, to: Address, inputs: list[bytes], gas: int,
               code: dict[Address, bytes] | None = None) -> tuple[dict[Address, GenesisAccount], list[Transaction], BlockEnv]:
    """n transactions from distinct senders to ``to``, the i-th with call data ``inputs[i % len]``
    and ``gas``; ``code``: contracts in the genesis state."""
    keys = _keys(n)
    alloc = {sender: GenesisAccount(balance=10**24) for _, sender in keys}
    alloc.update({address: GenesisAccount(code=body) for address, body in (code or {}).items()})
    txs = [_sign(k, 0, to, 0, inputs[i % len(inputs)], gas) for i, (k, _) in enumerate(keys)]
    env = BlockEnv(number=1, timestamp=1_700_000_000, coinbase=COINBASE, gas_limit=gas * n + 1,
                   base_fee_per_gas=10**9, chain_id=CHAIN_ID, prev_randao=Hash32(bytes(32)),
                   block_hashes=(Hash32(keccak256(b"parent")),))
    return alloc, txs, env


def verifier_block(n: int) -> tuple[dict[Address, GenesisAccount], list[Transaction], BlockEnv]:
    """n transactions from distinct senders, each verifying a different 2-pair pairing."""
    data = [pairing_that_holds(i + 2, i + 3) for i in range(min(n, 16))]  # py_ecc is slow to make them
    return call_block(n, VERIFIER, data, 200_000, {VERIFIER: verifier_code()})


def _time_block(executor: Executor, block: tuple[dict[Address, GenesisAccount], list[Transaction], BlockEnv],
                warm: bool) -> tuple[float, int, BatchResult]:
    """Seconds for ``block``, how many of its transactions succeeded, the result."""
    alloc, txs, env = block
    _, db, root = genesis_state(alloc)
    pre = db.at(root)
    if warm:
        executor.execute(pre, env, txs[:1])
    start = time.perf_counter()
    result = executor.execute(pre, env, txs)
    seconds = time.perf_counter() - start
    return seconds, sum(1 for e in result.executed if e.receipt.succeeded), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="calls per precompile and side (fewer for slow ones)")
    parser.add_argument("--batch", type=int, default=200,
                        help="direct calls of each precompile per block (native executors)")
    parser.add_argument("--block", type=int, default=1000, help="verifier transactions per block (native)")
    parser.add_argument("--reference-block", type=int, default=10,
                        help="verifier transactions per block on the reference (about 1 s each)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'per call':<40} {'native-cpu':>12} {'py-evm':>12} {'speed-up':>9}")
    for name, precompile, data in call_cases():
        mine, theirs = native_call(precompile, data, 10**8), reference_call(precompile, data, 10**8)
        assert mine == theirs, f"{name}: native {mine} vs reference {theirs}"
        native = _per_call(native_call, precompile, data, args.calls)
        reference = _per_call(reference_call, precompile, data, max(1, args.calls // 10))
        print(f"{name:<40} {native * 1e6:>10.1f}us {reference * 1e6:>10.0f}us {reference / native:>8.0f}x", flush=True)

    from executor_gpu.native import NativeExecutor
    from executor_gpu.reference import PyEvmExecutor

    natives: list[tuple[str, Callable[[], Executor]]] = [("native-cpu (1 thread)", lambda: NativeExecutor("cpu"))]
    if cuda_available():
        natives.append(("native-cuda", lambda: NativeExecutor("cuda")))
    else:
        print("native-cuda: no CUDA device here, skipped")

    # Per batch: a block of direct calls, one launch on the GPU; per call = block time / calls.
    print(f"\nper call in a block of {args.batch} direct calls: " + " ".join(f"{label:>22}" for label, _ in natives))
    executors = [(label, make()) for label, make in natives]
    for name, precompile, data in call_cases():
        block = call_block(args.batch, Address(precompile.to_bytes(20, "big")), [data], 30_000_000)
        cells = []
        for label, executor in executors:
            seconds, ok, result = _time_block(executor, block, warm=True)
            assert ok == args.batch and result.fallbacks == 0, f"{name} on {label}: {ok} succeeded, {result.fallbacks} fallbacks"
            cells.append(f"{seconds / args.batch * 1e6:>20.1f}us")
        print(f"{name:<40} " + " ".join(cells), flush=True)

    print(f"\nblock of pairing verifiers (2 pairs each): {'txs':>6} {'seconds':>9} {'tx/s':>9} {'fallbacks':>9}")
    runs: list[tuple[str, Callable[[], Executor], int]] = [("reference", PyEvmExecutor, args.reference_block)]
    runs += [(label, make, args.block) for label, make in natives]
    for label, make, n in runs:
        seconds, ok, result = _time_block(make(), verifier_block(n), warm=label != "reference")
        verifier = result.state_diff.accounts[VERIFIER]
        assert ok == n and verifier is not None and list(verifier.storage.values()) == [1] * n, "every pairing must hold"
        print(f"{label:<42} {n:>6} {seconds:>9.3f} {n / seconds:>9.1f} {result.fallbacks:>9}", flush=True)

if __name__ == "__main__":
    main()
