"""One precompile call on the native build (its test hook) and on the reference's precompile
functions, for the differential tests of tests/native/test_precompiles.py."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import cast

import numpy as np
from eth.abc import ComputationAPI
from eth.exceptions import OutOfGas, VMError
from eth_typing import Address

from executor_gpu.native_abi import ABI
from executor_gpu.native_build import cpu_library
from executor_gpu.native_precompiles import kzg_verifier
from executor_gpu.reference import _ReferenceComputation


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
    """The input was refused (as opposed to the gas running out): the error a direct call reports."""


def native_call(precompile: int, data: bytes, gas: int, scratch: int = 1 << 22) -> Outcome:
    """``precompile`` on the CPU build, as a transaction calling it directly."""
    lib = cpu_library()
    mem = np.zeros(scratch, dtype=np.uint8)
    ret = np.zeros(1 << 20, dtype=np.uint8)
    out = np.zeros(1 << 20, dtype=np.uint8)
    res = np.zeros(ABI["RS_WORDS"], dtype=np.uint64)
    buf = ctypes.create_string_buffer(data, len(data) or 1)
    left = lib.evm_test_precompile(precompile, buf, len(data), gas, mem.ctypes.data, scratch, ret.ctypes.data,
                                   out.ctypes.data, len(out), res.ctypes.data, *kzg_verifier())
    status = int(res[ABI["RS_STATUS"]])
    assert status < ABI["ST_CONTROL_FIRST"], f"stopped with control status {status}"
    if status != ABI["ST_SUCCESS"]:
        return Outcome(False, b"", 0, status == ABI["ST_PRECOMPILE_FAILURE"])
    return Outcome(True, out[: int(res[ABI["RS_OUT_LEN"]])].tobytes(), int(left))


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
    """``precompile`` as the reference executor runs it (py-evm's functions)."""
    function = _ReferenceComputation.get_precompiles()[Address(precompile.to_bytes(20, "big"))]
    computation = _Computation(data, gas)
    try:
        function(cast(ComputationAPI, computation))
    except OutOfGas:
        return Outcome(False, b"", 0)
    except VMError:
        return Outcome(False, b"", 0, True)
    return Outcome(True, computation.output, computation.gas)
