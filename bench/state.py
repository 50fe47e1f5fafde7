"""State engine: state root + persist per block on a large generated state, against py-trie.

Builds a state of ``--accounts`` accounts in LevelDB (in a temporary directory), written
straight as trie by the native committer from the empty state, ``--chunk`` accounts a
commit (no transactions). Then, per block of ``--txs`` transfers (2 x txs account updates:
random existing senders, recipients half existing and half new), it times
``StateDB.apply`` (the root, with every new node staged) and the atomic LevelDB commit
(persist). As in the node, the block's accounts are first read from the flat tables (the
native executor's bulk read, timed apart: execution's, not the commit's) and ``apply`` is
given those rows (``known``), so it reads none again (``--no-known``: it reads them itself).
Before those reads, as the node does before it executes, the block's accounts are handed to
``StateDB.prefetch``, which reads their trie paths into the committer's node cache in a
thread; ``apply`` stops it if it is still running, so the nodes read during the root then
include its last chunk. The line says how many nodes it read and whether it had finished
when ``apply`` began (``--no-prefetch``: no prefetch, the blocks' figures before it).
The diffs are drawn from a generator seeded by the starting root, so a second run on a kept
state applies new ones. py-trie (``HexaryTrie`` with ``squash_changes``, as py-evm uses it) applies the
same diffs for ``--py-trie-blocks`` blocks in the same run, from the same parent state, and
its roots must match. Last, random account reads per second: from the flat tables as the node
reads its head (``StateDB.at``, one get each, cold cache), by py-trie walks (a ``StateView``
without the flat tables) and by the executor's batched native walk (``TrieReader``). Prints
the machine and the process's RSS; never fails for being slow.

    python -m bench.state --accounts 100000 --txs 10000
    python -m bench.state --accounts 1000000 --txs 10000 --py-trie-blocks 1
    python -m bench.state --accounts 1000000 --dir /tmp/state1m   # twice: build, then restarted

A run on a kept state (``--dir``) is a restarted node: as ``l2node run`` does at start, it
first warms the top of the account trie into the empty node cache (``StateDB.warm_top``, timed
apart; ``--no-warm-top``: not).

A 10M-account state in two steps (the build writes about 6 GB and commits ``--chunk``
accounts at a time; its peak RSS was 1.5 GB at 1M accounts and 2.9 GB at 3M, half of it
LevelDB's mapped tables): ``--blocks 0`` builds and keeps it, the second run is a restarted
node on it:

    python -m bench.state --accounts 10000000 --dir build/state10m --blocks 0 --reads 0
    python -m bench.state --accounts 10000000 --dir build/state10m --txs 50000 --blocks 4
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import rlp
from eth.rlp.accounts import Account as RlpAccount
from trie.hexary import HexaryTrie

from executor_gpu.native_abi import ABI
from executor_gpu.native_build import cpu_library
from executor_gpu.native_mpt import CACHE_BYTES, COMMIT_THREADS, hash_keys, pack_changes
from executor_gpu.native_state import TrieReader
from executor_gpu.types import AccountChange, StateDiff
from node.db.leveldb import NODE_SHARDS, LevelDBKV
from node.db.memory import PackedWrites, PendingWrites
from node.db.schema import STATE_NODE_PREFIX, flat_account_key, state_node_key
from node.db.state import StateDB, StateView
from primitives.blocks import EMPTY_ROOT
from primitives.crypto import keccak256
from primitives.types import Address, Hash32


def address(i: int) -> Address:
    """The i-th generated account."""
    return Address(keccak256(i.to_bytes(8, "big"))[:20])


def build(state: StateDB, kv: LevelDBKV, accounts: int, chunk: int) -> Hash32:
    """A state of ``accounts`` funded accounts, committed ``chunk`` accounts at a time."""
    root = EMPTY_ROOT
    for start in range(0, accounts, chunk):
        numbers = range(start, min(accounts, start + chunk))
        addresses = addresses_of(numbers)
        diff = StateDiff({a: AccountChange(nonce=0, balance=10**18 + i) for a, i in zip(addresses, numbers)})
        # Every account is new: the committer is told so instead of reading their flat rows.
        absent = dict.fromkeys(map(flat_account_key, hash_keys(addresses)))
        batch = kv.write_batch()
        root = state.apply(root, diff, batch, absent)
        batch.commit()
    return root


def addresses_of(numbers: range) -> list[Address]:
    """``address(i)`` of each number, hashed in one batch."""
    return [Address(digest[:20]) for digest in hash_keys([i.to_bytes(8, "big") for i in numbers])]


def block_diff(rng: random.Random, accounts: int, txs: int, block: int) -> StateDiff:
    """The account updates of ``txs`` transfers: senders among the existing accounts,
    recipients half existing and half new."""
    changes: dict[Address, AccountChange | None] = {}
    senders = rng.sample(range(accounts), txs)
    for n, i in enumerate(senders):
        changes[address(i)] = AccountChange(nonce=block + 1, balance=10**18 - 21_000 * 10**9 * (block + 1))
        recipient = address(rng.randrange(accounts) if n % 2 else accounts + rng.randrange(2**40))
        changes[recipient] = AccountChange(nonce=0, balance=10**18 + n)
    # Packed, as the native executor hands its diffs over (its packing is execution's time).
    return StateDiff(changes, packed=pack_changes(StateDiff(changes)))


def py_trie_apply(kv: LevelDBKV, root: Hash32, diff: StateDiff) -> bytes:
    """The same diff through py-trie (accounts only: the bench's diffs touch no storage)."""
    batch = kv.write_batch()
    trie: Any = HexaryTrie(_Writable(batch), root)  # py-trie is untyped
    with trie.squash_changes() as squashed:
        for addr, change in diff.accounts.items():
            assert change is not None and not change.storage
            key = keccak256(addr)
            old = squashed.get(key)
            account = rlp.decode(old, sedes=RlpAccount) if old else RlpAccount()
            squashed[key] = rlp.encode(account.copy(nonce=change.nonce, balance=change.balance))
    new_root: bytes = trie.root_hash
    return new_root


class _Writable(dict[bytes, bytes]):
    """py-trie's node store over a write batch (it reads and writes nodes by hash)."""

    def __init__(self, batch: Any) -> None:
        super().__init__()
        self._batch = batch

    def __getitem__(self, key: bytes) -> bytes:
        value: bytes | None = self._batch.get(state_node_key(key))
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._batch.put(state_node_key(key), value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._batch.get(state_node_key(key)) is not None


class CountingKV(LevelDBKV):
    """LevelDB that counts its gets: the trie nodes a block read from the store, and the rest
    (flat rows)."""

    gets = 0
    node_gets = 0
    written = 0
    """Entries of the last batch written."""

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        self.node_gets += key.startswith(STATE_NODE_PREFIX)
        return super().get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        self.gets += len(keys)
        self.node_gets += sum(key.startswith(STATE_NODE_PREFIX) for key in keys)
        return super().get_many(keys)

    def _prepare(self, writes: PendingWrites, packed: Sequence[PackedWrites]) -> Callable[[], None]:
        self.written = len(writes) + sum(len(puts.sizes) for puts in packed)
        return super()._prepare(writes, packed)


def rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now() -> str:
    """Resident memory of this process now, anonymous and file-backed (LevelDB maps its
    tables), from /proc (Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return "RSS unknown"
    mib = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("Rss")}
    return (f"RSS {mib.get('RssAnon', 0) + mib.get('RssFile', 0) + mib.get('RssShmem', 0):,.0f} MiB now"
            f" ({mib.get('RssAnon', 0):,.0f} anonymous, {mib.get('RssFile', 0):,.0f} file-backed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts in the generated state")
    parser.add_argument("--txs", type=int, default=10_000, help="transfers per block")
    parser.add_argument("--blocks", type=int, default=3, help="blocks to time")
    parser.add_argument("--py-trie-blocks", type=int, default=1, help="blocks py-trie also applies")
    parser.add_argument("--chunk", type=int, default=200_000, help="accounts per commit while building")
    parser.add_argument("--reads", type=int, default=2_000, help="random account reads to time")
    parser.add_argument("--cache-mib", type=int, default=CACHE_BYTES >> 20, help="committer's node cache")
    parser.add_argument("--threads", type=int, default=COMMIT_THREADS,
                        help="committer's worker threads (3 or more: the account pass in parallel)")
    parser.add_argument("--cold", action="store_true",
                        help="time the blocks on a fresh StateDB (a restarted node: empty node cache)")
    parser.add_argument("--no-known", action="store_true",
                        help="apply reads the old flat rows itself (not given the executor's reads)")
    parser.add_argument("--execute-ms", type=int, default=0,
                        help="idle this long after the flat reads, as the rest of an execution on"
                             " other cores would (the prefetch goes on meanwhile)")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="no prefetch of the blocks' trie paths while they 'execute'")
    parser.add_argument("--no-warm-top", action="store_true",
                        help="on a kept state (a restarted node), no StateDB.warm_top before the"
                             " blocks (the node's first blocks before it had one)")
    parser.add_argument("--node-shards", type=int, default=NODE_SHARDS,
                        help="a new store's node databases (0: the nodes in its one database;"
                             " a kept state keeps what it was made with)")
    parser.add_argument("--dir", type=Path,
                        help="keep the state in this folder; a later run on it skips the build and is"
                             " a restarted node (its RSS is that of a node holding the state)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
          f"committer threads {args.threads}")
    with tempfile.TemporaryDirectory() if args.dir is None else nullcontext(args.dir) as folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        kv = CountingKV(Path(folder) / "state", node_shards=args.node_shards)
        print(f"LevelDB: the trie nodes in {kv.node_shards or 'the main'} database"
              f"{'s of their own' if kv.node_shards else ''}")
        state = StateDB(kv, args.cache_mib << 20, threads=args.threads)
        saved = Path(folder) / f"root-{args.accounts}"
        if saved.exists():
            root = Hash32(bytes.fromhex(saved.read_text()))
            print(f"reusing the state of {args.accounts:,} accounts in {folder}: node cache"
                  f" {args.cache_mib} MiB, empty; {rss_now()}")
        else:
            start = time.perf_counter()
            root = build(state, kv, args.accounts, args.chunk)
            took = time.perf_counter() - start
            print(f"built {args.accounts:,} accounts in {took:.1f} s ({args.accounts / took:,.0f} accounts/s,"
                  f" committer + LevelDB), peak RSS {rss_mib():,.0f} MiB; node cache {args.cache_mib} MiB"
                  f"{', emptied (--cold)' if args.cold else ''}")
            start = time.perf_counter()
            kv.compact()  # as a node that grew its state over time has it: no compaction debt
            print(f"compacted LevelDB in {time.perf_counter() - start:.1f} s")
        if args.cold:
            state = StateDB(kv, args.cache_mib << 20, threads=args.threads)
        if saved.exists() and not args.no_warm_top:
            # As `l2node run` does at start: the trie's top read into the empty node cache.
            start = time.perf_counter()
            with state.warm_top(root) as warming:
                while not warming.done:
                    time.sleep(0.01)
            warmed = warming.warmed
            print(f"warmed the top of the trie (StateDB.warm_top, as a starting node does) in "
                  f"{time.perf_counter() - start:.1f} s: {warmed.nodes if warmed else 0:,} nodes; "
                  f"{rss_now()}")
        rng = random.Random(root)  # a kept state's next run draws new diffs
        for block in range(args.blocks):
            diff = block_diff(rng, args.accounts, args.txs, block)
            start = time.perf_counter()
            prefetch = None if args.no_prefetch else state.prefetch(root, diff.accounts)
            view = state.at(root)  # the executor's bulk read of the block's accounts
            view.flat_accounts(hash_keys(list(diff.accounts)))
            known = None if args.no_known else view.bulk_reads()
            executor_reads = time.perf_counter() - start
            time.sleep(args.execute_ms / 1000)
            finished = prefetch is not None and prefetch.done
            batch = kv.write_batch()
            kv.gets = kv.node_gets = 0
            start, cpu = time.perf_counter(), time.process_time()
            new_root = state.apply(root, diff, batch, known)
            applied = time.perf_counter() - start
            batch.commit()
            persisted = time.perf_counter() - start
            if prefetch is not None:
                prefetch.close()  # ended by apply: nothing left to wait for
            # CPU time of all threads: on a shared box, what the work costs apart from waiting
            cpu = time.process_time() - cpu
            line = (f"block {block + 1}: {args.txs:,} transfers ({len(diff.accounts):,} accounts), "
                    f"{kv.node_gets:,} nodes and {kv.gets - kv.node_gets:,} flat rows read, {kv.written:,} written: root {applied * 1000:.0f} ms + persist "
                    f"{(persisted - applied) * 1000:.0f} ms = {persisted * 1000:.0f} ms"
                    f" (CPU {cpu * 1000:.0f} ms; the executor's flat reads before it {executor_reads * 1000:.0f} ms)")
            if prefetch is not None and prefetch.warmed is not None:
                line += (f"; prefetch read {prefetch.warmed.nodes:,} nodes,"
                         f" {'finished' if finished else 'unfinished'} when the root began")
            if block < args.py_trie_blocks:
                start = time.perf_counter()
                reference = py_trie_apply(kv, root, diff)
                took = time.perf_counter() - start
                same = "same root" if reference == new_root else "ROOT DIFFERS"
                line += f"; py-trie root {took * 1000:,.0f} ms ({took / applied:.0f}x), {same}"
            print(line, flush=True)
            root = new_root
        if args.dir is not None:
            saved.write_text(root.hex())
        if args.reads:
            print(f"random account reads: {reads(state, kv, root, rng, args.accounts, args.reads)}")
        print(f"{rss_now()}, {rss_mib():,.0f} MiB at peak")
        kv.close()


def reads(state: StateDB, kv: LevelDBKV, root: Hash32, rng: random.Random, accounts: int, count: int) -> str:
    """Random account reads per second at the head: flat, by py-trie walks, by native walks."""
    rates = []
    head = state.at(root)
    assert head.reads_flat
    for view in (head, StateView(kv, root)):
        picks = [address(rng.randrange(accounts)) for _ in range(count)]
        start = time.perf_counter()
        for addr in picks:
            assert view.get_account(addr) is not None
        rates.append(count / (time.perf_counter() - start))
    picks = [address(rng.randrange(accounts)) for _ in range(count)]
    reader = TrieReader(head.node_store, cpu_library())
    keys = np.frombuffer(b"".join(picks), dtype=np.uint8).reshape(-1, 20)
    start = time.perf_counter()
    paths = reader.paths(keys)
    roots = np.tile(np.frombuffer(root, dtype=np.uint8), (len(picks), 1))
    rows = np.zeros((len(picks), ABI["ACC_WORDS"]), dtype=np.uint64)
    found = reader.walk(roots, paths, rows, np.zeros((len(picks), 32), dtype=np.uint8))
    rates.append(count / (time.perf_counter() - start))
    assert found.all()
    flat, walked, native = rates
    return (f"flat {flat:,.0f}/s (StateDB.at(head), cold cache), py-trie walk {walked:,.0f}/s,"
            f" native batched walk {native:,.0f}/s")


if __name__ == "__main__":
    main()
