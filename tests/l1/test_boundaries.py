"""l1/ depends only on primitives/, contracts/ and its L1 libraries (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

L1_DIR = Path(__file__).resolve().parents[2] / "l1"
FORBIDDEN = {
    "fastapi",
    "libp2p",
    "cupy",
    "plyvel",
    "node",
    "rpc",
    "p2p",
    "sequencer",
    "executor_gpu",
}


def imported_packages(source: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_l1_imports_no_forbidden_package() -> None:
    sources = sorted(L1_DIR.glob("*.py"))
    assert len(sources) >= 6
    for source in sources:
        assert not imported_packages(source) & FORBIDDEN, source.name
