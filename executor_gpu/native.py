"""NativeExecutor: the C interpreter of ``kernels/`` on the CPU or on a CUDA GPU.

A batch runs in waves. Every pending transaction runs in parallel against the
committed state (the pre-state plus the transactions committed so far), recording
what it read. Then, in block order, a transaction is committed when nothing it read
was written by a transaction committed after it ran; the first one that fails this
check runs again in the next wave. Fee credits to the coinbase are not reads, so they
never conflict. The outcome equals running the transactions one by one.

Runs of plain results (included, no deployment, no deletion) commit together with array
operations; the others (rejections, fallbacks, deployments) one by one.

A transaction that needs state the host did not load goes on taking it as absent,
and ends with "needs key" naming every key it reached: the host loads them and runs
it again (a result computed on such state is never used). One the interpreter cannot
run (a wipe of an account's storage, memory beyond 2^36 bytes) goes to the reference
executor at its turn, counted in ``BatchResult.fallbacks``. The GPU build cannot call the
host's KZG library: a transaction it stops at the point evaluation precompile runs on the
CPU build, counted in ``NativeExecutor.host_runs`` (the CPU build is given the library when
its first point evaluation comes: loading the trusted setup takes seconds).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from operator import attrgetter, mul

import numpy as np
import numpy.typing as npt

from executor_gpu.api import Executor, StateReader
from executor_gpu.native_abi import ABI, value_at
from executor_gpu.native_build import NativeUnavailable, cpu_library, cuda_available, cuda_kernel
from executor_gpu.native_fallback import CommittedState
from executor_gpu.native_launch import (
    LARGE_CAPS,
    CpuDevice,
    CudaDevice,
    Device,
    DeviceTime,
    HostTime,
    Inputs,
    SlotCaps,
)
from executor_gpu.native_precompiles import kzg_verifier, precompile_error
from executor_gpu.native_prefetch import SlotPatterns
from executor_gpu.native_results import LaunchResults, SlotResult
from executor_gpu.native_state import NO_CODE, StateTables, int_address, word_bytes
from executor_gpu.native_tx import GAS_CAP, PackedTxs, pack_transactions
from executor_gpu.types import BatchResult, BlockEnv, ExecutedTx, RejectedTx
from primitives.blocks import Receipt
from primitives.collector import cycle_collector_paused
from primitives.errors import Halt
from primitives.transactions import Transaction
from primitives.types import Address

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
_WHY = {
    ABI["WHY_HUGE_MEMORY"]: "memory beyond 2^36 bytes",
    ABI["WHY_DELETE_WITH_STORAGE"]: "deletion of an account with storage",
}
_LOG = logging.getLogger(__name__)


def _refusal(tx: Transaction) -> str:
    """The error of a transaction whose precompile (its ``to``) refused the input."""
    assert tx.to is not None  # only a call's frame 0 can be a precompile's
    return precompile_error(int.from_bytes(tx.to, "big"), tx.data)

_TX_TYPE = attrgetter("tx_type")
_CODE_NEW = ABI["CODE_NEW"]
_POINT_EVALUATION = 0x0A
"""RS_WHY of a transaction stopped at the point evaluation by a build without the KZG library
(the GPU's, or the CPU's before its first one): the host's CPU build runs it."""
_NO_ROW = 2**64 - 1
_ENTRY_WORDS = {"nonce": ABI["E_NONCE"], "value": ABI["E_VALUE"], "code": ABI["E_CODE"], "orig": ABI["E_ORIG"]}


def _flag(entries: npt.NDArray[np.uint64], flag: str) -> npt.NDArray[np.bool_]:
    mask: npt.NDArray[np.bool_] = (entries[:, ABI["E_FLAGS"]] & np.uint64(ABI[flag])) != 0
    return mask


def _last_of_key(keys: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Where mask holds, the last entry of each key; False elsewhere."""
    chosen = np.flatnonzero(mask)
    _, from_end = np.unique(keys[chosen][::-1], return_index=True)
    last = np.zeros(len(keys), dtype=bool)
    last[chosen[len(chosen) - 1 - from_end]] = True
    return last


def _first(mask: npt.NDArray[np.bool_], owners: npt.NDArray[np.int64], default: int) -> int:
    """Smallest owner where mask holds, else ``default``."""
    return int(owners[mask].min()) if mask.any() else default


def _previous_of_sender(records: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """For each transaction (TX_* records), the index of the same sender's transaction before
    it, or -1."""
    n = len(records)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    senders = np.ascontiguousarray(records[:, ABI["TX_SENDER"] : ABI["TX_SENDER"] + 4]).view("V32").ravel()
    _, group = np.unique(senders, return_inverse=True)
    order = np.argsort(group, kind="stable")
    same = group[order[1:]] == group[order[:-1]]
    previous = np.full(n, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    return previous


CHAIN_SHARE = 16
"""A window where fewer than one in this many of the transactions not run yet may run (the
rest wait for the same sender's one before) runs in order: a sender's chain of 3,000
transfers took 3,000 launches (1.0-1.2 s on the 2-core box; in order: 21-94 ms)."""


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
        start = time.perf_counter()
        self.packed: PackedTxs = pack_transactions(txs, env, self.tables)
        executor.host_time.pack += time.perf_counter() - start - self.tables.load_seconds
        self.coinbase_row = self.tables.account_row(env.coinbase)
        # Each transaction's result, as the launch (in ``launches``; -1: none) and slot it ran in.
        self.launches: list[LaunchResults | None] = []
        self._held: list[tuple[int, int]] = []
        """Launches not let go of yet, as (their last transaction, their place), smallest first."""
        self.result_launch = np.full(len(txs), -1, dtype=np.int64)
        self.result_slot = np.zeros(len(txs), dtype=np.int64)
        # A transaction runs once the same sender's one before it is committed: it reads the
        # nonce and balance that one writes. Those that fail a static check never run.
        self.after = _previous_of_sender(self.packed.records)
        self.static_ok = self.packed.first_ok
        self.last_account_write = np.full(0, -1, dtype=np.int64)
        self.last_slot_write = np.full(0, -1, dtype=np.int64)
        self.committed = 0
        self.gas_used = 0
        self.executed: list[ExecutedTx] = []
        self.rejected: list[RejectedTx] = []
        self.fallbacks = 0

    # -- results ---------------------------------------------------------------

    def _keep(self, launch: LaunchResults, tx_ids: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]) -> None:
        """Takes slots ``slots`` of ``launch`` as the results of transactions ``tx_ids``."""
        self.result_launch[tx_ids] = len(self.launches)
        self.result_slot[tx_ids] = slots
        heapq.heappush(self._held, (int(tx_ids.max()) if len(tx_ids) else -1, len(self.launches)))
        self.launches.append(launch)

    def _result(self, k: int) -> SlotResult | None:
        """The result of transaction k, if it has one."""
        at = int(self.result_launch[k])
        launch = self.launches[at] if at >= 0 else None
        return None if launch is None else SlotResult(launch, int(self.result_slot[k]))

    def _release_launches(self) -> None:
        """Lets go of the launches whose transactions are all committed (a heap: a chain of
        thousands of rounds scanned every launch each round, quadratic)."""
        held = self._held
        while held and held[0][0] < self.committed:
            self.launches[heapq.heappop(held)[1]] = None

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

    def _load_expected(self, tx_ids: list[int]) -> None:
        """Loads the slots the functions ``tx_ids`` call are known to read (``SlotPatterns``):
        those run once. In a sequential launch each unloaded one would end the launch: one
        sender's 10,000 token transfers to new holders took 10,000 rounds."""
        self.tables.load_slots(self.executor.slot_patterns.slots(self.packed.records[tx_ids], self.packed.data))

    def _run(self, tx_ids: list[int], caps: SlotCaps, device: Device | None = None) -> None:
        """Runs ``tx_ids`` on ``device`` (default: the executor's)."""
        self._load_expected(tx_ids)
        # The keys transactions stop on are loaded after all launches, in one walk.
        given = (self.tables.accounts.count, self.tables.slots.count)
        needs = []
        owners = []
        retry: list[int] = []
        on_host: list[int] = []
        for start in range(0, len(tx_ids), self.executor.chunk):
            chunk = tx_ids[start : start + self.executor.chunk]
            launch = LaunchResults((device or self.executor.device).run(self._inputs(), chunk, caps), self.committed)
            status = launch.result[:, ABI["RS_STATUS"]]
            waiting = status == ABI["ST_NEEDS_KEY"]
            chunk_ids = np.asarray(chunk, dtype=np.int64)
            self.result_launch[chunk_ids[waiting]] = -1
            self._keep(launch, chunk_ids[~waiting], np.flatnonzero(~waiting))
            if waiting.any():
                entries, slots = launch.assumed(waiting)
                needs.append(entries)
                owners.append(chunk_ids[slots])
            if caps != LARGE_CAPS:
                retry += chunk_ids[status == ABI["ST_RESOURCE"]].tolist()
            if device is None:
                why = launch.result[:, ABI["RS_WHY"]]
                kzg = (status == ABI["ST_UNSUPPORTED"]) & (why == _POINT_EVALUATION)
                on_host += [chunk[slot] for slot in np.flatnonzero(kzg).tolist()]
        if needs:
            self._load_needed(np.concatenate(needs), np.concatenate(owners), given)
        if on_host:
            host = self.executor.host()
            if host is not self.executor.device:
                self.executor.host_runs["precompile 0x0a"] += len(on_host)
            self._run(on_host, caps, host)
        if retry:
            self._run(retry, LARGE_CAPS, device)

    def _run_in_order(self, tx_ids: list[int]) -> None:
        """Runs ``tx_ids``, every runnable transaction from the first uncommitted one on, in one
        sequential launch on the CPU build: a chain of transactions that each read what the one
        before wrote commits in one round, not one round each. The transaction it stopped at
        runs again as ``_run`` runs it (keys, larger buffers, the host); those after it wait."""
        tx_ids = tx_ids[: self.executor.chunk]
        self._load_expected(tx_ids)
        gas_left = min(self.env.gas_limit - self.gas_used, GAS_CAP - 1)
        compacted = self.executor.cpu().run_sequential(self._inputs(), tx_ids, self.executor.caps, gas_left)
        launch = LaunchResults(compacted, self.committed, in_order=tx_ids)
        status = launch.result[:, ABI["RS_STATUS"]]
        ran = int(np.count_nonzero(status != ABI["ST_SKIPPED"]))
        self._keep(launch, np.asarray(tx_ids[:ran], dtype=np.int64), np.arange(ran, dtype=np.int64))
        if ran and status[ran - 1] >= ABI["ST_CONTROL_FIRST"]:
            self.result_launch[tx_ids[ran - 1]] = -1
            self._run([tx_ids[ran - 1]], self.executor.caps)

    def _load_needed(
        self, needs: npt.NDArray[np.uint64], owners: npt.NDArray[np.int64], given: tuple[int, int]
    ) -> None:
        """Loads the keys transactions named (their entries taken as absent; ``owners``: the
        transaction that needs each), and learns from the slots; ``given`` are the table sizes
        they ran with."""
        at = ABI["E_ADDR"]
        addresses = word_bytes(needs[:, at : at + 4])[:, 12:]
        account = needs[:, ABI["E_KIND"]] == ABI["EK_ACCOUNT"]
        wanted = np.ascontiguousarray(addresses[account]).view("V20").ravel().tolist()
        self.tables.load_accounts(wanted)
        rows = self.tables.account_rows(wanted)
        at = ABI["E_KEY"]
        keys = np.concatenate([addresses[~account], word_bytes(needs[~account, at : at + 4])], axis=1)
        wanted_slots = keys.view("V52").ravel().tolist()
        self.tables.load_slots(wanted_slots)
        self.executor.slot_patterns.learn([self.txs[k] for k in owners[~account].tolist()], wanted_slots)
        # A transaction that asked for a key it was given would loop forever.
        for rows_of, known, keys_of in ((rows, given[0], wanted), (self.tables.slot_rows(wanted_slots), given[1], wanted_slots)):
            stale = np.flatnonzero(rows_of < known)
            if len(stale):
                raise Halt(f"native interpreter could not find a loaded key of 0x{keys_of[stale[0]][:20].hex()}")

    def run(self) -> BatchResult:
        n = len(self.txs)
        window = n
        stale = False
        while self.committed < n:
            end = min(n, self.committed + window)
            committed = self.committed
            before = self.committed
            if stale:
                # After a conflict, results past it may be stale too, and more conflicts tend
                # to follow (a chain of payments): run the window in order, each transaction
                # on the state the ones before it left.
                self._run_in_order((np.flatnonzero(self.static_ok[committed:end]) + committed).tolist())
            else:
                waiting = self.static_ok[committed:end] & (self.result_launch[committed:end] < 0)
                runnable = waiting & (self.after[committed:end] < committed)
                todo = (np.flatnonzero(runnable) + committed).tolist()
                if len(todo) * CHAIN_SHARE < np.count_nonzero(waiting):
                    # Mostly links of chains (one sender's transactions, each waiting for the
                    # one before): in order, in one launch, not one launch per link.
                    self._run_in_order((np.flatnonzero(self.static_ok[committed:end]) + committed).tolist())
                elif todo:
                    self._run(todo, self.executor.caps)
            start = time.perf_counter()
            stale = self._commit_ready()
            self._release_launches()
            self.executor.host_time.commit += time.perf_counter() - start
            done = self.committed - before
            # A conflict wastes the work run ahead of it: run fewer ahead until commits catch up.
            window = max(32, 2 * done) if stale else min(n, window * 2)
        start = time.perf_counter()
        diff = self.tables.diff()
        self.executor.host_time.diff += time.perf_counter() - start
        self.executor.host_time.load += self.tables.load_seconds
        return BatchResult(
            executed=tuple(self.executed),
            rejected=tuple(self.rejected),
            state_diff=diff,
            gas_used=self.gas_used,
            fallbacks=self.fallbacks,
        )

    # -- validation ------------------------------------------------------------

    def _grow_write_marks(self) -> None:
        for attr, count in (("last_account_write", self.tables.accounts.count),
                            ("last_slot_write", self.tables.slots.count)):
            marks = getattr(self, attr)
            if len(marks) < count:
                setattr(self, attr, np.concatenate([marks, np.full(count - len(marks) + 1024, -1, np.int64)]))

    def _stale_reads(self, entries: npt.NDArray[np.uint64], base: int) -> npt.NDArray[np.bool_]:
        """Entries read from rows written by a transaction committed at ``base`` or later."""
        self._grow_write_marks()
        loaded = _flag(entries, "EF_LOADED")
        rows = entries[:, ABI["E_ROW"]].astype(np.int64)
        kinds = entries[:, ABI["E_KIND"]]
        account = loaded & (kinds == ABI["EK_ACCOUNT"])
        slot = loaded & (kinds == ABI["EK_SLOT"])
        stale = np.zeros(len(entries), dtype=bool)
        stale[account] = self.last_account_write[rows[account]] >= base
        stale[slot] = self.last_slot_write[rows[slot]] >= base
        return stale

    def _valid(self, k: int) -> bool:
        """True when transaction k has a result and nothing it read changed since it ran."""
        result = self._result(k)
        if result is None:
            return False
        return result.base == self.committed or not self._stale_reads(result.entries, result.base).any()

    # -- commit ----------------------------------------------------------------

    def _commit_ready(self) -> bool:
        """Commits the results that are still valid, in order; True when it stopped at a stale one."""
        n = len(self.txs)
        while self.committed < n:
            k = self.committed
            reason = self.packed.reject_first[k]
            if reason is not None:
                self._reject(k, reason)
                self.committed += 1
                continue
            result = self._result(k)
            if result is None:
                return False
            if self._commit_run(k, result):
                continue
            if not self._valid(k):
                self.result_launch[k] = -1
                return True
            self._commit_one(k, result)
            self.result_launch[k] = -1
            self.committed += 1
        return False

    def _commit_run(self, k: int, head: SlotResult) -> int:
        """Commits, with array operations, the longest run of plain results from k (``head``
        its first) that neither read stale state nor conflict with each other (in a sequential
        launch, each read what the ones before it wrote); returns how many."""
        launch, first = head.launch, head.slot
        # The run: the transactions whose results are the launch's next slots, none rejected first.
        end = min(len(self.txs), k + len(launch.result) - first)
        same = (self.result_launch[k:end] == self.result_launch[k]) & self.static_ok[k:end]
        same &= self.result_slot[k:end] == np.arange(first, first + end - k)
        count = _first(~same, np.arange(end - k, dtype=np.int64), end - k)
        res = launch.result[first : first + count]
        status = res[:, ABI["RS_STATUS"]]
        stop = _first(
            (status >= ABI["ST_REJECT_FIRST"]) | (res[:, ABI["RS_NEW_CODE"]] != 0),
            np.arange(count, dtype=np.int64), count,
        )
        # Block gas: a transaction over what is left is rejected, one by one.
        gas = res[:, ABI["RS_GAS_USED"]].astype(np.int64)
        left = min(self.env.gas_limit - self.gas_used, GAS_CAP) - (np.cumsum(gas) - gas)
        limits = self.packed.gas_limits[k : k + count]
        stop = _first((limits > left) | (limits >= GAS_CAP), np.arange(count, dtype=np.int64), stop)
        if stop == 0:
            return 0
        entries = launch.entries[launch.entry_starts[first] : launch.entry_starts[first + stop]]
        owners = np.repeat(np.arange(stop, dtype=np.int64), res[:stop, ABI["RS_N_ENTRIES"]].astype(np.int64))
        stop = min(stop, _first(self._stale_reads(entries, head.base), owners, stop))
        rows = entries[:, ABI["E_ROW"]].astype(np.int64)
        kinds = entries[:, ABI["E_KIND"]]
        known = _flag(entries, "EF_KNOWN")
        account = known & (kinds == ABI["EK_ACCOUNT"])
        slot = known & (kinds == ABI["EK_SLOT"])
        stop = min(stop, _first(slot & (entries[:, ABI["E_ROW"]] == np.uint64(_NO_ROW)), owners, stop))
        slot &= entries[:, ABI["E_ROW"]] != np.uint64(_NO_ROW)
        changed = np.zeros(len(entries), dtype=bool)
        table = self.tables.accounts.data[rows[account]]
        values = entries[account]
        exists = _flag(values, "EF_EXISTS")
        changed[account] = (
            (values[:, ABI["E_NONCE"]] != table[:, ABI["ACC_NONCE"]])
            | (values[:, ABI["E_VALUE"] : ABI["E_VALUE"] + 4] != table[:, ABI["ACC_BALANCE"] : ABI["ACC_BALANCE"] + 4]).any(axis=1)
            | (values[:, ABI["E_CODE"]] != table[:, ABI["ACC_CODE"]])
            | (exists != ((table[:, ABI["ACC_FLAGS"]] & np.uint64(ABI["AF_EXISTS"])) != 0))
        )
        # A deletion also drops storage: committed one by one.
        deleted = np.zeros(len(entries), dtype=bool)
        deleted[account] = changed[account] & ~exists
        stop = min(stop, _first(deleted, owners, stop))
        changed[slot] = (
            entries[slot, ABI["E_VALUE"] : ABI["E_VALUE"] + 4]
            != self.tables.slots.data[rows[slot], ABI["SL_VALUE"] : ABI["SL_VALUE"] + 4]
        ).any(axis=1)
        keys = rows * 2 + (kinds == ABI["EK_SLOT"])
        in_order = launch.in_order is not None
        stop = min(stop, self._first_conflict(entries, owners, keys, changed, stop, in_order))
        if stop == 0:
            return 0
        mine = owners < stop
        if in_order:
            # An entry holds its row's value after its own transaction, which ran on what the
            # ones before it left: the row's last entry in the run holds its final value.
            changed &= _last_of_key(keys, mine & (account | slot))
        self._grow_write_marks()
        write = mine & changed & account
        self.tables.commit_accounts(rows[write], entries[write], _ENTRY_WORDS)
        self.last_account_write[rows[write]] = k + owners[write]
        write = mine & changed & slot
        self.tables.commit_slots(rows[write], entries[write, ABI["E_VALUE"] : ABI["E_VALUE"] + 4])
        self.last_slot_write[rows[write]] = k + owners[write]
        self._credit_coinbase(k + stop - 1, sum(map(mul, gas[:stop].tolist(), self.packed.tips[k : k + stop])))
        self._executed(k, launch, first, stop)
        self.result_launch[k : k + stop] = -1
        self.committed += stop
        return stop

    def _first_conflict(
        self, entries: npt.NDArray[np.uint64], owners: npt.NDArray[np.int64], keys: npt.NDArray[np.int64],
        changed: npt.NDArray[np.bool_], stop: int, in_order: bool,
    ) -> int:
        """First transaction of a run that read a row an earlier one of the run changes (the
        coinbase counts as changed by every transaction: it is paid fees, which the run's
        commit adds up); in a sequential launch, only the coinbase counts."""
        loaded = _flag(entries, "EF_LOADED")
        read_keys = keys[loaded]
        readers = owners[loaded]
        coinbase = (read_keys == self.coinbase_row * 2) & (readers > 0)
        if in_order:
            return _first(coinbase, readers, stop)
        written_keys = keys[changed]
        writers = owners[changed]
        order = np.lexsort((writers, written_keys))
        written_keys, writers = written_keys[order], writers[order]
        firsts = np.ones(len(written_keys), dtype=bool)
        firsts[1:] = written_keys[1:] != written_keys[:-1]
        written_keys, writers = written_keys[firsts], writers[firsts]
        at = np.minimum(np.searchsorted(written_keys, read_keys), max(len(written_keys) - 1, 0))
        conflict = np.zeros(len(read_keys), dtype=bool)
        if len(written_keys):
            conflict = (written_keys[at] == read_keys) & (writers[at] < readers)
        return _first(conflict | coinbase, readers, stop)

    def _commit_one(self, k: int, result: SlotResult) -> None:
        reason = self._rejection(k, result.status)
        if reason is not None:
            self._reject(k, reason)
        elif result.status in (ABI["ST_UNSUPPORTED"], ABI["ST_RESOURCE"]):
            self._fall_back(k, result)
        else:
            self._apply(k, result)
            gas = result.field("RS_GAS_USED")
            self._credit_coinbase(k, gas * self.packed.tips[k])
            self._executed(k, result.launch, result.slot, 1)

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

    def _executed(self, k: int, launch: LaunchResults, first: int, count: int) -> None:
        """Records transactions k to k + count as included: their results are slots ``first``
        to ``first + count`` of ``launch``."""
        res = launch.result[first : first + count]
        gas = res[:, ABI["RS_GAS_USED"]].tolist()
        cumulative = list(accumulate(gas, initial=self.gas_used))
        self.gas_used = cumulative[-1]
        txs = self.txs[k : k + count]
        status = res[:, ABI["RS_STATUS"]]
        # Errors and contract addresses where there are any: most transactions succeed and call.
        errors: list[str | None] = [None] * count
        for i in np.flatnonzero(status != ABI["ST_SUCCESS"]).tolist():
            errors[i] = _refusal(txs[i]) if status[i] == ABI["ST_PRECOMPILE_FAILURE"] else _ERRORS.get(int(status[i]))
        created: list[Address | None] = [None] * count
        creates = (self.packed.records[k : k + count, ABI["TX_FLAGS"]] & np.uint64(ABI["TXF_CREATE"])) != 0
        for i in np.flatnonzero(creates).tolist():
            created[i] = Address(word_bytes(res[i : i + 1, ABI["RS_CREATED"] : ABI["RS_CREATED"] + 4])[0, 12:].tobytes())
        receipts = map(Receipt, map(_TX_TYPE, txs), (status == ABI["ST_SUCCESS"]).tolist(), cumulative[1:],
                       launch.receipt_logs(first, count))
        self.executed += map(ExecutedTx, txs, receipts, gas, self.packed.prices[k : k + count], created, errors)

    def _apply(self, k: int, result: SlotResult) -> None:
        """Commits the final values of the state a transaction touched, entry by entry."""
        self._grow_write_marks()
        entries = result.entries.tolist()
        gone: set[int] = set()
        for e in entries:
            if e[ABI["E_KIND"]] != ABI["EK_ACCOUNT"] or not e[ABI["E_FLAGS"]] & ABI["EF_KNOWN"]:
                continue
            row = e[ABI["E_ROW"]]
            exists = bool(e[ABI["E_FLAGS"]] & ABI["EF_EXISTS"])
            if not exists:
                gone.add(value_at(e, ABI["E_ADDR"]))
            code_ref = e[ABI["E_CODE"]]
            if _CODE_NEW <= code_ref != NO_CODE:
                offset = code_ref - _CODE_NEW
                length = int.from_bytes(result.new_code[offset : offset + 8], "little")
                code_ref = self.tables.code_row(result.new_code[offset + 8 : offset + 8 + length])
            values = (e[ABI["E_NONCE"]], value_at(e, ABI["E_VALUE"]), code_ref, exists)
            if values != self.tables.account(row):
                code_hash = value_at(e, ABI["E_ORIG"]).to_bytes(32, "big")
                self.tables.write_account(row, values[0], values[1], code_ref, code_hash, exists)
                self.last_account_write[row] = k
        for e in entries:
            if e[ABI["E_KIND"]] != ABI["EK_SLOT"] or not e[ABI["E_FLAGS"]] & ABI["EF_KNOWN"]:
                continue
            address = value_at(e, ABI["E_ADDR"])
            if address in gone:  # storage of a contract created and destroyed by this transaction
                continue
            value = value_at(e, ABI["E_VALUE"])
            row = e[ABI["E_ROW"]]
            if row == _NO_ROW:
                row = self.tables.slot_row(int_address(address), value_at(e, ABI["E_KEY"]))
                self._grow_write_marks()
            if value != self.tables.slot_value(row):
                self.tables.write_slot(row, value)
                self.last_slot_write[row] = k

    def _credit_coinbase(self, k: int, fee: int) -> None:
        """The fees, then EIP-161: the coinbase counts as touched by every transaction."""
        row = self.coinbase_row
        nonce, balance, code, exists = self.tables.account(row)
        balance += fee
        if exists or fee:
            empty = nonce == 0 and balance == 0 and code == NO_CODE
            self.tables.write_account(row, nonce, balance, code, self.tables.code_hash(row), not empty)
        self._grow_write_marks()
        self.last_account_write[row] = k

    def _fall_back(self, k: int, result: SlotResult) -> None:
        """Runs transaction k on the reference executor against the committed state."""
        self.fallbacks += 1
        why = result.field("RS_WHY")
        reason = _WHY.get(why, f"precompile 0x{why:02x}" if why else "slot buffers too small")
        self.executor.fallback_reasons[reason] += 1
        _LOG.debug("transaction %d runs on the reference executor: %s", k, reason)
        view = CommittedState(self.pre_state, self.tables.diff())
        outcome = self.executor.reference.execute(view, self.env, [self.txs[k]])
        if outcome.rejected:
            self._reject(k, outcome.rejected[0].reason)
            return
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
        self, device: str = "cpu", *, workers: int = 1, caps: SlotCaps | None = None,
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
        self.caps = caps or SlotCaps()
        self.chunk = chunk or (4096 if device == "cpu" else 65536)
        """Transactions per launch: bounds the memory of per-slot buffers."""
        if reference is None:
            from executor_gpu.reference import PyEvmExecutor

            reference = PyEvmExecutor()
        self.reference: Executor = reference
        self.fallback_reasons: Counter[str] = Counter()
        """Transactions handed to the reference executor, by reason, since this executor was made."""
        self.host_runs: Counter[str] = Counter()
        """Runs of transactions on the host's CPU build instead of the device (the GPU build's
        point evaluations), since this executor was made (a wave may run one again)."""
        self._cpu: CpuDevice | None = None
        self.host_time = HostTime()
        """Where the host's time went since it was last reset (the device's is ``device.time``)."""
        self.slot_patterns = SlotPatterns(cpu_library())
        """Which slots its contracts' functions read, learned from the blocks it ran."""

    def cpu(self) -> CpuDevice:
        """The CPU build: the executor's own device when that is it (sequential launches and
        point evaluations run there)."""
        if self._cpu is None:
            own = self.device
            self._cpu = own if isinstance(own, CpuDevice) else CpuDevice(cpu_library())
        return self._cpu

    def host(self) -> CpuDevice:
        """The device that runs point evaluations: the CPU build given c-kzg-4844 and the
        trusted setup, loaded on first use (seconds: most processes never need it). The GPU
        build cannot call the host."""
        host = self.cpu()
        if host.kzg == (0, 0):
            host.kzg = kzg_verifier()
        return host

    def execute(self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]) -> BatchResult:
        """Run ``txs`` in order on ``pre_state``; the result equals the reference executor's."""
        with cycle_collector_paused():
            return _Batch(self, pre_state, block_env, txs).run()

    def interpreter_time(self, pre_state: StateReader, block_env: BlockEnv, txs: Sequence[Transaction]) -> DeviceTime:
        """Device time of running every transaction on ``pre_state`` once more, with all the
        state it reads already loaded: the interpreter's own pace, for benchmarks."""
        batch = _Batch(self, pre_state, block_env, txs)
        todo = list(range(len(txs)))
        while todo:
            batch._run(todo, self.caps)
            todo = [k for k in todo if batch.result_launch[k] < 0]
        kept, self.device.time = self.device.time, DeviceTime()
        try:
            inputs = batch._inputs()
            for start in range(0, len(txs), self.chunk):
                self.device.run(inputs, list(range(start, min(len(txs), start + self.chunk))), self.caps)
            return self.device.time
        finally:
            self.device.time = kept
