"""`l2node watch`: rebuild the L2 from L1 alone and check every posted state root.

    l2node watch --l1-rpc URL --contract ADDR --genesis FILE [--data-dir DIR]
                 [--executor KIND] [--strict] [--from-batch N] [--follow]

Prints one line per batch (l1/watcher.py has the rules)::

    batch 12 blocks 111-120 txs 37 OK root 0x...
    batch 13 blocks 121-130 txs 40 MISMATCH expected 0x<re-executed> posted 0x<on L1>: <reason>
    batch 14 blocks 131-140 txs 12 UNVERIFIED: follows batch 13, which did not verify

The chain it derives lives in its own LevelDB under --data-dir, with a record per
verified batch, so a second run continues where the first stopped.

Exit status: 0 when every batch verified; 1 when one did not. Without --strict a
MISMATCH does not stop the run: the local state cannot follow the posted chain
past it, so later batches are only fetched and decoded (UNVERIFIED) until L1
replaces the bad batch; the run ends with status 1. With --strict it stops at the
first MISMATCH. 2: bad arguments, a genesis that is not the contract's, or L1
unavailable for longer than RETRY_LIMIT_S (without --follow).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

import rlp
from rlp.sedes import Binary, big_endian_int

from executor_gpu.native_encode import receipts_root
from executor_gpu.ordered import ordered_root
from executor_gpu.recover import batch_decode
from l1.api import L1Client
from l1.client import Web3L1Client
from l1.types import CommittedBatch, L2BlockData
from l1.watcher import Status, Unwound, Watcher
from node.db import schema
from node.db.leveldb import LevelDBKV
from node.genesis import genesis_weights, load_genesis
from node.node import ChainParams, Node
from node.progress import Progress
from node.run import contract_address, make_executor
from node.startup import DataDir
from primitives.clock import SystemClock
from primitives.crypto import keccak256
from primitives.errors import Halt, InvalidInput, RetryLater
from primitives.types import Address, Hash32
from sequencer.types import PoolConfig

log = logging.getLogger("l2node")

T = TypeVar("T")

RETRY_LIMIT_S = 60.0
"""Without --follow, how long L1 may stay unavailable before the run gives up."""
PLAIN_PROGRESS_S = 10.0
"""Away from a terminal, seconds between two plain progress lines."""
WATCHER_KEY = keccak256(b"l2node watch: produces no blocks, signs nothing")
"""Node needs a validator key; the watcher only replays blocks, so this one is never used."""
CONTRACT_META = "watch.contract"
"""Meta key: the contract a watch data dir follows (one data dir, one contract)."""

_RECORD = [
    big_endian_int,
    Binary.fixed_length(32),
    Binary.fixed_length(32),
    big_endian_int,
    big_endian_int,
    Binary.fixed_length(32),
    Binary.fixed_length(32),
    big_endian_int,
]


def encode_verified(batch: CommittedBatch) -> bytes:
    """Stored record of a verified batch: RLP of its fields, in declaration order."""
    return bytes(rlp.encode(
        [
            batch.batch_number, batch.prev_state_root, batch.state_root, batch.first_block,
            batch.last_block, batch.data_hash, batch.l1_tx_hash, batch.l1_block_number,
        ],
        sedes=rlp.sedes.List(_RECORD),
    ))


def decode_verified(data: bytes) -> CommittedBatch:
    """Inverse of ``encode_verified``; Halt on a corrupt record (our own data)."""
    try:
        number, prev, root, first, last, data_hash, tx_hash, l1_block = rlp.decode(
            data, sedes=rlp.sedes.List(_RECORD)
        )
    except rlp.exceptions.RLPException as exc:
        raise Halt(f"corrupt verified batch record in the database: {exc}") from exc
    return CommittedBatch(
        batch_number=number, prev_state_root=Hash32(prev), state_root=Hash32(root),
        first_block=first, last_block=last, data_hash=Hash32(data_hash),
        l1_tx_hash=Hash32(tx_hash), l1_block_number=l1_block,
    )


class NodeChain:
    """DerivedChain over a Node: blocks stored as the node stores its own, records beside them."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def genesis_root(self) -> Hash32:
        return self._node.state_root(0)

    def head_block(self) -> int:
        return self._node.head_number()

    def last_verified(self) -> CommittedBatch | None:
        for _key, value in self._node.kv.iterate(schema.VERIFIED_BATCH_PREFIX, reverse=True):
            return decode_verified(value)
        return None

    def verified(self, number: int) -> CommittedBatch | None:
        data = self._node.kv.get(schema.verified_batch_key(number))
        return None if data is None else decode_verified(data)

    def epoch_of(self, block: int) -> int:
        return self._node.epoch_of(block)

    def validators(self, epoch: int) -> Mapping[Address, int] | None:
        return self._node.validators(epoch)

    def replay(self, block: L2BlockData) -> Hash32:
        return self._node.replay(block).state_root

    def mark_verified(self, batch: CommittedBatch) -> None:
        self._node.kv.put(schema.verified_batch_key(batch.batch_number), encode_verified(batch))

    def unwind(self, batch_number: int) -> None:
        last_block = 0
        if batch_number > 0:
            kept = self.verified(batch_number)
            if kept is None:
                raise Halt(f"cannot unwind to batch {batch_number}: it is not verified here")
            last_block = kept.last_block
        batch = self._node.kv.write_batch()
        self._node.chain.stage_unwind(batch, last_block)
        self._node.state.stage_unwind(batch, last_block, self._node.state_root(last_block))
        start = schema.verified_batch_key(batch_number + 1)
        for key, _value in self._node.kv.iterate(schema.VERIFIED_BATCH_PREFIX):
            if key >= start:
                batch.delete(key)
        self._node.state.commit(batch)
        self._node.forget_head()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--l1-rpc", required=True, help="Ethereum JSON-RPC URL of the L1")
    parser.add_argument("--contract", required=True, help="address of the BatchInbox contract")
    parser.add_argument("--genesis", required=True, type=Path, help="the L2's genesis JSON file")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".l2node-watch"),
        help="LevelDB of the derived chain (a second run resumes from it)",
    )
    parser.add_argument(
        "--executor", default="reference", choices=["reference", "native-cpu", "native-cuda", "auto"]
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 at the first MISMATCH")
    parser.add_argument(
        "--from-batch", type=int, metavar="N",
        help="print from batch N on; re-verify from N when the data dir is already past it",
    )
    parser.add_argument("--follow", action="store_true", help="keep watching for new batches")
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, metavar="S",
        help="seconds between L1 polls once caught up (--follow) or after L1 trouble",
    )


def run(args: argparse.Namespace) -> int:
    from_batch = 1 if args.from_batch is None else args.from_batch
    if from_batch < 1:
        raise InvalidInput("--from-batch counts from 1")
    if not args.verbose:
        log.setLevel(logging.WARNING)  # one line per block would bury the batch lines
    genesis = load_genesis(args.genesis)
    options = WatchOptions(args.strict, args.follow, from_batch, args.poll_interval)
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(args.l1_rpc, request_kwargs={"timeout": 30}))
    contract = _retrying(lambda: contract_address(w3, args.contract, "--contract"), options,
                         time.sleep)
    executor, caller = make_executor(args.executor)
    data_dir = DataDir(args.data_dir)
    kv = LevelDBKV(args.data_dir / "chain")
    try:
        node = Node(
            kv,
            ChainParams.of(genesis, PoolConfig().max_total),
            PoolConfig(),
            executor,
            caller,
            WATCHER_KEY,
            SystemClock(),
            genesis_weights(genesis),
            decode=batch_decode(gpu=executor.name == "native-cuda"),
            ordered_root=ordered_root(),
            receipts_root=receipts_root,
        )
        node.init_or_resume(dict(genesis.alloc))
        stored = kv.get(schema.meta_key(CONTRACT_META))
        if stored is not None and stored != contract:
            raise InvalidInput(
                f"{args.data_dir} follows contract 0x{stored.hex()}, not 0x{contract.hex()}: "
                "use another --data-dir"
            )
        kv.put(schema.meta_key(CONTRACT_META), contract)
        client = Web3L1Client(w3, contract)
        chain = NodeChain(node)
        watcher = Watcher(client, chain)
        _retrying(watcher.check_genesis, options, time.sleep)
        last = chain.last_verified()
        if args.from_batch is not None and last is not None and last.batch_number >= from_batch:
            chain.unwind(from_batch - 1)
        return watch(watcher, client, options, sys.stdout, sys.stderr)
    finally:
        kv.close()
        data_dir.close()


@dataclass(frozen=True)
class WatchOptions:
    """How ``watch`` runs (the command line's flags)."""

    strict: bool = False
    """Stop at the first batch that does not verify."""
    follow: bool = False
    """Keep polling L1 for new batches instead of stopping when caught up."""
    from_batch: int = 1
    """Print verdicts from this batch on (earlier ones only when they are not OK)."""
    poll_interval: float = 2.0
    """Seconds between polls once caught up, and after L1 trouble."""


def watch(
    watcher: Watcher,
    l1: L1Client,
    options: WatchOptions,
    out: TextIO,
    progress: TextIO,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Report batches until caught up (or until interrupted with ``follow``); the exit status."""
    latest = _retrying(l1.latest_batch, options, sleep)
    bar = Progress(
        progress, 0 if latest is None else latest.batch_number, "batches",
        plain_every_s=PLAIN_PROGRESS_S,
    )
    failed = 0
    try:
        while True:
            event = _retrying(watcher.step, options, sleep)
            if event is None:
                if not options.follow:
                    break
                sleep(options.poll_interval)
                continue
            if isinstance(event, Unwound):
                bar.clear()
                print(event.line(), file=out, flush=True)
                continue
            number = event.batch.batch_number
            if event.status is not Status.OK:
                failed += 1
            if number >= options.from_batch or event.status is not Status.OK:
                bar.clear()
                print(event.line(), file=out, flush=True)
            if failed and options.strict:
                return 1
            bar.total = max(bar.total, number)
            bar.update(number, f"{failed} not verified" if failed else "")
    except KeyboardInterrupt:
        pass
    finally:
        bar.clear()
    return 1 if failed else 0


def _retrying(call: Callable[[], T], options: WatchOptions, sleep: Callable[[float], None]) -> T:
    """``call()``, again after L1 trouble: forever with ``follow``, else up to RETRY_LIMIT_S."""
    give_up = time.monotonic() + RETRY_LIMIT_S
    while True:
        try:
            return call()
        except RetryLater as exc:
            if not options.follow and time.monotonic() > give_up:
                raise
            log.warning("L1: %s (retrying in %.0fs)", exc, options.poll_interval)
            sleep(options.poll_interval)
