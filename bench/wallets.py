"""Wallet libraries against l2node and anvil side by side: each step of the ethers 6 and viem 2
scripts (tests/clients, the ones tests/e2e/test_wallet_clients.py runs) with its outcome and
the milliseconds since the script started, on a real `l2node run` and on anvil, both with 1 s
blocks. Needs `npm install` (ethers, viem, anvil, solc). Prints; exits 0 whatever a chain
answers.

    python -m bench.wallets
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.anvil import running_anvil
from tests.nodeproc import ROOT, running_node
from tests.solc import compile_contract

CLIENTS = ROOT / "tests" / "clients"
TOKEN = ROOT / "tests" / "e2e" / "TestToken.sol"
SCRIPTS = ("ethers_client.mjs", "viem_client.mjs")
TIMEOUT_S = 120


def steps(script: str, url: str, contract: Path) -> list[tuple[str, str]]:
    """(step, "ok <ms> ms") for each step the script got through, then the failure, if any."""
    try:
        done = subprocess.run(["node", str(CLIENTS / script), url, str(contract)], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return [("(script)", f"no end in {TIMEOUT_S} s")]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    got = [(str(line["step"]), f"ok {line['ms']} ms") for line in lines if "ms" in line]
    if done.returncode != 0:
        said = [json.dumps(line) for line in lines if "ms" not in line]
        error = (said or done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        got.append(("(next step)", "FAILED: " + error[:100]))
    return got


def main() -> None:
    assert shutil.which("node"), "Node.js is needed"
    abi, bytecode = compile_contract(TOKEN, "TestToken")
    with tempfile.TemporaryDirectory() as tmp:
        contract = Path(tmp) / "TestToken.json"
        contract.write_text(json.dumps({"abi": abi, "bytecode": bytecode}))
        results: dict[str, dict[str, list[tuple[str, str]]]] = {}
        with running_node(Path(tmp) / "l2node") as node:
            results["l2node"] = {script: steps(script, node.url, contract) for script in SCRIPTS}
        # The scripts expect the devnet's chain id; anvil mines a block a second, as l2node.
        with running_anvil(Path(tmp) / "anvil", ("--block-time", "1"), chain_id=7331) as anvil:
            results["anvil"] = {script: steps(script, anvil.url, contract) for script in SCRIPTS}
    for script in SCRIPTS:
        print(f"\n{script}")
        print(f"{'step':46} {'l2node':>22} {'anvil':>44}")
        ours, theirs = dict(results["l2node"][script]), dict(results["anvil"][script])
        for step in dict.fromkeys([*ours, *theirs]):
            print(f"{step:46} {ours.get(step, '-'):>22} {theirs.get(step, '-'):>44}")


if __name__ == "__main__":
    main()
