"""A real L1 for tests: anvil (from the npm package @foundry-rs/anvil) on 127.0.0.1.

``running_anvil(state_dir)`` starts one on a free port and always kills it at
the end; ``stop()`` / ``start()`` / ``restart()`` keep the chain (anvil dumps
it to ``--state FILE`` on a clean exit and loads it again at start), so tests
can take the L1 away for a while. The ``anvil`` fixture wraps it for pytest
(import it into a conftest.py: ``from tests.anvil import anvil``).

Funded accounts are anvil's defaults: the standard development mnemonic,
keys ``DEV_KEYS`` (10,000 ETH each).
"""

from __future__ import annotations

import json
import platform
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.nodeproc import free_port

ROOT = Path(__file__).resolve().parents[1]
CHAIN_ID = 31337
"""anvil's default chain id, fixed on the command line so tests can rely on it."""
DEV_KEYS = tuple(
    bytes.fromhex(k)
    for k in (
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    )
)
"""Private keys of anvil's first funded accounts (m/44'/60'/0'/0/i of the test mnemonic)."""
START_TIMEOUT_S = 30.0

_PLATFORM_PACKAGES = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
}


def anvil_binary() -> Path:
    """The anvil executable that npm installed for this platform (scripts/test runs npm).

    The platform package holds the binary itself; running it directly (not the
    node wrapper in node_modules/.bin) means a kill reaches anvil, not a parent.
    """
    package = _PLATFORM_PACKAGES.get((sys.platform, platform.machine()))
    if package is None:
        raise RuntimeError(f"no anvil package for {sys.platform}/{platform.machine()}")
    binary = ROOT / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"
    if not binary.is_file():
        raise RuntimeError(
            f"anvil not found at {binary}: run `npm install` in the repository root "
            "(package.json pins @foundry-rs/anvil)"
        )
    return binary


@dataclass
class Anvil:
    """One anvil process whose chain survives ``stop()`` / ``start()``."""

    port: int
    state_file: Path
    log_file: Path
    extra_args: tuple[str, ...] = ()
    chain_id: int = CHAIN_ID
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start anvil (loading the saved chain, if any) and wait until it answers."""
        assert not self.running, "anvil is already running"
        command = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--silent",
            "--state", str(self.state_file),
            *self.extra_args,
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                self.rpc("eth_chainId")
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"anvil did not answer in {START_TIMEOUT_S:.0f} s:\n{self._log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        """Stop anvil cleanly: it writes its chain to ``state_file`` on the way out."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError("anvil did not stop on SIGTERM") from None
        self.process = None

    def kill(self) -> None:
        """Kill anvil at once (the chain since the last clean stop is lost)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port, with the same chain."""
        self.stop()
        self.start()

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """JSON-RPC call; returns ``result``, raises RuntimeError for an error answer."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def snapshot(self) -> str:
        """evm_snapshot: an id to revert to (each id can be reverted to once)."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """evm_revert: drop every block after the snapshot (an L1 reorg, as the node sees it)."""
        if self.rpc("evm_revert", [snapshot_id]) is not True:
            raise RuntimeError(f"evm_revert({snapshot_id}) failed")

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now."""
        self.rpc("anvil_mine", [hex(blocks)])

    def set_automine(self, enabled: bool) -> None:
        """With automine off, transactions wait in the pool until ``mine``."""
        self.rpc("evm_setAutomine", [enabled])

    def set_next_base_fee(self, wei: int) -> None:
        """Base fee of the next block (to make a pending transaction's fee too low)."""
        self.rpc("anvil_setNextBlockBaseFeePerGas", [hex(wei)])

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def _log_tail(self) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-30:])


@contextmanager
def running_anvil(
    state_dir: Path, extra_args: tuple[str, ...] = (), chain_id: int = CHAIN_ID
) -> Iterator[Anvil]:
    """A started anvil on a free port; killed at the end whatever happens."""
    state_dir.mkdir(parents=True, exist_ok=True)
    anvil = Anvil(
        port=free_port(),
        state_file=state_dir / "anvil-state.json",
        log_file=state_dir / "anvil.log",
        extra_args=extra_args,
        chain_id=chain_id,
    )
    try:
        anvil.start()
        yield anvil
    finally:
        anvil.kill()


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    """A fresh anvil for one test."""
    with running_anvil(tmp_path / "anvil") as instance:
        yield instance
