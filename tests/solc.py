"""Compile Solidity test contracts with the project's pinned npm solc (installed by `npm install`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
const solc = require('solc');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(solc.compile(JSON.stringify(input)));
"""


def compile_contract(source: Path, name: str) -> tuple[list[Any], str]:
    """(abi, 0x-bytecode) of contract ``name`` in ``source``; cancun EVM, optimizer on."""
    if not (ROOT / "node_modules" / "solc").is_dir():
        raise RuntimeError("solc is not installed: run `npm install` in the repository root")
    request = {
        "language": "Solidity",
        "sources": {source.name: {"content": source.read_text()}},
        "settings": {
            "evmVersion": "cancun",
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    done = subprocess.run(
        ["node", "-e", _SCRIPT], input=json.dumps(request), capture_output=True, text=True,
        cwd=ROOT, check=True,
    )
    output = json.loads(done.stdout)
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError("\n".join(errors))
    compiled = output["contracts"][source.name][name]
    return compiled["abi"], "0x" + compiled["evm"]["bytecode"]["object"]
