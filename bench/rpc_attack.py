"""Attack a real node's JSON-RPC server from 127.0.0.1 and print what honest users see.

    python3 -m bench.rpc_attack loop --clients 45 --seconds 20      # eth_call of an endless loop
    python3 -m bench.rpc_attack slowloris --clients 1100 --nofile 1024
    python3 -m bench.rpc_attack bodies --clients 200                # ~4.9 MB bodies at once

While the attack runs, an honest client asks eth_blockNumber every 0.25 s. Printed: its
latencies (median, worst, failures), blocks per second, the node's RSS (before, peak, after),
the bytes it logged, and how long SIGTERM took to stop it (sent while the attack still runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.nodeproc import TEST_CONFIG, NodeProcess, running_node

LOOP_CODE = "0x5b600056"
"""JUMPDEST; PUSH1 0; JUMP: runs until the gas or the time runs out."""
BODY_BYTES = 4_900_000
"""Size of each large body (under the server's 5 MiB limit)."""


def rss_bytes(pid: int) -> int:
    """Resident set of ``pid`` now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def post(url: str, body: bytes, timeout: float) -> Any:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def call_body(method: str, params: list[Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()


class Prober(threading.Thread):
    """The honest user: eth_blockNumber every 0.25 s, latency and head recorded."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[float] = []
        self.heads: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                answer = post(self.url, call_body("eth_blockNumber", []), timeout=10)
                self.heads.append((time.monotonic(), int(answer["result"], 16)))
                self.latencies.append(time.monotonic() - start)
            except (OSError, ValueError, KeyError):
                self.failures.append(start)
            self.stop.wait(max(0.0, 0.25 - (time.monotonic() - start)))


def loop_calls(url: str, stop: threading.Event, outcomes: list[str]) -> None:
    """One attacker: eth_call of the endless loop, again and again."""
    body = call_body("eth_call", [{"data": LOOP_CODE}, "latest"])
    while not stop.is_set():
        start = time.monotonic()
        try:
            answer = post(url, body, timeout=60)
            error = answer.get("error", {})
            outcomes.append(f"{error.get('code')} {error.get('message')} "
                            f"after {time.monotonic() - start:.1f} s")
        except OSError as exc:
            outcomes.append(f"transport: {exc}")
            stop.wait(0.1)


def slow_headers(port: int, stop: threading.Event, outcomes: list[str]) -> None:
    """One attacker: a request whose headers never end (a byte every 2 s)."""
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as exc:
            outcomes.append(f"connect: {exc}")
            stop.wait(1)
            continue
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            while not stop.wait(2):
                sock.sendall(b"a")
        except OSError:
            outcomes.append("closed by the server")
        finally:
            sock.close()


def large_body(url: str, stop: threading.Event, outcomes: list[str]) -> None:
    """One attacker: a single ~4.9 MB request."""
    padding = "a" * (BODY_BYTES - 100)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [padding]})
    try:
        answer = post(url, body.encode(), timeout=120)
        outcomes.append(str(answer.get("error", {}).get("code")))
    except OSError as exc:
        outcomes.append(f"transport: {exc}")


ATTACKS: dict[str, Callable[[NodeProcess, threading.Event, list[str]], None]] = {
    "loop": lambda node, stop, out: loop_calls(node.url, stop, out),
    "slowloris": lambda node, stop, out: slow_headers(int(node.url.rsplit(":", 1)[1]), stop, out),
    "bodies": lambda node, stop, out: large_body(node.url, stop, out),
}


def attack(node: NodeProcess, name: str, clients: int, seconds: float) -> None:
    pid = node.process.pid
    log_before = node.log_path.stat().st_size
    rss_before = rss_bytes(pid)
    prober = Prober(node.url)
    prober.start()
    time.sleep(2)  # a baseline for the honest latency and the block rate
    stop = threading.Event()
    outcomes: list[str] = []
    attackers = [
        threading.Thread(target=ATTACKS[name], args=(node, stop, outcomes), daemon=True)
        for _ in range(clients)
    ]
    started = time.monotonic()
    for thread in attackers:
        thread.start()
    rss_peak = rss_before
    while time.monotonic() - started < seconds:
        rss_peak = max(rss_peak, rss_bytes(pid))
        time.sleep(0.2)
    during = [(t, h) for t, h in prober.heads if t >= started]
    latencies = prober.latencies[-len(during):] if during else []
    baseline = prober.latencies[: len(prober.latencies) - len(during)]
    failures = sum(1 for t in prober.failures if t >= started)
    sigterm = time.monotonic()
    node.process.send_signal(signal.SIGTERM) if name == "loop" else None
    stop.set()
    if name != "loop":
        for thread in attackers:
            while thread.is_alive() and time.monotonic() - sigterm < 60:
                rss_peak = max(rss_peak, rss_bytes(pid))
                thread.join(timeout=0.2)
        time.sleep(5)
    rss_after = rss_bytes(pid) if node.process.poll() is None else 0
    stopped_in = None
    if name == "loop":
        with contextlib.suppress(subprocess.TimeoutExpired):  # reported as "not stopped"
            node.process.wait(timeout=60)
            stopped_in = time.monotonic() - sigterm
    prober.stop.set()
    blocks = (during[-1][1] - during[0][1]) / (during[-1][0] - during[0][0]) if len(during) > 1 else 0
    print(f"attack {name}: {clients} clients for {seconds:.0f} s")
    if baseline:
        print(f"  before the attack: eth_blockNumber median "
              f"{statistics.median(baseline) * 1000:.0f} ms")
    if latencies:
        print(f"  honest eth_blockNumber: {len(latencies)} answers, median "
              f"{statistics.median(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms; "
              f"{failures} failed or timed out (10 s)")
    else:
        print(f"  honest eth_blockNumber: no answer during the attack ({failures} failures)")
    print(f"  blocks per second during the attack: {blocks:.2f}")
    print(f"  RSS: before {rss_before / 2**20:.0f} MB, peak {rss_peak / 2**20:.0f} MB, "
          f"5 s after {rss_after / 2**20:.0f} MB")
    print(f"  log grew by {(node.log_path.stat().st_size - log_before) / 1024:.0f} KiB")
    if name == "loop":
        print(f"  SIGTERM during the attack: stopped in "
              f"{'(not within 60 s)' if stopped_in is None else f'{stopped_in:.1f} s'}")
    errors = [line for line in node.log_path.read_text(errors="replace").splitlines()
              if "ERROR" in line or "WARNING" in line]
    print(f"  node log: {len(errors)} warning/error lines" + (f", first: {errors[0][:160]}"
                                                             if errors else ""))
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = outcome if "after" not in outcome else outcome.rsplit(" after ", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    for outcome, count in sorted(counts.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  attacker saw {count} x {outcome}")
    call_times = [float(o.rsplit(" after ", 1)[1].split()[0]) for o in outcomes if " after " in o]
    if call_times:
        print(f"  attacker call time: median {statistics.median(call_times):.1f} s, "
              f"worst {max(call_times):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--clients", type=int, default=45)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--nofile", type=int, default=0, help="the node's open-file limit")
    parser.add_argument("--config", default="", help="extra TOML appended to the test config")
    parser.add_argument("--keep-log", default="", help="copy the node's log here at the end")
    args = parser.parse_args()
    # The node starts under --nofile (it inherits the limit); the attackers need more.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile or soft, hard))
    with tempfile.TemporaryDirectory() as tmp, \
            running_node(Path(tmp) / "node", config=TEST_CONFIG + args.config) as node:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        attack(node, args.attack, args.clients, args.seconds)
        if args.keep_log:
            shutil.copy(node.log_path, args.keep_log)


if __name__ == "__main__":
    main()
