"""Precompiles 0x05-0x0a on the CUDA build: the same results as the CPU build and the reference,
no fallback, and the KZG point evaluation run on the host's CPU build (counted).

Needs an NVIDIA GPU with CuPy: ``python -m pytest tests/native/test_precompiles_gpu.py -m gpu``.
"""

from __future__ import annotations

import functools
import random

import pytest

from bench.executor import genesis_state
from bench.precompiles import (
    VERIFIER,
    blake2f_input,
    g1,
    g2,
    modexp_input,
    pairing_that_holds,
    point_evaluation_input,
    verifier_block,
)
from executor_gpu.native import NativeExecutor
from node.db.state import GenesisAccount
from primitives.types import Address
from tests.native.chain import ENV, comparable, make_state, make_tx, native, reference
from tests.native.test_differential import contract, funded, precompile_caller

pytestmark = pytest.mark.gpu


@functools.cache
def cuda() -> NativeExecutor:
    return NativeExecutor("cuda")


def inputs(seed: int) -> list[tuple[int, bytes]]:
    """(precompile, input) pairs: valid ones, refused ones, edge cases."""
    rng = random.Random(seed)
    odd = (rng.getrandbits(1024) | 1 | 1 << 1023).to_bytes(128, "big")
    even = (rng.getrandbits(512) & ~1 | 1 << 511).to_bytes(64, "big")
    kzg = point_evaluation_input(seed % 2, rng.randrange(1000))
    return [
        (5, modexp_input(rng.randbytes(128), rng.randbytes(64), odd)),
        (5, modexp_input(rng.randbytes(64), rng.randbytes(8), even)),
        (5, modexp_input(b"", b"", b"\x07")),
        (5, (2**200).to_bytes(32, "big") * 3),
        (6, g1(rng.randrange(1, 10**9)) + g1(rng.randrange(1, 10**9))),
        (6, (1).to_bytes(32, "big") * 4),
        (7, g1(rng.randrange(1, 10**9)) + rng.randbytes(32)),
        (8, pairing_that_holds(rng.randrange(1, 10**9), rng.randrange(1, 10**9))),
        (8, g1(3) + g2(5)),
        (8, bytes(191)),
        (9, blake2f_input(rng.randrange(100))),
        (9, blake2f_input(12)[:-1] + b"\x02"),
        (10, kzg),
        (10, kzg[:-1] + bytes([kzg[-1] ^ 1])),
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_precompile_calls_match_cpu_and_reference(seed: int) -> None:
    cases = inputs(seed)
    alloc = funded(*range(2 * len(cases))) | {
        contract(p): GenesisAccount(code=precompile_caller(p, 10**6)) for p in range(5, 11)}
    # Through a contract (each from its own sender, so they run in one wave), and directly.
    txs = [make_tx(i, 0, contract(p), data=data, gas=2_000_000) for i, (p, data) in enumerate(cases)]
    txs += [make_tx(len(cases) + i, 0, Address(bytes(19) + bytes([p])), data=data, gas=2_000_000)
            for i, (p, data) in enumerate(cases)]
    pre = make_state(alloc)
    before = cuda().host_runs["precompile 0x0a"]
    on_gpu = cuda().execute(pre, ENV, txs)
    assert comparable(on_gpu) == comparable(native().execute(pre, ENV, txs))
    assert comparable(on_gpu) == comparable(reference().execute(pre, ENV, txs))
    assert on_gpu.fallbacks == 0
    # The GPU cannot call c-kzg: the four point evaluations ran on the host's CPU build.
    assert cuda().host_runs["precompile 0x0a"] - before >= 4


def test_a_block_of_pairing_verifiers() -> None:
    alloc, txs, env = verifier_block(1000)
    _, db, root = genesis_state(alloc)
    pre = db.at(root)
    on_gpu = cuda().execute(pre, env, txs)
    assert on_gpu.fallbacks == 0 and all(e.receipt.succeeded for e in on_gpu.executed)
    verifier = on_gpu.state_diff.accounts[VERIFIER]
    assert verifier is not None and list(verifier.storage.values()) == [1] * 1000
    assert comparable(on_gpu) == comparable(native().execute(pre, env, txs))
    few = txs[:3]
    assert comparable(cuda().execute(pre, env, few)) == comparable(reference().execute(pre, env, few))
