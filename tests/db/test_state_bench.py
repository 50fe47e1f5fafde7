"""bench.state runs end to end on a small state (so that it cannot rot), and its blocks' roots
equal py-trie's on the same diffs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_state_bench_small_run_matches_py_trie(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.state", "--accounts", "3000", "--chunk", "1000",
               "--txs", "200", "--blocks", "2", "--py-trie-blocks", "2", "--reads", "200",
               "--dir", str(tmp_path / "state")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "built 3,000 accounts" in first
    assert first.count("same root") == 2 and "ROOT DIFFERS" not in first
    # A second run reuses the kept state (a restarted node) and goes on from its head.
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "reusing the state of 3,000 accounts" in again and again.count("same root") == 2
