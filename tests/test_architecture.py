"""The folder rules of ARCHITECTURE.md, checked on every import of every package.

Two rules, read from the design's table and its "dependencies point down" line:

- the third-party packages each folder must not import (the table's last column);
- our own packages: dependencies point down, node/ -> rpc/, p2p/, l1/, sequencer/ ->
  executor_gpu/ -> primitives/, and across packages only the seam (``api``, ``types``) is
  imported, except primitives/ (the ground floor, anything of it) and node/ (it wires
  components, so it may import anything).

Imports are found by parsing the source (top level and inside functions), so a lazy
import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "primitives": set(),
    "node": set(),
    "sequencer": {"plyvel", "fastapi", "libp2p", "web3", "cupy"},
    "executor_gpu": {"plyvel", "fastapi", "libp2p", "web3"},
    "p2p": {"fastapi", "web3", "cupy"},
    "rpc": {"plyvel", "libp2p", "cupy"},
    "l1": {"fastapi", "libp2p", "cupy"},
}
"""The table's "must not import" column, per folder."""

LAYER = {"primitives": 0, "executor_gpu": 1, "sequencer": 2, "p2p": 2, "rpc": 2, "l1": 2,
         "node": 3}
"""Dependencies point down: a package imports only packages of a lower layer."""

SEAMS = {"api", "types"}
"""The modules of a package that others may import."""


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``path``; ``from a import b`` gives
    ``a.b`` so that importing a module from a package is seen as that module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def violation(package: str, module: str) -> str | None:
    """Why ``package`` may not import ``module``, or None when it may."""
    if module.startswith("."):
        return "relative import (write the package's absolute name)"
    parts = module.split(".")
    top = parts[0]
    if top in FORBIDDEN_THIRD_PARTY[package]:
        return f"{package}/ must not import {top}"
    if top not in LAYER or top == package or package == "node":
        return None
    if LAYER[top] >= LAYER[package]:
        return f"dependencies point down: {package}/ must not import {top}/"
    if top != "primitives" and (len(parts) < 2 or parts[1] not in SEAMS):
        return f"{package}/ may import only {top}/'s seam (api.py, types.py)"
    return None


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports(path):
            why = violation(package, module)
            if why is not None:
                found.append(f"{path.relative_to(ROOT)}:{line}: {module}: {why}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN_THIRD_PARTY))
def test_package_imports_follow_the_folder_rules(package: str) -> None:
    assert violations(package) == []


def test_the_rules_catch_what_the_design_forbids() -> None:
    # The checker itself: each kind of breach is seen (a rule that sees nothing proves nothing).
    assert violation("sequencer", "p2p.types.Validation") is not None
    assert violation("sequencer", "executor_gpu.challenge.matrices") is not None
    assert violation("sequencer", "executor_gpu.api.Executor") is None
    assert violation("sequencer", "cupy") is not None
    assert violation("primitives", "sequencer.types") is not None
    assert violation("executor_gpu", "sequencer.types.Block") is not None
    assert violation("p2p", "sequencer.wire") is not None
    assert violation("rpc", "primitives.types.Address") is None
    assert violation("node", "p2p.host.Libp2pGossip") is None
    assert violation("l1", "web3") is None
    assert violation("l1", "fastapi.FastAPI") is not None
