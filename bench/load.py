"""End-to-end throughput of a real `l2node run` process, and of anvil on the same load.

Starts `l2node run` with configs/throughput.toml (1 s blocks, 3G gas) on a free port and, when
npm installed it, anvil with the same block time, gas limit, chain id and prefunded accounts.
Senders are the first accounts of the development mnemonic, funded by each chain's genesis.
The whole load is signed before timing (the same bytes for both targets), then sent as
batched `eth_sendRawTransaction` over several keep-alive connections, each sender's
transactions in nonce order on one connection. New blocks are polled to see when each
transaction is included. For each target it prints:

- acceptance tx/s: transactions accepted over the wall time of sending (errors by message);
- inclusion tx/s: transactions found in blocks over the time from the first send to the
  last inclusion;
- latency p50/p99 from the send of a transaction's batch to the poll that saw its block;
- CPU cores the target's processes used over that window, and their peak RSS;

and the ratio l2node/anvil, with the machine, GPU, executor and commit. Workloads:
`transfer` (ETH to fresh addresses), `erc20` (TestToken transfers to fresh addresses; the
token is deployed and the senders funded before timing) and `payments` (each sender pays the
next one); `--prefill-accounts N` puts N more accounts in both genesis states (l2node: a
genesis file; anvil: --init) and sends the load to them instead of fresh addresses.
`--validators N` loads node 0 of `l2node devnet --validators N --preset` the same preset
(genesis weights, no GPU challenges): inclusion is then finalization by >2/3 of the
validators, and CPU and RSS count every node; with `--spread`, connection i goes to validator
i mod N instead, as wallets using different validators' RPC would (each sender's transactions
still reach one node, in nonce order). A benchmark prints: it never fails for being slow.

    python -m bench.load --workload transfer --txs 20000 [--executor native-cuda] [--no-anvil]
    python -m bench.load --validators 4 --no-anvil --txs 20000 [--spread] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp

from node.devnet import ANVIL_PORT_OFFSET, METRICS_PORT_OFFSET, NODE_LINE, P2P_PORT_OFFSET
from node.genesis import development_keys
from primitives.crypto import keccak256, private_key_to_address, sign_hash
from tests.nodeproc import PORT_RANGE, free_port, l2node_command, l2node_env, running_node

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "throughput.toml"
TOKEN_SOURCE = ROOT / "tests" / "e2e" / "TestToken.sol"

TIP = 1_000_000_000
"""Priority fee: 1 gwei."""
FEE_CAP = 100_000_000_000
"""100 gwei, far above the 1 gwei start: a rising base fee strands nothing."""
TRANSFER_GAS = 21_000
TOKEN_TRANSFER_GAS = 65_000
"""A TestToken transfer to a fresh holder uses about 52,000 gas; builders pack by the limit."""
DEPLOY_GAS = 2_000_000
TOKENS_PER_SENDER = 10**24
TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")
BALANCE_OF_SELECTOR = bytes.fromhex("70a08231")
POLL_INTERVAL = 0.025
"""Seconds between polls for the next block: the resolution of the latency figures."""
STOP_TIMEOUT = 30.0
"""Seconds a target gets to exit on SIGTERM before it is killed."""


# -- the load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedTx:
    """One pre-signed transaction."""

    raw: bytes
    """Encoded as sent to eth_sendRawTransaction."""
    hash: str
    """0x-hex transaction hash, as blocks list it."""
    sender: int
    """Index of the sending account."""


def sign_1559(key: bytes, chain_id: int, nonce: int, gas: int, to: bytes | None, value: int,
              data: bytes = b"") -> bytes:
    """An EIP-1559 transaction signed with ``key``, encoded."""
    fields: list[Any] = [chain_id, nonce, TIP, FEE_CAP, gas, to or b"", value, data, []]
    y_parity, r, s = sign_hash(keccak256(b"\x02" + rlp.encode(fields)), key)
    return b"\x02" + bytes(rlp.encode([*fields, y_parity, r, s]))


def signed(raw: bytes, sender: int) -> SignedTx:
    return SignedTx(raw, "0x" + keccak256(raw).hex(), sender)


def fresh_address(index: int) -> bytes:
    """A recipient no chain has seen: one per transaction, so each creates an account."""
    return keccak256(b"l2node bench.load recipient" + index.to_bytes(8, "big"))[12:]


def prefill_addresses(count: int) -> list[bytes]:
    """Accounts that exist at genesis for the large-state workload (1 wei each)."""
    return [keccak256(b"l2node bench.load prefill" + i.to_bytes(8, "big"))[12:]
            for i in range(count)]


def contract_address(deployer: bytes, nonce: int) -> bytes:
    return keccak256(rlp.encode([deployer, nonce]))[12:]


def token_call(selector: bytes, address: bytes, value: int | None = None) -> bytes:
    data = selector + address.rjust(32, b"\0")
    return data if value is None else data + value.to_bytes(32, "big")


@dataclass
class Workload:
    """Untimed setup transactions and the timed load, all signed."""

    name: str
    setup: list[SignedTx]
    load: list[SignedTx]
    token: bytes | None = None
    """The ERC-20 contract (erc20 workload)."""
    check_holder: bytes | None = None
    """An account whose token balance shows that the setup ran."""


def build_workload(name: str, keys: Sequence[bytes], txs: int, chain_id: int,
                   recipients: Sequence[bytes] = ()) -> Workload:
    """Sign ``txs`` transactions from accounts 1..len(keys)-1, round by round (a nonce of each
    sender per round), to ``recipients`` in turn (fresh addresses when there are none);
    account 0 deploys and funds the token for ``erc20``. ``payments``: each sender pays the
    next one, so every transfer reads a balance the one before it changed."""
    senders = len(keys) - 1
    addresses = [private_key_to_address(key) for key in keys]
    setup: list[SignedTx] = []
    token: bytes | None = None
    if name == "erc20":
        from tests.solc import compile_contract

        _, bytecode = compile_contract(TOKEN_SOURCE, "TestToken")
        supply = TOKENS_PER_SENDER * senders
        init = bytes.fromhex(bytecode.removeprefix("0x")) + supply.to_bytes(32, "big")
        setup.append(signed(sign_1559(keys[0], chain_id, 0, DEPLOY_GAS, None, 0, init), 0))
        token = contract_address(addresses[0], 0)
        for s in range(1, senders + 1):
            data = token_call(TRANSFER_SELECTOR, addresses[s], TOKENS_PER_SENDER)
            raw = sign_1559(keys[0], chain_id, s, TOKEN_TRANSFER_GAS + 15_000, token, 0, data)
            setup.append(signed(raw, 0))
    elif name not in ("transfer", "payments"):
        raise ValueError(f"unknown workload {name!r}")
    job = _LoadJob(name, tuple(keys), tuple(addresses), chain_id, tuple(recipients), token)
    # Signing a large load takes one core a minute; a many-core host's cores, seconds (each
    # process starts in about a second: not worth it on a few cores).
    workers = min((os.cpu_count() or 1) // 2, txs // SIGN_SHARE)
    if workers < SIGN_WORKERS_MIN:
        load = job.sign(0, txs)
    else:
        bounds = [(txs * n // workers, txs * (n + 1) // workers) for n in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            load = [tx for part in pool.map(job.sign_range, bounds) for tx in part]
    return Workload(name, setup, load, token, addresses[-1] if token else None)


SIGN_SHARE = 5_000
"""Transactions a signing process takes at least."""
SIGN_WORKERS_MIN = 4
"""Fewer signing processes than this: the load is signed in this one."""


@dataclass(frozen=True)
class _LoadJob:
    """What signing part of a load needs (sent to the signing processes)."""

    name: str
    """The workload."""
    keys: tuple[bytes, ...]
    """Account 0 (the token's deployer) and the senders' keys."""
    addresses: tuple[bytes, ...]
    """Their addresses."""
    chain_id: int
    """The chain signed for."""
    recipients: tuple[bytes, ...]
    """Who is paid, in turn (none: a fresh address each)."""
    token: bytes | None
    """The ERC-20 contract, for the erc20 workload."""

    def sign_range(self, bounds: tuple[int, int]) -> list[SignedTx]:
        return self.sign(*bounds)

    def sign(self, start: int, stop: int) -> list[SignedTx]:
        """Load transactions ``start`` to ``stop`` (see build_workload)."""
        senders = len(self.keys) - 1
        load: list[SignedTx] = []
        for i in range(start, stop):
            sender, nonce = 1 + i % senders, i // senders
            to: bytes
            if self.name == "payments":  # the next sender
                to = self.addresses[1 + sender % senders]
            else:
                to = self.recipients[i % len(self.recipients)] if self.recipients else fresh_address(i)
            if self.token is None:
                raw = sign_1559(self.keys[sender], self.chain_id, nonce, TRANSFER_GAS, to, 1)
            else:
                data = token_call(TRANSFER_SELECTOR, to, 1)
                raw = sign_1559(self.keys[sender], self.chain_id, nonce, TOKEN_TRANSFER_GAS,
                                self.token, 0, data)
            load.append(signed(raw, sender))
        return load


@dataclass(frozen=True)
class Batch:
    """One HTTP request's worth of transactions, encoded before timing."""

    body: bytes
    indexes: tuple[int, ...]
    """Positions of its transactions in the load (also their JSON-RPC ids)."""


def plan_batches(txs: Sequence[SignedTx], connections: int, batch: int) -> list[list[Batch]]:
    """Each connection's batches: a sender's transactions all go to one connection, in order."""
    lanes: list[list[int]] = [[] for _ in range(connections)]
    for index, tx in enumerate(txs):
        lanes[tx.sender % connections].append(index)
    plans = []
    for lane in lanes:
        batches = []
        for start in range(0, len(lane), batch):
            indexes = tuple(lane[start:start + batch])
            items = [
                b'{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":["0x%s"]}'
                % (i, txs[i].raw.hex().encode())
                for i in indexes
            ]
            batches.append(Batch(b"[" + b",".join(items) + b"]", indexes))
        plans.append(batches)
    return plans


# -- talking to a target ------------------------------------------------------------------------


class Rpc:
    """JSON-RPC over one keep-alive HTTP connection (reconnects after a failure)."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Any:
        """Send ``body``; the decoded answer. Raises OSError/HTTPException on transport errors."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.connection.request("POST", "/", body, {"Content-Type": "application/json"})
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.status != 200:
            raise http.client.HTTPException(f"HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """``result`` of one call; RuntimeError for an error answer."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        answer = self.post(body.encode())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``'s tree, children it waited for included."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int:
    """Sum of VmHWM (peak resident set) over ``pid``'s tree."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


@dataclass
class Target:
    """A running chain to load."""

    name: str
    url: str
    pid: int
    log_path: Path
    metrics_url: str = ""
    """Its Prometheus endpoint, where it has one (l2node): the executor's time is read there."""
    validator_logs: tuple[Path, ...] = ()
    """A devnet's: every validator's log, node 0's first (``heights``)."""
    validator_urls: tuple[str, ...] = ()
    """A devnet's: every validator's RPC, node 0's first (where ``--spread`` sends)."""
    data_dir: Path | None = None
    """Where it stores the chain (a devnet's node 0), whose growth under the load is measured."""


@dataclass
class BlockWatcher:
    """Polls new blocks in a thread and timestamps each load transaction when its block shows."""

    rpc: Rpc
    index: dict[str, int]
    """Transaction hash -> position in the load."""
    pid: int
    next_block: int
    seen_at: list[float | None]
    included: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    cpu_at_last: float = 0.0
    blocks: list[tuple[int, int, int]] = field(default_factory=list)
    """(number, load transactions, all transactions) of blocks holding load transactions."""
    expected: int | None = None
    """Set when sending ends: stop once this many transactions have been seen."""
    stop: threading.Event = field(default_factory=threading.Event)
    poll_errors: int = 0
    error: str | None = None
    """The last failed poll's error."""

    def run(self) -> None:
        while not self.stop.is_set():
            if self.expected is not None and self.included >= self.expected:
                return
            try:
                block = self.rpc.call("eth_getBlockByNumber", [hex(self.next_block), False])
            except (OSError, http.client.HTTPException, RuntimeError, ValueError) as exc:
                # A busy target may time out a poll: try again, and report it with the figures.
                self.poll_errors += 1
                self.error = f"{type(exc).__name__}: {exc}"
                time.sleep(POLL_INTERVAL)
                continue
            if block is None:
                time.sleep(POLL_INTERVAL)
                continue
            now = time.monotonic()
            new = 0
            for tx_hash in block["transactions"]:
                position = self.index.get(tx_hash)
                if position is not None and self.seen_at[position] is None:
                    self.seen_at[position] = now
                    new += 1
            if new:
                self.included += new
                self.first_seen = self.first_seen or now
                self.last_seen = now
                self.cpu_at_last = cpu_seconds(self.pid)
                self.blocks.append((self.next_block, new, len(block["transactions"])))
            self.next_block += 1


@dataclass
class SendResult:
    """What the senders saw."""

    sent_at: list[float]
    accepted: list[bool]
    errors: Counter[str]
    started: float
    finished: float
    accepted_by: Counter[str]
    """Transactions each RPC endpoint accepted."""


def send_all(urls: Sequence[str], plans: list[list[Batch]], total: int, deadline: float) -> SendResult:
    """Send every batch, one thread per connection (connection i to ``urls[i % len(urls)]``);
    each transaction's send time and answer."""
    sent_at = [0.0] * total
    accepted = [False] * total
    errors: Counter[str] = Counter()
    accepted_by: Counter[str] = Counter()
    lock = threading.Lock()

    def lane(batches: list[Batch], url: str) -> None:
        rpc = Rpc(url)
        for batch in batches:
            now = time.monotonic()
            for i in batch.indexes:
                sent_at[i] = now
            if now > deadline:
                with lock:
                    errors["not sent: timeout"] += len(batch.indexes)
                continue
            try:
                answers = rpc.post(batch.body)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                with lock:
                    errors[f"transport: {type(exc).__name__}: {exc}"] += len(batch.indexes)
                continue
            if not isinstance(answers, list):  # one error for the whole request
                with lock:
                    errors[f"request: {answers.get('error')}"] += len(batch.indexes)
                continue
            took = 0
            for answer in answers:
                if "result" in answer:
                    accepted[answer["id"]] = True
                    took += 1
                else:
                    with lock:
                        errors[str(answer.get("error", {}).get("message"))] += 1
            with lock:
                accepted_by[url] += took
        rpc.close()

    threads = [threading.Thread(target=lane, args=(p, urls[i % len(urls)]), daemon=True)
               for i, p in enumerate(plans) if p]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return SendResult(sent_at, accepted, errors, started, time.monotonic(), accepted_by)


def folder_bytes(folder: Path | None) -> int | None:
    """Bytes of the files under ``folder`` (None: no folder); a file LevelDB deletes while
    they are counted counts nothing."""
    if folder is None or not folder.is_dir():
        return None
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file():
                total += path.stat().st_size
    return total


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def run_load(target: Target, txs: Sequence[SignedTx], connections: int, batch: int,
             timeout: float, measure: bool = True, spread: bool = False) -> dict[str, Any]:
    """Send ``txs``, wait for their inclusion (at most ``timeout`` s after sending), measure;
    ``spread``: over every validator's RPC of a devnet."""
    plans = plan_batches(txs, connections, batch)
    rpc = Rpc(target.url)
    head = int(rpc.call("eth_blockNumber"), 16)
    watcher = BlockWatcher(rpc, {tx.hash: i for i, tx in enumerate(txs)}, target.pid,
                           head + 1, [None] * len(txs))
    poller = threading.Thread(target=watcher.run, daemon=True)
    seconds_before = node_seconds(target.metrics_url)
    cpu_before = cpu_seconds(target.pid)
    stored_before = folder_bytes(target.data_dir)
    poller.start()
    urls = target.validator_urls if spread and target.validator_urls else (target.url,)
    sent = send_all(urls, plans, len(txs), time.monotonic() + timeout)
    watcher.expected = sum(sent.accepted)
    poller.join(timeout)
    watcher.stop.set()
    poller.join(10)
    rpc.close()
    included = watcher.included
    stages = block_stages(target.log_path, head + 1) if target.name == "l2node" else {}
    heights = devnet_heights(target.validator_logs, head + 1) if target.validator_logs else {}
    deadline = time.monotonic() + HEIGHT_LINES_WAIT
    while heights.get("unproposed") and time.monotonic() < deadline:
        time.sleep(0.1)  # a proposer logs its block after node 0 may have committed it
        heights = devnet_heights(target.validator_logs, head + 1)
    seconds_after = node_seconds(target.metrics_url)
    stored_after = folder_bytes(target.data_dir)
    if not measure:
        return {"accepted": watcher.expected, "included": included, "errors": dict(sent.errors)}
    send_seconds = sent.finished - sent.started
    end = watcher.last_seen or sent.finished
    latencies = [seen - sent.sent_at[i] for i, seen in enumerate(watcher.seen_at)
                 if seen is not None]
    cpu_after = watcher.cpu_at_last if watcher.last_seen else cpu_seconds(target.pid)
    window = max(end - sent.started, 1e-9)
    return {
        "txs": len(txs),
        "endpoints": len(+sent.accepted_by),  # those that accepted transactions
        "accepted": watcher.expected,
        "errors": dict(sent.errors),
        "included": included,
        "send_seconds": send_seconds,
        "acceptance_tps": watcher.expected / max(send_seconds, 1e-9),
        "inclusion_seconds": end - sent.started,
        "inclusion_tps": included / window,
        "latency_p50_s": percentile(latencies, 50) if latencies else None,
        "latency_p99_s": percentile(latencies, 99) if latencies else None,
        "blocks": len(watcher.blocks),
        "max_block_txs": max((b[1] for b in watcher.blocks), default=0),
        "cpu_cores": (cpu_after - cpu_before) / window,
        "peak_rss_mib": peak_rss_bytes(target.pid) / 2**20,
        # What the load left on disk (LevelDB's log and tables as they stand: compaction may
        # still shrink or grow them), per included transaction.
        "stored_bytes_per_tx": (None if stored_before is None or stored_after is None or not included
                                else (stored_after - stored_before) / included),
        "poll_errors": watcher.poll_errors,
        "last_poll_error": watcher.error,
        "block_stages_s": stages,
        "heights": heights,
        "executor_s": {phase: seconds - seconds_before.get(phase, 0.0)
                       for phase, seconds in seconds_after.items() if not phase.startswith("gc ")},
        "gc_s": {phase: seconds - seconds_before.get(phase, 0.0)
                 for phase, seconds in seconds_after.items() if phase.startswith("gc ")},
    }


HEIGHT_LINES_WAIT = 10.0
"""Seconds to wait, after the load, for the block lines of the heights whose proposer had not
logged them yet."""
_BLOCK_LINE = re.compile(r"block (\d+) txs=(\d+) .*?root=\w+ (.*)$")
_STAGE = re.compile(r"(\w+)=(\d+)ms")
_CONSENSUS = re.compile(r" round=(\d+) .*? final=(\d+)ms")


_SECONDS_SAMPLE = re.compile(
    r'^l2node_(executor_host|executor_device|gc)_seconds_total\{(?:phase|generation)="(\w+)"\} (\S+)$',
    re.MULTILINE)
_SECONDS_SIDE = {"executor_host": "", "executor_device": "device ", "gc": "gc "}


def node_seconds(metrics_url: str) -> dict[str, float]:
    """Seconds so far from the node's metrics: the native executor's by phase, host ("load",
    ...) and device ("device upload", ...), and the cycle collector's by generation ("gc 2");
    empty without metrics."""
    if not metrics_url:
        return {}
    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {_SECONDS_SIDE[side] + name: float(value)
            for side, name, value in _SECONDS_SAMPLE.findall(text)}


def log_tail(log_path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a target's log (empty when it has none)."""
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def block_stages(log_path: Path, first_block: int) -> dict[str, float]:
    """Seconds per stage of the block path, summed over the blocks from ``first_block`` on
    that carried transactions, from the node's block log lines; "blocks" counts them."""
    totals: dict[str, float] = {"blocks": 0}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _BLOCK_LINE.search(line)
        if match is None or int(match[1]) < first_block or match[2] == "0":
            continue
        totals["blocks"] += 1
        for name, ms in _STAGE.findall(match[3]):
            totals[name] = totals.get(name, 0.0) + int(ms) / 1000
    return totals


def devnet_heights(logs: Sequence[Path], first_block: int) -> dict[str, Any]:
    """Where a devnet's heights went, from ``first_block`` on (those that carried
    transactions), from its validators' block lines (``logs``: node 0's first). The
    proposer of a height is the node whose line has ``select=`` (it built the block; the
    others re-executed it: ``decode=``). Its transactions per block tell whether the other
    proposers' pools kept up with node 0's (gossip, when the load goes to node 0 only), the
    build and re-execution times (select or decode, execute, state) what a height costs, and
    node 0's ``final=`` and rounds how long agreeing took."""
    lines: dict[int, dict[int, tuple[int, int, int, dict[str, int]]]] = {}
    for node, log_path in enumerate(logs):
        for line in log_path.read_text(errors="replace").splitlines():
            match = _BLOCK_LINE.search(line)
            if match is None or int(match[1]) < first_block or match[2] == "0":
                continue
            stages = {name: int(ms) for name, ms in _STAGE.findall(match[3])}
            consensus = _CONSENSUS.search(line)
            round_, final = (int(consensus[1]), int(consensus[2])) if consensus else (0, 0)
            lines.setdefault(int(match[1]), {})[node] = (int(match[2]), round_, final, stages)
    by_entry: list[int] = []
    by_others: list[int] = []
    builds: list[int] = []
    checks: list[int] = []
    finals: list[int] = []
    later_rounds = unproposed = 0
    for nodes in lines.values():
        proposers = [node for node, seen in nodes.items() if "select" in seen[3]]
        if not proposers:  # its proposer's log has not got there yet
            unproposed += 1
            continue
        txs = next(iter(nodes.values()))[0]
        (by_entry if proposers == [0] else by_others).append(txs)
        for node, (_, round_, final, stages) in nodes.items():
            work = sum(stages.get(name, 0) for name in ("select", "decode", "execute", "state"))
            (builds if node in proposers else checks).append(work)
            if node == 0:
                finals.append(final)
                later_rounds += round_ > 0
    return {
        "heights": len(by_entry) + len(by_others),
        "entry_proposed": len(by_entry),
        "entry_txs_mean": sum(by_entry) / len(by_entry) if by_entry else 0.0,
        "others_proposed": len(by_others),
        "others_txs_mean": sum(by_others) / len(by_others) if by_others else 0.0,
        "final_ms_p50": percentile(finals, 50) if finals else None,
        "final_ms_max": max(finals, default=None),
        "later_rounds": later_rounds,
        "build_ms_p50": percentile(builds, 50) if builds else None,
        "check_ms_p50": percentile(checks, 50) if checks else None,
        "unproposed": unproposed,
    }


def check_receipts(target: Target, txs: Sequence[SignedTx], sample: int = 50) -> int:
    """How many of an even sample of the load's receipts failed (status 0) or are missing."""
    rpc = Rpc(target.url)
    step = max(1, len(txs) // sample)
    failed = 0
    for tx in txs[::step]:
        receipt = rpc.call("eth_getTransactionReceipt", [tx.hash])
        if receipt is None or int(receipt["status"], 16) != 1:
            failed += 1
    rpc.close()
    return failed


def run_setup(target: Target, workload: Workload, timeout: float) -> None:
    """Send the setup transactions and check that they took effect."""
    if not workload.setup:
        return
    result = run_load(target, workload.setup, 1, 500, timeout, measure=False)
    if result["included"] != len(workload.setup):
        raise RuntimeError(f"{target.name}: setup incomplete: {result}; its log ends:\n"
                           + log_tail(target.log_path))
    assert workload.token is not None and workload.check_holder is not None
    rpc = Rpc(target.url)
    data = token_call(BALANCE_OF_SELECTOR, workload.check_holder)
    balance = rpc.call("eth_call", [{"to": "0x" + workload.token.hex(),
                                     "data": "0x" + data.hex()}, "latest"])
    rpc.close()
    if int(balance, 16) != TOKENS_PER_SENDER:
        raise RuntimeError(f"{target.name}: token setup failed, holder balance {balance}")


# -- the targets --------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def load_preset(gas_limit: int | None = None) -> dict[str, Any]:
    """configs/throughput.toml, with ``gas_limit`` as its block gas limit when given."""
    preset = tomllib.loads(PRESET.read_text())
    if gas_limit is not None:
        preset["chain"]["gas_limit"] = gas_limit
    return preset


def node_config(preset: dict[str, Any], accounts: int, executor: str,
                genesis_file: Path | None = None, fronts: str | None = None) -> str:
    """``preset`` (``load_preset``) with this run's accounts, executor, genesis and RPC fronts
    (None: the preset's), as TOML text."""
    preset = copy.deepcopy(preset)
    preset["genesis"]["accounts"] = accounts
    preset["executor"]["kind"] = executor
    if fronts is not None:
        preset["rpc"]["fronts"] = fronts if fronts == "auto" else int(fronts)
    if genesis_file is not None:
        preset["genesis"]["file"] = str(genesis_file.resolve())
    lines = []
    for section, values in preset.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def chain_settings(preset: dict[str, Any]) -> dict[str, Any]:
    """The preset's [chain] values, with the genesis mnemonic and balance."""
    genesis = preset["genesis"]
    return {**preset["chain"], "mnemonic": genesis["mnemonic"],
            "balance_wei": genesis["balance_wei"]}


def write_genesis_files(work: Path, preset: dict[str, Any], funded: Sequence[bytes],
                        prefill: Sequence[bytes]) -> tuple[Path, Path]:
    """Genesis files holding ``prefill`` (1 wei each): l2node's (node/genesis.py format, with the
    ``funded`` senders and the preset's chain and validator) and anvil's (geth format, for
    --init; anvil funds the senders itself from --mnemonic/--accounts)."""
    chain = preset["chain"]
    validator = private_key_to_address(bytes.fromhex(
        preset["validator"]["private_key"].removeprefix("0x")))
    balance = hex(preset["genesis"]["balance_wei"])
    alloc = {"0x" + a.hex(): {"balance": balance} for a in funded}
    alloc |= {"0x" + a.hex(): {"balance": "0x1"} for a in prefill}
    node_genesis = work / "l2node-genesis.json"
    node_genesis.write_text(json.dumps({
        "chain_id": chain["chain_id"], "timestamp": chain["genesis_timestamp"],
        "gas_limit": chain["gas_limit"], "base_fee_per_gas": chain["initial_base_fee"],
        "alloc": alloc, "validators": [{"address": "0x" + validator.hex(), "weight": 1}],
    }))
    forks = ["homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople",
             "petersburg", "istanbul", "berlin", "london"]
    anvil_genesis = work / "anvil-genesis.json"
    anvil_genesis.write_text(json.dumps({
        "config": {"chainId": chain["chain_id"], **{f"{f}Block": 0 for f in forks},
                   "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0},
        "nonce": "0x0", "difficulty": "0x0", "timestamp": hex(chain["genesis_timestamp"]),
        "gasLimit": hex(chain["gas_limit"]), "baseFeePerGas": hex(chain["initial_base_fee"]),
        "alloc": {a.hex(): {"balance": "0x1"} for a in prefill},
    }))
    return node_genesis, anvil_genesis


@contextmanager
def l2node_target(work: Path, preset: dict[str, Any], accounts: int, executor: str,
                  genesis_file: Path | None = None, fronts: str | None = None) -> Iterator[Target]:
    """`l2node run` with ``preset``; SIGTERM (then kill) at the end."""
    config = node_config(preset, accounts, executor, genesis_file, fronts)
    # Building a large genesis state takes a while (about 35 s per million accounts).
    with running_node(work / "l2node", free_port(), config, start_timeout=600,
                      metrics_port=free_port()) as node:
        yield Target("l2node", node.url, node.process.pid, node.log_path, node.metrics_url,
                     data_dir=work / "l2node")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def devnet_base_port(validators: int) -> int:
    """A base port whose devnet ports (RPC, libp2p, metrics of each node; anvil) are free now."""
    offsets = [ANVIL_PORT_OFFSET, *(offset + i for offset in (0, P2P_PORT_OFFSET, METRICS_PORT_OFFSET)
                                    for i in range(validators))]
    for _ in range(100):
        base = free_port()
        if base + max(offsets) < PORT_RANGE[1] and all(_port_free(base + o) for o in offsets):
            return base
    raise RuntimeError("no free range of ports for the devnet")


@contextmanager
def devnet_target(work: Path, preset: dict[str, Any], validators: int, accounts: int,
                  executor: str) -> Iterator[Target]:
    """`l2node devnet --validators N` with ``preset`` and the genesis weights
    (epoch length 0: no GPU challenges competing for the cores); the load goes to node 0,
    whose committed blocks are the finalized chain. CPU and RSS count every node (and the
    devnet's anvil, when installed). SIGTERM stops them all at the end."""
    preset_file = work / "devnet-preset.toml"
    preset_file.write_text(node_config(preset, accounts, executor))
    base_port = devnet_base_port(validators)
    process = subprocess.Popen(
        l2node_command("devnet", "--validators", str(validators), "--preset", str(preset_file),
                       "--executor", executor, "--data-dir", str(work / "devnet"),
                       "--base-port", str(base_port), "--epoch-length", "0"),
        stdout=subprocess.PIPE, text=True, env=l2node_env(),
    )
    try:
        assert process.stdout is not None
        nodes: dict[int, re.Match[str]] = {}  # each validator's line
        while len(nodes) < validators:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"l2node devnet exited with {process.wait()}")
            if match := NODE_LINE.match(line):
                nodes[int(match[1])] = match
        urls = tuple(nodes[i][3] for i in sorted(nodes))
        url, log_path = urls[0], Path(nodes[0][5])
        deadline = time.monotonic() + 120
        for node_url in urls:  # every validator up and finalizing
            rpc = Rpc(node_url)
            while True:
                try:
                    if int(rpc.call("eth_blockNumber"), 16) >= 2:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the devnet did not finalize blocks; see {log_path}")
                time.sleep(0.2)
            rpc.close()
        logs = tuple(Path(nodes[i][5]) for i in sorted(nodes))
        yield Target("l2node", url, process.pid, log_path,
                     f"http://127.0.0.1:{base_port + METRICS_PORT_OFFSET}/metrics", logs, urls,
                     work / "devnet" / "node0")
    finally:
        stop_process(process)


def anvil_available() -> bool:
    try:
        from tests.anvil import anvil_binary

        anvil_binary()
    except (ImportError, RuntimeError):
        return False
    return True


@contextmanager
def anvil_target(work: Path, preset: dict[str, Any], accounts: int,
                 init: Path | None = None) -> Iterator[Target]:
    """anvil with ``preset``'s block time, gas limit, chain id and prefunded accounts, and
    the genesis ``init`` (geth format) when given."""
    from tests.anvil import anvil_binary

    chain = chain_settings(preset)
    port = free_port()
    log_path = work / "anvil.log"
    command = [
        str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--silent",
        "--chain-id", str(chain["chain_id"]), "--block-time", f"{chain['block_time']:g}",
        "--gas-limit", str(chain["gas_limit"]), "--base-fee", str(chain["initial_base_fee"]),
        "--mnemonic", chain["mnemonic"], "--accounts", str(accounts),
        "--balance", str(chain["balance_wei"] // 10**18),
        *(["--init", str(init)] if init is not None else []),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    target = Target("anvil", f"http://127.0.0.1:{port}", process.pid, log_path)
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"anvil exited with {process.returncode}:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
            try:
                Rpc(target.url, timeout=5).call("eth_chainId")
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise RuntimeError("anvil did not answer in 600 s") from None
                time.sleep(0.1)
        yield target
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def py_spy(pid: int, output: Path | None, gil: bool) -> Iterator[None]:
    """Record ``pid`` with py-spy (raw collapsed stacks in ``output``) while the block runs."""
    exe = shutil.which("py-spy")
    if output is None or exe is None:
        if output is not None:
            print("py-spy not found (pip install py-spy): no profile")
        yield
        return
    command = [exe, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
               "--output", str(output), *(["--gil"] if gil else [])]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = recorder.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            recorder.kill()
            _, err = recorder.communicate()
        if not output.exists():
            print(f"py-spy wrote no profile: {err.decode(errors='replace').strip()[-500:]}")


def profile_summary(path: Path, top: int = 15) -> list[str]:
    """The functions with the most samples in a py-spy raw file: own (leaf) and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):  # a recursive function counts once per sample
            inclusive[frame] += int(count)
    if not total:
        return ["no samples"]
    lines = [f"{total} samples; own time (leaf function):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive (the function and what it calls):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top + 15)
              if "threading.py" not in name and "<frozen runpy>" not in name][:top]
    return lines


# -- report -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU, cores, Python, GPU and commit: what the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        gpu = "; ".join(done.stdout.strip().splitlines()) or "nvidia-smi found no GPU"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip() or "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "gpu": gpu, "commit": commit}


ROWS = [
    ("accepted", "accepted", "{:.0f}"),
    ("included", "included", "{:.0f}"),
    ("acceptance tx/s", "acceptance_tps", "{:.0f}"),
    ("inclusion tx/s", "inclusion_tps", "{:.0f}"),
    ("latency p50 s", "latency_p50_s", "{:.2f}"),
    ("latency p99 s", "latency_p99_s", "{:.2f}"),
    ("send s", "send_seconds", "{:.1f}"),
    ("first send to last inclusion s", "inclusion_seconds", "{:.1f}"),
    ("blocks with load txs", "blocks", "{:.0f}"),
    ("most load txs in a block", "max_block_txs", "{:.0f}"),
    ("CPU cores", "cpu_cores", "{:.2f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("data dir growth, bytes a tx", "stored_bytes_per_tx", "{:.0f}"),
    ("failed receipts in sample", "failed_receipts_in_sample", "{:.0f}"),
]
RATIOS = ("acceptance_tps", "inclusion_tps", "latency_p50_s", "latency_p99_s", "cpu_cores")


def report(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Print the figures side by side; the l2node/anvil ratios."""
    names = list(results)
    ratios: dict[str, float] = {}
    if "l2node" in results and "anvil" in results:
        for key in RATIOS:
            mine, theirs = results["l2node"].get(key), results["anvil"].get(key)
            if mine is not None and theirs:
                ratios[key] = mine / theirs
    print(f"{'':32}" + "".join(f"{n:>12}" for n in names)
          + (f"{'l2node/anvil':>14}" if ratios else ""))
    for label, key, fmt in ROWS:
        cells = []
        for name in names:
            value = results[name].get(key)
            cells.append(f"{'-' if value is None else fmt.format(value):>12}")
        ratio = f"{ratios[key]:>13.2f}x" if key in ratios else ""
        print(f"{label:32}" + "".join(cells) + ratio)
    for name in names:
        stages = dict(results[name].get("block_stages_s") or {})
        if stages.pop("blocks", 0):
            print(f"{name} block path, seconds summed over the load's blocks: "
                  + " ".join(f"{stage}={seconds:.2f}" for stage, seconds in stages.items()))
        heights = results[name].get("heights")
        if heights and heights["heights"]:
            print(f"{name} devnet, the load's {heights['heights']} heights: node 0 "
                  f"proposed {heights['entry_proposed']} ({heights['entry_txs_mean']:,.0f} txs "
                  f"each), the others {heights['others_proposed']} "
                  f"({heights['others_txs_mean']:,.0f} each); final after "
                  f"{heights['final_ms_p50']:.0f} ms (median; longest {heights['final_ms_max']:,}, "
                  f"{heights['later_rounds']} in a later round); a block's build "
                  f"{heights['build_ms_p50']:.0f} ms, its re-execution by the others "
                  f"{heights['check_ms_p50']:.0f} ms (medians: select or decode, execute, state)")
        if results[name].get("executor_s"):
            print(f"{name} executor, seconds over the load (host phases, then device): "
                  + " ".join(f"{phase.replace(' ', '_')}={seconds:.2f}"
                             for phase, seconds in results[name]["executor_s"].items()))
        if results[name].get("gc_s"):
            print(f"{name} cycle collector, seconds over the load by generation: "
                  + " ".join(f"{phase.replace(' ', '')}={seconds:.2f}"
                             for phase, seconds in results[name]["gc_s"].items()))
        for message, count in sorted(results[name]["errors"].items(), key=lambda e: -e[1]):
            print(f"{name} errors: {count} x {message}")
        if results[name].get("poll_errors"):
            print(f"{name}: {results[name]['poll_errors']} block polls failed, the last with "
                  f"{results[name]['last_poll_error']}")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["transfer", "erc20", "payments"], default="transfer")
    parser.add_argument("--txs", type=int, default=20_000, help="transactions in the load")
    parser.add_argument("--senders", type=int, default=2_000, help="distinct sending accounts")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive HTTP connections")
    parser.add_argument("--batch", type=int, default=200, help="transactions per HTTP request")
    parser.add_argument("--executor", default="native-cpu",
                        choices=["reference", "native-cpu", "native-cuda", "auto"])
    parser.add_argument("--prefill-accounts", type=int, default=0, metavar="N",
                        help="N more accounts in the genesis state; the load goes to them")
    parser.add_argument("--validators", type=int, default=1,
                        help="above 1: load node 0 of `l2node devnet --validators N` instead of "
                        "`l2node run`")
    parser.add_argument("--spread", action="store_true",
                        help="with --validators: connection i sends to validator i mod N, not "
                        "all to node 0")
    parser.add_argument("--fronts", help='`l2node run`\'s [rpc] fronts: a number or "auto" '
                        "(default: the preset's)")
    parser.add_argument("--pipelined", action="store_true",
                        help="`l2node run` with [executor] pipelined = true (single validator)")
    parser.add_argument("--gas-limit", type=int,
                        help="block gas limit of both chains (default: the preset's)")
    parser.add_argument("--no-anvil", action="store_true", help="load l2node only")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for inclusion after sending (and most to send)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="run in DIR (new or empty) and leave it: the nodes' logs and data "
                        "for a look afterwards (a devnet's validators log to DIR/devnet/nodeN.log)")
    parser.add_argument("--profile", type=Path,
                        help="record l2node with py-spy during the load (raw format) to this file "
                        "and print its top functions")
    parser.add_argument("--profile-gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL")
    args = parser.parse_args(argv)
    if args.txs < 1 or args.senders < 1 or args.connections < 1 or not 1 <= args.batch <= 1000:
        parser.error("--txs, --senders, --connections must be >= 1; --batch 1..1000")
    if args.prefill_accounts < 0:
        parser.error("--prefill-accounts must be >= 0")
    if args.validators < 1 or (args.validators > 1 and (args.prefill_accounts or args.fronts)):
        parser.error("--validators must be >= 1, and 1 with --prefill-accounts or --fronts")
    if args.spread and args.validators < 2:
        parser.error("--spread needs --validators 2 or more")
    if args.fronts not in (None, "auto") and not str(args.fronts).isdigit():
        parser.error('--fronts must be a number or "auto"')
    if args.gas_limit is not None and args.gas_limit < 21_000:
        parser.error("--gas-limit must be at least 21000")
    if args.keep is not None:
        if args.keep.exists() and (not args.keep.is_dir() or any(args.keep.iterdir())):
            parser.error(f"--keep {args.keep}: not an empty folder")
        args.keep.mkdir(parents=True, exist_ok=True)
    preset = load_preset(args.gas_limit)
    preset["executor"]["pipelined"] = args.pipelined
    senders = min(args.senders, args.txs)

    info = machine()
    with_anvil = not args.no_anvil and anvil_available()
    print(f"machine: {info['cpu']}, {info['cores']} cores; GPU: {info['gpu']}; "
          f"Python {info['python']}; commit {info['commit']}")
    print(f"load: {args.txs} {args.workload} txs from {senders} senders, {args.connections} "
          f"connections, {args.batch} txs per request, {args.prefill_accounts} prefilled "
          f"accounts, block gas limit {preset['chain']['gas_limit']:,}; l2node executor {args.executor}"
          f"{f', fronts {args.fronts}' if args.fronts else ''}"
          f"{f', {args.validators} validators' if args.validators > 1 else ''}"
          f"{' (the load spread over their RPC)' if args.spread else ''}; "
          f"anvil: {'yes' if with_anvil else 'no (--no-anvil or not installed)'}")
    chain = chain_settings(preset)
    started = time.monotonic()
    keys = development_keys(chain["mnemonic"], senders + 1)
    prefill = prefill_addresses(args.prefill_accounts)
    workload = build_workload(args.workload, keys, args.txs, chain["chain_id"], prefill)
    print(f"signed {len(workload.setup)} setup + {len(workload.load)} load txs "
          f"in {time.monotonic() - started:.1f} s", flush=True)

    results: dict[str, dict[str, Any]] = {}
    with (tempfile.TemporaryDirectory(prefix="bench-load-") if args.keep is None
          else contextlib.nullcontext(str(args.keep))) as tmp:
        node_genesis = anvil_genesis = None
        if prefill:
            addresses = [private_key_to_address(key) for key in keys]
            node_genesis, anvil_genesis = write_genesis_files(Path(tmp), preset, addresses, prefill)
        l2node = (devnet_target(Path(tmp), preset, args.validators, senders + 1, args.executor)
                  if args.validators > 1 else
                  l2node_target(Path(tmp), preset, senders + 1, args.executor, node_genesis,
                                args.fronts))
        targets = [
            l2node,
            *([anvil_target(Path(tmp), preset, senders + 1, anvil_genesis)] if with_anvil else []),
        ]
        for name, start in zip(["l2node", "anvil"], targets, strict=False):
            print(f"{name}: starting", flush=True)
            with start as target:
                run_setup(target, workload, args.timeout)
                print(f"{name}: sending", flush=True)
                profile = args.profile if name == "l2node" else None
                with py_spy(target.pid, profile, args.profile_gil):
                    figures = run_load(target, workload.load, args.connections, args.batch,
                                       args.timeout, spread=args.spread)
                figures["failed_receipts_in_sample"] = check_receipts(target, workload.load)
                results[name] = figures
                print(f"{name}: {figures['included']} of {len(workload.load)} included, "
                      f"{figures['inclusion_tps']:.0f} tx/s", flush=True)
    print()
    ratios = report(results)
    if args.profile and args.profile.exists():
        only = ", GIL holder only" if args.profile_gil else ""
        print(f"\nl2node profile ({args.profile}{only}):")
        print("\n".join(profile_summary(args.profile)))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "workload": args.workload, "txs": args.txs, "senders": senders,
            "connections": args.connections, "batch": args.batch, "executor": args.executor,
            "validators": args.validators, "fronts": args.fronts,
            "gas_limit": preset["chain"]["gas_limit"],
            "prefill_accounts": args.prefill_accounts,
            "targets": results, "ratio_l2node_to_anvil": ratios,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
