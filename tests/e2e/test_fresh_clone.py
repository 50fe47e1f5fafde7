"""A fresh clone, without ../shared beside it, passes the tests that read ../shared: they say
in one line that the full state-test set is absent, and the slice in the repository runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_clone_without_shared_runs_the_repository_slice(tmp_path: Path) -> None:
    clone = tmp_path / "work" / "l2node"  # nothing named "shared" beside it
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {**os.environ, "PYTHONPATH": str(clone)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/conformance"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "not found: the full state-test set lives outside the repository" in out
    assert " passed" in out and " failed" not in out
