"""The reference executor: py-evm's CancunVM semantics, a whole batch in one VM state.

Every other executor must give identical results. Transactions are validated in
go-ethereum's order and wording before py-evm runs them, so an invalid one is
rejected with the message wallets expect and leaves no trace in the state. The
batch runs over the pre-state's trie nodes with an in-memory write overlay; the
``StateDiff`` is read back from the accounts and slots py-evm touched. When the pre-state
reads flat (``StateReader.reads_flat``), py-evm's account and slot reads come from it, one
read each, instead of walking the trie; the trie is walked only to compute a batch's root
(``execute``), never for a call or a trace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import ckzg
import rlp
from eth.abc import (
    AccountStorageDatabaseAPI,
    AtomicDatabaseAPI,
    ComputationAPI,
    ExecutionContextAPI,
    MetaWitnessAPI,
    OpcodeAPI,
    SignedTransactionAPI,
    StateAPI,
)
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.db.accesslog import KeyAccessLoggerDB
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.db.cache import CacheDB
from eth.db.journal import JournalDB
from eth.db.storage import AccountStorageDB, StorageLookup
from eth.exceptions import (
    ContractCreationCollision,
    FullStack,
    Halt,
    InsufficientFunds,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfBoundsRead,
    OutOfGas,
    ReservedBytesInCode,
    Revert,
    StackDepthLimit,
    VMError,
    WriteProtection,
)
from eth.precompiles import point_evaluation
from eth.rlp.accounts import Account as RlpAccount
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.berlin.constants import (
    ACCESS_LIST_ADDRESS_COST_EIP_2930,
    ACCESS_LIST_STORAGE_KEY_COST_EIP_2930,
)
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.computation import CancunComputation
from eth.vm.forks.cancun.state import CancunState, CancunTransactionExecutor
from eth.vm.forks.shanghai.constants import MAX_INITCODE_SIZE
from eth.vm.spoof import SpoofTransaction
from eth_typing import BlockNumber
from eth_utils.exceptions import ValidationError
from trie.hexary import HexaryTrie

from executor_gpu.api import StateReader
from executor_gpu.types import (
    Account,
    AccountChange,
    AccountOverride,
    BatchResult,
    BlockEnv,
    CallMessage,
    CallResult,
    Deadline,
    ExecutedTx,
    RejectedTx,
    SimulatedBlockResult,
    SimulatedCall,
    SimulatedCallResult,
    StateDiff,
)
from primitives import rlp as fast_rlp
from primitives.blocks import EMPTY_ROOT, Log, Receipt
from primitives.crypto import keccak256
from primitives.errors import ExecutionAborted, TransactionRejected
from primitives.transactions import AccessListEntry, Transaction
from primitives.types import UINT64_MAX, UINT256_MAX, Address, Hash32

EMPTY_CODE_HASH = keccak256(b"")
INSUFFICIENT_FUNDS = "insufficient funds for gas * price + value"
MODEXP_ADDRESS = Address(b"\x00" * 19 + b"\x05")

# py-evm 0.12.1b1 reads the KZG trusted setup from disk on every point-evaluation
# call (about 2 s, and never freed); read it once per process.
_load_setup_once = functools.cache(ckzg.load_trusted_setup)
point_evaluation.load_trusted_setup = _load_setup_once  # type: ignore[attr-defined]


def kzg_settings() -> object:
    """The trusted setup the point evaluation precompile verifies against (ckzg's capsule of a
    ``KZGSettings``), loaded once per process and shared with the native executor."""
    return _load_setup_once(point_evaluation.TRUSTED_SETUP_PATH, 0)

# go-ethereum's messages for failed executions (core/vm/errors.go), by py-evm error.
_VM_ERRORS: tuple[tuple[type[VMError], str], ...] = (
    (Revert, "execution reverted"),
    (OutOfGas, "out of gas"),
    (InsufficientStack, "stack underflow"),
    (FullStack, "stack limit reached 1024"),
    (InvalidJumpDestination, "invalid jump destination"),
    (InvalidInstruction, "invalid opcode"),
    (InsufficientFunds, "insufficient balance for transfer"),
    (StackDepthLimit, "max call depth exceeded"),
    (ContractCreationCollision, "contract address collision"),
    (WriteProtection, "write protection"),
    (OutOfBoundsRead, "return data out of bounds"),
    (ReservedBytesInCode, "invalid code: must not begin with 0xef"),
)
_JUMP_INTO_PUSH_DATA = "Jump resulted in invalid instruction"
"""py-evm's message (eth/vm/logic/flow.py) for a jump to a 0x5b byte of PUSH data."""


class OverlayDB(BaseDB):
    """Reads fall through to the pre-state's node store; writes stay in memory (also the
    native executor's view of a batch's committed state, for its fallbacks)."""

    def __init__(self, nodes: Mapping[bytes, bytes]) -> None:
        self._nodes = nodes
        self._written: dict[bytes, bytes] = {}

    def __getitem__(self, key: bytes) -> bytes:
        value = self._written.get(key)
        return self._nodes[key] if value is None else value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._written[key] = value

    def __delitem__(self, key: bytes) -> None:
        # AccountDB only deletes pending, never-persisted keys of its own batches.
        self._written.pop(key, None)

    def _exists(self, key: bytes) -> bool:
        return key in self._written or key in self._nodes


_py_evm_modexp = CancunComputation.get_precompiles()[MODEXP_ADDRESS]


def _modexp(computation: ComputationAPI) -> ComputationAPI:
    """py-evm's MODEXP, but 0 ** 0 = 1 for an empty base, as in go-ethereum.

    py-evm 0.12.1b1 returns 0 whenever the base is empty (eth/precompiles/modexp.py).
    """
    computation = _py_evm_modexp(computation)
    data = computation.msg.data_as_bytes
    base_length, exponent_length, modulus_length = (
        int.from_bytes(data[i : i + 32].ljust(32, b"\x00"), "big") for i in (0, 32, 64)
    )
    if base_length == 0 and modulus_length and not any(data[96 : 96 + exponent_length]):
        start = 96 + exponent_length
        modulus = int.from_bytes(
            data[start : start + modulus_length].ljust(modulus_length, b"\x00"), "big"
        )
        if modulus:
            computation.output = (1 % modulus).to_bytes(modulus_length, "big")
    return computation


class _ReferenceComputation(CancunComputation):
    _precompiles = {**CancunComputation.get_precompiles(), MODEXP_ADDRESS: _modexp}  # noqa: RUF012


_LOOPING_OPCODES = (0x56, 0x57, 0xF0, 0xF1, 0xF2, 0xF4, 0xF5, 0xFA)
"""JUMP, JUMPI, CREATE, CALL, CALLCODE, DELEGATECALL, CREATE2, STATICCALL: without them the
program counter only moves forward through at most one code's length, so every unbounded
run of a call passes one of these again and again."""


def _stops_at_deadline(opcode: OpcodeAPI) -> OpcodeAPI:
    """``opcode``, first checking the call's deadline (see _CallState)."""

    @functools.wraps(opcode)  # py-evm's debug log reads the mnemonic through __wrapped__
    def checked(computation: ComputationAPI) -> None:
        deadline = cast(_CallState, computation.state).deadline
        if deadline is not None and deadline.passed():
            # Not a VMError: py-evm lets it through every frame instead of failing the frame.
            raise ExecutionAborted("execution aborted: the call's deadline passed")
        opcode(computation=computation)

    # py-evm only calls an opcode with computation=...; the wrapper is one to its loop.
    return cast(OpcodeAPI, checked)


class _CallComputation(_ReferenceComputation):
    """The reference computation for eth_call: loops and nested calls stop at a deadline."""

    opcodes = {  # noqa: RUF012
        code: _stops_at_deadline(fn) if code in _LOOPING_OPCODES else fn
        for code, fn in _ReferenceComputation.opcodes.items()
    }


class _FlatAccounts(BaseDB):
    """The account trie as AccountDB reads it (by address), answered by the pre-state's flat
    reads while the trie still has the pre-state's root: py-evm moves the root only when it
    computes one, at the end of a batch. Writes, and reads after that, go to the trie."""

    def __init__(self, trie: Any, pre_state: StateReader) -> None:
        self._trie = trie
        self._pre_state = pre_state

    def __getitem__(self, address: bytes) -> bytes:
        if self._trie.root_hash != self._pre_state.state_root:
            value: bytes = self._trie[address]
            return value
        account = self._pre_state.get_account(Address(address))
        if account is None:
            return b""  # as the trie answers for an absent key
        return fast_rlp.encode(
            (account.nonce, account.balance, account.storage_root, account.code_hash)
        )

    def __setitem__(self, address: bytes, value: bytes) -> None:
        self._trie[address] = value

    def __delitem__(self, address: bytes) -> None:
        del self._trie[address]

    def _exists(self, address: bytes) -> bool:
        return self[address] != b""


class _FlatStorageLookup(StorageLookup):
    """An account's storage trie as AccountStorageDB reads it (by slot), answered by the
    pre-state's flat reads while it is the pre-state's storage, unchanged: its root is the
    pre-state's and nothing was written (py-evm writes slots into the trie only when it
    computes a root, and a wipe moves the root to the empty one)."""

    def __init__(
        self, db: Any, storage_root: Hash32, address: Address, pre_state: StateReader,
        pre_root: Hash32,
    ) -> None:
        super().__init__(db, storage_root, address)
        self._pre_state = pre_state
        self._pre_root = pre_root

    def _reads_flat(self) -> bool:
        return self._write_trie is None and self._starting_root_hash == self._pre_root

    def __getitem__(self, key: bytes) -> bytes:
        if not self._reads_flat():
            value: bytes = super().__getitem__(key)
            return value
        if self._pre_root == EMPTY_ROOT:
            return b""  # no storage: nothing to read
        # ``key`` is the slot number, big-endian (AccountStorageDB's key)
        slot_value = self._pre_state.get_storage(self._address, int.from_bytes(key, "big"))
        return fast_rlp.encode_uint(slot_value) if slot_value else b""

    def _exists(self, key: bytes) -> bool:
        return bool(self[key]) if self._reads_flat() else super()._exists(key)


class _FlatStorageDB(AccountStorageDB):
    """AccountStorageDB whose slot reads come from the pre-state's flat reads (see
    _FlatStorageLookup)."""

    def __init__(
        self, db: Any, storage_root: Hash32, address: Address, pre_state: StateReader,
        pre_root: Hash32,
    ) -> None:
        super().__init__(db, storage_root, address)
        # py-evm's own pipeline (AccountStorageDB.__init__), over the flat lookup.
        self._storage_lookup = _FlatStorageLookup(
            db, storage_root, address, pre_state, pre_root
        )
        self._storage_cache = CacheDB(self._storage_lookup)
        self._locked_changes = JournalDB(self._storage_cache)
        self._journal_storage = JournalDB(self._locked_changes)


class _TrackingAccountDB(AccountDB):
    """AccountDB that remembers whose storage was wiped, even by a later-reverted call; and
    reads accounts and slots from a flat pre-state once ``read_flat`` is called."""

    def __init__(self, db: Any, state_root: Hash32 = EMPTY_ROOT) -> None:
        super().__init__(db, state_root)
        self.wiped: set[Address] = set()
        self._pre_state: StateReader | None = None

    def read_flat(self, pre_state: StateReader) -> None:
        """Read accounts and slots through ``pre_state`` (this state's root; reads flat):
        call before the first read."""
        self._pre_state = pre_state
        # py-evm's own pipeline (AccountDB.__init__), over the flat accounts.
        self._trie_logger = KeyAccessLoggerDB(
            _FlatAccounts(self._trie, pre_state), log_missing_keys=False
        )
        self._trie_cache = CacheDB(self._trie_logger)
        self._journaltrie = JournalDB(self._trie_cache)

    def _get_address_store(self, address: Address) -> AccountStorageDatabaseAPI:
        if self._pre_state is None or address in self._account_stores:
            return super()._get_address_store(address)
        pre = self._pre_state.get_account(address)
        store = _FlatStorageDB(
            self._raw_store_db, self._get_storage_root(address), address, self._pre_state,
            EMPTY_ROOT if pre is None else pre.storage_root,
        )
        self._account_stores[address] = store
        return store

    def delete_account(self, address: Any) -> None:
        self.wiped.add(address)
        super().delete_account(address)

    def has_storage(self, address: Address) -> bool:
        """True when the account had storage at the batch start (and was not wiped since).

        py-evm updates storage roots only when the batch's root is computed, like geth,
        whose collision check reads the root as of the last intermediate state root.
        """
        return bool(self._get_storage_root(address) != EMPTY_ROOT)

    def delete_storage(self, address: Any) -> None:
        self.wiped.add(address)
        # py-evm 0.12.1b1 blanks the storage root before it loads the account's storage,
        # so a revert of the wipe (CREATE2 in a reverted frame) restores an empty storage.
        # Loading it first makes the revert restore the real one, as in go-ethereum.
        self._get_address_store(address)
        super().delete_storage(address)


class _PrecheckedExecutor(CancunTransactionExecutor):
    """Skips py-evm's per-transaction signature re-check: the sender was recovered at decode."""

    def validate_transaction(self, transaction: SignedTransactionAPI) -> None:
        self.vm_state.validate_transaction(transaction)


class _ReferenceState(CancunState):
    computation_class = _ReferenceComputation
    account_db_class = _TrackingAccountDB
    transaction_executor_class = _PrecheckedExecutor

    def __init__(
        self, db: AtomicDatabaseAPI, execution_context: ExecutionContextAPI, state_root: Hash32,
        pre_state: StateReader | None = None,
    ) -> None:
        """``pre_state``: the state at ``state_root``, read through when it reads flat."""
        self._flat_pre_state = pre_state if pre_state is not None and pre_state.reads_flat else None
        super().__init__(db, execution_context, state_root)

    def set_system_contracts(self) -> None:
        # py-evm calls this right after it made the account db, and it reads the state: the
        # flat reads go in first.
        if self._flat_pre_state is not None:
            self.tracking_db.read_flat(self._flat_pre_state)
        super().set_system_contracts()

    @property
    def tracking_db(self) -> _TrackingAccountDB:
        account_db = self._account_db
        assert isinstance(account_db, _TrackingAccountDB)
        return account_db

    def has_code_or_nonce(self, address: Address) -> bool:
        # The creation collision check. EIP-7610 (after py-evm 0.12.1b1) adds
        # non-empty storage to code and nonce.
        return super().has_code_or_nonce(address) or self.tracking_db.has_storage(address)


_S = TypeVar("_S", bound=_ReferenceState)


class _CallState(_ReferenceState):
    """State of one eth_call: its computation gives up at ``deadline``."""

    computation_class = _CallComputation
    deadline: Deadline | None = None
    """Once it has passed, the call raises ExecutionAborted."""


class _SimulationState(_CallState):
    """State of an eth_simulateV1 block: as a call's, but calls pay for gas as transactions
    do."""

    transfer_counters: set[int]
    """Log counters of the ETH transfer logs added by _TransferLoggingComputation."""

    def get_tip(self, transaction: SignedTransactionAPI) -> int:
        # Without validation a call may price its gas under an overridden base fee, as geth's
        # NoBaseFee allows; the block producer then earns nothing, never less.
        return max(0, super().get_tip(transaction))


SELFDESTRUCT = 0xFF
"""The opcode whose send traceTransfers reports besides value-carrying frames."""
TRANSFER_LOG_ADDRESS = Address(b"\xee" * 20)
"""The emitter of eth_simulateV1's traced ETH transfers (the specification's choice)."""
TRANSFER_TOPIC = int.from_bytes(keccak256(b"Transfer(address,address,uint256)"), "big")
"""ERC-20's Transfer event: the shape traced ETH transfers are reported in."""


def _transfer_entry(
    state: StateAPI, counter: int, sender: bytes, recipient: bytes, value: int
) -> tuple[int, Address, tuple[int, ...], bytes]:
    """py-evm's log entry reporting an ETH transfer as an ERC-20 Transfer, at ``counter``."""
    cast(_SimulationState, state).transfer_counters.add(counter)
    topics = (TRANSFER_TOPIC, int.from_bytes(sender, "big"), int.from_bytes(recipient, "big"))
    return counter, TRANSFER_LOG_ADDRESS, topics, value.to_bytes(32, "big")


def _logs_selfdestruct(opcode: OpcodeAPI) -> OpcodeAPI:
    """SELFDESTRUCT, reporting the balance it sends as a transfer (as go-ethereum's
    traceTransfers does)."""

    @functools.wraps(opcode)
    def logged(computation: ComputationAPI) -> None:
        stack = cast(Any, computation)._stack.values
        if not stack:
            opcode(computation=computation)  # fails: stack underflow
            return
        top = stack[-1]
        word = top.to_bytes(32, "big") if isinstance(top, int) else top.rjust(32, b"\0")
        contract = computation.msg.storage_address
        value = computation.state.get_balance(contract)
        counter = computation.transaction_context.get_next_log_counter()
        try:
            opcode(computation=computation)
        except Halt:  # how SELFDESTRUCT ends its frame successfully
            if value:
                entry = _transfer_entry(computation.state, counter, contract, word[12:], value)
                cast(Any, computation)._log_entries.append(entry)
            raise

    return cast(OpcodeAPI, logged)


class _TransferLoggingComputation(_CallComputation):
    """Reports every successful ETH transfer of a frame as an ERC-20 Transfer log, placed
    before the logs of the frame it starts (eth_simulateV1's ``traceTransfers``); and the
    balances SELFDESTRUCT sends."""

    opcodes = {  # noqa: RUF012
        **_CallComputation.opcodes,
        SELFDESTRUCT: _logs_selfdestruct(_CallComputation.opcodes[SELFDESTRUCT]),
    }

    @classmethod
    def apply_message(
        cls,
        state: StateAPI,
        message: Any,
        transaction_context: Any,
        parent_computation: ComputationAPI | None = None,
    ) -> ComputationAPI:
        if not (message.should_transfer_value and message.value):
            return super().apply_message(state, message, transaction_context, parent_computation)
        # Its place among the logs is taken now: the frame's own logs come after it.
        counter = transaction_context.get_next_log_counter()
        computation = super().apply_message(state, message, transaction_context,
                                            parent_computation)
        if computation.is_success:
            computation._log_entries.append(_transfer_entry(
                state, counter, message.sender, message.storage_address, message.value))
        return computation


class _TransferLoggingState(_SimulationState):
    computation_class = _TransferLoggingComputation


def _build_state(
    pre_state: StateReader, env: BlockEnv, base_fee: int, state_class: type[_S]
) -> tuple[_S, OverlayDB]:
    overlay = OverlayDB(pre_state.node_store)
    state = _state_on(AtomicDB(overlay), pre_state.state_root, env, base_fee, state_class, pre_state)
    return state, overlay


def _state_on(
    db: AtomicDB, state_root: Hash32, env: BlockEnv, base_fee: int, state_class: type[_S],
    pre_state: StateReader | None = None,
) -> _S:
    """A py-evm state over ``db`` at ``state_root``, in ``env`` with ``base_fee``; reads go
    through ``pre_state`` (the state at ``state_root``) when it reads flat."""
    context = ExecutionContext(
        coinbase=env.coinbase,
        timestamp=env.timestamp,
        block_number=BlockNumber(env.number),
        difficulty=0,
        mix_hash=env.prev_randao,
        gas_limit=env.gas_limit,
        prev_hashes=env.block_hashes,
        chain_id=env.chain_id,
        base_fee_per_gas=base_fee,
        excess_blob_gas=env.excess_blob_gas,
    )
    return state_class(db, context, state_root, pre_state)


def _precheck(
    state: StateAPI, env: BlockEnv, tx: Transaction, gas_left: int, intrinsic: int
) -> str | None:
    """Why ``tx`` cannot be included now, in go-ethereum's order and wording; None when valid."""
    sender = "0x" + tx.sender.hex()
    if tx.chain_id is not None and tx.chain_id != env.chain_id:
        return f"invalid chain id for signer: have {tx.chain_id} want {env.chain_id}"
    nonce = state.get_nonce(tx.sender)
    if tx.nonce > nonce:
        return f"nonce too high: address {sender}, tx: {tx.nonce} state: {nonce}"
    if tx.nonce < nonce:
        return f"nonce too low: address {sender}, tx: {tx.nonce} state: {nonce}"
    if nonce >= UINT64_MAX:
        return f"nonce has max value: address {sender}, nonce: {nonce}"
    if state.get_code_hash(tx.sender) != EMPTY_CODE_HASH:
        return f"sender not an eoa: address {sender}"
    if tx.max_fee_per_gas < tx.max_priority_fee_per_gas:
        return (
            f"max priority fee per gas higher than max fee per gas: address {sender}, "
            f"maxPriorityFeePerGas: {tx.max_priority_fee_per_gas}, "
            f"maxFeePerGas: {tx.max_fee_per_gas}"
        )
    if tx.max_fee_per_gas < env.base_fee_per_gas:
        return (
            f"max fee per gas less than block base fee: address {sender}, "
            f"maxFeePerGas: {tx.max_fee_per_gas}, baseFee: {env.base_fee_per_gas}"
        )
    return _check_funds_and_gas(
        state,
        tx.sender,
        tx.upfront_cost,
        tx.gas_limit,
        gas_left,
        intrinsic,
        tx.is_create,
        len(tx.data),
    )


def _check_funds_and_gas(
    state: StateAPI,
    sender: Address,
    cost: int,
    gas_limit: int,
    gas_left: int,
    intrinsic: int,
    is_create: bool,
    data_length: int,
) -> str | None:
    """geth's buyGas and intrinsic checks, shared by transactions and calls."""
    address = "0x" + sender.hex()
    if cost > UINT256_MAX:
        return f"{INSUFFICIENT_FUNDS}: address {address} required balance exceeds 256 bits"
    balance = state.get_balance(sender)
    if balance < cost:
        return f"{INSUFFICIENT_FUNDS}: address {address} have {balance} want {cost}"
    if gas_limit > gas_left:
        return f"gas limit reached: have {gas_left}, want {gas_limit}"
    if gas_limit < intrinsic:
        return f"intrinsic gas too low: have {gas_limit}, want {intrinsic}"
    if is_create and data_length > MAX_INITCODE_SIZE:
        return f"max initcode size exceeded: code size {data_length} limit {MAX_INITCODE_SIZE}"
    return None


def _error_message(computation: ComputationAPI) -> str | None:
    if computation.is_success:
        return None
    error = computation.error
    # py-evm calls a jump onto a 0x5b byte inside PUSH data an invalid instruction; for
    # go-ethereum it is an invalid jump destination (its JUMPDEST analysis skips PUSH data).
    if isinstance(error, InvalidInstruction) and str(error) == _JUMP_INTO_PUSH_DATA:
        return "invalid jump destination"
    for error_type, message in _VM_ERRORS:
        if isinstance(error, error_type):
            return message
    return str(error) or type(error).__name__


def _logs(computation: ComputationAPI) -> tuple[Log, ...]:
    return _entry_logs(computation.get_raw_log_entries())


def decode_account(encoded: bytes) -> Account | None:
    """An account from its state-trie encoding; None for an absent one."""
    if not encoded:
        return None
    account = rlp.decode(encoded, sedes=RlpAccount)
    return Account(
        account.nonce, account.balance, Hash32(account.storage_root), Hash32(account.code_hash)
    )


def slot_value(storage: HexaryTrie, slot: int) -> int:
    """Value of ``slot`` in a storage trie."""
    encoded = storage.get(keccak256(slot.to_bytes(32, "big")))
    return rlp.decode(encoded, sedes=rlp.sedes.big_endian_int) if encoded else 0


def _account_change(
    pre: Account | None,
    post: Account,
    slots: frozenset[int],
    wiped: bool,
    pre_slot: Callable[[int], int],
    post_db: OverlayDB,
) -> AccountChange | None:
    """The change from ``pre`` to ``post`` over the ``slots`` execution touched; None if none."""
    pre_storage_root = EMPTY_ROOT if pre is None else pre.storage_root
    pre_code_hash = EMPTY_CODE_HASH if pre is None else pre.code_hash
    code: bytes | None = None
    if post.code_hash != pre_code_hash:
        code = b"" if post.code_hash == EMPTY_CODE_HASH else post_db[post.code_hash]
    post_storage = HexaryTrie(post_db, post.storage_root)
    storage: dict[int, int] = {}
    # A wipe (account deleted, later re-created) leaves only slots written afterwards,
    # all of them touched: the post storage is exactly their non-zero values.
    reset = wiped and pre_storage_root != EMPTY_ROOT
    if reset:
        storage = {slot: value for slot in slots if (value := slot_value(post_storage, slot))}
    elif post.storage_root != pre_storage_root:
        for slot in slots:
            value = slot_value(post_storage, slot)
            if value != pre_slot(slot):
                storage[slot] = value
    if (
        pre is not None
        and not reset
        and not storage
        and code is None
        and (pre.nonce, pre.balance) == (post.nonce, post.balance)
    ):
        return None
    return AccountChange(
        nonce=post.nonce, balance=post.balance, code=code, storage=storage, storage_reset=reset
    )


def _pre_slots(pre_state: StateReader, address: Address, pre: Account | None) -> Callable[[int], int]:
    """Reads of ``address``'s slots in ``pre_state``: flat, or in its storage trie."""
    if pre_state.reads_flat:
        return functools.partial(pre_state.get_storage, address)
    storage_root = EMPTY_ROOT if pre is None else pre.storage_root
    return functools.partial(slot_value, HexaryTrie(pre_state.node_store, storage_root))


def _state_diff(
    pre_state: StateReader,
    post_root: Hash32,
    overlay: OverlayDB,
    witness: MetaWitnessAPI,
    wiped: set[Address],
) -> StateDiff:
    post_accounts = HexaryTrie(overlay, post_root)
    changes: dict[Address, AccountChange | None] = {}
    for address in witness.accounts_queried:
        pre = pre_state.get_account(Address(address))
        post = decode_account(post_accounts.get(keccak256(address)))
        if post is None:
            if pre is not None:
                changes[Address(address)] = None
            continue
        change = _account_change(
            pre,
            post,
            witness.get_slots_queried(address),
            address in wiped,
            _pre_slots(pre_state, Address(address), pre),
            overlay,
        )
        if change is not None:
            changes[Address(address)] = change
    return StateDiff(accounts=changes)


def _apply_overrides(state: StateAPI, overrides: Mapping[Address, AccountOverride]) -> None:
    """Write eth_call state overrides into ``state``, as the call's starting point."""
    for address, override in overrides.items():
        if override.nonce is not None:
            state.set_nonce(address, override.nonce)
        if override.balance is not None:
            state.set_balance(address, override.balance)
        if override.code is not None:
            state.set_code(address, override.code)
        if override.state is not None:
            state.delete_storage(address)
        for slot, value in {**(override.state or {}), **override.state_diff}.items():
            state.set_storage(address, slot, value)
    if overrides:
        # Overridden values are the call's originals (SSTORE gas), as in go-ethereum.
        state.lock_changes()
    base = state.computation_class
    precompiles = dict(cast(Any, base)._precompiles)  # what runs now, earlier moves included
    moved = {
        override.move_precompile_to: precompiles[address]
        for address, override in overrides.items()
        if override.move_precompile_to is not None and address in precompiles
    }
    if any(address in precompiles for address in overrides):
        for address in overrides:
            precompiles.pop(address, None)
        precompiles.update(moved)
        # py-evm runs the precompiles of the state's computation class; the fork's own stay
        # warm wherever they went (go-ethereum warms vm.ActivePrecompiles, not the moved).
        state.computation_class = type(base.__name__, (base,), {
            "_precompiles": precompiles, "get_precompiles": classmethod(_fork_precompiles),
        })


def _fork_precompiles(cls: type) -> dict[Any, Any]:
    """Cancun's precompiles by address, whatever an override moved."""
    return _ReferenceComputation._precompiles


class PyEvmExecutor:
    """Executor and Caller on py-evm's Cancun rules; the semantics every executor must match."""

    name = "reference"

    def __init__(self) -> None:
        self._builder = CancunVM.get_transaction_builder()

    def execute(
        self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]
    ) -> BatchResult:
        state, overlay = _build_state(
            pre_state, block_env, block_env.base_fee_per_gas, _ReferenceState
        )
        executed: list[ExecutedTx] = []
        rejected: list[RejectedTx] = []
        gas_used = 0
        for index, tx in enumerate(txs):
            evm_tx = self.to_evm(tx)
            reason = _precheck(
                state, block_env, tx, block_env.gas_limit - gas_used, evm_tx.intrinsic_gas
            )
            if reason is not None:
                rejected.append(RejectedTx(index=index, tx=tx, reason=reason))
                continue
            # A new transaction starts: warm/cold sets and SSTORE originals reset.
            state.lock_changes()
            snapshot = state.snapshot()
            try:
                computation = state.apply_transaction(evm_tx)
            except ValidationError as exc:  # a py-evm rule our precheck does not mirror
                state.revert(snapshot)
                rejected.append(RejectedTx(index=index, tx=tx, reason=str(exc)))
                continue
            state.commit(snapshot)
            tx_gas = CancunVM.finalize_gas_used(evm_tx, computation)
            gas_used += tx_gas
            executed.append(self._executed(tx, computation, tx_gas, gas_used, block_env))
        witness = state.persist()
        root = Hash32(state.state_root)
        return BatchResult(
            executed=tuple(executed),
            rejected=tuple(rejected),
            state_diff=_state_diff(pre_state, root, overlay, witness, state.tracking_db.wiped),
            gas_used=gas_used,
            state_root=root,
        )

    def call(
        self,
        pre_state: StateReader,
        block_env: BlockEnv,
        message: CallMessage,
        deadline: Deadline | None = None,
    ) -> CallResult:
        # Like geth's eth_call: a call that pays no gas price sees a zero base fee.
        base_fee = block_env.base_fee_per_gas if message.gas_price else 0
        state, _ = _build_state(pre_state, block_env, base_fee, _CallState)
        state.deadline = deadline
        tx, reason = self.prepare_call(state, message, base_fee)
        if reason is not None:
            return CallResult(succeeded=False, output=b"", gas_used=0, error=reason)
        executor = state.get_transaction_executor()
        computation = executor.build_computation(executor.build_evm_message(tx), tx)
        return CallResult(
            succeeded=computation.is_success,
            output=computation.output,
            gas_used=CancunVM.finalize_gas_used(tx, computation),
            error=_error_message(computation),
        )

    def prepare_call(
        self, state: _ReferenceState, message: CallMessage, base_fee: int
    ) -> tuple[SignedTransactionAPI, str | None]:
        """Apply ``message``'s state overrides to ``state``; the transaction py-evm runs for
        it, and why it cannot run (None when it can)."""
        _apply_overrides(state, message.overrides)
        tx = self.spoofed(
            state, message.sender, message.to, message.gas, message.value, message.data,
            message.access_list, message.gas_price, message.gas_price,
        )
        intrinsic = tx.intrinsic_gas
        if message.gas_price and message.gas_price < base_fee:
            return tx, (
                f"max fee per gas less than block base fee: address 0x{message.sender.hex()}, "
                f"maxFeePerGas: {message.gas_price}, baseFee: {base_fee}"
            )
        return tx, _check_funds_and_gas(
            state,
            message.sender,
            message.gas * message.gas_price + message.value,
            message.gas,
            message.gas,
            intrinsic,
            message.to is None,
            len(message.data),
        )

    def spoofed(
        self,
        state: StateAPI,
        sender: Address,
        to: Address | None,
        gas: int,
        value: int,
        data: bytes,
        access_list: Sequence[AccessListEntry],
        fee_cap: int,
        tip: int,
    ) -> SignedTransactionAPI:
        """The transaction py-evm runs for an unsigned call from ``sender`` at its nonce."""
        unsigned = self._builder.create_unsigned_transaction(
            nonce=state.get_nonce(sender),
            gas_price=fee_cap,
            gas=gas,
            to=CREATE_CONTRACT_ADDRESS if to is None else to,
            value=value,
            data=data,
        )
        accesses = [(entry.address, entry.storage_keys) for entry in access_list]
        intrinsic = unsigned.intrinsic_gas + sum(
            ACCESS_LIST_ADDRESS_COST_EIP_2930
            + ACCESS_LIST_STORAGE_KEY_COST_EIP_2930 * len(slots)
            for _, slots in accesses
        )
        # A spoofed transaction quacks like a signed one from ``sender``; the access list is
        # pre-warmed by Berlin's executor and charged in the intrinsic gas.
        return cast(SignedTransactionAPI, SpoofTransaction(
            unsigned, from_=sender, access_list=accesses, intrinsic_gas=intrinsic,
            get_intrinsic_gas=lambda: intrinsic, max_fee_per_gas=fee_cap,
            max_priority_fee_per_gas=tip,
        ))

    def simulation(
        self, pre_state: StateReader, validation: bool, trace_transfers: bool, gas_cap: int,
        deadline: Deadline | None = None,
    ) -> ReferenceSimulation:
        return ReferenceSimulation(self, pre_state, validation, trace_transfers, gas_cap,
                                   deadline)

    def to_evm(self, tx: Transaction) -> SignedTransactionAPI:
        """py-evm's form of ``tx``, its sender taken as recovered."""
        evm_tx = self._builder.decode(tx.raw)
        # py-evm caches the recovered sender on the object: seed it with the one
        # decode_transaction already recovered, instead of recovering it again.
        evm_tx.__dict__["sender"] = tx.sender
        return evm_tx

    @staticmethod
    def _executed(
        tx: Transaction, computation: ComputationAPI, gas: int, cumulative: int, env: BlockEnv
    ) -> ExecutedTx:
        return ExecutedTx(
            tx=tx,
            receipt=Receipt(
                tx_type=tx.tx_type,
                succeeded=computation.is_success,
                cumulative_gas_used=cumulative,
                logs=_logs(computation),
            ),
            gas_used=gas,
            effective_gas_price=tx.effective_gas_price(env.base_fee_per_gas),
            contract_address=Address(computation.msg.storage_address) if tx.is_create else None,
            error=_error_message(computation),
        )


class ReferenceSimulation:
    """An eth_simulateV1 run on py-evm: every block's state is persisted into one in-memory
    overlay of the starting state, which the next block starts from (and gives each block
    its state root)."""

    def __init__(
        self, executor: PyEvmExecutor, pre_state: StateReader, validation: bool,
        trace_transfers: bool, gas_cap: int, deadline: Deadline | None,
    ) -> None:
        self._executor = executor
        self._db = AtomicDB(OverlayDB(pre_state.node_store))
        self._root = pre_state.state_root
        self._validation = validation
        self._state_class = _TransferLoggingState if trace_transfers else _SimulationState
        self._computation_class = self._state_class.computation_class
        self._gas_left = gas_cap
        self._deadline = deadline

    def run_block(
        self,
        env: BlockEnv,
        overrides: Mapping[Address, AccountOverride],
        calls: Sequence[SimulatedCall],
        credits: Sequence[tuple[Address, int]] = (),
    ) -> SimulatedBlockResult:
        state = _state_on(self._db, self._root, env, env.base_fee_per_gas, self._state_class)
        state.deadline = self._deadline
        state.transfer_counters = set()
        state.computation_class = self._computation_class
        _apply_overrides(state, overrides)
        # Precompiles moved in a block stay moved in the blocks after it.
        self._computation_class = state.computation_class
        results: list[SimulatedCallResult] = []
        gas_used = 0
        for call in calls:
            result = self._run(state, env, call, gas_used)
            gas_used += result.gas_used
            results.append(result)
        for address, amount in credits:  # withdrawals come after the transactions
            state.delta_balance(address, amount)
        state.persist()
        self._root = Hash32(state.state_root)
        return SimulatedBlockResult(tuple(results), gas_used, self._root)

    def _run(
        self, state: _SimulationState, env: BlockEnv, call: SimulatedCall, block_gas_used: int
    ) -> SimulatedCallResult:
        """``call`` on ``state`` after ``block_gas_used`` gas of its block, checked as
        go-ethereum checks it and worded as it words it."""
        if self._deadline is not None and self._deadline.passed():
            raise ExecutionAborted("execution aborted: the simulation's deadline passed")
        gas = env.gas_limit - block_gas_used if call.gas is None else call.gas
        if block_gas_used + gas > env.gas_limit:
            raise TransactionRejected(
                f"block gas limit reached: {block_gas_used} >= {env.gas_limit}"
            )
        gas = min(gas, self._gas_left)
        nonce = state.get_nonce(call.sender)
        tx = self._executor.spoofed(
            state, call.sender, call.to, gas, call.value, call.data, call.access_list,
            call.max_fee_per_gas, call.max_priority_fee_per_gas,
        )
        reason = self._precheck(state, env, call, nonce, gas, tx.intrinsic_gas)
        if reason is None and nonce == UINT64_MAX and call.to is None:
            reason = f"nonce has max value: address 0x{call.sender.hex()}, nonce: {nonce}"
        if reason is not None:
            raise TransactionRejected(f"err: {reason} (supplied gas {gas})")
        # go-ethereum's uint64 nonce wraps to 0 when no check stops it (py-evm refuses).
        wraps = nonce == UINT64_MAX
        if wraps:
            state.set_nonce(call.sender, nonce - 1)
        # A new transaction starts: warm/cold sets and SSTORE originals reset.
        state.lock_changes()
        executor = state.get_transaction_executor()
        computation = executor.build_computation(executor.build_evm_message(tx), tx)
        executor.finalize_computation(tx, computation)
        if wraps:
            state.set_nonce(call.sender, 0)
        gas_used = CancunVM.finalize_gas_used(tx, computation)
        self._gas_left -= gas_used
        entries = computation.get_raw_log_entries()
        return SimulatedCallResult(
            succeeded=computation.is_success,
            output=computation.output,
            gas_used=gas_used,
            max_used_gas=gas - computation.get_gas_remaining(),
            gas_limit=gas,
            nonce=nonce if call.nonce is None else call.nonce,
            logs=_entry_logs(e for e in entries if e[0] not in state.transfer_counters),
            reported_logs=_entry_logs(entries),
            error=_error_message(computation),
        )

    def _precheck(
        self, state: _SimulationState, env: BlockEnv, call: SimulatedCall, nonce: int,
        gas: int, intrinsic: int,
    ) -> str | None:
        """Why ``call`` cannot run; go-ethereum's preCheck, nonces and fee caps checked only
        when validating (a call that names no fees never pays the base fee then)."""
        sender = "0x" + call.sender.hex()
        if self._validation and call.nonce is not None:
            if call.nonce > nonce:
                return f"nonce too high: address {sender}, tx: {call.nonce} state: {nonce}"
            if call.nonce < nonce:
                return f"nonce too low: address {sender}, tx: {call.nonce} state: {nonce}"
        if self._validation and nonce >= UINT64_MAX:
            return f"nonce has max value: address {sender}, nonce: {nonce}"
        fee_cap, tip = call.max_fee_per_gas, call.max_priority_fee_per_gas
        if self._validation or fee_cap or tip:
            if fee_cap < tip:
                return (
                    f"max priority fee per gas higher than max fee per gas: address {sender}, "
                    f"maxPriorityFeePerGas: {tip}, maxFeePerGas: {fee_cap}"
                )
            if fee_cap < env.base_fee_per_gas:
                return (
                    f"max fee per gas less than block base fee: address {sender}, "
                    f"maxFeePerGas: {fee_cap}, baseFee: {env.base_fee_per_gas}"
                )
        return _check_funds_and_gas(
            state, call.sender, gas * fee_cap + call.value, gas, gas, intrinsic,
            call.to is None, len(call.data),
        )


def _entry_logs(entries: Iterable[tuple[int, bytes, tuple[int, ...], bytes]]) -> tuple[Log, ...]:
    """Logs from py-evm's raw log entries (counter, address, topics, data)."""
    return tuple(
        Log(
            address=Address(address),
            topics=tuple(Hash32(topic.to_bytes(32, "big")) for topic in topics),
            data=data,
        )
        for _, address, topics, data in entries
    )
