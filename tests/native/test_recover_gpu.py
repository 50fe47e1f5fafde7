"""Batch sender recovery on the GPU (evm_recover_kernel): coincurve's and libsecp256k1's
answers on the same cases as the CPU build's test, in batches as large as admission's, and
admission's decoder recovering on the GPU.

Needs an NVIDIA GPU with CuPy: ``python -m pytest tests/native/test_recover_gpu.py -m gpu``.
"""

from __future__ import annotations

import pytest

from executor_gpu.recover import (
    KernelRecover,
    NativeDecode,
    NativeRecover,
    batch_decode,
    gpu_recover,
)
from primitives.crypto import recover_addresses
from primitives.transactions import decode_transactions
from tests.native.test_recover import check_recovery, recovery_cases
from tests.native.test_txdecode import dynamic_fee

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
    raws += [dynamic_fee(r=5, s=7), dynamic_fee(s=1), dynamic_fee(y=2), b"\x02\xc0"]
    decode = NativeDecode(NativeRecover(gpu=gpu(), gpu_from=0))
    assert decode(raws) == decode_transactions(raws)
    assert decode.slow == 4
    # The node's decoder with a native-cuda executor sends large batches to the GPU.
    node_decoder = batch_decode(gpu=True)
    assert isinstance(node_decoder, NativeDecode) and node_decoder.recover.gpu is not None
