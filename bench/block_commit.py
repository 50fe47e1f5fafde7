"""Block execution + commit throughput: N transfers per block through the node's own path.

Builds a node on LevelDB in a temporary directory, wired as `l2node run` wires it (native batch
decode and ordered roots), pools N signed transfers (plain, or ERC-20 ``transfer`` calls of a
token the genesis holds, with ``--workload erc20``) from prefunded senders, and times
`Node.produce_block` (select, execute, state root, one atomic LevelDB write) with the block's
stage times, and the admission before each block (`Node.submit_many`: batch decode and
recover, the pool's checks, one group-committed journal write) as admitted tx/s. Prints what it
measured and on what machine; never fails for being slow.

    python -m bench.block_commit --txs 2000 --blocks 3
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.executor import TOKEN, balance_slot, token_code
from bench.load import fresh_address, sign_1559
from executor_gpu.native import NativeExecutor
from executor_gpu.native_encode import receipts_root
from executor_gpu.native_launch import DeviceTime, HostTime
from executor_gpu.ordered import ordered_root
from executor_gpu.recover import batch_decode
from node.db.leveldb import LevelDBKV
from node.db.state import GenesisAccount
from node.node import ChainParams, Node
from node.run import make_executor
from node.stages import format_stages
from primitives.clock import SystemClock
from primitives.collector import CollectorTimes, tune_for_serving
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidTransaction
from primitives.transactions import BatchDecode, Transaction
from sequencer.types import PoolConfig

CHAIN_ID = 7331
ERC20_GAS = 60_000
"""Gas limit of a token transfer (it uses about 51,000 to a new holder)."""
TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")
""""transfer(address,uint256)"."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=2000, help="transfers per block")
    parser.add_argument("--workload", choices=["transfer", "erc20"], default="transfer",
                        help="plain transfers, or transfer() calls of an ERC-20 token")
    parser.add_argument("--blocks", type=int, default=3, help="blocks to time")
    parser.add_argument("--executor", default="reference")
    parser.add_argument("--per-sender", type=int, default=1,
                        help="transfers of each sender per block (a wave each on the native executors)")
    parser.add_argument("--fresh", action="store_true",
                        help="pay new addresses (as bench.load does), not the next sender")
    parser.add_argument("--submit-batch", type=int, default=0,
                        help="transactions per submit_many call (an RPC batch; default: a block's)")
    parser.add_argument("--back-to-back", action="store_true",
                        help="admit every block's transactions first, then time the blocks one "
                             "after another (their total)")
    parser.add_argument("--pipelined", action="store_true",
                        help="with --back-to-back: Node.produce_pipelined (each block executes "
                             "beside the last one's root and write), then drain")
    args = parser.parse_args()
    if args.per_sender < 1 or args.txs % args.per_sender:
        parser.error("--per-sender must divide --txs")
    if args.pipelined and not args.back_to_back:
        parser.error("--pipelined times blocks back to back: add --back-to-back")

    keys = [keccak256(b"bench sender %d" % i) for i in range(args.txs // args.per_sender)]
    senders = [private_key_to_address(k) for k in keys]
    erc20 = args.workload == "erc20"
    gas = ERC20_GAS if erc20 else 21_000
    alloc = {s: GenesisAccount(balance=10**24) for s in senders}
    if erc20:
        alloc[TOKEN] = GenesisAccount(code=token_code(),
                                      storage={balance_slot(s): 10**30 for s in senders})

    def payment(key: bytes, nonce: int, recipient: bytes) -> bytes:
        if not erc20:
            return sign_1559(key, CHAIN_ID, nonce, gas, recipient, 1)
        call = TRANSFER_SELECTOR + recipient.rjust(32, b"\0") + (1).to_bytes(32, "big")
        return sign_1559(key, CHAIN_ID, nonce, gas, TOKEN, 0, call)

    executor, caller = make_executor(args.executor)
    decode = _TimedDecode(batch_decode(gpu=executor.name == "native-cuda"))
    with tempfile.TemporaryDirectory() as tmp:
        kv = LevelDBKV(Path(tmp) / "chain")
        node = Node(
            kv,
            # The block must hold every transfer: 2,000 x 21,000 gas exceeds the devnet's 30M.
            ChainParams(CHAIN_ID, max(30_000_000, args.txs * gas), 10**9, 1_700_000_000, args.txs),
            PoolConfig(max_per_sender=64 * args.per_sender, max_total=args.txs * max(2, args.blocks)),
            executor, caller, keccak256(b"bench validator"), SystemClock(),
            decode=decode, ordered_root=ordered_root(), receipts_root=receipts_root,
        )
        node.init_or_resume(alloc)
        tune_for_serving()  # as `l2node run` does once it serves
        blocks = _BlockLines()
        logging.getLogger("l2node").addHandler(blocks)
        logging.getLogger("l2node").setLevel(logging.INFO)
        timings, admissions, collected = [], [], []
        batch = args.submit_batch or args.txs

        def admit_block(block: int) -> None:
            # The pool orders each sender's transactions by nonce, and senders round-robin.
            raws = [
                payment(key, block * args.per_sender + n,
                        fresh_address(len(keys) * (block * args.per_sender + n) + i) if args.fresh
                        else senders[(i + 1) % len(senders)])
                for n in range(args.per_sender) for i, key in enumerate(keys)
            ]
            gc.collect()  # the signing's garbage is the bench's, not admission's to collect
            start, decode.seconds = time.perf_counter(), 0.0
            for at in range(0, len(raws), batch):
                outcomes = node.submit_many(raws[at : at + batch])
                assert all(isinstance(tx, Transaction) for tx in outcomes), "a transfer refused"
            admissions.append((time.perf_counter() - start, decode.seconds))

        def produce(times: int) -> None:
            gc.collect()
            collector = CollectorTimes()
            if isinstance(executor, NativeExecutor):  # the timed blocks' phases only
                executor.host_time, executor.device.time = HostTime(), DeviceTime()
            start = time.perf_counter()
            for _ in range(times):
                if args.pipelined:
                    node.produce_pipelined()
                else:
                    node.produce_block()
            node.drain()
            timings.append(time.perf_counter() - start)
            collector.close()
            collected.append(sum(collector.seconds))

        if args.back_to_back:
            for block in range(args.blocks):
                admit_block(block)
            produce(args.blocks)
        else:
            for block in range(args.blocks):
                admit_block(block)
                produce(1)
        for number in range(1, args.blocks + 1):
            receipts = node.chain.receipts(number)
            assert len(receipts) == args.txs, "not all txs included"
            assert all(view.receipt.succeeded for view in receipts), "a transfer failed"
        kv.close()
    label = "ERC-20 transfers" if erc20 else "transfers"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; executor {executor.name}")
    for i, ((admitted, decoding), stages) in enumerate(zip(admissions, blocks.stages, strict=True)):
        took = "" if args.back_to_back else (f" in {timings[i]:.3f} s = {args.txs / timings[i]:,.0f} "
                                             f"tx/s gc={1000 * collected[i]:.0f}ms")
        print(f"block {i + 1}: {args.txs} {label} ({args.per_sender} per sender"
              f"{', to new addresses' if args.fresh else ''}){took}  {format_stages(stages)}  "
              f"admitted in {admitted:.3f} s = {args.txs / admitted:,.0f} tx/s "
              f"(decode={1000 * decoding:.0f}ms rest={1000 * (admitted - decoding):.0f}ms)")
    if args.back_to_back:
        (total,) = timings
        print(f"{args.blocks} blocks back to back{', pipelined' if args.pipelined else ''}: "
              f"{total:.3f} s = {args.blocks * args.txs / total:,.0f} tx/s "
              f"(gc={1000 * collected[0]:.0f}ms)")
    else:
        print(f"best: {args.txs / min(timings):,.0f} tx/s (execute + state root + atomic LevelDB commit)")
    if isinstance(executor, NativeExecutor):
        phases = {**dataclasses.asdict(executor.host_time),
                  **{f"device_{k}": v for k, v in dataclasses.asdict(executor.device.time).items()
                     if k in ("upload", "kernel", "download")}}
        print("executor, seconds over the timed blocks (host phases, then device): "
              + " ".join(f"{name}={seconds:.3f}" for name, seconds in phases.items()))
    admit, decoding = min(admissions)
    print(f"best admission: {args.txs / admit:,.0f} tx/s (submit_many, {batch} per call: "
          f"decode + recover {1000 * decoding:.0f} ms, pool checks + journal group commit "
          f"{1000 * (admit - decoding):.0f} ms)")


class _TimedDecode:
    """The node's batch decoder, timed: admission's decode and recovery (C threads, and the
    transactions built from their rows) apart from the rest."""

    def __init__(self, decode: BatchDecode) -> None:
        self._decode = decode
        self.seconds = 0.0
        """Time spent decoding since the caller last set it."""

    def __call__(self, raws: Sequence[bytes]) -> list[Transaction | InvalidTransaction]:
        start = time.perf_counter()
        try:
            return self._decode(raws)
        finally:
            self.seconds += time.perf_counter() - start


class _BlockLines(logging.Handler):
    """Keeps the stage times of each committed block's log line."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[dict[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and "txs" in fields:
            self.stages.append({name[:-3]: ms / 1000 for name, ms in fields.items()
                                if name.endswith("_ms") and name != "finality_ms"})


if __name__ == "__main__":
    main()
