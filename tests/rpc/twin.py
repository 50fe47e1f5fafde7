"""An in-memory NodeBackend for the RPC tests, built from real primitives objects.

Transactions are signed by eth-account and decoded by primitives; headers carry real roots and
blooms. Execution is a small stand-in (transfers, one contract that stores a value and logs),
since the RPC layer only formats what the node gives it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rlp
from eth_account import Account as EthAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from executor_gpu.types import Account, CallMessage, CallResult, Deadline, TraceOptions, TxTrace
from primitives.blocks import EMPTY_ROOT, Header, Log, Receipt, bloom_of, ordered_trie_root
from primitives.crypto import keccak256
from primitives.errors import (
    ExecutionReverted,
    InvalidInput,
    InvalidTransaction,
    L2NodeError,
    TransactionRejected,
)
from primitives.transactions import Transaction, decode_transaction
from primitives.types import ZERO_HASH, Address, Hash32
from rpc.api import ChainEvents
from rpc.types import (
    AccountProof,
    BatchView,
    BlockView,
    FeeHistory,
    LogFilter,
    LogView,
    PoolContent,
    ReceiptView,
    SimulatedBlockSpec,
    SimulatedBlockView,
    StorageProof,
    TxLocation,
)

CHAIN_ID = 1337
BASE_FEE = 7 * 10**9
TIP = 10**9
GAS_LIMIT = 30_000_000
KEYS = [bytes([i]) * 32 for i in range(1, 4)]
ADDRESSES = [Address(bytes.fromhex(EthAccount.from_key(k).address[2:])) for k in KEYS]
RECIPIENT = Address(bytes.fromhex("22" * 20))
INITIAL_BALANCE = 10**24

TRANSFER_TOPIC = keccak256(b"Transfer(address,address,uint256)")
STORED_VALUE = 42
"""What the twin contract keeps in slot 0 and returns from a call."""
REVERTER = Address(bytes.fromhex("ee" * 20))
"""Calls to this address revert with Error("nope")."""
PANICKER = Address(bytes.fromhex("ef" * 20))
"""Calls to this address revert with Panic(0x11)."""
OUT_OF_GAS = Address(bytes.fromhex("ed" * 20))
"""Calls to this address halt out of gas."""


def error_string(reason: str) -> bytes:
    """Solidity's Error(string) revert data, ABI-encoded by hand."""
    body = reason.encode()
    padded = body + b"\x00" * (-len(body) % 32)
    return (
        bytes.fromhex("08c379a0")
        + (32).to_bytes(32, "big")
        + len(body).to_bytes(32, "big")
        + padded
    )


def sign(key: bytes, **fields: Any) -> Transaction:
    """A transaction signed by eth-account, decoded by primitives."""
    fields.setdefault("chainId", CHAIN_ID)
    raw = bytes(EthAccount.sign_transaction(fields, key).raw_transaction)
    return decode_transaction(raw)


def checksum(address: bytes) -> ChecksumAddress:
    """EIP-55 spelling, which eth-account insists on."""
    return to_checksum_address(address)


def contract_address(sender: Address, nonce: int) -> Address:
    """CREATE address."""
    return Address(keccak256(rlp.encode([sender, nonce]))[12:])


@dataclass
class TwinState:
    """A StateReader over plain dicts."""

    accounts: dict[Address, Account] = field(default_factory=dict)
    code: dict[Address, bytes] = field(default_factory=dict)
    storage: dict[tuple[Address, int], int] = field(default_factory=dict)

    @property
    def state_root(self) -> Hash32:
        return EMPTY_ROOT

    @property
    def node_store(self) -> Mapping[bytes, bytes]:
        return {}

    @property
    def reads_flat(self) -> bool:
        return False

    def get_account(self, address: Address) -> Account | None:
        return self.accounts.get(address)

    def get_code(self, address: Address) -> bytes:
        return self.code.get(address, b"")

    def get_storage(self, address: Address, slot: int) -> int:
        return self.storage.get((address, slot), 0)

    def flat_accounts(self, account_hashes: Sequence[bytes]) -> list[bytes | None] | None:
        return None

    def flat_slots(self, slot_paths: Sequence[bytes]) -> list[bytes | None] | None:
        return None

    def copy(self) -> TwinState:
        return TwinState(dict(self.accounts), dict(self.code), dict(self.storage))

    def credit(self, address: Address, amount: int, nonce_step: int = 0) -> None:
        old = self.accounts.get(address) or Account(0, 0, EMPTY_ROOT, keccak256(b""))
        self.accounts[address] = Account(
            old.nonce + nonce_step, old.balance + amount, old.storage_root, old.code_hash
        )


class TwinBackend:
    """A NodeBackend with a small chain; ``add_block`` runs transactions with stand-in rules."""

    def __init__(self) -> None:
        genesis = TwinState()
        for address in ADDRESSES:
            genesis.credit(address, INITIAL_BALANCE)
        self.states = [genesis]
        self.blocks: list[BlockView] = []
        self.receipts: dict[Hash32, ReceiptView] = {}
        self.pool: dict[Hash32, Transaction] = {}
        self.batches: list[BatchView] = []
        self.events: ChainEvents | None = None
        self._seal(genesis, (), ())

    # -- building the chain ----------------------------------------------------------------

    def _seal(
        self, state: TwinState, txs: Sequence[Transaction], receipts: Sequence[Receipt]
    ) -> Header:
        number = len(self.blocks)
        parent = self.blocks[-1].header.hash if self.blocks else ZERO_HASH
        header = Header(
            parent_hash=parent,
            coinbase=RECIPIENT,
            state_root=Hash32(keccak256(repr(sorted(state.accounts.items())).encode())),
            transactions_root=ordered_trie_root([tx.raw for tx in txs]),
            receipts_root=ordered_trie_root([r.encode() for r in receipts]),
            logs_bloom=bloom_of(log for r in receipts for log in r.logs),
            number=number,
            gas_limit=GAS_LIMIT,
            gas_used=receipts[-1].cumulative_gas_used if receipts else 0,
            timestamp=1_700_000_000 + 2 * number,
            base_fee_per_gas=BASE_FEE,
            extra_data=b"l2node",
        )
        self.blocks.append(BlockView(header, tuple(txs)))
        if number:
            self.states.append(state)
        return header

    def add_block(self, txs: Sequence[Transaction]) -> BlockView:
        """Include ``txs``: transfers move value; creations deploy the logging contract."""
        state = self.states[-1].copy()
        receipts: list[Receipt] = []
        extras: list[tuple[int, Address | None]] = []
        cumulative = 0
        for tx in txs:
            price = tx.effective_gas_price(BASE_FEE)
            created = None
            logs: tuple[Log, ...] = ()
            gas = 21_000 + 16 * len(tx.data)
            if tx.to is None:
                created = contract_address(tx.sender, tx.nonce)
                state.code[created] = b"\x60\x2a\x60\x00\x55"
                state.storage[(created, 0)] = STORED_VALUE
                state.credit(created, tx.value, nonce_step=1)
                gas += 32_000
            elif tx.to in state.code:
                logs = (
                    Log(tx.to, (TRANSFER_TOPIC, Hash32(tx.sender.rjust(32, b"\0"))), tx.data),
                    Log(tx.to, (TRANSFER_TOPIC,), b""),
                )
                state.credit(tx.to, tx.value)
            else:
                state.credit(tx.to, tx.value)
            state.credit(tx.sender, -(tx.value + gas * price), nonce_step=1)
            cumulative += gas
            receipts.append(Receipt(tx.tx_type, True, cumulative, logs))
            extras.append((gas, created))
        header = self._seal(state, txs, receipts)
        first_log = 0
        for index, (tx, receipt, (gas, created)) in enumerate(zip(txs, receipts, extras)):
            location = TxLocation(header.hash, header.number, index, header.timestamp)
            price = tx.effective_gas_price(BASE_FEE)
            self.receipts[tx.hash] = ReceiptView(
                tx, location, receipt, gas, price, created, first_log
            )
            first_log += len(receipt.logs)
            self.pool.pop(tx.hash, None)
        if self.events is not None:
            self.events.new_head(header)
        return self.blocks[-1]

    # -- NodeBackend -----------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return CHAIN_ID

    @property
    def client_version(self) -> str:
        return "l2node-twin/0.1"

    def head_number(self) -> int:
        return len(self.blocks) - 1

    def safe_number(self) -> int:
        return self.batches[-1].last_block if self.batches else 0

    def finalized_number(self) -> int:
        """Batches whose L1 block is 10 below the twin's L1 head (30) count as final."""
        final = [b for b in self.batches if b.l1_block_number is not None and b.l1_block_number <= 20]
        return final[-1].last_block if final else 0

    def block_by_number(self, number: int) -> BlockView | None:
        return self.blocks[number] if number < len(self.blocks) else None

    def block_by_hash(self, block_hash: Hash32) -> BlockView | None:
        return next((b for b in self.blocks if b.header.hash == block_hash), None)

    def transaction(self, tx_hash: Hash32) -> tuple[Transaction, TxLocation | None] | None:
        if tx_hash in self.receipts:
            view = self.receipts[tx_hash]
            return view.tx, view.location
        if tx_hash in self.pool:
            return self.pool[tx_hash], None
        return None

    def receipt(self, tx_hash: Hash32) -> ReceiptView | None:
        return self.receipts.get(tx_hash)

    def block_receipts(self, number: int) -> Sequence[ReceiptView]:
        return [self.receipts[tx.hash] for tx in self.blocks[number].transactions]

    def state_at(self, number: int) -> TwinState:
        return self.states[number]

    def proof(self, number: int, address: Address, slots: Sequence[int]) -> AccountProof:
        """The twin's values, without Merkle nodes (it keeps no trie)."""
        state = self.states[number]
        account = state.get_account(address) or Account(0, 0, EMPTY_ROOT, keccak256(b""))
        return AccountProof(
            address, account.nonce, account.balance, account.storage_root, account.code_hash, (),
            tuple(StorageProof(slot, state.get_storage(address, slot), ()) for slot in slots),
        )

    def pool_content(self, sender: Address | None = None) -> PoolContent:
        pending: list[Transaction] = []
        queued: list[Transaction] = []
        txs = sorted(self.pool.values(), key=lambda tx: (tx.sender, tx.nonce))
        for tx in txs:
            if sender is not None and tx.sender != sender:
                continue
            account = self.states[-1].get_account(tx.sender)
            ahead = sum(1 for t in pending if t.sender == tx.sender)
            ready = tx.nonce == (0 if account is None else account.nonce) + ahead
            (pending if ready else queued).append(tx)
        return PoolContent(tuple(pending), tuple(queued))

    def pending_nonce(self, address: bytes) -> int:
        account = self.states[-1].get_account(Address(address))
        pooled = sum(1 for tx in self.pool.values() if tx.sender == address)
        return (0 if account is None else account.nonce) + pooled

    def send_raw_transactions(self, raws: Sequence[bytes]) -> list[Hash32 | L2NodeError]:
        outcomes: list[Hash32 | L2NodeError] = []
        for raw in raws:
            try:
                outcomes.append(self.send_raw_transaction(raw))
            except L2NodeError as exc:
                outcomes.append(exc)
        if self.events is not None and self.events.wants_pending():
            self.events.new_pending([self.pool[o] for o in outcomes if not isinstance(o, L2NodeError)])
        return outcomes

    def send_raw_transaction(self, raw: bytes) -> Hash32:
        tx = decode_transaction(raw)
        if tx.chain_id not in (None, CHAIN_ID):
            raise InvalidTransaction("invalid chain id for signer")
        if tx.hash in self.pool or tx.hash in self.receipts:
            raise TransactionRejected("already known")
        account = self.states[-1].get_account(tx.sender)
        if tx.nonce < (0 if account is None else account.nonce):
            raise TransactionRejected("nonce too low")
        if tx.max_fee_per_gas < BASE_FEE:
            raise TransactionRejected("max fee per gas less than block base fee")
        if account is None or account.balance < tx.upfront_cost:
            raise TransactionRejected("insufficient funds for gas * price + value")
        self.pool[tx.hash] = tx
        return tx.hash

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        if message.to == REVERTER:
            return CallResult(False, error_string("nope"), 500, "execution reverted")
        if message.to == PANICKER:
            panic = bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")
            return CallResult(False, panic, 500, "execution reverted")
        if message.to == OUT_OF_GAS:
            return CallResult(False, b"", message.gas, "out of gas")
        if message.to is not None:
            value = self.states[number].get_storage(message.to, 0)
            return CallResult(True, value.to_bytes(32, "big"), 23_000)
        return CallResult(True, b"", 53_000)

    def estimate_gas(self, message: CallMessage, number: int, deadline: Deadline) -> int:
        result = self.call(message, number, deadline)
        if not result.succeeded:
            raise ExecutionReverted(result.error or "execution failed", result.output)
        return result.gas_used

    def trace_call(
        self, message: CallMessage, number: int, options: TraceOptions,
        deadline: Deadline | None = None,
    ) -> TxTrace:
        raise InvalidInput("the twin does not execute code: trace on tests.rpc.realnode")

    def trace_block(
        self, number: int, options: TraceOptions, only: int | None = None,
        deadline: Deadline | None = None,
    ) -> list[TxTrace]:
        raise InvalidInput("the twin does not execute code: trace on tests.rpc.realnode")

    def simulate(
        self, blocks: Sequence[SimulatedBlockSpec], number: int, validation: bool,
        trace_transfers: bool, gas_cap: int, deadline: Deadline,
    ) -> list[SimulatedBlockView]:
        raise InvalidInput("the twin does not execute code: simulate on tests.rpc.realnode")

    def gas_price(self) -> int:
        return BASE_FEE + TIP

    def max_priority_fee(self) -> int:
        return TIP

    def next_base_fee(self) -> int:
        return BASE_FEE

    def fee_history(
        self, block_count: int, newest: int, percentiles: Sequence[float]
    ) -> FeeHistory:
        oldest = newest - block_count + 1
        blocks = self.blocks[oldest : newest + 1]
        rewards = []
        for view in blocks:
            tips = sorted(
                tx.effective_tip(view.header.base_fee_per_gas) for tx in view.transactions
            )
            rewards.append(
                tuple(
                    tips[min(int(p / 100 * len(tips)), len(tips) - 1)] if tips else 0
                    for p in percentiles
                )
            )
        return FeeHistory(
            oldest_block=oldest,
            base_fees=tuple(b.header.base_fee_per_gas for b in blocks) + (BASE_FEE,),
            gas_used_ratios=tuple(b.header.gas_used / b.header.gas_limit for b in blocks),
            rewards=tuple(rewards) if percentiles else (),
        )

    def logs(self, log_filter: LogFilter) -> Sequence[LogView]:
        found = []
        for number in range(log_filter.from_block, log_filter.to_block + 1):
            for receipt_view in self.block_receipts(number):
                for i, log in enumerate(receipt_view.receipt.logs):
                    if log_filter.addresses and log.address not in log_filter.addresses:
                        continue
                    if any(
                        wanted is not None
                        and (pos >= len(log.topics) or log.topics[pos] not in wanted)
                        for pos, wanted in enumerate(log_filter.topics)
                    ):
                        continue
                    found.append(
                        LogView(
                            log,
                            receipt_view.location,
                            receipt_view.tx.hash,
                            receipt_view.first_log_index + i,
                        )
                    )
        return found

    def batch(self, number: int) -> BatchView | None:
        return self.batches[number - 1] if 1 <= number <= len(self.batches) else None

    def latest_committed_batch(self) -> BatchView | None:
        return self.batches[-1] if self.batches else None

    def validators(self, height: int) -> tuple[int, Mapping[Address, int]]:
        return 0, {ADDRESSES[0]: 1}

    def leader_seed(self, height: int) -> Hash32:
        return Hash32(b"\x5e" * 32)

    def peer_count(self) -> int:
        return 0

    def subscribe(self, events: ChainEvents) -> None:
        self.events = events


class BlockingBackend(TwinBackend):
    """A twin whose eth_call waits until ``release`` is set: a slow EVM call."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        self.entered.set()
        self.release.wait(timeout=30)
        return super().call(message, number, deadline)


def build_chain() -> TwinBackend:
    """Genesis, a block with one transaction of each type and a creation, a block of contract
    calls emitting logs, an empty block, one pending transaction and one committed batch."""
    chain = TwinBackend()
    a, b, c = KEYS
    legacy = sign(a, nonce=0, gasPrice=BASE_FEE + TIP, gas=21_000, to=checksum(RECIPIENT), value=5)
    access = sign(
        b,
        type=1,
        nonce=0,
        gasPrice=BASE_FEE + 2 * TIP,
        gas=30_000,
        to=checksum(RECIPIENT),
        value=6,
        accessList=[
            {"address": checksum(Address(b"\x33" * 20)), "storageKeys": ["0x" + "00" * 31 + "09"]}
        ],
    )
    create = sign(
        c,
        type=2,
        nonce=0,
        maxFeePerGas=3 * BASE_FEE,
        maxPriorityFeePerGas=TIP,
        gas=100_000,
        to=None,
        value=0,
        data=b"\x60\x2a\x60\x00\x55",
    )
    chain.add_block([legacy, access, create])
    token = contract_address(create.sender, 0)
    calls = [
        sign(
            key,
            type=2,
            nonce=1,
            maxFeePerGas=BASE_FEE + TIP // 2,
            maxPriorityFeePerGas=TIP,
            gas=60_000,
            to=checksum(token),
            value=0,
            data=bytes(range(i + 1)),
        )
        for i, key in enumerate((a, b))
    ]
    chain.add_block(calls)
    chain.add_block([])
    pending = sign(
        c,
        type=2,
        nonce=1,
        maxFeePerGas=2 * BASE_FEE,
        maxPriorityFeePerGas=TIP,
        gas=21_000,
        to=checksum(RECIPIENT),
        value=1,
    )
    chain.send_raw_transaction(pending.raw)
    head = chain.blocks[-1].header
    chain.batches.append(
        BatchView(
            1,
            1,
            head.number,
            chain.blocks[0].header.state_root,
            head.state_root,
            keccak256(b"batch data"),
            keccak256(b"l1 tx"),
            17,
        )
    )
    return chain
