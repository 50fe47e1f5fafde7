"""The interpreter's 256-bit arithmetic and Keccak, in the CPU build, against Python's integers."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor_gpu.native_abi import from_words, words
from executor_gpu.native_build import cpu_library
from primitives.crypto import keccak256

M = 2**256
HALF = 2**255


def signed(x: int) -> int:
    return x - M if x >= HALF else x


def sdiv(a: int, b: int) -> int:
    if b == 0:
        return 0
    sa, sb = signed(a), signed(b)
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) % M


def smod(a: int, b: int) -> int:
    if b == 0:
        return 0
    sa, sb = signed(a), signed(b)
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) % M


def signextend(b: int, x: int) -> int:
    if b >= 31:
        return x
    bit = 8 * b + 7
    low = x & ((1 << (bit + 1)) - 1)
    return (low | (M - (1 << (bit + 1)))) if (x >> bit) & 1 else low


def sar(shift: int, x: int) -> int:
    return (signed(x) >> min(shift, 256)) % M


# Yellow-paper semantics of opcodes 0x01-0x1d, the top of the stack first.
REFERENCE: dict[int, Callable[[int, int, int], int]] = {
    0x01: lambda a, b, n: (a + b) % M,
    0x02: lambda a, b, n: (a * b) % M,
    0x03: lambda a, b, n: (a - b) % M,
    0x04: lambda a, b, n: a // b if b else 0,
    0x05: lambda a, b, n: sdiv(a, b),
    0x06: lambda a, b, n: a % b if b else 0,
    0x07: lambda a, b, n: smod(a, b),
    0x08: lambda a, b, n: (a + b) % n if n else 0,
    0x09: lambda a, b, n: (a * b) % n if n else 0,
    0x0A: lambda a, b, n: pow(a, b, M),
    0x0B: lambda a, b, n: signextend(a, b),
    0x10: lambda a, b, n: int(a < b),
    0x11: lambda a, b, n: int(a > b),
    0x12: lambda a, b, n: int(signed(a) < signed(b)),
    0x13: lambda a, b, n: int(signed(a) > signed(b)),
    0x14: lambda a, b, n: int(a == b),
    0x15: lambda a, b, n: int(a == 0),
    0x16: lambda a, b, n: a & b,
    0x17: lambda a, b, n: a | b,
    0x18: lambda a, b, n: a ^ b,
    0x19: lambda a, b, n: (M - 1) ^ a,
    0x1A: lambda a, b, n: (b >> (8 * (31 - a))) & 0xFF if a < 32 else 0,
    0x1B: lambda a, b, n: (b << a) % M if a < 256 else 0,
    0x1C: lambda a, b, n: b >> a if a < 256 else 0,
    0x1D: lambda a, b, n: sar(a, b),
}


def native(op: int, a: int, b: int, n: int) -> int:
    args = np.array(words(a) + words(b) + words(n), dtype=np.uint64)
    out = np.zeros(4, dtype=np.uint64)
    cpu_library().evm_test_arith(op, args.ctypes.data, out.ctypes.data)
    return from_words(out)


# Values that stress carries, signs and limb boundaries, mixed with uniform ones.
EDGES = [0, 1, 2, 31, 32, 255, 256, 2**63, 2**64 - 1, 2**64, 2**128 - 1, 2**128, HALF - 1, HALF,
         HALF + 1, M - 2, M - 1]
word = st.one_of(
    st.sampled_from(EDGES),
    st.integers(0, M - 1),
    st.integers(0, 2**64),
    st.builds(lambda k, e: (1 << k) + e, st.integers(0, 255), st.integers(-3, 3)).map(lambda x: x % M),
)


@pytest.mark.parametrize("op", sorted(REFERENCE), ids=lambda op: f"0x{op:02x}")
@settings(max_examples=120, deadline=None)
@given(a=word, b=word, n=word)
def test_arith_matches_python(op: int, a: int, b: int, n: int) -> None:
    assert native(op, a, b, n) == REFERENCE[op](a, b, n)


@settings(max_examples=500, deadline=None)
@given(a=st.integers(0, M - 1), digits=st.integers(1, 8), seed=st.integers(0, M - 1))
def test_division_against_short_divisors(a: int, digits: int, seed: int) -> None:
    # Divisors of every 32-bit digit count exercise each branch of Knuth's algorithm D.
    b = seed >> (256 - 32 * digits) or 1
    assert native(0x04, a, b, 0) == a // b
    assert native(0x06, a, b, 0) == a % b
    assert native(0x09, a, a, b) == (a * a) % b


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_keccak_matches_reference(data: bytes) -> None:
    out = np.zeros(4, dtype=np.uint64)
    buf = ctypes.create_string_buffer(data, len(data) or 1)
    cpu_library().evm_test_keccak(ctypes.addressof(buf), len(data), out.ctypes.data)
    assert from_words(out).to_bytes(32, "big") == keccak256(data)


def test_keccak_block_boundaries() -> None:
    # The rate is 136 bytes: padding lands in its own block for exact multiples.
    for size in (0, 135, 136, 137, 271, 272, 273):
        data = bytes(range(256)) * 2
        out = np.zeros(4, dtype=np.uint64)
        buf = ctypes.create_string_buffer(data[:size], size or 1)
        cpu_library().evm_test_keccak(ctypes.addressof(buf), size, out.ctypes.data)
        assert from_words(out).to_bytes(32, "big") == keccak256(data[:size]), size
