"""The committed BatchInbox artifact is what the pinned solc builds from the committed source."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from l1.client import load_artifact

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "contracts" / "BatchInbox.sol"


def test_artifact_names_current_source() -> None:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert load_artifact()["sourceHash"] == f"sha256:{digest}", (
        "contracts/BatchInbox.sol changed: run `node contracts/build.js` and commit the artifact"
    )


def test_artifact_is_what_pinned_solc_builds() -> None:
    assert (ROOT / "node_modules" / "solc").is_dir(), "solc is not installed: run `npm ci`"
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    built = subprocess.run(
        [node, "contracts/build.js", "--stdout"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    artifact = load_artifact()
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["solc"]
    assert artifact["solcVersion"].startswith(pinned + "+"), "artifact built by another solc"
    assert artifact["evmVersion"] == "cancun"
    assert json.loads(built.stdout) == artifact, (
        "contracts/artifacts/BatchInbox.json is stale: run `node contracts/build.js`"
    )
