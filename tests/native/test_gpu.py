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


FIRST_LAUNCH = """
import json, cupy
from bench.executor import pre_state, workload
from executor_gpu.native import NativeExecutor
from executor_gpu.native_launch import cuda_memory
memory = cuda_memory()  # compiles the kernel; nothing has run yet
props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
work = workload("transfer", 1)
pre, executor = pre_state(work.alloc), NativeExecutor("cuda")
before = cupy.cuda.runtime.memGetInfo()[0]
executor.execute(pre, work.env, work.txs)
print(json.dumps({"local": memory.local, "drop": before - cupy.cuda.runtime.memGetInfo()[0],
                  "threads": props["maxThreadsPerMultiProcessor"] * props["multiProcessorCount"]}))
"""


def test_a_first_launch_takes_the_local_memory_cuda_memory_counts() -> None:
    """In a fresh process the driver's free memory drops at the first launch by the local memory
    cuda_memory() counts, less the stack the context already held (1 KB a thread by default)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run([sys.executable, "-c", FIRST_LAUNCH], capture_output=True, text=True,
                         cwd=Path(__file__).parents[2], check=True)
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["local"] >= 32 * 1024 * got["threads"]  # the 1,024-item stack window alone
    # The launch's own buffers are a few MiB at most.
    assert got["local"] - 2 * 1024 * got["threads"] <= got["drop"] <= got["local"] + 64 * 2**20
