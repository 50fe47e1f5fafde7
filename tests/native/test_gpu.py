"""The CUDA build (NVRTC) gives the same results as the CPU build and the reference.

Needs an NVIDIA GPU with CuPy: ``python -m pytest tests/native -m gpu``.
"""

from __future__ import annotations

import functools

import pytest

from bench.executor import pre_state, workload
from executor_gpu.native import NativeExecutor
from tests.native.chain import comparable, native, reference

pytestmark = pytest.mark.gpu


@functools.cache
def cuda() -> NativeExecutor:
    return NativeExecutor("cuda")


@pytest.mark.parametrize("kind", ["transfer", "erc20"])
def test_cuda_matches_cpu_and_reference(kind: str) -> None:
    work = workload(kind, 300)
    pre = pre_state(work.alloc)
    on_gpu = cuda().execute(pre, work.env, work.txs)
    assert comparable(on_gpu) == comparable(native().execute(pre, work.env, work.txs))
    assert comparable(on_gpu) == comparable(reference().execute(pre, work.env, work.txs))
    assert len(on_gpu.executed) == 300 and on_gpu.fallbacks == 0


def test_cuda_random_programs_match_cpu() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from node.db.state import GenesisAccount
    from tests.native.chain import ENV, make_state, make_tx
    from tests.native.programs import program
    from tests.native.test_differential import PEERS, contract, funded

    @settings(max_examples=60, deadline=None)
    @given(codes=st.lists(program([*PEERS]), min_size=3, max_size=3), data=st.binary(max_size=40))
    def check(codes: list[bytes], data: bytes) -> None:
        alloc = funded(0, 1) | {contract(n + 1): GenesisAccount(balance=10**9, code=code)
                                for n, code in enumerate(codes)}
        txs = [make_tx(i, 0, contract(i + 1), data=data, gas=1_000_000) for i in range(2)]
        pre = make_state(alloc)
        assert comparable(cuda().execute(pre, ENV, txs)) == comparable(native().execute(pre, ENV, txs))

    check()


def test_the_local_memory_a_process_keeps_is_what_the_kernel_asks_for() -> None:
    import cupy

    from executor_gpu.native_build import cuda_kernel
    from executor_gpu.native_launch import cuda_memory

    memory = cuda_memory()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    threads = props["maxThreadsPerMultiProcessor"] * props["multiProcessorCount"]
    assert memory.local == cuda_kernel().attributes["local_size_bytes"] * threads
    assert memory.local >= 32 * 1024 * threads  # the 1,024-item stack window alone
    assert 0 < memory.free <= cupy.cuda.runtime.memGetInfo()[1] and memory.processes() >= 1
