"""The native precompiles 0x05-0x0a against py-evm's: output, gas left and failure, on random
and edge-case inputs; then through whole transactions (no fallback, identical results)."""

from __future__ import annotations

import hashlib
import random

from hypothesis import example, given, settings
from hypothesis import strategies as st
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128.optimized_curve import (
    b2,
    curve_order,
    field_modulus,
    is_inf,
    multiply,
)

from bench.precompiles import (
    BLS_MODULUS,
    Outcome,
    g1,
    g2,
    g2_bytes,
    modexp_input,
    native_call,
    pairing_that_holds,
    point_evaluation_input,
    reference_call,
)
from executor_gpu.native import NativeExecutor
from executor_gpu.native_build import cpu_library
from executor_gpu.native_launch import Compacted, CpuDevice, Inputs, SlotCaps
from node.db.state import GenesisAccount
from primitives.transactions import Transaction
from primitives.types import Address
from tests.native.chain import ENV, comparable, make_state, make_tx, native, reference, run_both
from tests.native.test_differential import contract, funded, precompile_caller


def check(precompile: int, data: bytes, gas: int) -> None:
    assert native_call(precompile, data, gas) == reference_call(precompile, data, gas)


# ---- BLAKE2F (0x09) ------------------------------------------------------------------------

BLAKE2B_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)
# EIP-152's test vector 5: 12 rounds on "abc", BLAKE2b-512's state (IV, parameter block xored in).
BLAKE2F_ABC = (
    (12).to_bytes(4, "big")
    + b"".join((iv ^ (0x01010040 if i == 0 else 0)).to_bytes(8, "little") for i, iv in enumerate(BLAKE2B_IV))
    + b"abc".ljust(128, b"\x00")
    + (3).to_bytes(8, "little") + bytes(8)
    + b"\x01"
)


def test_blake2f_gives_the_eips_vector() -> None:
    outcome = native_call(9, BLAKE2F_ABC, 100)
    assert outcome.output.hex() == (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc95"
        "18d38aa8dbf1925ab92386edd4009923"
    )
    assert outcome.gas_left == 88


@settings(max_examples=150, deadline=None)
@given(
    rounds=st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)),
    body=st.binary(min_size=208, max_size=208),
    flag=st.one_of(st.sampled_from([0, 1]), st.integers(0, 255)),
    length=st.sampled_from([213, 213, 213, 0, 212, 214, 300]),
    gas=st.sampled_from([300, 12, 11, 0]),
)
@example(rounds=0, body=bytes(208), flag=0, length=213, gas=0)
@example(rounds=12, body=BLAKE2F_ABC[4:212], flag=2, length=213, gas=100)
def test_blake2f_matches_the_reference(rounds: int, body: bytes, flag: int, length: int, gas: int) -> None:
    # The gas keeps py-evm's pure-Python rounds few.
    check(9, (rounds.to_bytes(4, "big") + body + bytes([flag])).ljust(length, b"\x00")[:length], gas)


# ---- MODEXP (0x05) --------------------------------------------------------------------------

def numbers(max_size: int) -> st.SearchStrategy[bytes]:
    """Byte strings biased to the edges: empty, zero, one, all ones, random."""
    return st.one_of(
        st.binary(max_size=max_size),
        st.sampled_from([b"", b"\x00", b"\x01", b"\x00\x01", b"\xff" * 32, b"\x00" * 40 + b"\x03"]),
    )


@settings(max_examples=300, deadline=None)
@given(base=numbers(80), exponent=numbers(40), modulus=numbers(80), cut=st.integers(0, 400),
       gas=st.sampled_from([10**7, 200, 199, 5000]))
@example(base=b"", exponent=b"", modulus=b"\x05", cut=400, gas=10**7)  # 0^0 = 1
@example(base=b"\x02", exponent=b"\x05", modulus=b"\x01", cut=400, gas=10**7)  # mod 1
@example(base=b"\x02", exponent=b"\x05", modulus=b"\x00\x00", cut=400, gas=10**7)  # mod 0
@example(base=b"\xff" * 80, exponent=b"\xff" * 40, modulus=b"\xff" * 79 + b"\xfe", cut=400, gas=10**7)
def test_modexp_matches_the_reference(base: bytes, exponent: bytes, modulus: bytes, cut: int, gas: int) -> None:
    # cut shortens the input: what is missing reads as zeros.
    check(5, modexp_input(base, exponent, modulus)[: 96 + cut], gas)


@settings(max_examples=20, deadline=None)
@given(size=st.sampled_from([64, 128, 256, 384]), seed=st.integers(0, 2**64), even=st.booleans())
def test_modexp_of_long_operands(size: int, seed: int, even: bool) -> None:
    rng = random.Random(seed)
    modulus = rng.getrandbits(8 * size) | (1 << (8 * size - 1))
    modulus = modulus & ~1 if even else modulus | 1
    data = modexp_input(rng.randbytes(size), rng.randbytes(size), modulus.to_bytes(size, "big"))
    check(5, data, 10**8)


def length_words(*lengths: int) -> bytes:
    return b"".join(n.to_bytes(32, "big") for n in lengths)


def test_modexp_with_huge_lengths_is_priced_out_before_any_work() -> None:
    huge = 2**255 + 7
    for lengths in [(huge, 1, 1), (1, huge, 1), (1, 1, huge), (huge, huge, huge), (0, 2**64, 1), (2**40, 0, 0)]:
        data = length_words(*lengths) + b"\x01\x02\x03"
        check(5, data, 10**9)
        assert not native_call(5, data, 10**9).ok
    # Lengths of zero for base and modulus cost 200 whatever the exponent's length; output empty.
    for exponent_length in (2**64, huge):
        check(5, length_words(0, exponent_length, 0) + b"\xff" * 40, 1000)
    check(5, length_words(5, huge, 0) + b"\xff" * 40, 10**9)


# ---- Through transactions: no fallback, identical results ------------------------------------

def test_transactions_calling_blake2f_and_modexp_run_natively() -> None:
    alloc = funded(0) | {contract(p): GenesisAccount(code=precompile_caller(p, 10**6)) for p in (5, 9)}
    alloc |= {contract(0x19): GenesisAccount(code=precompile_caller(9, 5))}  # out of gas
    inputs = [
        (5, modexp_input(b"\x03", b"\x05", b"\x07")),
        (5, modexp_input(b"\x03" * 100, b"\xff" * 3, b"\x0f" * 100)),
        (9, BLAKE2F_ABC),
        (9, BLAKE2F_ABC[:-1] + b"\x02"),  # refused
        (0x19, BLAKE2F_ABC),
    ]
    txs = [make_tx(0, n, contract(p), data=data, gas=2_000_000) for n, (p, data) in enumerate(inputs)]
    # Direct calls: a refusal's error words come from the host.
    direct = [(5, modexp_input(b"\x02", b"\x10", b"\x03\x01")), (9, BLAKE2F_ABC), (9, BLAKE2F_ABC[:100]),
              (9, BLAKE2F_ABC[:-1] + b"\x07"), (5, length_words(1, 1, 2**200))]
    txs += [make_tx(0, len(txs) + n, Address(bytes(19) + bytes([p])), data=data, gas=100_000)
            for n, (p, data) in enumerate(direct)]
    mine, _ = run_both(alloc, txs)
    assert mine.fallbacks == 0
    errors = [e.error for e in mine.executed]
    assert errors[3] is None  # a refused call inside a contract: the contract goes on
    assert errors[-4] is None and str(errors[-3]).startswith("Blake2b input parameter validation failure")
    assert errors[-1] == "out of gas"


# ---- BN254 (0x06-0x08) -----------------------------------------------------------------------

P = field_modulus
R = curve_order


def fq2_sqrt(a: FQ2) -> FQ2 | None:
    """A square root in Fp2 (p = 3 mod 4), or None."""
    a0, a1 = (int(c) for c in a.coeffs)
    norm = pow(a0 * a0 + a1 * a1, (P + 1) // 4, P)
    for s in (norm, P - norm):
        x0 = pow((a0 + s) * pow(2, -1, P) % P, (P + 1) // 4, P)
        if x0 == 0:
            continue
        root = FQ2([x0, a1 * pow(2 * x0, -1, P) % P])
        if root * root == a:
            return root
    return None


def twist_point_outside_g2(seed: int) -> bytes:
    """A point on the twist curve that is not of order r (the twist's cofactor is large)."""
    x = seed
    while True:
        fx = FQ2([x, 1])
        y = fq2_sqrt(fx**3 + b2)
        if y is not None:
            point = (fx, y, FQ2.one())
            assert not is_inf(multiply(point, R))
            return g2_bytes(point)
        x += 1


def scalars() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, R - 1), st.sampled_from([0, 1, 2, R - 1, R, R + 1, 2**256 - 1]))


def g1_points() -> st.SearchStrategy[bytes]:
    """Valid points mostly, and invalid ones: off the curve, coordinates at or above p."""
    return st.one_of(
        st.builds(g1, st.integers(0, R - 1)),
        st.builds(g1, st.integers(0, R - 1)),
        st.binary(min_size=64, max_size=64),
        st.sampled_from([bytes(64), (1).to_bytes(32, "big") + (2).to_bytes(32, "big"),
                         P.to_bytes(32, "big") + bytes(32), g1(1)[:32] + (2 + P).to_bytes(32, "big")]),
    )


@settings(max_examples=150, deadline=None)
@given(a=g1_points(), b=g1_points(), cut=st.integers(0, 140), gas=st.sampled_from([150, 149, 10**5]))
@example(a=g1(5), b=g1(R - 5), cut=128, gas=150)  # P + (-P) = infinity
@example(a=g1(5), b=g1(5), cut=128, gas=150)  # doubling
def test_ecadd_matches_the_reference(a: bytes, b: bytes, cut: int, gas: int) -> None:
    check(6, (a + b)[:cut], gas)


@settings(max_examples=150, deadline=None)
@given(a=g1_points(), k=scalars(), cut=st.integers(0, 100), gas=st.sampled_from([6000, 5999, 10**5]))
def test_ecmul_matches_the_reference(a: bytes, k: int, cut: int, gas: int) -> None:
    check(7, (a + k.to_bytes(32, "big"))[:cut], gas)


@settings(max_examples=12, deadline=None)
@given(
    pairs=st.one_of(
        st.builds(pairing_that_holds, st.integers(1, R - 1), st.integers(1, R - 1)),
        st.builds(lambda a, b: g1(a) + g2(b), st.integers(0, R - 1), st.integers(0, R - 1)),
    ),
    tweak=st.sampled_from(["none", "none", "flip", "g2-high", "g2-off-curve", "g1-bad", "cut", "gas"]),
)
def test_pairing_matches_the_reference(pairs: bytes, tweak: str) -> None:
    gas = 45_000 + 34_000 * (len(pairs) // 192)
    if tweak == "flip":  # a valid but different G1 point: the product is no longer 1
        pairs = g1(12345) + pairs[64:]
    elif tweak == "g2-high":
        pairs = pairs[:64] + (P + 1).to_bytes(32, "big") + pairs[96:]
    elif tweak == "g2-off-curve":
        pairs = pairs[:64] + (1).to_bytes(32, "big") + pairs[96:]
    elif tweak == "g1-bad":
        pairs = (3).to_bytes(32, "big") + pairs[32:]
    elif tweak == "cut":
        pairs = pairs[:-1]
    elif tweak == "gas":
        gas -= 1
    check(8, pairs, gas)


def test_pairing_edge_cases() -> None:
    for data in [
        b"",  # the empty product is 1
        bytes(192),  # infinities
        g1(0) + g2(7) + g1(7) + g2(0),
        pairing_that_holds(5, 7),
        g1(3) + twist_point_outside_g2(1),  # on the twist, not in G2: refused
        bytes(64) + twist_point_outside_g2(2),  # even beside the infinity
        g1(3) + g2(5),
    ]:
        check(8, data, 10**6)
    assert native_call(8, pairing_that_holds(5, 7), 10**6).output == (1).to_bytes(32, "big")
    assert native_call(8, g1(3) + g2(5), 10**6).output == bytes(32)
    assert native_call(8, g1(3) + twist_point_outside_g2(1), 10**6).refused


def test_transactions_calling_bn254_run_natively() -> None:
    alloc = funded(0) | {contract(p): GenesisAccount(code=precompile_caller(p, 10**6)) for p in (6, 7, 8)}
    inputs = [(6, g1(2) + g1(3)), (6, g1(2)[:32] + bytes(32)), (7, g1(2) + (5).to_bytes(32, "big")),
              (8, pairing_that_holds(3, 4)), (8, g1(1) + g2(1))]
    txs = [make_tx(0, n, contract(p), data=data, gas=2_000_000) for n, (p, data) in enumerate(inputs)]
    direct = [(6, g1(2) + g1(3)), (6, (1).to_bytes(32, "big") * 2), (7, (1).to_bytes(32, "big") * 3),
              (8, bytes(100)), (8, pairing_that_holds(3, 4)), (8, bytes(64) + (1).to_bytes(32, "big") * 4)]
    txs += [make_tx(0, len(txs) + n, Address(bytes(19) + bytes([p])), data=data, gas=500_000)
            for n, (p, data) in enumerate(direct)]
    mine, _ = run_both(alloc, txs)
    assert mine.fallbacks == 0
    assert [e.error for e in mine.executed[-6:]] == [
        None, "Invalid ECADD parameters", "Invalid ECMUL parameters", "Invalid ECPAIRING parameters", None,
        "Invalid ECPAIRING parameters"]


# ---- KZG point evaluation (0x0a) -------------------------------------------------------------

def tweak_point_evaluation(data: bytes, tweak: str) -> bytes:
    """The input spoiled in one way (or not)."""
    if tweak == "y":  # another value: the proof fails
        return data[:64] + ((int.from_bytes(data[64:96], "big") + 1) % BLS_MODULUS).to_bytes(32, "big") + data[96:]
    if tweak == "y-high":  # not a field element: c-kzg refuses it
        return data[:64] + BLS_MODULUS.to_bytes(32, "big") + data[96:]
    if tweak == "hash":
        return b"\x02" + data[1:]
    if tweak == "commitment":  # not a point: hash matched to it, c-kzg refuses it
        commitment = b"\xc0" + b"\x11" * 47
        return b"\x01" + hashlib.sha256(commitment).digest()[1:] + data[32:96] + commitment + data[144:]
    if tweak == "proof":
        return data[:144] + b"\xc0" + bytes(47)  # the point at infinity: a wrong proof
    if tweak == "short":
        return data[:-1]
    if tweak == "long":
        return data + b"\x00"
    return data


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 3), z=st.sampled_from([0, 1, 12345, BLS_MODULUS - 1]),
    tweak=st.sampled_from(["none", "none", "y", "y-high", "hash", "commitment", "proof", "short", "long"]),
    gas=st.sampled_from([50_000, 49_999, 10**6]),
)
def test_point_evaluation_matches_the_reference(seed: int, z: int, tweak: str, gas: int) -> None:
    check(10, tweak_point_evaluation(point_evaluation_input(seed, z), tweak), gas)


def test_point_evaluation_output() -> None:
    outcome = native_call(10, point_evaluation_input(0, 7), 60_000)
    assert outcome == Outcome(True, (4096).to_bytes(32, "big") + BLS_MODULUS.to_bytes(32, "big"), 10_000)


def point_evaluation_txs() -> tuple[dict[Address, GenesisAccount], list[Transaction]]:
    alloc = funded(0) | {contract(10): GenesisAccount(code=precompile_caller(10, 10**6))}
    valid = point_evaluation_input(1, 99)
    inputs = [valid, tweak_point_evaluation(valid, "y")]
    txs = [make_tx(0, n, contract(10), data=data, gas=500_000) for n, data in enumerate(inputs)]
    direct = [valid, valid[:100], tweak_point_evaluation(valid, "hash"), tweak_point_evaluation(valid, "proof")]
    txs += [make_tx(0, len(txs) + n, Address(bytes(19) + b"\x0a"), data=data, gas=500_000)
            for n, data in enumerate(direct)]
    return alloc, txs


def test_transactions_calling_the_point_evaluation_run_natively() -> None:
    alloc, txs = point_evaluation_txs()
    mine, _ = run_both(alloc, txs)
    # The CPU build runs them itself (given the KZG library at the first one): no host runs.
    assert mine.fallbacks == 0 and not native().host_runs
    assert [e.error for e in mine.executed[-4:]] == [
        None, "Point evaluation invalid input length.", "Point evaluation commitment does not match versioned hash.",
        "Point evaluation KZG proof verification failed."]


class WithoutKzg:
    """A device that, like the GPU build, cannot run the point evaluation: the CPU build
    without the KZG library."""

    name = "without-kzg"

    def __init__(self) -> None:
        self._cpu = CpuDevice(cpu_library())
        self.time = self._cpu.time

    def run(self, inputs: Inputs, tx_ids: list[int], caps: SlotCaps) -> Compacted:
        return self._cpu.run(inputs, tx_ids, caps)


def test_a_device_without_the_kzg_library_hands_point_evaluations_to_the_host() -> None:
    executor = NativeExecutor("cpu")
    executor.device = WithoutKzg()
    alloc, txs = point_evaluation_txs()
    pre = make_state(alloc)
    mine = executor.execute(pre, ENV, txs)
    assert comparable(mine) == comparable(reference().execute(pre, ENV, txs))
    # Every transaction ran on the host at least once (a wave may run one again).
    assert mine.fallbacks == 0 and executor.host_runs["precompile 0x0a"] >= len(txs)
