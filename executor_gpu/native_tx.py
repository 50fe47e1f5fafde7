"""Packing a batch's transactions and block for the interpreter, with the checks that need no state.

The reference executor checks a transaction in go-ethereum's order; the checks that
read no state are decided here, and the interpreter is told where they fall among
its own (nonce, sender code, funds), so that the first failing one gives the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import attrgetter, is_

import numpy as np
import numpy.typing as npt
import rlp
from eth._utils.calculations import fake_exponential

from executor_gpu.native_abi import ABI, enum_members, words
from executor_gpu.native_build import cpu_library
from executor_gpu.native_state import StateTables, address_int, be_words, word_bytes, word_ints
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
    first_ok: npt.NDArray[np.bool_]
    """Where ``reject_first`` is None."""
    reject_early: list[str | None]
    """Reason checked after the nonce and sender-code checks."""
    reject_late: list[str | None]
    """Reason checked after the funds and block gas checks."""
    prices: list[int]
    """Price per gas each transaction pays."""
    tips: list[int]
    """Priority fee per gas each transaction pays the coinbase (0 for one under the base fee,
    which is rejected)."""
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


def _intrinsic_gas(txs: Sequence[Transaction]) -> npt.NDArray[np.int64]:
    """Gas charged before execution, as py-evm counts it (init code words are charged later)."""
    datas = list(map(_DATA, txs))
    sizes = np.fromiter(map(len, datas), dtype=np.int64, count=len(txs))
    zeros = np.fromiter(map(bytes.count, datas, repeat(b"\0")), dtype=np.int64, count=len(txs))
    gas: npt.NDArray[np.int64] = 21000 + 4 * zeros + 16 * (sizes - zeros) + 32000 * _creates(txs)
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
_PACK = enum_members("evm_txdecode.h")
_NO_ADDRESS = bytes(20)
_RAW = attrgetter("raw")
_SENDER = attrgetter("sender")
_DATA = attrgetter("data")
_TO = attrgetter("to")


def _creates(txs: Sequence[Transaction]) -> npt.NDArray[np.int64]:
    """1 for each contract creation, else 0."""
    return np.fromiter(map(is_, map(_TO, txs), repeat(None)), dtype=np.int64, count=len(txs))


def _words(values: list[int]) -> npt.NDArray[np.uint64]:
    """256-bit values as rows of four little-endian words."""
    raw = b"".join([value.to_bytes(32, "little") for value in values])
    return np.frombuffer(raw, dtype="<u8").reshape(len(values), 4)


def _access_records(txs: Sequence[Transaction], records: npt.NDArray[np.uint64], rows: list[int]) -> tuple[npt.NDArray[np.uint64], list[bytes], list[bytes]]:
    """Access list records of transactions ``rows`` (the others have none), each one's range of
    them set in ``records``, with the accounts and slots (address + 32-byte slot) they name."""
    access: list[list[int]] = []
    addresses: list[bytes] = []
    slots: list[bytes] = []
    counts = np.zeros(len(txs), dtype=np.uint64)
    for i in [i for i in rows if txs[i].access_list]:
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


@dataclass
class _Columns:
    """The C packer's output: records and their 256-bit prices and tips, and call data."""

    records: npt.NDArray[np.uint64]
    """(n, TX_WORDS) records; those of PACK_SLOW transactions are zero."""
    prices: npt.NDArray[np.uint64]
    """(n, 4) price per gas of each transaction."""
    tips: npt.NDArray[np.uint64]
    """(n, 4) tip per gas of each transaction (0 for one under the base fee)."""
    status: npt.NDArray[np.uint8]
    """PACK_OK, PACK_SLOW or PACK_SUSPECT per transaction."""
    data: npt.NDArray[np.uint8]
    """Call data of the packed transactions from offset 0 (room for all of the batch's)."""
    size: int
    """Bytes of call data written."""


def _pack_in_c(txs: Sequence[Transaction], env: BlockEnv) -> _Columns:
    """Packs the transactions ``evm_pack_transactions`` takes (from their raw bytes)."""
    n = len(txs)
    raws = list(map(_RAW, txs))
    blob = b"".join(raws)
    offsets = np.fromiter(accumulate(map(len, raws), initial=0), dtype=np.uint64, count=n + 1)
    columns = _Columns(
        records=np.zeros((n, _TX["TX_WORDS"]), dtype=np.uint64),
        prices=np.zeros((n, 4), dtype=np.uint64),
        tips=np.zeros((n, 4), dtype=np.uint64),
        status=np.full(n, _PACK["PACK_SLOW"], dtype=np.uint8),
        data=np.zeros(len(blob) + 1, dtype=np.uint8),  # all call data is part of the blob
        size=0,
    )
    if env.chain_id < 2**64:  # else no transaction's chain id is the block's: all packed in Python
        base_fee = np.array(words(env.base_fee_per_gas), dtype=np.uint64)
        columns.size = cpu_library().evm_pack_transactions(
            n, blob, offsets.ctypes.data, b"".join(map(_SENDER, txs)), base_fee.ctypes.data, env.chain_id,
            columns.records.ctypes.data, columns.data.ctypes.data, columns.prices.ctypes.data,
            columns.tips.ctypes.data, columns.status.ctypes.data,
        )
    return columns


def _pack_in_python(txs: Sequence[Transaction], env: BlockEnv, at: npt.NDArray[np.int64], columns: _Columns) -> list[bool]:
    """Packs ``txs`` (those the C packer does not take) as it packs the others, into rows
    ``at`` of ``columns``, their call data after the packed ones' (``columns.size`` grows).
    Returns which are suspects (as PACK_SUSPECT: a check that reads no state may fail)."""
    base_fee = env.base_fee_per_gas
    records = columns.records
    datas = list(map(_DATA, txs))
    sizes = np.fromiter(map(len, datas), dtype=np.int64, count=len(txs))
    senders = np.frombuffer(b"".join(tx.sender for tx in txs), dtype=np.uint8).reshape(-1, 20)
    records[at, _TX["TX_SENDER"] : _TX["TX_SENDER"] + 4] = be_words(senders)
    recipients = np.frombuffer(b"".join(tx.to or _NO_ADDRESS for tx in txs), dtype=np.uint8).reshape(-1, 20)
    records[at, _TX["TX_TO"] : _TX["TX_TO"] + 4] = be_words(recipients)
    records[at, _TX["TX_VALUE"] : _TX["TX_VALUE"] + 4] = _words([tx.value for tx in txs])
    records[at, _TX["TX_UPFRONT"] : _TX["TX_UPFRONT"] + 4] = _words([min(tx.upfront_cost, UINT256_MAX) for tx in txs])
    records[at, _TX["TX_NONCE"]] = [tx.nonce for tx in txs]
    gas_limits = np.array([tx.gas_limit for tx in txs], dtype=np.uint64)
    records[at, _TX["TX_GAS"]] = gas_limits
    intrinsic = _intrinsic_gas(txs)
    records[at, _TX["TX_INTRINSIC"]] = np.minimum(intrinsic.astype(np.uint64), gas_limits)
    records[at, _TX["TX_FLAGS"]] = _creates(txs) * ABI["TXF_CREATE"]
    records[at, _TX["TX_DATA_LEN"]] = sizes
    records[at, _TX["TX_DATA_OFF"]] = columns.size + np.cumsum(sizes) - sizes
    columns.prices[at] = _words([tx.effective_gas_price(base_fee) for tx in txs])
    # A transaction under the base fee is rejected: it pays no tip.
    columns.tips[at] = _words([max(tx.effective_tip(base_fee), 0) for tx in txs])
    data = b"".join(datas)
    columns.data[columns.size : columns.size + len(data)] = np.frombuffer(data, dtype=np.uint8)
    columns.size += len(data)
    return [
        (tx.chain_id is not None and tx.chain_id != env.chain_id) or tx.max_fee_per_gas < tx.max_priority_fee_per_gas
        or tx.max_fee_per_gas < base_fee or tx.upfront_cost > UINT256_MAX or tx.gas_limit < need
        or (tx.to is None and len(tx.data) > MAX_INITCODE_SIZE)
        for tx, need in zip(txs, intrinsic.tolist())
    ]


def pack_transactions(txs: Sequence[Transaction], env: BlockEnv, tables: StateTables) -> PackedTxs:
    """Packs ``txs`` and loads the state each one surely reads (sender, recipient, access list).

    The C packer packs the typed transactions without an access list (what wallets send) from
    their raw bytes, with no Python per transaction; the others are packed here."""
    n = len(txs)
    c = _pack_in_c(txs, env)
    records, status = c.records, c.status
    slow = np.flatnonzero(status == _PACK["PACK_SLOW"])
    if len(slow):
        suspects = _pack_in_python([txs[i] for i in slow.tolist()], env, slow, c)
        status[slow[np.asarray(suspects, dtype=bool)]] = _PACK["PACK_SUSPECT"]
    records[:, _TX["TX_PRICE"] : _TX["TX_PRICE"] + 4] = c.prices
    # The checks that read no state: only the transactions failing one get their reasons.
    firsts: list[str | None] = [None] * n
    earlies: list[str | None] = [None] * n
    lates: list[str | None] = [None] * n
    first_ok = np.ones(n, dtype=bool)
    for i in np.flatnonzero(status == _PACK["PACK_SUSPECT"]).tolist():
        firsts[i], earlies[i], lates[i] = _static_reasons(txs[i], env, int(_intrinsic_gas([txs[i]])[0]))
        first_ok[i] = firsts[i] is None
        records[i, _TX["TX_FLAGS"]] |= np.uint64(
            (ABI["TXF_REJECT_EARLY"] if earlies[i] is not None else 0)
            | (ABI["TXF_REJECT_LATE"] if lates[i] is not None else 0)
        )
    access, access_accounts, access_slots = _access_records(txs, records, slow.tolist())
    creates = records[:, _TX["TX_FLAGS"]] & np.uint64(ABI["TXF_CREATE"]) != 0
    recipients = word_bytes(records[~creates, _TX["TX_TO"] : _TX["TX_TO"] + 4])[:, 12:]
    senders = word_bytes(records[:, _TX["TX_SENDER"] : _TX["TX_SENDER"] + 4])[:, 12:]
    needed = np.concatenate([senders, recipients]).view("V20").ravel().tolist()
    needed += [create_address(txs[i].sender, txs[i].nonce) for i in np.flatnonzero(creates).tolist()]
    tables.load_accounts(needed + access_accounts)
    tables.load_slots(access_slots)
    return PackedTxs(
        records=records,
        data=c.data[: max(c.size, 1)].copy(),
        access=access,
        env=pack_env(env),
        reject_first=firsts,
        first_ok=first_ok,
        reject_early=earlies,
        reject_late=lates,
        prices=word_ints(c.prices),
        tips=word_ints(c.tips),
        gas_limits=np.minimum(records[:, _TX["TX_GAS"]], GAS_CAP).astype(np.int64),
    )
