"""Run `l2node run` as a real process for integration tests."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fast blocks and small batches keep the tests short; everything else is the devnet preset.
TEST_CONFIG = """
[chain]
block_time = 0.25
[l1]
blocks_per_batch = 4
poll_interval = 0.5
"""


ROOT = Path(__file__).resolve().parents[1]


def l2node_command(*args: str) -> list[str]:
    """`l2node ARGS` run from this checkout (not whichever copy pip installed)."""
    return [sys.executable, "-m", "node.cli", *args]


def l2node_env() -> dict[str, str]:
    """The environment for ``l2node_command``: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


PORT_RANGE = (20000, 32000)
"""Where ``free_port`` looks: below Linux's ephemeral range (32768-60999), which outgoing
connections draw from, so a port picked here is not taken by a client socket meanwhile."""

_port_random = random.Random()  # seeded from os.urandom: parallel runs pick different ports


def free_port() -> int:
    """A TCP port on 127.0.0.1, free right now, in ``PORT_RANGE``."""
    low, high = PORT_RANGE
    for _ in range(500):
        port = _port_random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


@dataclass
class NodeProcess:
    """A running node and how to reach it."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    metrics_url: str = ""
    """http://127.0.0.1:PORT/metrics when started with a metrics port."""

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Raw JSON-RPC call; returns the whole response object."""
        return post_json(self.url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})

    def receipts(self, tx_hashes: list[str], timeout: float = 30) -> list[dict[str, Any]]:
        """The receipts of ``tx_hashes``, waited for (at most ``timeout`` s for all): a hash
        with none by then fails the test, with the node's log."""
        deadline = time.monotonic() + timeout
        receipts = []
        for tx_hash in tx_hashes:
            while (receipt := self.rpc("eth_getTransactionReceipt", [tx_hash])["result"]) is None:
                assert time.monotonic() < deadline, f"no receipt of {tx_hash}:\n{self.log_tail()}"
                time.sleep(0.1)
            receipts.append(receipt)
        return receipts

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def post_json(url: str, body: Any, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status
        return json.loads(response.read())


@contextmanager
def running_node(
    data_dir: Path, port: int | None = None, config: str = TEST_CONFIG, start_timeout: float = 90,
    metrics_port: int = 0,
) -> Iterator[NodeProcess]:
    """Start `l2node run`, wait (at most ``start_timeout`` s) until it answers RPC, stop it
    (SIGTERM) afterwards. Metrics are off unless ``metrics_port`` is given (parallel tests
    would all take the preset's port)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir.parent / f"{data_dir.name}.toml"
    config_path.write_text(config)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        l2node_command("run", "--data-dir", str(data_dir), "--rpc-port", str(port),
                       "--config", str(config_path), "--metrics-port", str(metrics_port)),
        stdout=log_file, stderr=subprocess.STDOUT, env=l2node_env(),
    )
    node = NodeProcess(process, f"http://127.0.0.1:{port}", log_path,
                       f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else "")
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"l2node exited with {process.returncode}:\n{node.log_tail()}")
            try:
                if "result" in node.rpc("eth_blockNumber"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"l2node did not answer in {start_timeout:.0f} s:\n{node.log_tail()}"
                )
            time.sleep(0.2)
        yield node
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()
