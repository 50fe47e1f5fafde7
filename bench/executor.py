"""Executor throughput: plain ETH transfers and ERC-20 ``transfer`` calls, on the same blocks.

Every sender is distinct, so the transactions of a block do not conflict. Each executor
(reference py-evm, native-cpu, native-cuda where a GPU works, and pyrevm as an outside
CPU peer where installed) runs each block once; the table gives transactions per second
end to end, and for the native executors the interpreter alone (state already in place).
After each block it also times the state root the node computes from the block's diff
(``StateDB.apply``), the same work whichever executor ran. Prints the machine and GPU;
never fails for being slow.

    python -m bench.executor --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import rlp

from executor_gpu.api import Executor
from executor_gpu.native_build import cuda_available
from executor_gpu.types import BatchResult, BlockEnv
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateDB, StateView
from primitives.crypto import keccak256, private_key_to_address, sign_hash
from primitives.transactions import Transaction, decode_transaction
from primitives.types import Address, Hash32

CHAIN_ID = 7331
TOKEN = Address(bytes.fromhex("70ce000000000000000000000000000000000001"))
COINBASE = Address(bytes.fromhex("c0ffee0000000000000000000000000000000001"))
TRANSFER_TOPIC = keccak256(b"Transfer(address,address,uint256)")


def asm(*items: int | str | bytes) -> bytes:
    """Bytecode from opcodes (ints), raw bytes, labels ("@name" marks, "name" pushes as PUSH2)."""
    code = bytearray()
    labels: dict[str, int] = {}
    patches: list[tuple[int, str]] = []
    for item in items:
        if isinstance(item, int):
            code.append(item)
        elif isinstance(item, bytes):
            code += item
        elif item.startswith("@"):
            labels[item[1:]] = len(code)
            code.append(0x5B)  # JUMPDEST
        else:
            code.append(0x61)  # PUSH2
            patches.append((len(code), item))
            code += b"\0\0"
    for at, name in patches:
        code[at : at + 2] = labels[name].to_bytes(2, "big")
    return bytes(code)


def push(value: int, size: int = 1) -> bytes:
    return bytes([0x5F + size]) + value.to_bytes(size, "big")


PUSH0, CALLDATALOAD, SHR, EQ, JUMPI, CALLER, MSTORE, KECCAK256 = 0x5F, 0x35, 0x1C, 0x14, 0x57, 0x33, 0x52, 0x20
DUP1, DUP2, DUP3, DUP4, SWAP1, SLOAD, SSTORE, LT, SUB, ADD, POP = 0x80, 0x81, 0x82, 0x83, 0x90, 0x54, 0x55, 0x10, 0x03, 0x01, 0x50
LOG3, RETURN, REVERT = 0xA3, 0xF3, 0xFD


@functools.cache
def token_code() -> bytes:
    """An ERC-20 ``transfer(address,uint256)`` laid out as Solidity does: balances are
    mapping slot 0, a Transfer event is logged, true is returned; anything else reverts."""
    return asm(
        PUSH0, CALLDATALOAD, push(0xE0), SHR, push(0xA9059CBB, 4), EQ, "transfer", JUMPI,
        PUSH0, PUSH0, REVERT,
        "@transfer",
        CALLER, PUSH0, MSTORE, PUSH0, push(0x20), MSTORE, push(0x40), PUSH0, KECCAK256,  # from slot
        DUP1, SLOAD, push(0x24), CALLDATALOAD,  # value, balance, slot
        DUP1, DUP3, LT, "fail", JUMPI,
        SWAP1, DUP2, SWAP1, SUB, DUP3, SSTORE, SWAP1, POP,  # value
        push(0x04), CALLDATALOAD, DUP1, PUSH0, MSTORE, push(0x40), PUSH0, KECCAK256,  # to slot
        DUP1, SLOAD, DUP4, ADD, SWAP1, SSTORE,  # to, value
        DUP2, PUSH0, MSTORE, CALLER, b"\x7f" + TRANSFER_TOPIC, push(0x20), PUSH0, LOG3,
        push(1), PUSH0, MSTORE, push(0x20), PUSH0, RETURN,
        "@fail",
        PUSH0, PUSH0, REVERT,
    )


def balance_slot(holder: Address) -> int:
    """Storage slot of ``balances[holder]`` (mapping at slot 0)."""
    return int.from_bytes(keccak256(holder.rjust(32, b"\0") + b"\0" * 32), "big")


@dataclass
class Workload:
    """A pre-state and one block of transactions from distinct senders."""

    kind: str
    alloc: dict[Address, GenesisAccount]
    txs: list[Transaction]
    env: BlockEnv


def _sign(key: bytes, nonce: int, to: Address, value: int, data: bytes, gas: int) -> Transaction:
    unsigned = [CHAIN_ID, nonce, 10**9, 2 * 10**9, gas, to, value, data, []]
    parity, r, s = sign_hash(keccak256(b"\x02" + rlp.encode(unsigned)), key)
    raw = b"\x02" + rlp.encode(unsigned + [parity, r, s])
    return decode_transaction(raw)


@functools.cache
def _keys(n: int) -> tuple[tuple[bytes, Address], ...]:
    keys = [keccak256(b"bench executor sender %d" % i) for i in range(n)]
    return tuple((k, private_key_to_address(k)) for k in keys)


def workload(kind: str, n: int) -> Workload:
    """``n`` plain transfers ("transfer") or token transfers ("erc20") from distinct senders."""
    keys = _keys(n)
    recipients = [Address(keccak256(b"recipient %d" % i)[:20]) for i in range(n)]
    alloc = {sender: GenesisAccount(balance=10**24) for _, sender in keys}
    if kind == "transfer":
        txs = [_sign(k, 0, recipients[i], 10**15 + i, b"", 21_000) for i, (k, _) in enumerate(keys)]
    else:
        alloc[TOKEN] = GenesisAccount(
            code=token_code(), storage={balance_slot(sender): 10**30 for _, sender in keys}
        )
        txs = [
            _sign(k, 0, TOKEN, 0, bytes.fromhex("a9059cbb") + recipients[i].rjust(32, b"\0")
                  + (1000 + i).to_bytes(32, "big"), 100_000)
            for i, (k, _) in enumerate(keys)
        ]
    env = BlockEnv(number=1, timestamp=1_700_000_000, coinbase=COINBASE, gas_limit=n * 100_000,
                   base_fee_per_gas=10**9, chain_id=CHAIN_ID, prev_randao=Hash32(b"\x01" * 32))
    return Workload(kind, alloc, txs, env)


def genesis_state(alloc: dict[Address, GenesisAccount]) -> tuple[MemoryKV, StateDB, Hash32]:
    kv = MemoryKV()
    db = StateDB(kv)
    batch = kv.write_batch()
    root = db.genesis(alloc, batch)
    batch.commit()
    return kv, db, root


def pre_state(alloc: dict[Address, GenesisAccount]) -> StateView:
    _, db, root = genesis_state(alloc)
    return db.at(root)


def root_seconds(kv: MemoryKV, db: StateDB, root: Hash32, result: BatchResult) -> float:
    """Seconds ``StateDB.apply`` takes to stage a block's diff and compute its state root: what
    the node does after every executor (the reference's ``execute`` computes a root of its own
    as well; the native executors leave it to this)."""
    start = time.perf_counter()
    db.apply(root, result.state_diff, kv.write_batch())
    return time.perf_counter() - start


@dataclass
class Row:
    """One executor's figures on one workload."""

    executor: str
    kind: str
    txs: int
    seconds: float
    interpreter_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.txs / self.seconds

    @property
    def interpreter_rate(self) -> float | None:
        return None if not self.interpreter_seconds else self.txs / self.interpreter_seconds


def _run_executor(name: str, executor: Executor, work: Workload, pre: StateView) -> tuple[Row, BatchResult]:
    from executor_gpu.native import NativeExecutor
    from executor_gpu.native_launch import DeviceTime, HostTime

    native = executor if isinstance(executor, NativeExecutor) else None
    # Warm up: compilers (NVRTC, CuPy's own kernels) and buffers run once per process. A native
    # executor warms up on the whole block: after a 64-transaction warm-up, the first 10k block on
    # the H200 spent 0.08 s more in download than every later one. Nothing is cached from block to
    # block (state is read afresh each batch), so the timed run is a node's steady state. The
    # reference has no such costs, and its warm-up on the whole block would take as long as its run.
    executor.execute(pre, work.env, work.txs if native is not None else work.txs[:64])
    if native is not None:
        native.device.time = DeviceTime()
        native.host_time = HostTime()
    start = time.perf_counter()
    result = executor.execute(pre, work.env, work.txs)
    row = Row(name, work.kind, len(work.txs), time.perf_counter() - start)
    if native is not None:
        t, h = native.device.time, native.host_time
        host = row.seconds - t.kernel - t.upload - t.download
        row.notes.append(f"{t.launches} launches ran {t.slots} txs: device {t.kernel:.2f}s"
                         + (f" + upload {t.upload:.2f}s + download {t.download:.2f}s" if t.upload else "")
                         + f", host {host:.2f}s (load {h.load:.2f} + pack {h.pack:.2f} + commit {h.commit:.2f}"
                         + f" + diff {h.diff:.2f} + launches {host - h.load - h.pack - h.commit - h.diff:.2f})")
        alone = native.interpreter_time(pre, work.env, work.txs)
        row.interpreter_seconds = alone.kernel
    return row, result


def _run_pyrevm(work: Workload) -> Row:
    import pyrevm

    evm = pyrevm.EVM(spec_id="CANCUN")
    for address, account in work.alloc.items():
        evm.insert_account_info("0x" + address.hex(), pyrevm.AccountInfo(nonce=account.nonce, code=account.code or None))
        evm.set_balance("0x" + address.hex(), account.balance)
        for slot, value in account.storage.items():
            evm.insert_account_storage("0x" + address.hex(), slot, value)
    start = time.perf_counter()
    for tx in work.txs:
        assert tx.to is not None
        evm.message_call("0x" + tx.sender.hex(), "0x" + tx.to.hex(), tx.data, tx.value, tx.gas_limit)
    row = Row("pyrevm", work.kind, len(work.txs), time.perf_counter() - start)
    row.notes.append("messages only: no fees, nonces or state root")
    return row


def executors(names: Sequence[str]) -> dict[str, Callable[[], Executor]]:
    from executor_gpu.native import NativeExecutor
    from executor_gpu.reference import PyEvmExecutor

    makers: dict[str, Callable[[], Executor]] = {
        "reference": PyEvmExecutor,
        "native-cpu": lambda: NativeExecutor("cpu", workers=os.cpu_count() or 1),
        "native-cuda": lambda: NativeExecutor("cuda"),
    }
    return {name: makers[name] for name in names if name in makers}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    gpu = "none"
    if cuda_available():
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; GPU: {gpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="transactions per block")
    parser.add_argument("--kinds", nargs="+", default=["transfer", "erc20"], choices=["transfer", "erc20"])
    parser.add_argument("--executors", nargs="+",
                        default=["reference", "native-cpu", "native-cuda", "pyrevm"])
    parser.add_argument("--no-check", action="store_true", help="skip comparing results with the reference")
    parser.add_argument("--no-root", action="store_true",
                        help="skip timing the state root the node computes after the block")
    args = parser.parse_args()
    names = list(args.executors)
    if "native-cuda" in names and not cuda_available():
        names.remove("native-cuda")
        print("native-cuda: no CUDA device here, skipped")
    if "pyrevm" in names:
        try:
            import pyrevm  # noqa: F401
        except ImportError:
            names.remove("pyrevm")
            print("pyrevm: not installed, skipped")
    print(f"machine: {machine()}")
    makers = executors(names)
    rows: list[Row] = []
    for size in args.sizes:
        for kind in args.kinds:
            work = workload(kind, size)
            kv, db, root = genesis_state(work.alloc)
            pre = db.at(root)
            results: dict[str, BatchResult] = {}
            for name in names:
                if name == "pyrevm":
                    rows.append(_run_pyrevm(work))
                else:
                    row, results[name] = _run_executor(name, makers[name](), work, pre)
                    rows.append(row)
                print(_format(rows[-1], rows), flush=True)
            if not args.no_check and len(results) > 1:
                # Against the reference when it ran, else against the first executor.
                base_name = "reference" if "reference" in results else next(iter(results))
                base = results[base_name]
                for name, result in results.items():
                    if name == base_name:
                        continue
                    same = (result.executed, result.rejected, result.state_diff, result.gas_used) == (
                        base.executed, base.rejected, base.state_diff, base.gas_used)
                    print(f"  {name} {'matches' if same else 'DIFFERS FROM'} {base_name} on {kind} x {size}")
            if results and not args.no_root:
                seconds = root_seconds(kv, db, root, next(iter(results.values())))
                print(f"  state root after the block (StateDB.apply; the node runs it after any"
                      f" executor): {seconds:.2f}s, {size / seconds:,.0f} tx/s", flush=True)


def _format(row: Row, rows: list[Row]) -> str:
    base = next((r for r in rows if r.executor == "reference" and r.kind == row.kind and r.txs == row.txs), None)
    ratio = f"{row.rate / base.rate:7.1f}x" if base else "      -"
    interp = f"{row.interpreter_rate:12,.0f}" if row.interpreter_rate else "           -"
    return (f"{row.executor:12} {row.kind:8} {row.txs:>7} txs  {row.rate:10,.0f} tx/s  {ratio} ref"
            f"  interpreter {interp} tx/s  {'; '.join(row.notes)}")


if __name__ == "__main__":
    main()
