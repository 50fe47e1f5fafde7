"""The host's view of the interpreter's data layout, read from ``kernels/evm_abi.h``.

The header is the single source of the layout: every enum member there is written
``NAME = value,`` and this module exposes them as ``ABI["NAME"]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
"""C sources of the interpreter."""

KERNEL_SOURCES = ("evm_base.h", "evm_u256.h", "evm_keccak.h", "evm_precompile.h", "evm_blake2f.h",
                  "evm_modexp.h", "evm_bn254.h", "evm_abi.h",
                  "evm_state.h", "evm_interp.h", "evm_tx.h", "evm_host.h", "evm_ordered.h", "evm_encode.h",
                  "evm_recover.h",
                  "evm_txdecode.h", "evm_mpt.h", "evm_kv.h", "evm.c")
"""Every file the build depends on, for the cache key."""

_MEMBER = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(\d+)\s*,", re.MULTILINE)


def enum_members(header: str) -> dict[str, int]:
    """Every enum member of the kernel header ``header`` by name."""
    return {name: int(value) for name, value in _MEMBER.findall((KERNEL_DIR / header).read_text())}


ABI: dict[str, int] = enum_members("evm_abi.h")
"""Every enum member of evm_abi.h by name."""


def words(value: int) -> list[int]:
    """A 256-bit value as four little-endian 64-bit limbs."""
    return [(value >> (64 * i)) & 0xFFFFFFFFFFFFFFFF for i in range(4)]


def from_words(limbs: npt.NDArray[np.uint64]) -> int:
    """Inverse of ``words``: a 256-bit value from four limbs (a slice of a uint64 array)."""
    return int.from_bytes(limbs.tobytes(), "little")


def value_at(record: list[int], at: int) -> int:
    """The 256-bit value at word ``at`` of a record given as a list of limbs (``tolist()``)."""
    return record[at] | record[at + 1] << 64 | record[at + 2] << 128 | record[at + 3] << 192
