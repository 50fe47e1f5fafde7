"""One run of the interpreter over a set of transactions: the flat arrays and the devices.

A launch packs the descriptor of ``kernels/evm_abi.h``: the transactions, the state
tables, and per-slot buffers whose sizes ``SlotCaps`` fixes. The CPU device runs the
slots in worker threads (ctypes releases the GIL); the CUDA device copies the arrays
to the GPU and runs one thread per slot.
"""

from __future__ import annotations

import ctypes
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from executor_gpu.native_abi import ABI
from executor_gpu.native_state import Index

U64Array = npt.NDArray[np.uint64]
U8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SlotCaps:
    """Buffer sizes of one slot; a transaction that outgrows one runs again with ``LARGE_CAPS``."""

    entries: int = 64
    """Accounts and slots a transaction may touch (a power of two)."""
    journal: int = 256
    """State changes a transaction may undo."""
    stack: int = 2048
    """Stack words shared by all call frames."""
    memory: int = 1 << 16
    """Memory bytes shared by all call frames."""
    return_data: int = 1 << 14
    """Bytes of the last call's return data."""
    frames: int = 16
    """Call depth (the transaction's frame included)."""
    logs: int = 16
    """Logs a transaction may emit."""
    log_data: int = 1 << 10
    """Bytes of log data."""
    output: int = 1 << 10
    """Bytes of the transaction's return data."""
    new_code: int = 1 << 12
    """Bytes of code deployed by the transaction (with jumpdest bitmaps)."""


LARGE_CAPS = SlotCaps(
    entries=1 << 20, journal=1 << 21, stack=1 << 20, memory=1 << 31, return_data=1 << 24,
    frames=1100, logs=1 << 14, log_data=1 << 24, output=1 << 24, new_code=1 << 27,
)
"""Caps for a transaction re-run alone: more than any block's gas can use up, in practice."""


@dataclass
class Inputs:
    """Everything a launch reads: the batch's transactions, the block and the state tables."""

    txs: U64Array
    """Transaction records, TX_WORDS each."""
    tx_data: U8Array
    """Call data and init code of all transactions."""
    access: U64Array
    """Access list records, AL_WORDS each."""
    env: U64Array
    """The block environment, ENV_WORDS."""
    accounts: U64Array
    account_index: Index
    slots: U64Array
    slot_index: Index
    codes: U64Array
    code_bytes: U8Array
    jumpdests: U8Array


@dataclass
class Outputs:
    """Per-slot results of a launch, on the host."""

    result: U64Array
    """(slots, RS_WORDS)."""
    entries: U64Array
    """(slots, caps.entries, E_WORDS)."""
    logs: U64Array
    """(slots, caps.logs, LG_WORDS)."""
    log_data: U8Array
    """(slots, caps.log_data)."""
    output: U8Array
    """(slots, caps.output)."""
    new_code: U8Array
    """(slots, caps.new_code)."""


@dataclass
class Compacted:
    """The parts of a launch's per-slot buffers in use, on the host: each kind of record of all
    slots concatenated, with where each slot's start (``*_starts``, n + 1 entries)."""

    result: U64Array
    """(n, RS_WORDS) result records."""
    entries: U64Array
    entry_starts: npt.NDArray[np.int64]
    logs: U64Array
    log_starts: npt.NDArray[np.int64]
    log_data: U8Array
    log_data_starts: npt.NDArray[np.int64]
    new_code: U8Array
    new_code_starts: npt.NDArray[np.int64]


def _compact(xp: Any, out: Outputs, n: int, host: Any) -> Compacted:
    """Compacts ``out`` with the array module ``xp`` (numpy, or cupy on the device, which saves
    copying the unused parts back); ``host`` brings an array to the host."""
    result = out.result[:n]
    parts = []
    for array, count in ((out.entries, "RS_N_ENTRIES"), (out.logs, "RS_N_LOGS"),
                         (out.log_data, "RS_LOG_DATA"), (out.new_code, "RS_NEW_CODE")):
        counts = result[:, ABI[count]].astype(xp.int64)
        starts = xp.zeros(n + 1, dtype=xp.int64)
        xp.cumsum(counts, out=starts[1:])
        # Only the columns some slot used: the large caps run to gigabytes per slot.
        width = int(counts.max()) if n else 0
        used = xp.arange(width) < counts[:, None]
        parts += [host(array[:n, :width][used]), host(starts)]
    return Compacted(host(result), *parts)


@dataclass
class DeviceTime:
    """Seconds a device spent, summed over launches."""

    upload: float = 0.0
    """Copying inputs to the device (zero on the CPU)."""
    kernel: float = 0.0
    """Running the interpreter."""
    download: float = 0.0
    """Copying results back (zero on the CPU)."""
    launches: int = 0
    slots: int = 0
    """Transactions run, re-runs included."""


@dataclass
class HostTime:
    """Seconds the host spent on batches' phases, summed over batches. The rest of a batch's
    time is the device's, and the host's work around launches (indexes, results' compaction)."""

    load: float = 0.0
    """Loading state: trie walks in the node store, decoding into table rows."""
    pack: float = 0.0
    """Packing transactions and the block (state loading excluded)."""
    commit: float = 0.0
    """Validating results and committing them in block order, receipts included."""
    diff: float = 0.0
    """Building the batch's state diff."""


class Device(Protocol):
    """Runs launches; ``cpu`` and ``cuda`` implement it."""

    name: str
    time: DeviceTime
    """Where the device's time went since it was last reset."""

    def run(self, inputs: Inputs, tx_ids: list[int], caps: SlotCaps) -> Compacted:
        """Runs the transactions ``tx_ids`` (slot i runs ``tx_ids[i]``)."""
        ...


def _outputs(n: int, caps: SlotCaps, zeros: Any = np.zeros) -> Outputs:
    return Outputs(
        result=zeros((n, ABI["RS_WORDS"]), np.uint64),
        entries=zeros((n, caps.entries, ABI["E_WORDS"]), np.uint64),
        logs=zeros((n, caps.logs, ABI["LG_WORDS"]), np.uint64),
        log_data=zeros((n, caps.log_data), np.uint8),
        output=zeros((n, caps.output), np.uint8),
        new_code=zeros((n, caps.new_code), np.uint8),
    )


class _Buffers:
    """Per-slot buffers kept from launch to launch: fresh pages cost a fault each on first use.

    The interpreter writes every part of them the host reads, so they are never cleared.
    """

    def __init__(self, zeros: Any) -> None:
        self._zeros = zeros
        self._kept: dict[SlotCaps, Outputs] = {}

    def get(self, n: int, caps: SlotCaps) -> Outputs:
        if caps == LARGE_CAPS:  # too big to keep around
            return _outputs(n, caps, self._zeros)
        kept = self._kept.get(caps)
        if kept is None or len(kept.result) < n:
            kept = self._kept[caps] = _outputs(n, caps, self._zeros)
        return Outputs(*(getattr(kept, name)[:n] for name in Outputs.__dataclass_fields__))


def _scratch(workers: int, caps: SlotCaps, zeros: Any) -> dict[str, Any]:
    """Per-worker arenas the interpreter only uses while a transaction runs."""
    return {
        "D_ENTRY_INDEX": zeros((workers, 2 * caps.entries), np.int32),
        "D_JOURNAL": zeros((workers, caps.journal, ABI["J_WORDS"]), np.uint64),
        "D_STACK": zeros((workers, caps.stack, 4), np.uint64),
        "D_MEMORY": zeros((workers, caps.memory), np.uint8),
        "D_RETURN": zeros((workers, caps.return_data), np.uint8),
        "D_FRAMES": zeros((workers, caps.frames, ABI["FRAME_WORDS"]), np.uint64),
    }


def descriptor(
    inputs: dict[str, Any], outputs: dict[str, Any], scratch: dict[str, Any], n: int,
    caps: SlotCaps, masks: tuple[int, int], address: Any, kzg: tuple[int, int] = (0, 0),
) -> U64Array:
    """The D_* descriptor of a launch; ``address`` gives an array's address on the device, ``kzg``
    the host's KZG verifier and trusted setup (CPU build only: see native_precompiles)."""
    desc = np.zeros(ABI["D_WORDS"], dtype=np.uint64)
    desc[ABI["D_KZG_VERIFY"]], desc[ABI["D_KZG_SETTINGS"]] = kzg
    for name, array in (inputs | outputs | scratch).items():
        desc[ABI[name]] = address(array)
    desc[ABI["D_N_RUN"]] = n
    desc[ABI["D_ACC_MASK"]], desc[ABI["D_SLOT_MASK"]] = masks
    for name, value in (
        ("D_CAP_ENTRIES", caps.entries), ("D_CAP_JOURNAL", caps.journal), ("D_CAP_STACK", caps.stack),
        ("D_CAP_MEMORY", caps.memory), ("D_CAP_RETURN", caps.return_data),
        ("D_CAP_FRAMES", caps.frames), ("D_CAP_LOGS", caps.logs), ("D_CAP_LOG_DATA", caps.log_data),
        ("D_CAP_OUTPUT", caps.output), ("D_CAP_NEW_CODE", caps.new_code),
    ):
        desc[ABI[name]] = value
    return desc


def _input_arrays(inputs: Inputs, tx_ids: list[int]) -> dict[str, Any]:
    return {
        "D_RUN": np.asarray(tx_ids, dtype=np.uint64),
        "D_TX": inputs.txs,
        "D_TX_DATA": inputs.tx_data,
        "D_ACCESS": inputs.access,
        "D_ENV": inputs.env,
        "D_ACC": inputs.accounts,
        "D_ACC_INDEX": inputs.account_index.slots,
        "D_SLOT": inputs.slots,
        "D_SLOT_INDEX": inputs.slot_index.slots,
        "D_CODE": inputs.codes,
        "D_CODE_BYTES": inputs.code_bytes,
        "D_JUMPDEST": inputs.jumpdests,
    }


def _output_arrays(out: Outputs) -> dict[str, Any]:
    return {
        "D_RESULT": out.result, "D_ENTRIES": out.entries, "D_LOGS": out.logs,
        "D_LOG_DATA": out.log_data, "D_OUTPUT": out.output, "D_NEW_CODE": out.new_code,
    }


def _host_address(array: npt.NDArray[Any]) -> int:
    # Empty tables still need a valid pointer; numpy gives one for a size-0 array too.
    assert array.flags.c_contiguous
    return int(array.ctypes.data)


class CpuDevice:
    """The C build on the host's cores."""

    name = "cpu"

    def __init__(self, lib: ctypes.CDLL, workers: int = 1) -> None:
        self._lib = lib
        self.kzg = (0, 0)
        """D_KZG_VERIFY and D_KZG_SETTINGS: set, the build runs the point evaluation precompile
        (see native_precompiles.kzg_verifier); unset, it stops a transaction there."""
        self._workers = max(1, workers)
        self._scratch: dict[SlotCaps, dict[str, Any]] = {}
        self._buffers = _Buffers(np.zeros)
        self._pool = ThreadPoolExecutor(self._workers) if self._workers > 1 else None
        self.time = DeviceTime()

    def run(self, inputs: Inputs, tx_ids: list[int], caps: SlotCaps) -> Compacted:
        return self._launch(inputs, tx_ids, caps, None)

    def run_sequential(self, inputs: Inputs, tx_ids: list[int], caps: SlotCaps, gas_left: int) -> Compacted:
        """Runs ``tx_ids`` one after another, each on the state the ones before it left, on one
        thread (see evm_run_sequential: it stops before a transaction whose gas limit is over
        ``gas_left`` and after one whose effects it cannot follow; the slots after the stop
        get ST_SKIPPED). The tables of ``inputs`` are left as they were."""
        return self._launch(inputs, tx_ids, caps, gas_left)

    def _launch(self, inputs: Inputs, tx_ids: list[int], caps: SlotCaps, gas_left: int | None) -> Compacted:
        """A launch: on the workers' threads, or sequential over ``gas_left`` when given."""
        n = len(tx_ids)
        out = self._buffers.get(n, caps)
        scratch = self._scratch.get(caps)
        if scratch is None:
            scratch = _scratch(self._workers, caps, np.zeros)
            if caps != LARGE_CAPS:  # the large arenas are too big to keep around
                self._scratch[caps] = scratch
        ins = {name: np.ascontiguousarray(a) for name, a in _input_arrays(inputs, tx_ids).items()}
        if gas_left is not None:  # it writes each transaction's effects into the tables
            ins["D_ACC"], ins["D_SLOT"] = ins["D_ACC"].copy(), ins["D_SLOT"].copy()
        desc = descriptor(
            ins, _output_arrays(out), scratch, n, caps,
            (inputs.account_index.mask, inputs.slot_index.mask), _host_address, self.kzg,
        )
        start = time.perf_counter()
        chunk = -(-n // self._workers)
        if gas_left is not None:
            self._lib.evm_run_sequential(desc.ctypes.data, gas_left)
        elif self._pool is None or n < 2:
            self._lib.evm_run(desc.ctypes.data, 0, n, 0)
        else:
            ranges = [(w * chunk, min(chunk, n - w * chunk), w) for w in range(self._workers) if w * chunk < n]
            list(self._pool.map(lambda r: self._lib.evm_run(desc.ctypes.data, *r), ranges))
        self.time.kernel += time.perf_counter() - start
        self.time.launches += 1
        self.time.slots += n
        return _compact(np, out, n, np.copy)


def slot_bytes(caps: SlotCaps) -> int:
    """Device memory one slot's buffers and arenas take under ``caps``."""
    sizes: list[int] = []

    def tally(shape: tuple[int, ...], dtype: type[np.generic]) -> None:
        sizes.append(int(np.prod(shape)) * np.dtype(dtype).itemsize)

    _outputs(1, caps, tally)
    _scratch(1, caps, tally)
    return sum(sizes)


@dataclass(frozen=True)
class CudaMemory:
    """The GPU memory processes running the CUDA build take."""

    free: int
    """Bytes the device has free now."""
    local: int
    """Bytes of thread-local memory a process reserves at its first launch and keeps until it
    exits: the kernel's local memory per thread, for every thread the GPU can hold (8.6 GiB on
    the H200, whose free memory drops by that less the default 1 KB stack per thread)."""
    margin: int
    """Bytes each process needs beside ``local``."""

    def processes(self) -> int:
        """How many more processes running the CUDA build the free memory holds."""
        return self.free // (self.local + self.margin)


def cuda_memory() -> CudaMemory:
    """The device's free memory and what a process running the state tests' single transactions
    on the CUDA build takes: its thread-local memory, a slot with ``LARGE_CAPS`` (2.5 GiB, which
    CuPy's pool keeps once a transaction has needed it), and 1 GiB for its CUDA context and
    other buffers. On the H200, 13 such processes ran out of its 139 GiB."""
    import cupy

    from executor_gpu.native_build import cuda_kernel

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    threads = int(props["maxThreadsPerMultiProcessor"]) * int(props["multiProcessorCount"])
    free, _ = cupy.cuda.runtime.memGetInfo()
    local = int(cuda_kernel().attributes["local_size_bytes"]) * threads
    return CudaMemory(int(free), local, slot_bytes(LARGE_CAPS) + 2**30)


class CudaDevice:
    """The same interpreter compiled by NVRTC, one GPU thread per slot."""

    name = "cuda"
    block = 128
    """Threads per block."""

    def __init__(self, kernel: Any) -> None:
        import cupy

        self._cupy = cupy
        self._kernel = kernel
        # The interpreter writes every part of these it or the host reads: no clearing needed.
        self._buffers = _Buffers(lambda shape, dtype: cupy.empty(shape, dtype=dtype))
        self._scratch: dict[tuple[SlotCaps, int], dict[str, Any]] = {}
        self.time = DeviceTime()

    def _now(self) -> float:
        self._cupy.cuda.Device().synchronize()
        return time.perf_counter()

    def run(self, inputs: Inputs, tx_ids: list[int], caps: SlotCaps) -> Compacted:
        cp = self._cupy
        n = len(tx_ids)
        start = self._now()
        ins = {name: cp.asarray(a) for name, a in _input_arrays(inputs, tx_ids).items()}
        out = self._buffers.get(n, caps)
        outs = _output_arrays(out)
        scratch = self._scratch.get((caps, n))
        if scratch is None:
            scratch = _scratch(n, caps, lambda shape, dtype: cp.empty(shape, dtype=dtype))
            if caps != LARGE_CAPS:
                self._scratch = {(caps, n): scratch}  # keep the latest size only
        desc = cp.asarray(descriptor(
            ins, outs, scratch, n, caps,
            (inputs.account_index.mask, inputs.slot_index.mask), lambda a: int(a.data.ptr),
        ))
        uploaded = self._now()
        grid = (n + self.block - 1) // self.block
        self._kernel((grid,), (self.block,), (desc,))
        ran = self._now()
        compacted = _compact(cp, out, n, cp.asnumpy)
        self.time.upload += uploaded - start
        self.time.kernel += ran - uploaded
        self.time.download += self._now() - ran
        self.time.launches += 1
        self.time.slots += n
        return compacted
