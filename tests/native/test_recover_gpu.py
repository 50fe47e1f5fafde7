"""Batch sender recovery on the GPU (evm_recover_kernel): coincurve's and libsecp256k1's
answers on the same cases as the CPU build's test, in batches as large as admission's, and
admission's decoder recovering on the GPU.

Needs an NVIDIA GPU with CuPy: ``python -m pytest tests/native/test_recover_gpu.py -m gpu``.
"""

from __future__ import annotations

import functools

import pytest

from executor_gpu.native import NativeExecutor
from executor_gpu.recover import (
    KernelRecover,
    NativeDecode,
    NativeRecover,
    batch_decode,
    gpu_recover,
)
from node.db.state import GenesisAccount
from primitives.crypto import SECP256K1_N, recover_addresses
from primitives.transactions import Transaction, decode_transactions
from primitives.types import Address
from tests.native.chain import ENV, comparable, make_state, make_tx, native, reference
from tests.native.test_differential import contract, funded, precompile_caller
from tests.native.test_recover import check_recovery, recovery_cases
from tests.native.test_txdecode import dynamic_fee, outcome

pytestmark = pytest.mark.gpu


def gpu() -> KernelRecover:
    found = gpu_recover()
    assert found is not None, "the GPU's recovery did not pass its probe"
    return found


@pytest.mark.parametrize("seed", [1, 2])
def test_the_gpu_kernel_equals_libsecp256k1(seed: int) -> None:
    check_recovery(gpu(), seed=seed, count=500)


def test_a_large_batch_with_failures_spread_through_it() -> None:
    valid, refused, others = recovery_cases(3, 2000)
    cases = (valid + refused + others) * 10  # 20k and more, failures in every block of threads
    assert gpu()(cases) == NativeRecover()(cases) == recover_addresses(cases)


def test_admission_decodes_in_c_and_recovers_on_the_gpu() -> None:
    raws = [dynamic_fee(nonce=n) for n in range(300)]
    # r = 5 has no point (no key); s = 1 recovers some other key: a transaction all the same.
    raws += [dynamic_fee(r=5, s=7), dynamic_fee(s=1), dynamic_fee(y=2), b"\x02\xc0"]
    decode = NativeDecode(NativeRecover(gpu=gpu(), gpu_from=0))
    decoded = decode(raws)
    assert list(map(outcome, decoded)) == list(map(outcome, decode_transactions(raws)))
    assert decode.slow == 3 and isinstance(decoded[301], Transaction)
    # The node's decoder with a native-cuda executor sends large batches to the GPU.
    node_decoder = batch_decode(gpu=True)
    assert isinstance(node_decoder, NativeDecode) and node_decoder.recover.gpu is not None


@functools.cache
def cuda() -> NativeExecutor:
    return NativeExecutor("cuda")


def test_the_ecrecover_precompile_on_the_gpu_keeps_its_rules() -> None:
    """ecrecover (0x01) shares secp_recover with the batch kernel: called through a contract
    and directly, on the GPU, it gives the CPU build's and the reference's results."""
    valid, refused, _ = recovery_cases(9, 3)
    inputs = []
    for message, y, r, s in valid + refused[:12]:
        for v, s_value in ((27 + y, s), (28 - y, SECP256K1_N - s), (y, s)):
            words = (v % 2**256, r % 2**256, s_value % 2**256)
            inputs.append(message + b"".join(w.to_bytes(32, "big") for w in words))
    alloc = funded(*range(2 * len(inputs))) | {contract(1): GenesisAccount(code=precompile_caller(1, 10**5))}
    txs = [make_tx(i, 0, contract(1), data=data, gas=300_000) for i, data in enumerate(inputs)]
    txs += [make_tx(len(inputs) + i, 0, Address(bytes(19) + b"\x01"), data=data, gas=300_000)
            for i, data in enumerate(inputs)]
    pre = make_state(alloc)
    on_gpu = cuda().execute(pre, ENV, txs)
    assert on_gpu.fallbacks == 0
    assert comparable(on_gpu) == comparable(native().execute(pre, ENV, txs))
    assert comparable(on_gpu) == comparable(reference().execute(pre, ENV, txs))
