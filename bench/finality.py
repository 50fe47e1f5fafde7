"""Time to finality and failover time of a local `l2node devnet` of N validators.

Starts `l2node devnet`, lets it run, and reports:
- finality per block: from the start of a height (block_time after the previous commit)
  to its commit with > 2/3 precommits, as each node logs it ("height H final in round R,
  X ms after it started"): median and p99 over every node and height;
- transaction latency: eth_sendRawTransaction on one node until that node returns the
  receipt (waiting for the next height included);
- failover, ``--kills`` times: the round-0 proposer of the next height (computed as every
  node does, from the weights and the leader seed of that height, both from
  ``l2_getValidators``) is killed with SIGKILL just after the previous block; the time from
  that block to the next (median, p99), against the usual interval between blocks. The
  killed node is restarted on its data dir and caught up before the next kill.
Prints what it measured and on what machine; never fails for being slow.

    python -m bench.finality --validators 4 --seconds 30 --block-time 1.0 --kills 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from eth_account import Account

from node.devnet import NODE_LINE, devnet_validator_key
from node.genesis import development_keys
from primitives.crypto import private_key_to_address
from primitives.types import Address, Hash32
from sequencer import leader
from sequencer.types import ValidatorSet

MNEMONIC = "test test test test test test test test test test test junk"
FINAL = re.compile(r"height (\d+) final in round (\d+), (\d+) ms")


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["result"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="steady-state run time")
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--base-port", type=int, default=28545)
    parser.add_argument("--epoch-length", type=int, default=30,
                        help="blocks per GPU-weight epoch (0: genesis weights forever)")
    parser.add_argument("--kills", type=int, default=10,
                        help="times the next proposer is killed (and restarted)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "devnet", "--validators", str(args.validators),
             "--base-port", str(args.base_port), "--data-dir", tmp,
             "--block-time", str(args.block_time), "--epoch-length", str(args.epoch_length)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            measure(process, args)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def measure(process: subprocess.Popen[str], args: argparse.Namespace) -> None:
    nodes: list[tuple[int, str, Path]] = []
    assert process.stdout is not None
    while len(nodes) < args.validators:
        match = NODE_LINE.match(process.stdout.readline())
        if match:
            nodes.append((int(match[2]), match[3], Path(match[5])))
    urls = [url for _, url, _ in nodes]
    while True:
        try:
            if min(int(rpc(u, "eth_blockNumber"), 16) for u in urls) >= 2:
                break
        except OSError:
            pass
        time.sleep(0.2)

    # Steady state, with a transfer every half second to a rotating node.
    latencies = []
    keys = development_keys(MNEMONIC, 1)
    end = time.monotonic() + args.seconds
    nonce = 0
    while time.monotonic() < end:
        url = urls[nonce % len(urls)]
        raw = Account.sign_transaction(
            {"chainId": 7331, "nonce": nonce, "to": "0x" + "42" * 20, "value": 1, "gas": 21_000,
             "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}, keys[0]).raw_transaction
        sent = time.monotonic()
        tx_hash = rpc(url, "eth_sendRawTransaction", ["0x" + raw.hex()])
        while rpc(url, "eth_getTransactionReceipt", [tx_hash]) is None:
            time.sleep(0.01)
        latencies.append(time.monotonic() - sent)
        nonce += 1
        time.sleep(0.5)

    finality: list[float] = []
    later_rounds = 0
    for _, _, log in nodes:
        for match in FINAL.finditer(log.read_text()):
            finality.append(int(match[3]) / 1000)
            later_rounds += int(match[2]) > 0

    intervals, failover = failovers(nodes, args)

    print(f"machine: {platform.machine()} {platform.processor() or ''} "
          f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print(f"command: python -m bench.finality --validators {args.validators} "
          f"--seconds {args.seconds:g} --block-time {args.block_time:g} "
          f"--epoch-length {args.epoch_length} --kills {args.kills}")
    print(f"finality per block ({len(finality)} commits over {args.validators} nodes, "
          f"{later_rounds} after round 0): median {statistics.median(finality) * 1000:.0f} ms, "
          f"p99 {percentile(finality, 99) * 1000:.0f} ms")
    print(f"tx submit -> receipt on the same node ({len(latencies)} txs): median "
          f"{statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms")
    print(f"block interval without a kill ({len(intervals)} blocks): median "
          f"{statistics.median(intervals) * 1000:.0f} ms, p99 {percentile(intervals, 99) * 1000:.0f} ms")
    print(f"failover ({len(failover)} kills of the next height's round-0 proposer): block after "
          f"the kill came median {statistics.median(failover) * 1000:.0f} ms, p99 "
          f"{percentile(failover, 99) * 1000:.0f} ms after the block before "
          f"(each: {', '.join(f'{f * 1000:.0f}' for f in failover)} ms)")


def head_of(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def next_proposer(url: str, head: int) -> tuple[Address, bool]:
    """The round-0 proposer of ``head`` + 1, drawn as every node draws it (the weights and
    seed of its epoch), and whether it holds under 1/3 of the weight (the rest finalize
    without it)."""
    deciding = rpc(url, "l2_getValidators", [hex(head)])
    validators = ValidatorSet.of({Address(bytes.fromhex(v["address"][2:])): int(v["weight"], 16)
                                  for v in deciding["validators"]})
    proposer = leader.proposer(validators, Hash32(bytes.fromhex(deciding["seed"][2:])), head + 1, 0)
    return proposer, 3 * validators.weight_of(proposer) < validators.total_weight


def failovers(
    nodes: list[tuple[int, str, Path]], args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """(block intervals with no kill, block intervals across a kill), ``args.kills`` kills."""
    urls = [url for _, url, _ in nodes]
    addresses = [private_key_to_address(devnet_validator_key(i)) for i in range(len(nodes))]
    pids = [pid for pid, _, _ in nodes]
    restarted: list[subprocess.Popen[bytes]] = []
    intervals: list[float] = []
    failover: list[float] = []
    try:
        observer = 0
        head, seen_at = head_of(urls[observer]), time.monotonic()
        while len(failover) < args.kills:
            wait_for_head(urls[observer], head + 1, 0.005)
            now_head, now = head_of(urls[observer]), time.monotonic()
            if now_head == head + 1:
                intervals.append(now - seen_at)
            head, seen_at = now_head, now
            proposer, may_go = next_proposer(urls[observer], head)
            victim = addresses.index(proposer)
            if not may_go or len(intervals) < 3:
                continue
            os.kill(pids[victim], signal.SIGKILL)
            observer = (victim + 1) % len(nodes)  # a node that is still up
            wait_for_head(urls[observer], head + 1, 0.005)
            failover.append(time.monotonic() - seen_at)
            restarted.append(restart(nodes, victim))
            pids[victim] = restarted[-1].pid
            # Back in step with the others before the next kill (its blocks over l2/sync/1).
            wait_for_head(urls[victim], head_of(urls[observer]) + 2, 0.1)
            head, seen_at = head_of(urls[observer]), time.monotonic()
    finally:
        for process in restarted:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    return intervals, failover


WAIT_LIMIT_S = 120.0
"""Longest wait for one event (a block, a restarted node): past it the devnet is stuck."""


def wait_for_head(url: str, height: int, pause: float) -> None:
    """Poll ``url`` every ``pause`` s until its head is at ``height`` (a node not serving yet
    counts as behind), up to WAIT_LIMIT_S."""
    give_up = time.monotonic() + WAIT_LIMIT_S
    while True:
        try:
            if head_of(url) >= height:
                return
        except OSError:
            pass
        if time.monotonic() > give_up:
            raise RuntimeError(f"{url} not at block {height} in {WAIT_LIMIT_S:.0f} s: the devnet is stuck")
        time.sleep(pause)


def restart(nodes: list[tuple[int, str, Path]], index: int) -> subprocess.Popen[bytes]:
    """Node ``index`` again, on its config and data dir (as `l2node devnet` wrote them)."""
    log = nodes[index][2]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", "--config", str(log.with_name(f"node{index}.toml")),
             "--data-dir", str(log.with_name(f"node{index}"))],
            stdout=out, stderr=subprocess.STDOUT,
        )


if __name__ == "__main__":
    main()
