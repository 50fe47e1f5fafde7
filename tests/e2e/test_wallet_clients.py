"""Real wallet libraries from npm (ethers 6, viem 2: `npm install`) against a real `l2node run`:
transfers of the three types with access lists, a deploy, event filters, pending-transaction
watching, blocks over WebSocket, eth_getProof, state overrides, eth_createAccessList, a
revert reason, (viem) eth_simulateV1 through simulateBlocks, and refused transactions (stale
nonce, no funds) recognised by each library. Each script prints one JSON line per step. Then foundry's `cast run` replays a
token transfer from the node's blocks and state with its own EVM (revm)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from primitives.crypto import keccak256
from tests.nodeproc import ROOT, NodeProcess, running_node
from tests.solc import compile_contract

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
TOKEN = Path(__file__).with_name("TestToken.sol")
SCRIPT_TIMEOUT = 60


def _installed(package: str) -> bool:
    return (ROOT / "node_modules" / package / "package.json").exists()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with running_node(tmp_path_factory.mktemp("wallets") / "node") as running:
        yield running


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    abi, bytecode = compile_contract(TOKEN, "TestToken")
    path = tmp_path_factory.mktemp("contract") / "TestToken.json"
    path.write_text(json.dumps({"abi": abi, "bytecode": bytecode}))
    return path


def run_client(script: str, node: NodeProcess, contract: Path) -> list[dict[str, object]]:
    """Run a client script; its steps, or the test fails with its output and the node's log."""
    assert shutil.which("node"), "Node.js is needed for the wallet client tests"
    done = subprocess.run(
        ["node", str(CLIENTS / script), node.url, str(contract)], check=False, cwd=ROOT,
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
    )
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (
        f"{script} failed:\n{done.stdout}\n{done.stderr}\nnode log:\n{node.log_tail()}")
    print(done.stdout)  # each step with its time and details, shown by pytest -s
    return steps


EXPECTED = [
    "transfer type 0", "transfer type 1", "transfer type 2", "deploy", "event filters",
    "provider.on('pending')", "WebSocket block subscription",
    "getProof, stateOverride, createAccessList", "revert reason", "refused transactions",
]


def test_ethers_6(node: NodeProcess, contract: Path) -> None:
    assert _installed("ethers"), "run `npm install` (ethers is a devDependency)"
    steps = run_client("ethers_client.mjs", node, contract)
    assert [step["step"] for step in steps] == EXPECTED


def test_viem_2(node: NodeProcess, contract: Path) -> None:
    assert _installed("viem"), "run `npm install` (viem is a devDependency)"
    steps = run_client("viem_client.mjs", node, contract)
    assert [step["step"] for step in steps] == [
        "transfer type legacy", "transfer type eip2930", "transfer type eip1559", "deploy",
        "event filters", "watchPendingTransactions", "watchBlocks over WebSocket",
        "getProof, stateOverride, createAccessList", "revert reason", "simulateBlocks",
        "refused transactions",
    ]


CAST_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"
"""The devnet's prefunded account 4 (the scripts use 0 to 3)."""


def send_and_wait(node: NodeProcess, fields: dict[str, Any]) -> dict[str, Any]:
    """Sign ``fields`` with CAST_KEY, send, and wait for the receipt."""
    fields = {"chainId": 7331, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, **fields}
    raw = Account.sign_transaction(fields, CAST_KEY).raw_transaction
    tx_hash = node.rpc("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])["result"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        receipt: dict[str, Any] | None = node.rpc("eth_getTransactionReceipt", [tx_hash])["result"]
        if receipt is not None:
            return receipt
        time.sleep(0.1)
    raise AssertionError(f"{tx_hash} not included")


def test_cast_run_replays_a_transfer(node: NodeProcess, contract: Path) -> None:
    assert _installed("@foundry-rs/cast"), "run `npm install` (cast is a devDependency)"
    bytecode = json.loads(contract.read_text())["bytecode"]
    deployed = send_and_wait(node, {"nonce": 0, "gas": 2_000_000,
                                    "data": bytecode + (10**24).to_bytes(32, "big").hex()})
    transfer = "0x" + (keccak256(b"transfer(address,uint256)")[:4] + b"\xde\xad".rjust(32, b"\0")
                       + (7).to_bytes(32, "big")).hex()
    receipt = send_and_wait(node, {"nonce": 1, "gas": 100_000, "data": transfer,
                                   "to": to_checksum_address(deployed["contractAddress"])})
    done = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "cast"), "run", receipt["transactionHash"],
         "--rpc-url", node.url], check=False, capture_output=True, text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    print(done.stdout)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    # revm, re-running the block from our state, charges what our receipt says.
    assert f"Gas used: {int(receipt['gasUsed'], 16)}" in done.stdout
    assert "emit Transfer(" in done.stdout and "← [Return] true" in done.stdout
