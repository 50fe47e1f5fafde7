"""Real wallet libraries from npm (ethers 6, viem 2: `npm install`) against a real `l2node run`:
transfers of the three types with access lists, a deploy, event filters, pending-transaction
watching, blocks over WebSocket, eth_getProof, state overrides, eth_createAccessList and a
revert reason. Each script prints one JSON line per step."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    "getProof, stateOverride, createAccessList", "revert reason",
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
        "getProof, stateOverride, createAccessList", "revert reason",
    ]
