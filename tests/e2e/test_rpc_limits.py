"""RPC resource limits against a real node: endless eth_calls, slow headers, large bodies,
and a port that is taken at start. Honest requests keep their answers and blocks keep coming.
"""

from __future__ import annotations

import json
import signal
import socket
import statistics
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.nodeproc import TEST_CONFIG, NodeProcess, free_port, post_json, running_node

LIMITS = """
[rpc]
evm_timeout = 2.0
header_timeout = 1.0
max_connections = 64
"""
LOOP = "0x5b600056"
"""JUMPDEST; PUSH1 0; JUMP: without a timeout it runs to the 50M gas cap (about 15 s)."""
ABORTED = (-32000, "execution aborted (timeout = 2s)")
BUSY = -32005


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with running_node(
        Path(tmp_path_factory.mktemp("limits")) / "node", config=TEST_CONFIG + LIMITS
    ) as running:
        yield running


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def head(node: NodeProcess) -> int:
    return int(node.rpc("eth_blockNumber")["result"], 16)


class Honest(threading.Thread):
    """eth_blockNumber every 0.2 s: each latency, the heads seen, and transport failures."""

    def __init__(self, node: NodeProcess) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.latencies: list[float] = []
        self.heads: list[int] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            start = time.monotonic()
            try:
                self.heads.append(head(self.node))
            except OSError as exc:  # refused (503) or reset
                self.failures.append(str(exc))
                continue
            self.latencies.append(time.monotonic() - start)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)


def in_threads(count: int, target: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def loop_call(node: NodeProcess, method: str = "eth_call") -> tuple[tuple[int, str], float]:
    start = time.monotonic()
    answer = node.rpc(method, [{"data": LOOP}, "latest"])
    error = answer["error"]
    return (error["code"], error["message"]), time.monotonic() - start


def test_an_endless_call_is_aborted_while_blocks_keep_coming(node: NodeProcess) -> None:
    honest = Honest(node)
    honest.start()
    try:
        error, took = loop_call(node)
        assert error == ABORTED
        assert 1.9 < took < 6  # without the timeout: about 15 s (50M gas)
        error, took = loop_call(node, "eth_estimateGas")
        assert error == ABORTED
        assert took < 6
    finally:
        honest.finish()
    assert not honest.failures
    assert max(honest.latencies) < 3, honest.latencies
    assert honest.heads[-1] - honest.heads[0] >= 4  # 0.25 s blocks over about 4 s


def test_slow_headers_are_cut_off_and_honest_requests_answered(node: NodeProcess) -> None:
    port = int(node.url.rsplit(":", 1)[1])
    stop = threading.Event()
    closed: list[float] = []
    lock = threading.Lock()

    def slow_headers() -> None:
        # A request whose headers never end; reopened as soon as the server closes it.
        while not stop.is_set():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                opened = time.monotonic()
                sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                try:
                    while not stop.is_set() and sock.recv(4096):
                        pass
                except OSError:  # reset by the server: closed as well
                    pass
                if not stop.is_set():
                    with lock:
                        closed.append(time.monotonic() - opened)

    attackers = in_threads(100, slow_headers)  # more than max_connections (64)
    honest = Honest(node)
    honest.start()
    time.sleep(6)
    honest.finish()
    stop.set()
    for thread in attackers:
        thread.join(timeout=15)
    # Every slow connection was closed: over the cap after 0.2 s, else after header_timeout.
    assert len(closed) > 100
    assert max(closed) < 3, max(closed)
    assert len(honest.latencies) >= 20, (len(honest.failures), honest.failures[:3])
    assert len(honest.failures) <= len(honest.latencies) // 10, honest.failures
    assert statistics.median(honest.latencies) < 0.5, honest.latencies
    assert honest.heads[-1] > honest.heads[0]


def test_a_burst_of_large_bodies_gives_its_memory_back(node: NodeProcess) -> None:
    padding = "a" * 4_899_000
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [padding]})
    before = rss_mb(node.process.pid)
    answers: list[int] = []

    def send() -> None:
        try:
            answers.append(post_json(node.url, None, raw=body.encode())["error"]["code"])
        except urllib.error.HTTPError as exc:
            answers.append(exc.code)
        except OSError:  # refused mid-upload: the server closed before reading it all
            answers.append(0)

    threads = in_threads(100, send)
    peak = before
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_mb(node.process.pid))
        time.sleep(0.1)
    time.sleep(3)
    after = rss_mb(node.process.pid)
    # Too many params (-32602), or refused while memory for bodies was short (503).
    assert set(answers) <= {-32602, 503, 0}, answers
    assert answers.count(-32602) >= 10
    # Without a bound on body memory and the trim: peak +430 MB, +355 MB kept.
    assert peak - before < 400, (before, peak, after)
    assert after - before < 100, (before, peak, after)
    assert node.rpc("eth_chainId")["result"]


def test_concurrent_endless_calls_starve_nobody_and_sigterm_stops_the_node(
    tmp_path: Path,
) -> None:
    with running_node(tmp_path / "node", config=TEST_CONFIG + LIMITS) as node:
        stop = threading.Event()
        outcomes: list[tuple[int, str]] = []

        def attack() -> None:
            while not stop.is_set():
                try:
                    answer: dict[str, Any] = node.rpc("eth_call", [{"data": LOOP}, "latest"])
                except OSError:  # the node is going away
                    return
                outcomes.append((answer["error"]["code"], answer["error"]["message"]))

        attackers = in_threads(30, attack)
        honest = Honest(node)
        honest.start()
        time.sleep(8)
        honest.finish()
        started = time.monotonic()
        node.process.send_signal(signal.SIGTERM)  # while the attack goes on
        assert node.process.wait(timeout=20) == 0
        stopped_in = time.monotonic() - started
        stop.set()
        for thread in attackers:
            thread.join(timeout=30)
    assert stopped_in < 8, stopped_in  # running calls are stopped, not waited for (5 s)
    assert {code for code, _ in outcomes} <= {ABORTED[0], BUSY}, outcomes[:5]
    assert ABORTED in outcomes
    assert sum(code == BUSY for code, _ in outcomes) > 30
    assert not honest.failures
    assert statistics.median(honest.latencies) < 0.5, honest.latencies
    assert max(honest.latencies) < 3, honest.latencies
    assert honest.heads[-1] - honest.heads[0] >= 8  # 0.25 s blocks over 8 s: about 32


def test_a_node_waits_for_its_rpc_port(tmp_path: Path) -> None:
    port = free_port()
    holder = socket.create_server(("127.0.0.1", port))
    log = tmp_path / "node.log"  # where running_node logs the node "node"
    released_at: list[float] = []

    def release_when_the_node_waits() -> None:
        # Held until the node has found it taken, then 3 s more.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            log.exists() and "retrying for up to 30 s" in log.read_text()
        ):
            time.sleep(0.1)
        time.sleep(3)
        released_at.append(time.monotonic())
        holder.close()

    releaser = threading.Thread(target=release_when_the_node_waits, daemon=True)
    releaser.start()
    try:
        with running_node(tmp_path / "node", port=port) as node:
            assert released_at, "the node answered while the port was still held"
            assert node.rpc("eth_chainId")["result"]
            text = node.log_path.read_text()
            assert f"JSON-RPC port {port} on 127.0.0.1 is in use" in text
            assert text.count("retrying for up to 30 s") == 1
    finally:
        holder.close()
        releaser.join(timeout=70)
