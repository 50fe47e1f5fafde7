"""rpc/ depends only on primitives/ and the executor's seam (ARCHITECTURE.md, api.py)."""

from __future__ import annotations

import ast
from pathlib import Path

RPC_DIR = Path(__file__).resolve().parents[2] / "rpc"
FORBIDDEN = {"plyvel", "libp2p", "cupy", "node", "p2p", "sequencer", "l1"}
EXECUTOR_SEAM = {"executor_gpu.api", "executor_gpu.types"}


def imported_modules(source: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_rpc_imports_only_allowed_packages() -> None:
    sources = sorted(RPC_DIR.glob("*.py"))
    assert len(sources) >= 7
    for source in sources:
        modules = imported_modules(source)
        assert not {m.split(".")[0] for m in modules} & FORBIDDEN, source.name
        executor = {m for m in modules if m.split(".")[0] == "executor_gpu"}
        assert executor <= EXECUTOR_SEAM, source.name
