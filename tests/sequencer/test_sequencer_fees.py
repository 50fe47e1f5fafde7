"""EIP-1559 base fee, intrinsic gas and tip suggestion."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from types import SimpleNamespace

from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas
from hypothesis import given
from hypothesis import strategies as st

from primitives.transactions import Transaction
from sequencer.fees import intrinsic_gas, next_base_fee, suggest_tip

GWEI = 10**9


def test_base_fee_moves_by_an_eighth_at_the_extremes() -> None:
    # EIP-1559: a full block (twice the target) raises the base fee by 12.5%,
    # an empty one lowers it by 12.5%, a block at target leaves it unchanged.
    assert next_base_fee(30_000_000, 30_000_000, GWEI) == 1_125_000_000
    assert next_base_fee(0, 30_000_000, GWEI) == 875_000_000
    assert next_base_fee(15_000_000, 30_000_000, GWEI) == GWEI


def test_base_fee_in_between_rounds_down() -> None:
    # 5M over a 15M target: 1e9 * 5/15 / 8 = 41_666_666.67 -> 41_666_666
    assert next_base_fee(20_000_000, 30_000_000, GWEI) == 1_041_666_666
    # 5M under: the same delta downwards
    assert next_base_fee(10_000_000, 30_000_000, GWEI) == 958_333_334


def test_base_fee_rises_by_at_least_one_wei() -> None:
    # 7 * 1 / 15M / 8 rounds to 0; EIP-1559 forces +1 on any increase.
    assert next_base_fee(15_000_001, 30_000_000, 7) == 8
    # ...but a decrease may round to nothing.
    assert next_base_fee(14_999_999, 30_000_000, 7) == 7


@given(
    gas_limit=st.integers(min_value=5_000, max_value=10**9),
    used_fraction=st.fractions(min_value=0, max_value=1),
    base_fee=st.integers(min_value=0, max_value=10**15),
)
def test_base_fee_matches_py_evm(gas_limit: int, used_fraction: Fraction, base_fee: int) -> None:
    gas_used = int(gas_limit * used_fraction)
    parent = SimpleNamespace(gas_limit=gas_limit, gas_used=gas_used, base_fee_per_gas=base_fee)
    # py-evm reads only these three fields of the parent header.
    expected = calculate_expected_base_fee_per_gas(parent)  # type: ignore[arg-type]
    assert next_base_fee(gas_used, gas_limit, base_fee) == expected


def test_intrinsic_gas_by_hand(signer: Callable[..., Transaction]) -> None:
    assert intrinsic_gas(signer()) == 21_000
    # 2 zero bytes, 3 non-zero bytes
    assert intrinsic_gas(signer(gas=60_000, data=b"\x00\x01\x00\x02\x03")) == 21_000 + 8 + 48
    # creation: 53000 + 33 non-zero bytes + 2 init code words
    assert intrinsic_gas(signer(gas=60_000, create=True, data=b"\x01" * 33)) == (
        53_000 + 33 * 16 + 2 * 2
    )
    access_list = (("0x" + "33" * 20, ("0x" + "00" * 32, "0x" + "01" * 32)), ("0x" + "44" * 20, ()))
    assert intrinsic_gas(signer(gas=60_000, tx_type=1, access_list=access_list)) == (
        21_000 + 2 * 2_400 + 2 * 1_900
    )


@given(
    tx_type=st.sampled_from([0, 1, 2]),
    create=st.booleans(),
    data=st.binary(max_size=100),
    keys=st.lists(st.integers(min_value=0, max_value=3), max_size=3),
)
def test_intrinsic_gas_matches_py_evm(
    signer: Callable[..., Transaction], tx_type: int, create: bool, data: bytes, keys: list[int]
) -> None:
    access_list = tuple(
        ("0x" + f"{index + 1:02x}" * 20, tuple("0x" + f"{k:064x}" for k in range(count)))
        for index, count in enumerate(keys)
    )
    tx = signer(
        tx_type=tx_type,
        create=create,
        data=data,
        gas=100_000,
        access_list=access_list if tx_type else (),
    )
    reference = CancunTransactionBuilder.decode(tx.raw)
    # py-evm charges the EIP-3860 init code words when the creation starts, not as intrinsic gas.
    initcode_words = (len(data) + 31) // 32 if create else 0
    assert intrinsic_gas(tx) == reference.intrinsic_gas + 2 * initcode_words


def test_suggest_tip_takes_the_sixtieth_percentile() -> None:
    tips = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]
    # sorted 1..10; index (10 - 1) * 60 // 100 = 5 -> 6
    assert suggest_tip(tips, floor=0) == 6
    assert suggest_tip([3], floor=0) == 3


def test_suggest_tip_respects_the_floor() -> None:
    assert suggest_tip([], floor=7) == 7
    assert suggest_tip([1, 2, 3], floor=5) == 5
    assert suggest_tip([100, 200], floor=5) == 100
