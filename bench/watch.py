"""How long `l2node watch` takes to verify batches posted to a real L1 (anvil).

A producer Node (MemoryKV, reference executor) makes blocks of signed transfers
from distinct funded senders; each batch (``--blocks-per-batch`` blocks) is
committed to BatchInbox on anvil, signed by the genesis validator. Then:

1. ``l2node watch --strict`` runs as a process over them, from a fresh data dir:
   the figure a user sees (process start, imports, genesis, L1 reads, re-execution,
   LevelDB writes);
2. the same derivation in-process, timing L1 reads (commitments and data) apart
   from re-execution and storage, per executor.

Prints the machine and the figures; never fails for being slow.

    python -m bench.watch --batches 100 --blocks-per-batch 2 --txs-per-block 10
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from l1.client import Web3L1Client, deploy_batch_inbox
from l1.codec import batch_data_hash, batch_digest, encode_batch_data, sign_batch
from l1.types import BatchCommitment
from l1.watcher import Status, Watcher
from node.db.leveldb import LevelDBKV
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount
from node.genesis import Genesis, GenesisValidator, genesis_to_json
from node.node import ChainParams, Node
from node.run import make_executor
from node.watch import NodeChain
from primitives.clock import ManualClock, SystemClock
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import L2NodeError
from primitives.types import Address, Hash32
from sequencer.types import PoolConfig
from tests.anvil import DEV_KEYS, running_anvil

VALIDATOR_KEY = keccak256(b"bench watch validator")
RECIPIENT = "0x" + "42" * 20


def make_genesis(senders: int) -> tuple[Genesis, list[bytes]]:
    keys: list[bytes] = [keccak256(b"bench watch sender %d" % i) for i in range(senders)]
    genesis = Genesis(
        chain_id=7331, timestamp=1_700_000_000, gas_limit=30_000_000,
        base_fee_per_gas=1_000_000_000,
        alloc={private_key_to_address(k): GenesisAccount(balance=10**21) for k in keys},
        validators=(GenesisValidator(private_key_to_address(VALIDATOR_KEY), 1),),
    )
    return genesis, keys


def make_node(genesis: Genesis, kv: Any, executor: str, key: bytes, clock: Any) -> Node:
    run, call = make_executor(executor)
    params = ChainParams(
        chain_id=genesis.chain_id, gas_limit=genesis.gas_limit,
        initial_base_fee=genesis.base_fee_per_gas, genesis_timestamp=genesis.timestamp,
        max_txs_per_block=PoolConfig().max_total,
    )
    node = Node(kv, params, PoolConfig(), run, call, key, clock)
    node.init_or_resume(dict(genesis.alloc))
    return node


def produce(genesis: Genesis, keys: list[bytes], blocks: int) -> Node:
    """A chain of ``blocks`` blocks, each with one transfer per sender."""
    clock = ManualClock(genesis.timestamp)
    node = make_node(genesis, MemoryKV(), "reference", VALIDATOR_KEY, clock)
    for nonce in range(blocks):
        for key in keys:
            tx = {"chainId": genesis.chain_id, "nonce": nonce, "to": RECIPIENT, "value": 1 + nonce,
                  "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
            node.submit(bytes(Account.sign_transaction(tx, key).raw_transaction))
        clock.advance(1)
        node.produce_block()
    return node


def post(client: Web3L1Client, node: Node, blocks_per_batch: int) -> int:
    """Commit the node's blocks in batches; the number of batches."""
    domain = client.domain()
    prev: Hash32 = node.state_root(0)
    number = 0
    for first in range(1, node.head_number() + 1, blocks_per_batch):
        last = min(first + blocks_per_batch - 1, node.head_number())
        number += 1
        data = encode_batch_data(node.block_data(n) for n in range(first, last + 1))
        commitment = BatchCommitment(
            batch_number=number, prev_state_root=prev, state_root=node.state_root(last),
            first_block=first, last_block=last, data_hash=batch_data_hash(data),
        )
        client.commit_batch(commitment, data, [sign_batch(batch_digest(domain, commitment),
                                                          VALIDATOR_KEY)])
        prev = commitment.state_root
    return number


@dataclass
class Timed:
    """Wraps the watcher's L1 client and counts the time spent in it."""

    inner: Web3L1Client
    seconds: float = 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def in_process(url: str, contract: Address, genesis: Genesis, executor: str, tmp: Path) -> str:
    kv = LevelDBKV(tmp / f"inproc-{executor}")
    try:
        node = make_node(genesis, kv, executor, VALIDATOR_KEY, SystemClock())
        l1 = Timed(Web3L1Client(Web3(Web3.HTTPProvider(url)), contract))
        watcher = Watcher(l1, NodeChain(node))
        started = time.perf_counter()
        reports = []
        while (event := watcher.step()) is not None:
            reports.append(event)
        total = time.perf_counter() - started
    finally:
        kv.close()
    ok = sum(1 for r in reports if getattr(r, "status", None) is Status.OK)
    return (f"in-process, executor {executor}: {ok}/{len(reports)} OK in {total:.2f} s "
            f"(L1 reads {l1.seconds:.2f} s, re-execution + LevelDB {total - l1.seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--blocks-per-batch", type=int, default=2)
    parser.add_argument("--txs-per-block", type=int, default=10, help="one per distinct sender")
    parser.add_argument("--executors", nargs="+", default=["reference", "native-cpu"])
    args = parser.parse_args()
    genesis, keys = make_genesis(args.txs_per_block)
    print(f"machine: {platform.machine()} {platform.processor() or ''} {platform.node()}, "
          f"{os.cpu_count()} cpus; python {platform.python_version()}")
    started = time.perf_counter()
    producer = produce(genesis, keys, args.batches * args.blocks_per_batch)
    print(f"produced {producer.head_number()} blocks x {args.txs_per_block} transfers "
          f"in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as name, running_anvil(Path(name) / "anvil") as anvil:
        tmp = Path(name)
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
        contract = deploy_batch_inbox(
            w3, DEV_KEYS[0], genesis.chain_id, producer.state_root(0),
            [v.address for v in genesis.validators], [1],
        )
        started = time.perf_counter()
        batches = post(Web3L1Client(w3, contract, DEV_KEYS[1]), producer, args.blocks_per_batch)
        print(f"posted {batches} batches to anvil ({anvil.rpc('web3_clientVersion')}) "
              f"in {time.perf_counter() - started:.1f} s")
        genesis_file = tmp / "genesis.json"
        genesis_file.write_text(genesis_to_json(genesis))
        command = [sys.executable, "-m", "node.cli", "watch", "--strict", "--l1-rpc", anvil.url,
                   "--contract", "0x" + contract.hex(), "--genesis", str(genesis_file),
                   "--data-dir", str(tmp / "watch")]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        lines = result.stdout.splitlines()
        ok = sum(" OK root " in line for line in lines)
        print(f"l2node watch --strict (reference executor, fresh LevelDB): {ok}/{batches} batches "
              f"OK, exit {result.returncode}, {seconds:.2f} s wall "
              f"({batches / seconds:.1f} batches/s, "
              f"{batches * args.blocks_per_batch * args.txs_per_block / seconds:.0f} tx/s)")
        if result.returncode != 0:
            print(result.stderr[-2000:])
        for executor in args.executors:
            try:
                print(in_process(anvil.url, contract, genesis, executor, tmp))
            except L2NodeError as exc:  # a missing native build is a line, not a crash
                print(f"in-process, executor {executor}: unavailable ({exc})")


if __name__ == "__main__":
    main()
