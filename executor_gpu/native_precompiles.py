"""The host's side of the native precompiles.

- The reference's error wording for a transaction that calls a precompile directly with an
  input it refuses (status ST_PRECOMPILE_FAILURE): the interpreter reports only that the input
  was refused; which of the reference's messages applies follows from the precompile and its
  input, which the host has.
- The KZG point evaluation's proof check: the CPU build calls c-kzg-4844 (the library ckzg, the
  reference's, ships) with the trusted setup the reference loaded.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib

import ckzg

BLAKE2F_INPUT = 213
"""Length of BLAKE2F's input (EIP-152)."""
POINT_EVALUATION_INPUT = 192
"""Length of the point evaluation's input (EIP-4844)."""


def precompile_error(precompile: int, data: bytes) -> str:
    """py-evm's message for precompile ``precompile`` refusing ``data`` (eth/precompiles/)."""
    if precompile == 0x06:
        return "Invalid ECADD parameters"
    if precompile == 0x07:
        return "Invalid ECMUL parameters"
    if precompile == 0x08:
        return "Invalid ECPAIRING parameters"
    if precompile == 0x09:
        prefix = "Blake2b input parameter validation failure: "
        if len(data) != BLAKE2F_INPUT:
            return (f"{prefix}input length for Blake2 F precompile should be exactly {BLAKE2F_INPUT}"
                    f" bytes, got: {len(data)}")
        return f"{prefix}incorrect final block indicator flag, needed 0 or 1, got: {data[-1]}"
    if precompile == 0x0A:
        if len(data) != POINT_EVALUATION_INPUT:
            return "Point evaluation invalid input length."
        if b"\x01" + hashlib.sha256(data[96:144]).digest()[1:] != data[:32]:
            return "Point evaluation commitment does not match versioned hash."
        return "Point evaluation KZG proof verification failed."
    raise ValueError(f"precompile 0x{precompile:02x} never refuses its input natively")


@functools.cache
def kzg_verifier() -> tuple[int, int]:
    """Addresses of c-kzg-4844's ``verify_kzg_proof`` and of the reference's trusted setup
    (``D_KZG_VERIFY``, ``D_KZG_SETTINGS``); both live as long as the process."""
    from executor_gpu.reference import kzg_settings  # py-evm: imported only when needed

    function = ctypes.cast(ctypes.CDLL(ckzg.__file__).verify_kzg_proof, ctypes.c_void_p).value
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    settings = get_pointer(kzg_settings(), b"KZGSettings")
    assert function and settings
    return function, settings
