"""Step-by-step tracing on the reference executor (debug_trace*, eth_createAccessList).

Traces run on py-evm, whatever executor built the block: the reference decides the semantics,
and its interpreter loop can be hooked per opcode. A trace gets its own computation and state
classes whose opcode table wraps every instruction with a recorder; nothing changes for the
untraced path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from eth.abc import ComputationAPI, MessageAPI, SignedTransactionAPI
from eth.exceptions import Revert, VMError
from eth.vm.forks.cancun import CancunVM
from eth.vm.logic.invalid import InvalidOpcode
from eth.vm.opcode_values import (
    BALANCE,
    CALL,
    CALLCODE,
    CREATE,
    CREATE2,
    DELEGATECALL,
    EXTCODECOPY,
    EXTCODEHASH,
    EXTCODESIZE,
    SELFDESTRUCT,
    SLOAD,
    SSTORE,
    STATICCALL,
)
from eth_utils.exceptions import ValidationError

from executor_gpu.api import StateReader
from executor_gpu.reference import (
    PyEvmExecutor,
    _build_state,
    _CallComputation,
    _CallState,
    _error_message,
    _precheck,
    _PrecheckedExecutor,
)
from executor_gpu.types import (
    AccountSnapshot,
    BlockEnv,
    CallFrame,
    CallMessage,
    Deadline,
    TraceOptions,
    TraceStep,
    TxTrace,
)
from primitives.blocks import Log
from primitives.errors import InvalidInput, TransactionRejected
from primitives.transactions import Transaction
from primitives.types import Address, Hash32

_GETH_NAMES = {"SHA3": "KECCAK256"}
"""Mnemonics py-evm spells differently from go-ethereum."""
_CALL_TYPES = {
    CALL: "CALL", CALLCODE: "CALLCODE", DELEGATECALL: "DELEGATECALL",
    STATICCALL: "STATICCALL", CREATE: "CREATE", CREATE2: "CREATE2",
}
_ADDRESS_ARG = {BALANCE: 1, EXTCODESIZE: 1, EXTCODECOPY: 1, EXTCODEHASH: 1, SELFDESTRUCT: 1,
                CALL: 2, CALLCODE: 2, DELEGATECALL: 2, STATICCALL: 2}
"""Opcodes that access an account, and which stack item (from the top) names it."""


class TraceTooLong(InvalidInput):
    """The trace would record more steps than TraceOptions.step_limit."""


def _word(value: int | bytes) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


@dataclass
class _Frame:
    """A call frame while it runs."""

    call_type: str
    """CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE or CREATE2."""
    sender: Address
    """``from``."""
    to: Address
    """Callee (the code's address for DELEGATECALL), or the contract being created."""
    value: int | None
    """Wei sent; None for calls that send none."""
    gas: int
    """Gas given to the frame."""
    input: bytes
    """Call data or init code."""
    calls: list[CallFrame] = field(default_factory=list)
    """Finished sub-calls, in order."""
    call_step: dict[str, Any] | None = None
    """The caller's step that opened this frame (its gas cost is set on entry)."""


@dataclass
class _Account:
    """A touched account as it was before the transaction."""

    balance: int
    """Wei held."""
    nonce: int
    """Nonce."""
    code: bytes
    """Code."""
    storage: dict[int, int] = field(default_factory=dict)
    """Touched slots and their values before the transaction."""


class _Recorder:
    """Collects one transaction's steps, frames, accessed and touched accounts."""

    def __init__(self, options: TraceOptions, state: Any) -> None:
        self.options = options
        self.state = state
        self.frames: list[_Frame] = []
        self.root: CallFrame | None = None
        self.steps: list[dict[str, Any]] = []
        self.accessed: dict[Address, dict[int, None]] = {}
        self.pre: dict[Address, _Account] = {}
        self.seen_storage: dict[Address, dict[int, int]] = {}
        self.call_type = "CALL"
        self.recorded = 0
        """Bytes of stacks, memory, storage and return data recorded so far."""

    # -- accounts ----------------------------------------------------------------------------

    def touch(self, address: Address) -> None:
        """Remember ``address``'s values now, the first time it is touched."""
        if address not in self.pre:
            state = self.state
            self.pre[address] = _Account(
                state.get_balance(address), state.get_nonce(address), state.get_code(address)
            )

    def touch_slot(self, address: Address, slot: int) -> int:
        """Remember the slot's value now, the first time; its current value."""
        self.touch(address)
        value: int = self.state.get_storage(address, slot)
        self.pre[address].storage.setdefault(slot, value)
        return value

    def snapshot(self, address: Address, after: bool) -> AccountSnapshot | None:
        """The account as recorded before, or as the state holds it now (None if gone)."""
        before = self.pre[address]
        if not after:
            return AccountSnapshot(before.balance, before.nonce, before.code, dict(before.storage))
        state = self.state
        if not state.account_exists(address):
            return None
        storage = {slot: state.get_storage(address, slot) for slot in before.storage}
        return AccountSnapshot(
            state.get_balance(address), state.get_nonce(address), state.get_code(address), storage
        )

    # -- frames ------------------------------------------------------------------------------

    def enter(self, message: MessageAPI, call_type: str) -> None:
        address = Address(message.storage_address)
        self.touch(Address(message.sender))
        self.touch(address)
        value = None if call_type in ("STATICCALL", "DELEGATECALL") else message.value
        to = Address(message.code_address) if call_type == "DELEGATECALL" else address
        if call_type == "DELEGATECALL":
            self.touch(to)
        frame = _Frame(call_type, Address(message.sender), to, value, message.gas,
                       message.data_as_bytes if not message.is_create else bytes(message.code))
        if self.frames and self.steps:
            frame.call_step = self.steps[-1]
        self.frames.append(frame)

    def parent_paid(self, gas_left: int) -> None:
        """The caller's gas right after it paid for the frame just entered."""
        step = self.frames[-1].call_step
        if step is not None:
            step["gas_cost"] = step["gas"] - gas_left
            step["priced"] = True

    def exit(self, computation: ComputationAPI) -> None:
        frame = self.frames.pop()
        error = _error_message(computation)
        logs = () if error else tuple(
            Log(Address(address), tuple(Hash32(t.to_bytes(32, "big")) for t in topics), data)
            for _, address, topics, data in computation._log_entries
        )
        done = CallFrame(
            call_type=frame.call_type, sender=frame.sender, to=frame.to, value=frame.value,
            gas=frame.gas, gas_used=computation.get_gas_used(),
            input=frame.input, output=computation.output, error=error,
            calls=tuple(frame.calls), logs=logs,
        )
        if self.frames:
            self.frames[-1].calls.append(done)
        else:
            self.root = done

    # -- steps -------------------------------------------------------------------------------

    def before(self, computation: Any, opcode: int, mnemonic: str) -> dict[str, Any] | None:
        values = computation._stack.values
        address = Address(computation.msg.storage_address)
        argument = _ADDRESS_ARG.get(opcode)
        storage: dict[int, int] | None = None
        if argument is not None and len(values) >= argument:
            target = Address(_word(values[-argument]).to_bytes(32, "big")[12:])
            self.accessed.setdefault(target, {})
            self.touch(target)
            if opcode == SELFDESTRUCT:
                self._selfdestruct(address, target)
        elif opcode in (SLOAD, SSTORE) and values:
            slot = _word(values[-1])
            self.accessed.setdefault(address, {})[slot] = None
            current = self.touch_slot(address, slot)
            seen = self.seen_storage.setdefault(address, {})
            if opcode == SLOAD:
                seen[slot] = current
            elif len(values) >= 2:
                seen[slot] = _word(values[-2])
            storage = dict(seen)
        self.call_type = _CALL_TYPES.get(opcode, self.call_type)
        options = self.options
        if not options.struct_logs:
            return None
        if len(self.steps) >= options.step_limit:
            if options.truncate:
                return None
            raise TraceTooLong(f"trace longer than {options.step_limit} steps: pass a "
                               "smaller limit, or use callTracer")
        stack = tuple(_word(v) for v in values) if options.stack else None
        memory = bytes(computation._memory._bytes) if options.memory else None
        returned = bytes(computation.return_data) if options.return_data else None
        if not options.storage:
            storage = None
        self.recorded += (32 * len(stack or ()) + len(memory or b"") + 64 * len(storage or ())
                          + len(returned or b""))
        if self.recorded > options.byte_limit:
            raise TraceTooLong(f"trace larger than {options.byte_limit} bytes: disable the "
                               "memory or the stack, pass a limit, or use callTracer")
        step = {
            "pc": max(0, computation.code.program_counter - 1),
            "op": _GETH_NAMES.get(mnemonic, mnemonic),
            "gas": computation.get_gas_remaining(),
            "gas_cost": 0,
            "depth": computation.msg.depth + 1,
            "refund": computation.get_gas_refund(),
            "stack": stack,
            "memory": memory,
            "storage": storage,
            "return_data": returned,
            "error": None,
        }
        self.steps.append(step)
        return step

    def _selfdestruct(self, address: Address, beneficiary: Address) -> None:
        balance = self.state.get_balance(address)
        self.frames[-1].calls.append(CallFrame(
            "SELFDESTRUCT", address, beneficiary, balance, 0, 0, b"", b"", None, (), ()
        ))

    def trace(self, gas_used: int, failed: bool, output: bytes) -> TxTrace:
        assert self.root is not None
        pre = {address: self.snapshot(address, after=False) for address in self.pre}
        post = {address: self.snapshot(address, after=True) for address in self.pre}
        return TxTrace(
            gas_used=gas_used,
            failed=failed,
            output=output,
            call=self.root,
            steps=tuple(_frozen_step(step) for step in self.steps),
            accessed={address: tuple(slots) for address, slots in self.accessed.items()},
            pre={a: s for a, s in pre.items() if s is not None},
            post={a: s for a, s in post.items() if s is not None},
        )


def _frozen_step(step: dict[str, Any]) -> TraceStep:
    return TraceStep(**{k: v for k, v in step.items() if k != "priced"})


def _error_text(exc: VMError) -> str:
    class _Failed:
        is_success = False
        error = exc
    return _error_message(cast(ComputationAPI, _Failed())) or type(exc).__name__


def _mnemonic(run: Any) -> str:
    name = getattr(run, "mnemonic", None) or getattr(run, "__wrapped__", run).mnemonic
    return str(name)


def _traced_state_class(recorder_of: Callable[[], _Recorder]) -> type[_CallState]:
    """State and computation classes that report to the current recorder (and stop at the
    state's deadline, as eth_call's)."""

    def opcodes() -> dict[int, Callable[..., Any]]:
        table: dict[int, Callable[..., Any]] = {}
        for opcode in range(256):
            run = _CallComputation.opcodes.get(opcode) or InvalidOpcode(opcode)
            name = _mnemonic(run) if opcode in _CallComputation.opcodes else "INVALID"
            table[opcode] = _Dispatch(recorder_of, opcode, run, name)
        return table

    class TracedComputation(_CallComputation):
        def generate_child_computation(self, child_msg: MessageAPI) -> ComputationAPI:
            recorder = recorder_of()
            recorder.enter(child_msg, recorder.call_type)
            recorder.parent_paid(self.get_gas_remaining())
            child = super().generate_child_computation(child_msg)
            recorder.exit(child)
            return child

    TracedComputation.opcodes = cast(Any, opcodes())

    class TracedExecutor(_PrecheckedExecutor):
        def build_evm_message(self, transaction: SignedTransactionAPI) -> MessageAPI:
            recorder = recorder_of()
            recorder.touch(Address(transaction.sender))
            recorder.touch(Address(self.vm_state.coinbase))
            message = super().build_evm_message(transaction)
            recorder.touch(Address(message.storage_address))
            return message

        def build_computation(
            self, message: MessageAPI, transaction: SignedTransactionAPI
        ) -> ComputationAPI:
            recorder = recorder_of()
            recorder.enter(message, "CREATE" if message.is_create else "CALL")
            computation = super().build_computation(message, transaction)
            recorder.exit(computation)
            return computation

    class TracedState(_CallState):
        computation_class = TracedComputation
        transaction_executor_class = TracedExecutor

    return TracedState


class _Dispatch:
    """An opcode of the traced table: the real one, wrapped for the current recorder."""

    def __init__(
        self, recorder_of: Callable[[], _Recorder], opcode: int, run: Any, mnemonic: str
    ) -> None:
        self._recorder_of = recorder_of
        self._opcode = opcode
        self._run = run
        self.mnemonic = mnemonic

    def __call__(self, computation: Any) -> None:
        step = self._recorder_of().before(computation, self._opcode, self.mnemonic)
        if step is None:
            self._run(computation=computation)
            return
        try:
            self._run(computation=computation)
        except Revert:
            raise  # a revert is an outcome, not a fault of the step (geth prints no error)
        except VMError as exc:
            step["error"] = _error_text(exc)
            raise
        finally:
            # A call's cost was set when the callee started (it includes the gas handed over).
            if not step.get("priced"):
                step["gas_cost"] = step["gas"] - computation.get_gas_remaining()


class ReferenceTracer:
    """Tracer on py-evm: the same rules as PyEvmExecutor, with a recorder on every step."""

    def __init__(self) -> None:
        self._calls = PyEvmExecutor()
        # py-evm runs in the calling thread: each RPC worker thread traces with its own
        # recorder while the traced classes are shared.
        self._local = threading.local()
        self._state_class = _traced_state_class(self._current)

    def _current(self) -> _Recorder:
        recorder: _Recorder = self._local.recorder
        return recorder

    @contextmanager
    def _recording(self, recorder: _Recorder) -> Iterator[_Recorder]:
        self._local.recorder = recorder
        try:
            yield recorder
        finally:
            self._local.recorder = None

    def trace_call(
        self, pre_state: StateReader, block_env: BlockEnv, message: CallMessage,
        options: TraceOptions, deadline: Deadline | None = None,
    ) -> TxTrace:
        base_fee = block_env.base_fee_per_gas if message.gas_price else 0
        state, _ = _build_state(pre_state, block_env, base_fee, self._state_class)
        state.deadline = deadline
        tx, reason = self._calls.prepare_call(state, message, base_fee)
        if reason is not None:
            raise TransactionRejected(reason)
        with self._recording(_Recorder(options, state)) as recorder:
            executor = state.get_transaction_executor()
            computation = executor.build_computation(executor.build_evm_message(tx), tx)
        return recorder.trace(
            CancunVM.finalize_gas_used(tx, computation), not computation.is_success,
            computation.output,
        )

    def trace_transactions(
        self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction],
        options: TraceOptions, only: int | None = None, deadline: Deadline | None = None,
    ) -> list[TxTrace]:
        state, _ = _build_state(pre_state, block_env, block_env.base_fee_per_gas,
                                self._state_class)
        state.deadline = deadline
        traces: list[TxTrace] = []
        gas_used = 0
        spent = 0
        silent = TraceOptions()
        for index, tx in enumerate(txs[: None if only is None else only + 1]):
            evm_tx = self._calls.to_evm(tx)
            reason = _precheck(state, block_env, tx, block_env.gas_limit - gas_used,
                               evm_tx.intrinsic_gas)
            if reason is not None:
                raise InvalidInput(f"transaction {index} does not apply: {reason}")
            state.lock_changes()
            wanted = only is None or index == only
            with self._recording(_Recorder(options if wanted else silent, state)) as recorder:
                # The byte budget holds for the whole block, not for each transaction.
                recorder.recorded = spent
                try:
                    computation = state.apply_transaction(evm_tx)
                except ValidationError as exc:
                    raise InvalidInput(f"transaction {index} does not apply: {exc}") from exc
            tx_gas = CancunVM.finalize_gas_used(evm_tx, computation)
            gas_used += tx_gas
            if wanted:
                spent = recorder.recorded
                traces.append(recorder.trace(tx_gas, not computation.is_success,
                                             computation.output))
        return traces
