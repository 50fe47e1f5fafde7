"""NativeExecutor: the C interpreter of ``kernels/`` on the CPU or on a CUDA GPU.

A batch runs in waves. Every pending transaction runs in parallel against the
committed state (the pre-state plus the transactions committed so far), recording
what it read. Then, in block order, a transaction is committed when nothing it read
was written by a transaction committed after it ran; the first one that fails this
check runs again in the next wave. Fee credits to the coinbase are not reads, so they
never conflict. The outcome equals running the transactions one by one.

A transaction that needs state the host did not load stops with "needs key": the
host loads it and runs it again. One the interpreter cannot run (a precompile other
than identity, storage wipes) goes to the reference executor at its turn, counted in
``BatchResult.fallbacks``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from executor_gpu.api import Executor, StateReader
from executor_gpu.native_abi import ABI, from_words, words
from executor_gpu.native_build import NativeUnavailable, cpu_library, cuda_available, cuda_kernel
from executor_gpu.native_fallback import CommittedState
from executor_gpu.native_launch import (
    LARGE_CAPS, CpuDevice, CudaDevice, Device, DeviceTime, Inputs, Outputs, SlotCaps,
)
from executor_gpu.native_state import NO_CODE, StateTables, address_int, int_address
from executor_gpu.native_tx import PackedTxs, pack_transactions
from executor_gpu.types import BatchResult, BlockEnv, ExecutedTx, RejectedTx
from primitives.blocks import Log, Receipt
from primitives.transactions import Transaction
from primitives.errors import Halt
from primitives.types import Hash32

# go-ethereum's messages for failed executions, as the reference reports them.
_ERRORS = {
    ABI["ST_REVERT"]: "execution reverted",
    ABI["ST_OUT_OF_GAS"]: "out of gas",
    ABI["ST_STACK_UNDERFLOW"]: "stack underflow",
    ABI["ST_STACK_OVERFLOW"]: "stack limit reached 1024",
    ABI["ST_BAD_JUMP"]: "invalid jump destination",
    ABI["ST_INVALID_OPCODE"]: "invalid opcode",
    ABI["ST_STATIC_WRITE"]: "write protection",
    ABI["ST_RETURNDATA_OOB"]: "return data out of bounds",
    ABI["ST_CREATE_COLLISION"]: "contract address collision",
    ABI["ST_CODE_EF"]: "invalid code: must not begin with 0xef",
}

_LOG = logging.getLogger(__name__)
_WHY = {ABI["WHY_HUGE_MEMORY"]: "memory beyond 2^36 bytes", ABI["WHY_CREATE_OVER_STORAGE"]:
        "creation over existing storage", ABI["WHY_DELETE_WITH_STORAGE"]: "deletion of an account with storage"}

_E = {name: ABI[name] for name in ABI if name.startswith(("E_", "EF_", "EK_", "LG_", "RS_"))}
_CODE_NEW = ABI["CODE_NEW"]


@dataclass
class _Slot:
    """A transaction's outcome from the interpreter, valid while what it read is unchanged."""

    status: int
    base: int
    """Transactions committed when it ran: its reads are of that state."""
    result: npt.NDArray[np.uint64]
    """Its RS_* record."""
    entries: npt.NDArray[np.uint64]
    """The accounts and slots it touched (E_* records)."""
    logs: npt.NDArray[np.uint64]
    log_data: bytes
    new_code: bytes

    @classmethod
    def take(cls, launch: Outputs, slot: int, base: int) -> _Slot:
        """Copies what the host needs out of a launch's buffers, so they can be freed."""
        res = launch.result[slot].copy()
        return cls(
            status=int(res[_E["RS_STATUS"]]),
            base=base,
            result=res,
            entries=launch.entries[slot, : int(res[_E["RS_N_ENTRIES"]])].copy(),
            logs=launch.logs[slot, : int(res[_E["RS_N_LOGS"]])].copy(),
            log_data=launch.log_data[slot, : int(res[_E["RS_LOG_DATA"]])].tobytes(),
            new_code=launch.new_code[slot, : int(res[_E["RS_NEW_CODE"]])].tobytes(),
        )

    def word(self, name: str) -> int:
        """The 256-bit field ``name`` of the result."""
        return from_words(self.result[_E[name] : _E[name] + 4])


class _Batch:
    """One call of ``execute``: the wave loop and the commit of results in block order."""

    def __init__(
        self, executor: NativeExecutor, pre_state: StateReader, env: BlockEnv, txs: Sequence[Transaction]
    ) -> None:
        self.executor = executor
        self.pre_state = pre_state
        self.env = env
        self.txs = txs
        self.tables = StateTables(pre_state, cpu_library())
        self.packed: PackedTxs = pack_transactions(txs, env, self.tables)
        self.coinbase_row = self.tables.account_row(env.coinbase)
        self.results: list[_Slot | None] = [None] * len(txs)
        self.last_account_write = np.full(0, -1, dtype=np.int64)
        self.last_slot_write = np.full(0, -1, dtype=np.int64)
        self.committed = 0
        self.gas_used = 0
        self.executed: list[ExecutedTx] = []
        self.rejected: list[RejectedTx] = []
        self.fallbacks = 0

    # -- running ---------------------------------------------------------------

    def _inputs(self) -> Inputs:
        account_index, slot_index = self.tables.prepare()
        t = self.tables
        return Inputs(
            txs=self.packed.records, tx_data=self.packed.data, access=self.packed.access,
            env=self.packed.env, accounts=t.accounts.used, account_index=account_index,
            slots=t.slots.used, slot_index=slot_index, codes=t.codes.used,
            code_bytes=t.code_bytes.data, jumpdests=t.jumpdests.data,
        )

    def _run(self, tx_ids: list[int], caps: SlotCaps) -> None:
        for start in range(0, len(tx_ids), self.executor.chunk):
            chunk = tx_ids[start : start + self.executor.chunk]
            given = (self.tables.accounts.count, self.tables.slots.count)
            launch = self.executor.device.run(self._inputs(), chunk, caps)
            retry = []
            for slot, k in enumerate(chunk):
                result = _Slot.take(launch, slot, self.committed)
                self.results[k] = result
                if result.status == ABI["ST_NEEDS_KEY"]:
                    self._load_needed(result, given)
                elif result.status == ABI["ST_RESOURCE"] and caps != LARGE_CAPS:
                    retry.append(k)
            if retry:
                self._run(retry, LARGE_CAPS)

    def _load_needed(self, result: _Slot, given: tuple[int, int]) -> None:
        """Loads the key a transaction stopped on; ``given`` are the table sizes it ran with."""
        address = int_address(result.word("RS_NEED_ADDR"))
        if result.result[_E["RS_NEED_KIND"]] == _E["EK_ACCOUNT"]:
            row, known = self.tables.account_row(address), given[0]
        else:
            row, known = self.tables.slot_row(address, result.word("RS_NEED_KEY")), given[1]
        if row < known:
            # It asked for a key it was given: rerunning would loop forever.
            raise Halt(f"native interpreter could not find a loaded key of 0x{address.hex()}")

    def run(self) -> BatchResult:
        n = len(self.txs)
        window = n
        while self.committed < n:
            end = min(n, self.committed + window)
            todo = [k for k in range(self.committed, end) if self.packed.reject_first[k] is None
                    and not self._valid(k)]
            before = self.committed
            if todo:
                self._run(todo, self.executor.caps)
            stale = self._commit_ready()
            done = self.committed - before
            # A conflict wastes the work run ahead of it: run fewer ahead until commits catch up.
            window = max(32, 2 * done) if stale else min(n, window * 2)
        return BatchResult(
            executed=tuple(self.executed),
            rejected=tuple(self.rejected),
            state_diff=self.tables.diff(),
            gas_used=self.gas_used,
            fallbacks=self.fallbacks,
        )

    # -- validation and commit ----------------------------------------------------

    def _grow_write_marks(self) -> None:
        for attr, count in (("last_account_write", self.tables.accounts.count),
                            ("last_slot_write", self.tables.slots.count)):
            marks = getattr(self, attr)
            if len(marks) < count:
                setattr(self, attr, np.concatenate([marks, np.full(count - len(marks) + 1024, -1, np.int64)]))

    def _valid(self, k: int) -> bool:
        """True when transaction k has a result and nothing it read changed since it ran."""
        result = self.results[k]
        if result is None or result.status == ABI["ST_NEEDS_KEY"]:
            return False
        if result.base == self.committed:
            return True
        self._grow_write_marks()
        entries = result.entries
        loaded = (entries[:, _E["E_FLAGS"]] & np.uint64(_E["EF_LOADED"])) != 0
        rows = entries[loaded, _E["E_ROW"]].astype(np.int64)
        kinds = entries[loaded, _E["E_KIND"]]
        account_rows = rows[kinds == _E["EK_ACCOUNT"]]
        slot_rows = rows[kinds == _E["EK_SLOT"]]
        base = result.base
        return not ((self.last_account_write[account_rows] >= base).any()
                    or (self.last_slot_write[slot_rows] >= base).any())

    def _commit_ready(self) -> bool:
        """Commits the results that are still valid, in order; True when it stopped at a stale one."""
        while self.committed < len(self.txs):
            k = self.committed
            reason = self.packed.reject_first[k]
            if reason is not None:
                self.rejected.append(RejectedTx(index=k, tx=self.txs[k], reason=reason))
            elif not self._valid(k):
                result = self.results[k]
                self.results[k] = None
                return result is not None and result.status != ABI["ST_NEEDS_KEY"]
            else:
                result = self.results[k]
                assert result is not None
                self._commit(k, result)
            self.results[k] = None
            self.committed += 1
        return False

    def _reject(self, k: int, reason: str) -> None:
        self.rejected.append(RejectedTx(index=k, tx=self.txs[k], reason=reason))

    def _rejection(self, k: int, status: int) -> str | None:
        """Why transaction k is not included, checked in go-ethereum's order; None when it is."""
        tx = self.txs[k]
        sender = "0x" + tx.sender.hex()
        nonce, balance, _, _ = self.tables.account(self.tables.account_row(tx.sender))
        gas_left = self.env.gas_limit - self.gas_used
        if status == ABI["ST_NONCE_TOO_HIGH"]:
            return f"nonce too high: address {sender}, tx: {tx.nonce} state: {nonce}"
        if status == ABI["ST_NONCE_TOO_LOW"]:
            return f"nonce too low: address {sender}, tx: {tx.nonce} state: {nonce}"
        if status == ABI["ST_NONCE_MAX"]:
            return f"nonce has max value: address {sender}, nonce: {nonce}"
        if status == ABI["ST_SENDER_NOT_EOA"]:
            return f"sender not an eoa: address {sender}"
        if status == ABI["ST_STATIC_REJECT"] and self.packed.reject_early[k] is not None:
            return self.packed.reject_early[k]
        if status == ABI["ST_INSUFFICIENT_FUNDS"]:
            return (
                f"insufficient funds for gas * price + value: address {sender} "
                f"have {balance} want {tx.upfront_cost}"
            )
        if tx.gas_limit > gas_left:
            return f"gas limit reached: have {gas_left}, want {tx.gas_limit}"
        if status == ABI["ST_STATIC_REJECT"]:
            return self.packed.reject_late[k]
        return None

    def _commit(self, k: int, result: _Slot) -> None:
        reason = self._rejection(k, result.status)
        if reason is not None:
            self._reject(k, reason)
        elif result.status in (ABI["ST_UNSUPPORTED"], ABI["ST_RESOURCE"]):
            self._fall_back(k, result)
        else:
            self._include(k, result)

    def _include(self, k: int, result: _Slot) -> None:
        tx = self.txs[k]
        self._apply(k, result)
        gas = int(result.result[_E["RS_GAS_USED"]])
        self._credit_coinbase(k, gas * tx.effective_tip(self.env.base_fee_per_gas))
        self.gas_used += gas
        self.executed.append(
            ExecutedTx(
                tx=tx,
                receipt=Receipt(
                    tx_type=tx.tx_type,
                    succeeded=result.status == ABI["ST_SUCCESS"],
                    cumulative_gas_used=self.gas_used,
                    logs=self._logs(result),
                ),
                gas_used=gas,
                effective_gas_price=tx.effective_gas_price(self.env.base_fee_per_gas),
                contract_address=int_address(result.word("RS_CREATED")) if tx.is_create else None,
                error=_ERRORS.get(result.status),
            )
        )

    def _apply(self, k: int, result: _Slot) -> None:
        """Commits the final values of the state a transaction touched."""
        self._grow_write_marks()
        entries = result.entries
        gone: set[int] = set()
        for e in entries:
            if int(e[_E["E_KIND"]]) != _E["EK_ACCOUNT"] or not int(e[_E["E_FLAGS"]]) & _E["EF_KNOWN"]:
                continue
            row = int(e[_E["E_ROW"]])
            flags = int(e[_E["E_FLAGS"]])
            exists = bool(flags & _E["EF_EXISTS"])
            if not exists:
                gone.add(from_words(e[_E["E_ADDR"] : _E["E_ADDR"] + 4]))
            code_ref = int(e[_E["E_CODE"]])
            if _CODE_NEW <= code_ref != NO_CODE:
                offset = code_ref - _CODE_NEW
                length = int.from_bytes(result.new_code[offset : offset + 8], "little")
                code_ref = self.tables.code_row(result.new_code[offset + 8 : offset + 8 + length])
            values = (int(e[_E["E_NONCE"]]), from_words(e[_E["E_VALUE"] : _E["E_VALUE"] + 4]), code_ref, exists)
            if values != self.tables.account(row):
                code_hash = from_words(e[_E["E_ORIG"] : _E["E_ORIG"] + 4]).to_bytes(32, "big")
                self.tables.write_account(row, values[0], values[1], code_ref, code_hash, exists)
                self.last_account_write[row] = k
        for e in entries:
            if int(e[_E["E_KIND"]]) != _E["EK_SLOT"] or not int(e[_E["E_FLAGS"]]) & _E["EF_KNOWN"]:
                continue
            address = from_words(e[_E["E_ADDR"] : _E["E_ADDR"] + 4])
            if address in gone:  # storage of a contract created and destroyed by this transaction
                continue
            value = from_words(e[_E["E_VALUE"] : _E["E_VALUE"] + 4])
            row = int(e[_E["E_ROW"]])
            if row == 2**64 - 1:
                row = self.tables.slot_row(int_address(address), from_words(e[_E["E_KEY"] : _E["E_KEY"] + 4]))
                self._grow_write_marks()
            if value != self.tables.slot_value(row):
                self.tables.write_slot(row, value)
                self.last_slot_write[row] = k

    def _credit_coinbase(self, k: int, fee: int) -> None:
        """The fee, then EIP-161: the coinbase counts as touched by every transaction."""
        row = self.coinbase_row
        nonce, balance, code, exists = self.tables.account(row)
        balance += fee
        if exists or fee:
            empty = nonce == 0 and balance == 0 and code == NO_CODE
            self.tables.write_account(row, nonce, balance, code, self.tables.code_hash(row), not empty)
        self.last_account_write[row] = k

    def _logs(self, result: _Slot) -> tuple[Log, ...]:
        logs = []
        for lg in result.logs:
            topics = tuple(
                Hash32(from_words(lg[_E["LG_TOPICS"] + 4 * i : _E["LG_TOPICS"] + 4 * i + 4]).to_bytes(32, "big"))
                for i in range(int(lg[_E["LG_N_TOPICS"]]))
            )
            start = int(lg[_E["LG_DATA_OFF"]])
            logs.append(Log(
                address=int_address(from_words(lg[_E["LG_ADDR"] : _E["LG_ADDR"] + 4])),
                topics=topics,
                data=result.log_data[start : start + int(lg[_E["LG_DATA_LEN"]])],
            ))
        return tuple(logs)

    def _fall_back(self, k: int, result: _Slot) -> None:
        """Runs transaction k on the reference executor against the committed state."""
        self.fallbacks += 1
        why = int(result.result[_E["RS_WHY"]])
        reason = _WHY.get(why, f"precompile 0x{why:02x}" if why else "slot buffers too small")
        self.executor.fallback_reasons[reason] += 1
        _LOG.debug("transaction %d runs on the reference executor: %s", k, reason)
        view = CommittedState(self.pre_state, self.tables.diff())
        outcome = self.executor.reference.execute(view, self.env, [self.txs[k]])
        if outcome.rejected:
            self._reject(k, outcome.rejected[0].reason)
            return
        self._grow_write_marks()
        for row_kind, row in CommittedState.apply(outcome.state_diff, self.tables):
            self._grow_write_marks()
            marks = self.last_account_write if row_kind == "account" else self.last_slot_write
            marks[row] = k
        executed = outcome.executed[0]
        self.gas_used += executed.gas_used
        self.executed.append(
            ExecutedTx(
                tx=executed.tx,
                receipt=Receipt(
                    tx_type=executed.receipt.tx_type,
                    succeeded=executed.receipt.succeeded,
                    cumulative_gas_used=self.gas_used,
                    logs=executed.receipt.logs,
                ),
                gas_used=executed.gas_used,
                effective_gas_price=executed.effective_gas_price,
                contract_address=executed.contract_address,
                error=executed.error,
            )
        )


class NativeExecutor:
    """Executor running the native interpreter on ``device``: "cpu", "cuda", or "auto" (CUDA
    when CuPy finds a working GPU, else the CPU)."""

    def __init__(
        self, device: str = "cpu", *, workers: int = 1, caps: SlotCaps = SlotCaps(),
        chunk: int | None = None, reference: Executor | None = None,
    ) -> None:
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        if device == "cpu":
            self.device: Device = CpuDevice(cpu_library(), workers)
        elif device == "cuda":
            self.device = CudaDevice(cuda_kernel())
        else:
            raise NativeUnavailable(f"unknown device {device!r}: use cpu or cuda")
        self.name = f"native-{device}"
        self.caps = caps
        self.chunk = chunk or (4096 if device == "cpu" else 65536)
        """Transactions per launch: bounds the memory of per-slot buffers."""
        if reference is None:
            from executor_gpu.reference import PyEvmExecutor

            reference = PyEvmExecutor()
        self.reference: Executor = reference
        self.fallback_reasons: Counter[str] = Counter()
        """Transactions handed to the reference executor, by reason, since this executor was made."""

    def execute(self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]) -> BatchResult:
        """Run ``txs`` in order on ``pre_state``; the result equals the reference executor's."""
        return _Batch(self, pre_state, block_env, txs).run()

    def interpreter_time(self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]) -> DeviceTime:
        """Device time of one launch running every transaction on ``pre_state`` with all the
        state it reads already loaded: the interpreter's own pace, for benchmarks."""
        batch = _Batch(self, pre_state, block_env, txs)
        todo = list(range(len(txs)))
        while todo:
            batch._run(todo, self.caps)
            todo = [k for k in todo if (r := batch.results[k]) is None or r.status == ABI["ST_NEEDS_KEY"]]
        kept, self.device.time = self.device.time, DeviceTime()
        try:
            self.device.run(batch._inputs(), list(range(len(txs))), self.caps)
            return self.device.time
        finally:
            self.device.time = kept
