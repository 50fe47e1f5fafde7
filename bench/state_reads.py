"""Account reads per second at the head, trie walk against flat tables, eth_call latency over
each, and what flat writes add to ``StateDB.apply``.

Builds a state of N accounts on LevelDB in a temporary directory (genesis, in bulk), then reads
random accounts through ``StateDB.at(head)``: by the trie (a view without the flat tables),
from the flat tables with a cold cache, and again with the cache warm. Then runs eth_calls
(``PyEvmExecutor.call``, as the node serves them) of a contract that reads the balance and a
slot of each of ``--call-reads`` random accounts, through the trie (as before the reference
executor read flat) and flat, and prints each call's median wall latency. Then applies blocks of
plain transfers (sender nonce and balance, recipient balance) with and without the flat writes
(a batch whose marker names another root skips them) and times apply + commit. Reads and
apply are timed in CPU seconds of this process (steadier than wall time on a shared box), the
commit, a synced write, in wall seconds. Prints the machine; never fails for being slow.

    python -m bench.state_reads --accounts 100000 --reads 20000 --transfers 10000 --blocks 3
    python -m bench.state_reads --accounts 100000 --calls 300 --call-reads 8 --blocks 0
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from executor_gpu.api import StateReader
from executor_gpu.reference import PyEvmExecutor
from executor_gpu.types import AccountChange, BlockEnv, CallMessage, StateDiff
from node.db import schema
from node.db.leveldb import LevelDBKV
from node.db.state import GenesisAccount, StateDB, StateOptions, StateView
from primitives.crypto import keccak256
from primitives.types import Address, Hash32


def address(n: int) -> Address:
    return Address(keccak256(b"bench account %d" % n)[:20])


def reads_per_second(view: StateView, sample: list[Address]) -> float:
    start = time.process_time()
    for account in sample:
        view.get_account(account)
    return len(sample) / (time.process_time() - start)


READER = bytes.fromhex(
    "5f5f"  # sum = 0, at = 0
    "5b" "803611" "15" "601b" "57"  # loop (2): while CALLDATASIZE > at
    "8035" "8031" "9054" "01" "8201" "9150" "602001" "6002" "56"  # sum += BALANCE(w) + SLOAD(w)
    "5b" "50" "5f52" "60205ff3"  # end (0x1b): return sum
)
"""Code of the called contract: for each 32-byte word of call data (an address), adds the
account's balance and the contract's slot of that number (a token's holder balance)."""
CALL_ENV = BlockEnv(number=1, timestamp=1, coinbase=Address(bytes(20)), gas_limit=30_000_000,
                    base_fee_per_gas=0, chain_id=1)


def call_latencies(view: StateReader, calls: list[CallMessage]) -> tuple[float, list[bytes]]:
    """Median wall seconds of an eth_call of the reader, and each call's output."""
    executor = PyEvmExecutor()
    took, outputs = [], []
    for message in calls:
        start = time.perf_counter()
        result = executor.call(view, CALL_ENV, message)
        took.append(time.perf_counter() - start)
        assert result.succeeded, result.error
        outputs.append(result.output)
    return statistics.median(took), outputs


def transfers(rng: random.Random, accounts: int, count: int, block: int) -> StateDiff:
    """``count`` transfers between distinct random accounts: 2 x ``count`` account updates."""
    touched = rng.sample(range(accounts), 2 * count)
    changes = {}
    for sender in touched[:count]:
        changes[address(sender)] = AccountChange(nonce=block, balance=10**18 - block)
    for recipient in touched[count:]:
        changes[address(recipient)] = AccountChange(nonce=0, balance=10**18 + block)
    return StateDiff(changes)


def apply_seconds(kv: LevelDBKV, state: StateDB, root: Hash32, diff: StateDiff,
                  flat: bool) -> tuple[Hash32, float, float]:
    """(new root, apply CPU seconds, commit wall seconds: a synced write); without ``flat`` the
    marker is restored."""
    marker = kv.get(schema.FLAT_MARKER)
    assert marker is not None
    batch = kv.write_batch()
    if not flat:
        batch.put(schema.FLAT_MARKER, b"\x00" * 40)  # another root: apply skips the flat writes
    start = time.process_time()
    new_root = state.apply(root, diff, batch)
    apply_s = time.process_time() - start
    if not flat:
        batch.put(schema.FLAT_MARKER, marker)
    start = time.perf_counter()
    state.commit(batch)
    return new_root, apply_s, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts in the state")
    parser.add_argument("--reads", type=int, default=20_000, help="random account reads")
    parser.add_argument("--transfers", type=int, default=10_000, help="transfers per block")
    parser.add_argument("--blocks", type=int, default=3, help="blocks to time, each way")
    parser.add_argument("--calls", type=int, default=200, help="eth_calls to time, each way")
    parser.add_argument("--call-reads", type=int, default=8, help="accounts one eth_call reads")
    args = parser.parse_args()
    rng = random.Random(1)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        kv = LevelDBKV(Path(tmp) / "state")
        state = StateDB(kv, options=StateOptions(cache_entries=args.reads))
        start = time.perf_counter()
        batch = kv.write_batch()
        reader = Address(b"\xee" * 20)
        holders = {int.from_bytes(address(n), "big"): n + 1 for n in range(args.accounts)}
        root = state.genesis(
            {address(n): GenesisAccount(balance=10**18) for n in range(args.accounts)}
            | {reader: GenesisAccount(code=READER, storage=holders)}, batch
        )
        state.commit(batch)
        built_s = time.perf_counter() - start
        print(f"state: {args.accounts} accounts, and a contract with a slot for each"
              f" (genesis + commit {built_s:.1f} s)")

        sample = [address(n) for n in rng.sample(range(args.accounts), args.reads)]
        trie = StateView(kv, root)
        trie_rate = reads_per_second(trie, sample)
        head = state.at(root)
        assert head.reads_flat
        cold = reads_per_second(head, sample)
        warm = reads_per_second(head, sample)
        print(f"account reads at the head per CPU second, {args.reads} random accounts "
              "through StateDB.at(head):")
        print(f"  trie walk          {trie_rate:>10,.0f} /s")
        print(f"  flat, cold cache   {cold:>10,.0f} /s  ({cold / trie_rate:.0f}x)")
        print(f"  flat, cached       {warm:>10,.0f} /s  ({warm / trie_rate:.0f}x)")

        if args.calls:
            calls = [
                CallMessage(sender=address(0), to=reader, gas=1_000_000, data=b"".join(
                    bytes(12) + address(n) for n in rng.sample(range(args.accounts), args.call_reads)
                ))
                for _ in range(args.calls)
            ]
            # Fresh samples: the flat runs start with a cold cache, the second warm.
            (by_trie, want), (cold, got), (warm, _) = (
                call_latencies(view, calls)
                for view in (StateView(kv, root), state.at(root), state.at(root))
            )
            assert got == want, "flat and trie calls answer differently"
            print(f"eth_call reading {args.call_reads} balances and {args.call_reads} slots,"
                  f" median of {args.calls}:")
            print(f"  trie walk          {by_trie * 1000:>7.2f} ms")
            print(f"  flat, cold cache   {cold * 1000:>7.2f} ms  ({by_trie / cold:.1f}x)")
            print(f"  flat, cached       {warm * 1000:>7.2f} ms  ({by_trie / warm:.1f}x)")

        timings: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for block in range(1, args.blocks + 1):
            diff = transfers(rng, args.accounts, args.transfers, block)
            for flat in (False, True):  # the flat run last: it moves the marker
                new_root, apply_s, commit_s = apply_seconds(kv, state, root, diff, flat)
                timings[flat].append((apply_s, commit_s))
            root = new_root
        if not args.blocks:
            kv.close()
            return
        print(f"StateDB.apply + commit per block of {args.transfers} transfers "
              f"({2 * args.transfers} account updates), median of {args.blocks}:")
        for flat in (False, True):
            apply_s = statistics.median(t[0] for t in timings[flat])
            commit_s = statistics.median(t[1] for t in timings[flat])
            label = "with flat writes" if flat else "trie only       "
            print(f"  {label}  apply {apply_s * 1000:7.0f} ms CPU  "
                  f"commit {commit_s * 1000:5.0f} ms")
        kv.close()


if __name__ == "__main__":
    main()
