"""Fee rules: EIP-1559 base fee, intrinsic gas (Cancun), tip suggestion."""

from __future__ import annotations

from collections.abc import Sequence

from primitives.transactions import Transaction

ELASTICITY_MULTIPLIER = 2
"""EIP-1559: the gas target is half the gas limit."""
BASE_FEE_MAX_CHANGE_DENOMINATOR = 8
"""EIP-1559: the base fee moves by at most 1/8 per block."""

TX_GAS = 21_000
"""Intrinsic gas of any transaction."""
TX_CREATE_GAS = 53_000
"""Intrinsic gas of a contract creation (21000 + 32000)."""
TX_DATA_ZERO_GAS = 4
"""Per zero byte of call data."""
TX_DATA_NONZERO_GAS = 16
"""Per non-zero byte of call data (EIP-2028)."""
ACCESS_LIST_ADDRESS_GAS = 2_400
"""Per address of an access list (EIP-2930)."""
ACCESS_LIST_STORAGE_KEY_GAS = 1_900
"""Per storage key of an access list (EIP-2930)."""
INITCODE_WORD_GAS = 2
"""Per 32-byte word of init code (EIP-3860)."""
MAX_INITCODE_SIZE = 49_152
"""Largest init code a creation may carry (EIP-3860: twice the EIP-170 code size limit)."""

TIP_PERCENTILE = 60
"""Percentile of recent tips suggested to wallets, as go-ethereum's gas price oracle does."""


def next_base_fee(parent_gas_used: int, parent_gas_limit: int, parent_base_fee: int) -> int:
    """Base fee of the child of a block, exactly as EIP-1559 specifies."""
    target = parent_gas_limit // ELASTICITY_MULTIPLIER
    if parent_gas_used == target:
        return parent_base_fee
    if parent_gas_used > target:
        delta = (
            parent_base_fee
            * (parent_gas_used - target)
            // target
            // BASE_FEE_MAX_CHANGE_DENOMINATOR
        )
        return parent_base_fee + max(delta, 1)
    delta = (
        parent_base_fee * (target - parent_gas_used) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR
    )
    return parent_base_fee - delta


def intrinsic_gas(tx: Transaction) -> int:
    """Gas charged before execution starts: base, call data, access list, init code words."""
    zero_bytes = tx.data.count(0)
    gas = TX_CREATE_GAS if tx.is_create else TX_GAS
    gas += zero_bytes * TX_DATA_ZERO_GAS + (len(tx.data) - zero_bytes) * TX_DATA_NONZERO_GAS
    for entry in tx.access_list:
        gas += ACCESS_LIST_ADDRESS_GAS + len(entry.storage_keys) * ACCESS_LIST_STORAGE_KEY_GAS
    if tx.is_create:
        gas += INITCODE_WORD_GAS * ((len(tx.data) + 31) // 32)
    return gas


def suggest_tip(recent_tips: Sequence[int], floor: int) -> int:
    """The TIP_PERCENTILE-th percentile of ``recent_tips``, never below ``floor``."""
    if not recent_tips:
        return floor
    ordered = sorted(recent_tips)
    return max(ordered[(len(ordered) - 1) * TIP_PERCENTILE // 100], floor)
