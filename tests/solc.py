"""Compile Solidity test contracts with the project's pinned npm solc (installed by `npm install`)."""

from __future__ import annotations

import hashlib
import json
import os
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
    """(abi, 0x-bytecode) of contract ``name`` in ``source``; cancun EVM, optimizer on.

    Outputs are kept under the cache directory (``$XDG_CACHE_HOME/l2node/solc``), keyed by the
    pinned solc version and the whole compiler input: a machine without Node.js (the GPU
    machine) can reuse them.
    """
    request = {
        "language": "Solidity",
        "sources": {source.name: {"content": source.read_text()}},
        "settings": {
            "evmVersion": "cancun",
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    text = json.dumps(request, sort_keys=True)
    key = hashlib.sha256(f"{_pinned_solc()}\n{text}".encode()).hexdigest()[:32]
    cached = _cache_dir() / f"{key}.json"
    if cached.exists():
        output = json.loads(cached.read_text())
    else:
        if not (ROOT / "node_modules" / "solc").is_dir():
            raise RuntimeError("solc is not installed: run `npm install` in the repository root")
        done = subprocess.run(
            ["node", "-e", _SCRIPT], input=text, capture_output=True, text=True, cwd=ROOT,
            check=True,
        )
        output = json.loads(done.stdout)
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError("\n".join(errors))
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(output))
    compiled = output["contracts"][source.name][name]
    return compiled["abi"], "0x" + compiled["evm"]["bytecode"]["object"]


def _pinned_solc() -> str:
    """The solc version package-lock.json pins (the key of cached outputs)."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/solc"]["version"])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "l2node" / "solc"
