"""Packing a batch's transactions and block for the interpreter, with the checks that need no state.

The reference executor checks a transaction in go-ethereum's order; the checks that
read no state are decided here, and the interpreter is told where they fall among
its own (nonce, sender code, funds), so that the first failing one gives the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import rlp
from eth._utils.calculations import fake_exponential

from executor_gpu.native_abi import ABI, words
from executor_gpu.native_state import StateTables, address_int
from executor_gpu.types import BlockEnv
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import UINT256_MAX, Address

MAX_INITCODE_SIZE = 49152
"""EIP-3860 limit on init code."""

# EIP-4844 blob base fee parameters (Cancun).
_MIN_BLOB_BASE_FEE = 1
_BLOB_BASE_FEE_UPDATE_FRACTION = 3338477


def intrinsic_gas(tx: Transaction) -> int:
    """Gas charged before execution, as py-evm counts it (init code words are charged later)."""
    zeros = tx.data.count(0)
    gas = 21000 + 4 * zeros + 16 * (len(tx.data) - zeros)
    if tx.is_create:
        gas += 32000
    return gas + sum(2400 + 1900 * len(entry.storage_keys) for entry in tx.access_list)


def create_address(sender: bytes, nonce: int) -> Address:
    """Address of the contract ``sender`` creates with ``nonce``."""
    return Address(keccak256(rlp.encode([sender, nonce]))[12:])


@dataclass
class PackedTxs:
    """A batch's transactions and block as the interpreter reads them."""

    records: npt.NDArray[np.uint64]
    """(n, TX_WORDS) transaction records."""
    data: npt.NDArray[np.uint8]
    """All call data and init code."""
    access: npt.NDArray[np.uint64]
    """(m, AL_WORDS) access list records."""
    env: npt.NDArray[np.uint64]
    """The block environment."""
    reject_first: list[str | None]
    """Reason checked before any state is read (chain id)."""
    reject_early: list[str | None]
    """Reason checked after the nonce and sender-code checks."""
    reject_late: list[str | None]
    """Reason checked after the funds and block gas checks."""
    tips: list[int]
    """Priority fee per gas each transaction pays the coinbase."""
    gas_limits: npt.NDArray[np.int64]
    """Gas limits, capped at GAS_CAP (the host checks larger ones one by one)."""


GAS_CAP = 2**62


def pack_env(env: BlockEnv) -> npt.NDArray[np.uint64]:
    """The ENV_* record of a block."""
    record = np.zeros(ABI["ENV_WORDS"], dtype=np.uint64)
    blob_base_fee = fake_exponential(_MIN_BLOB_BASE_FEE, env.excess_blob_gas, _BLOB_BASE_FEE_UPDATE_FRACTION)
    for name, value in (
        ("ENV_COINBASE", address_int(env.coinbase)),
        ("ENV_NUMBER", env.number),
        ("ENV_TIMESTAMP", env.timestamp),
        ("ENV_GAS_LIMIT", env.gas_limit),
        ("ENV_BASE_FEE", env.base_fee_per_gas),
        ("ENV_CHAIN_ID", env.chain_id),
        ("ENV_PREVRANDAO", int.from_bytes(env.prev_randao, "big")),
        ("ENV_BLOB_BASE_FEE", blob_base_fee),
        ("ENV_N_HASHES", min(len(env.block_hashes), 256)),
    ):
        record[ABI[name] : ABI[name] + 4] = words(value)
    for i, block_hash in enumerate(env.block_hashes[:256]):
        at = ABI["ENV_HASHES"] + 4 * i
        record[at : at + 4] = words(int.from_bytes(block_hash, "big"))
    return record


def _static_reasons(tx: Transaction, env: BlockEnv, intrinsic: int) -> tuple[str | None, str | None, str | None]:
    sender = "0x" + tx.sender.hex()
    first = early = late = None
    if tx.chain_id is not None and tx.chain_id != env.chain_id:
        first = f"invalid chain id for signer: have {tx.chain_id} want {env.chain_id}"
    if tx.max_fee_per_gas < tx.max_priority_fee_per_gas:
        early = (
            f"max priority fee per gas higher than max fee per gas: address {sender}, "
            f"maxPriorityFeePerGas: {tx.max_priority_fee_per_gas}, maxFeePerGas: {tx.max_fee_per_gas}"
        )
    elif tx.max_fee_per_gas < env.base_fee_per_gas:
        early = (
            f"max fee per gas less than block base fee: address {sender}, "
            f"maxFeePerGas: {tx.max_fee_per_gas}, baseFee: {env.base_fee_per_gas}"
        )
    elif tx.upfront_cost > UINT256_MAX:
        early = f"insufficient funds for gas * price + value: address {sender} required balance exceeds 256 bits"
    if tx.gas_limit < intrinsic:
        late = f"intrinsic gas too low: have {tx.gas_limit}, want {intrinsic}"
    elif tx.is_create and len(tx.data) > MAX_INITCODE_SIZE:
        late = f"max initcode size exceeded: code size {len(tx.data)} limit {MAX_INITCODE_SIZE}"
    return first, early, late


_TX = {name: ABI[name] for name in ABI if name.startswith("TX_")}


def pack_transactions(txs: Sequence[Transaction], env: BlockEnv, tables: StateTables) -> PackedTxs:
    """Packs ``txs`` and loads the accounts each one surely reads (sender, recipient, access list)."""
    records: list[list[int]] = []
    access: list[list[int]] = []
    data = bytearray()
    firsts: list[str | None] = []
    earlies: list[str | None] = []
    lates: list[str | None] = []
    for tx in txs:
        intrinsic = intrinsic_gas(tx)
        first, early, late = _static_reasons(tx, env, intrinsic)
        firsts.append(first)
        earlies.append(early)
        lates.append(late)
        rec = [0] * _TX["TX_WORDS"]
        rec[_TX["TX_SENDER"] : _TX["TX_SENDER"] + 4] = words(address_int(tx.sender))
        tables.account_row(tx.sender)
        if tx.to is None:
            tables.account_row(create_address(tx.sender, tx.nonce))
        else:
            rec[_TX["TX_TO"] : _TX["TX_TO"] + 4] = words(address_int(tx.to))
            tables.account_row(tx.to)
        rec[_TX["TX_VALUE"] : _TX["TX_VALUE"] + 4] = words(tx.value)
        price = min(tx.effective_gas_price(env.base_fee_per_gas), UINT256_MAX)
        rec[_TX["TX_PRICE"] : _TX["TX_PRICE"] + 4] = words(price)
        rec[_TX["TX_UPFRONT"] : _TX["TX_UPFRONT"] + 4] = words(min(tx.upfront_cost, UINT256_MAX))
        rec[_TX["TX_NONCE"]] = tx.nonce
        rec[_TX["TX_GAS"]] = tx.gas_limit
        rec[_TX["TX_INTRINSIC"]] = min(intrinsic, tx.gas_limit)
        rec[_TX["TX_FLAGS"]] = (
            (ABI["TXF_CREATE"] if tx.is_create else 0)
            | (ABI["TXF_REJECT_EARLY"] if early is not None else 0)
            | (ABI["TXF_REJECT_LATE"] if late is not None else 0)
        )
        rec[_TX["TX_DATA_OFF"]] = len(data)
        rec[_TX["TX_DATA_LEN"]] = len(tx.data)
        data += tx.data
        rec[_TX["TX_ACCESS_OFF"]] = len(access)
        for entry in tx.access_list:
            tables.account_row(entry.address)
            access.append(words(address_int(entry.address)) + [0] * 4 + [0])
            access.extend(words(address_int(entry.address)) + words(key) + [1] for key in entry.storage_keys)
        rec[_TX["TX_ACCESS_LEN"]] = len(access) - rec[_TX["TX_ACCESS_OFF"]]
        records.append(rec)
    return PackedTxs(
        records=np.array(records, dtype=np.uint64).reshape(-1, _TX["TX_WORDS"]),
        data=np.frombuffer(bytes(data), dtype=np.uint8).copy() if data else np.zeros(1, dtype=np.uint8),
        access=np.array(access or [[0] * ABI["AL_WORDS"]], dtype=np.uint64).reshape(-1, ABI["AL_WORDS"]),
        env=pack_env(env),
        reject_first=firsts,
        reject_early=earlies,
        reject_late=lates,
        tips=[tx.effective_tip(env.base_fee_per_gas) for tx in txs],
        gas_limits=np.array([min(tx.gas_limit, GAS_CAP) for tx in txs], dtype=np.int64),
    )
