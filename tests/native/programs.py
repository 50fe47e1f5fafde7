"""Hypothesis strategies for EVM programs that do something: every opcode gets its arguments
pushed just before it, and most results are stored, so that the post-state shows them."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

M = 2**256


def push(value: int) -> bytes:
    """The shortest PUSH of ``value`` (PUSH0 for zero)."""
    if value == 0:
        return b"\x5f"
    size = (value.bit_length() + 7) // 8
    return bytes([0x5F + size]) + value.to_bytes(size, "big")


WORDS = st.one_of(
    st.sampled_from([0, 1, 2, 3, 7, 31, 32, 33, 255, 256, 2**64 - 1, 2**64, 2**128, 2**255 - 1,
                     2**255, M - 2, M - 1]),
    st.integers(0, M - 1),
    st.integers(0, 2**70),
)
SMALL = st.integers(0, 100)
"""Memory offsets and sizes that keep memory small."""

BINARY = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0A, 0x0B, 0x10, 0x11, 0x12, 0x13, 0x14,
          0x16, 0x17, 0x18, 0x1A, 0x1B, 0x1C, 0x1D]
TERNARY = [0x08, 0x09]
UNARY = [0x15, 0x19]
NULLARY = [0x30, 0x32, 0x33, 0x34, 0x36, 0x38, 0x3A, 0x3D, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46,
           0x47, 0x48, 0x4A, 0x58, 0x59, 0x5A]


def _op(code: int, *args: int) -> bytes:
    # Arguments are pushed last-first, so that args[0] ends on top of the stack.
    return b"".join(push(a) for a in reversed(args)) + bytes([code])


def _store(slot: int) -> bytes:
    return push(slot) + b"\x55"


# Repeated kinds are drawn more often; the costly ones (create, returndata errors) rarely.
KINDS = (
    ["binary"] * 4 + ["sstore"] * 4 + ["sload"] * 2 + ["nullary"] * 2 + ["mstore"] * 2 + ["call"] * 2
    + ["ternary", "unary", "mload", "mcopy", "keccak", "calldata", "codecopy", "transient",
       "account", "blockhash", "log", "returndata", "create", "skip", "blobhash"]
)
STORED = st.one_of(st.integers(0, 2), WORDS)
"""Values for SSTORE: small ones often, so that stores restore or clear slots."""


@st.composite
def instruction(draw: st.DrawFn, peers: Sequence[int], slot: int, at: int) -> bytes:
    """One operation and what it needs, placed at code offset ``at``; ``slot`` receives its
    result when it has one."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "binary":
        return _op(draw(st.sampled_from(BINARY)), draw(WORDS), draw(WORDS)) + _store(slot)
    if kind == "ternary":
        return _op(draw(st.sampled_from(TERNARY)), draw(WORDS), draw(WORDS), draw(WORDS)) + _store(slot)
    if kind == "unary":
        return _op(draw(st.sampled_from(UNARY)), draw(WORDS)) + _store(slot)
    if kind == "nullary":
        return bytes([draw(st.sampled_from(NULLARY))]) + _store(slot)
    if kind == "mstore":
        return _op(draw(st.sampled_from([0x52, 0x53])), draw(SMALL), draw(WORDS))
    if kind == "mload":
        return _op(0x51, draw(SMALL)) + _store(slot)
    if kind == "mcopy":
        return _op(0x5E, draw(SMALL), draw(SMALL), draw(SMALL))
    if kind == "keccak":
        return _op(0x20, draw(SMALL), draw(SMALL)) + _store(slot)
    if kind == "calldata":
        if draw(st.booleans()):
            return _op(0x35, draw(SMALL)) + _store(slot)
        return _op(0x37, draw(SMALL), draw(SMALL), draw(SMALL))
    if kind == "codecopy":
        return _op(0x39, draw(SMALL), draw(SMALL), draw(SMALL))
    if kind == "sstore":
        return _op(0x55, draw(st.integers(0, 4)), draw(STORED))
    if kind == "sload":
        return _op(0x54, draw(st.integers(0, 4))) + _store(slot)
    if kind == "transient":
        if draw(st.booleans()):
            return _op(0x5D, draw(st.integers(0, 2)), draw(WORDS))
        return _op(0x5C, draw(st.integers(0, 2))) + _store(slot)
    if kind == "account":
        code = draw(st.sampled_from([0x31, 0x3B, 0x3F]))
        return _op(code, draw(st.sampled_from([*peers, 1, 4, 0xDEAD]))) + _store(slot)
    if kind == "blockhash":
        return _op(0x40, draw(st.integers(0, 300))) + _store(slot)
    if kind == "blobhash":
        return _op(0x49, draw(st.integers(0, 2))) + _store(slot)
    if kind == "log":
        topics = draw(st.integers(0, 4))
        args = [draw(SMALL), draw(SMALL)] + [draw(WORDS) for _ in range(topics)]
        return _op(0xA0 + topics, *args)
    if kind == "returndata":
        return _op(0x3E, draw(SMALL), draw(st.sampled_from([0, 0, 0, 1, 4])), draw(st.sampled_from([0, 0, 0, 1, 32])))
    if kind == "call":
        code = draw(st.sampled_from([0xF1, 0xF2, 0xF4, 0xFA]))
        gas = draw(st.one_of(*[st.integers(0, 60000)] * 4, st.just(M - 1)))
        target = draw(st.sampled_from([*peers, 4, 0xDEAD]))
        memory = [draw(SMALL) for _ in range(4)]
        value = [draw(st.sampled_from([0, 0, 1, 10**6]))] if code in (0xF1, 0xF2) else []
        return _op(code, gas, target, *value, *memory) + _store(slot)
    if kind == "create":
        # Init code from memory: whatever was stored there (often nothing, a valid empty contract).
        endowment = draw(st.sampled_from([0, 5]))
        if draw(st.booleans()):
            return _op(0xF0, endowment, draw(SMALL), draw(SMALL)) + _store(slot)
        return _op(0xF5, endowment, draw(SMALL), draw(SMALL), draw(WORDS)) + _store(slot)
    # A conditional jump over an instruction: [cond] PUSH2 dest JUMPI [body] JUMPDEST.
    cond = push(draw(st.sampled_from([0, 1])))
    body = draw(instruction(peers, slot, at + len(cond) + 4))
    dest = at + len(cond) + 4 + len(body)
    return cond + b"\x61" + dest.to_bytes(2, "big") + b"\x57" + body + b"\x5b"


@st.composite
def program(draw: st.DrawFn, peers: Sequence[int], first_slot: int = 0x100) -> bytes:
    """A contract body: instructions, then an ending (STOP, RETURN, REVERT, INVALID...)."""
    code = bytearray()
    for i in range(draw(st.integers(0, 12))):
        code += draw(instruction(peers, first_slot + i, len(code)))
    ending = draw(st.sampled_from(["stop", "return", "revert", "invalid", "selfdestruct", "none", "badjump"]))
    if ending == "return":
        code += _op(0xF3, draw(SMALL), draw(SMALL))
    elif ending == "revert":
        code += _op(0xFD, draw(SMALL), draw(SMALL))
    elif ending == "invalid":
        code += b"\xfe"
    elif ending == "selfdestruct":
        code += _op(0xFF, draw(st.sampled_from([*peers, 0xBEEF])))
    elif ending == "badjump":
        code += _op(0x56, draw(st.integers(0, len(code) + 5)))
    elif ending == "stop":
        code += b"\x00"
    return bytes(code)
