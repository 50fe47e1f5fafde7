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
from executor_gpu.native_state import StateTables, address_int, be_words
from executor_gpu.types import BlockEnv
from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import UINT256_MAX, Address

MAX_INITCODE_SIZE = 49152
"""EIP-3860 limit on init code."""

# EIP-4844 blob base fee parameters (Cancun).
_MIN_BLOB_BASE_FEE = 1
_BLOB_BASE_FEE_UPDATE_FRACTION = 3338477


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
    prices: list[int]
    """Price per gas each transaction pays."""
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


def _intrinsic_gas(txs: Sequence[Transaction], data_sizes: npt.NDArray[np.int64],
                   creates: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Gas charged before execution, as py-evm counts it (init code words are charged later)."""
    zeros = np.fromiter((tx.data.count(0) for tx in txs), dtype=np.int64, count=len(txs))
    gas: npt.NDArray[np.int64] = 21000 + 4 * zeros + 16 * (data_sizes - zeros) + 32000 * creates.astype(np.int64)
    for i in [i for i, tx in enumerate(txs) if tx.access_list]:
        gas[i] += sum(2400 + 1900 * len(entry.storage_keys) for entry in txs[i].access_list)
    return gas


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
_NO_ADDRESS = bytes(20)


def _words(values: list[int]) -> npt.NDArray[np.uint64]:
    """256-bit values as rows of four little-endian words."""
    raw = b"".join([value.to_bytes(32, "little") for value in values])
    return np.frombuffer(raw, dtype="<u8").reshape(len(values), 4)


def _access_records(txs: Sequence[Transaction], records: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.uint64], list[bytes], list[bytes]]:
    """Access list records (and each transaction's range of them in ``records``), with the
    accounts and slots (address + 32-byte slot) they name."""
    access: list[list[int]] = []
    addresses: list[bytes] = []
    slots: list[bytes] = []
    counts = np.zeros(len(txs), dtype=np.uint64)
    for i in [i for i, tx in enumerate(txs) if tx.access_list]:
        start = len(access)
        for entry in txs[i].access_list:
            address = words(address_int(entry.address))
            addresses.append(entry.address)
            access.append(address + [0] * 4 + [0])
            access.extend(address + words(key) + [1] for key in entry.storage_keys)
            slots.extend(entry.address + key.to_bytes(32, "big") for key in entry.storage_keys)
        counts[i] = len(access) - start
    records[:, _TX["TX_ACCESS_OFF"]] = np.cumsum(counts) - counts
    records[:, _TX["TX_ACCESS_LEN"]] = counts
    table = np.array(access or [[0] * ABI["AL_WORDS"]], dtype=np.uint64).reshape(-1, ABI["AL_WORDS"])
    return table, addresses, slots


def pack_transactions(txs: Sequence[Transaction], env: BlockEnv, tables: StateTables) -> PackedTxs:
    """Packs ``txs`` and loads the state each one surely reads (sender, recipient, access list)."""
    n = len(txs)
    base_fee = env.base_fee_per_gas
    tos = [tx.to for tx in txs]
    datas = [tx.data for tx in txs]
    gas = [tx.gas_limit for tx in txs]
    prices = [tx.effective_gas_price(base_fee) for tx in txs]
    upfronts = [tx.upfront_cost for tx in txs]
    creates = np.fromiter((to is None for to in tos), dtype=bool, count=n)
    sizes = np.fromiter(map(len, datas), dtype=np.int64, count=n)
    intrinsic = _intrinsic_gas(txs, sizes, creates)
    records = np.zeros((n, _TX["TX_WORDS"]), dtype=np.uint64)
    senders = np.frombuffer(b"".join(tx.sender for tx in txs), dtype=np.uint8).reshape(n, 20)
    records[:, _TX["TX_SENDER"] : _TX["TX_SENDER"] + 4] = be_words(senders)
    recipients = np.frombuffer(b"".join(to or _NO_ADDRESS for to in tos), dtype=np.uint8).reshape(n, 20)
    records[:, _TX["TX_TO"] : _TX["TX_TO"] + 4] = be_words(recipients)
    records[:, _TX["TX_VALUE"] : _TX["TX_VALUE"] + 4] = _words([tx.value for tx in txs])
    records[:, _TX["TX_PRICE"] : _TX["TX_PRICE"] + 4] = _words(prices)
    records[:, _TX["TX_UPFRONT"] : _TX["TX_UPFRONT"] + 4] = _words([min(u, UINT256_MAX) for u in upfronts])
    records[:, _TX["TX_NONCE"]] = [tx.nonce for tx in txs]
    gas_limits = np.array(gas, dtype=np.uint64)
    records[:, _TX["TX_GAS"]] = gas_limits
    records[:, _TX["TX_INTRINSIC"]] = np.minimum(intrinsic.astype(np.uint64), gas_limits)
    records[:, _TX["TX_DATA_LEN"]] = sizes
    records[:, _TX["TX_DATA_OFF"]] = np.cumsum(sizes) - sizes
    # The checks that read no state: only the transactions failing one get their reasons.
    firsts: list[str | None] = [None] * n
    earlies: list[str | None] = [None] * n
    lates: list[str | None] = [None] * n
    chain_id = env.chain_id
    suspects = [
        i for i, (tx, need, upfront) in enumerate(zip(txs, intrinsic.tolist(), upfronts))
        if (tx.chain_id is not None and tx.chain_id != chain_id) or tx.max_fee_per_gas < tx.max_priority_fee_per_gas
        or tx.max_fee_per_gas < base_fee or upfront > UINT256_MAX or tx.gas_limit < need
        or (tx.to is None and len(tx.data) > MAX_INITCODE_SIZE)
    ]
    for i in suspects:
        firsts[i], earlies[i], lates[i] = _static_reasons(txs[i], env, int(intrinsic[i]))
        records[i, _TX["TX_FLAGS"]] |= np.uint64(
            (ABI["TXF_REJECT_EARLY"] if earlies[i] is not None else 0)
            | (ABI["TXF_REJECT_LATE"] if lates[i] is not None else 0)
        )
    records[creates, _TX["TX_FLAGS"]] |= np.uint64(ABI["TXF_CREATE"])
    access, access_accounts, access_slots = _access_records(txs, records)
    needed = [tx.sender for tx in txs]
    needed += [to for to in tos if to is not None]
    needed += [create_address(txs[i].sender, txs[i].nonce) for i in np.flatnonzero(creates).tolist()]
    tables.load_accounts(needed + access_accounts)
    tables.load_slots(access_slots)
    data = b"".join(datas)
    return PackedTxs(
        records=records,
        data=np.frombuffer(data, dtype=np.uint8).copy() if data else np.zeros(1, dtype=np.uint8),
        access=access,
        env=pack_env(env),
        reject_first=firsts,
        reject_early=earlies,
        reject_late=lates,
        prices=prices,
        tips=[tx.effective_tip(base_fee) for tx in txs],
        gas_limits=np.minimum(gas_limits, GAS_CAP).astype(np.int64),
    )
