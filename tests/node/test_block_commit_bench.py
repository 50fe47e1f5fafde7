"""bench.block_commit runs end to end on small blocks of both workloads (so that it cannot
rot): every transaction is admitted and included, and the stage times are printed."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("workload", ["transfer", "erc20"])
def test_block_commit_bench_small_run(workload: str) -> None:
    command = [sys.executable, "-m", "bench.block_commit", "--workload", workload, "--txs", "60",
               "--blocks", "2", "--per-sender", "3", "--fresh", "--executor", "native-cpu"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    label = "ERC-20 transfers" if workload == "erc20" else "transfers"
    assert out.count(f"60 {label} (3 per sender, to new addresses)") == 2
    assert "execute=" in out and "state=" in out and "gc=" in out and "best:" in out


def test_block_commit_bench_pipelined_back_to_back() -> None:
    command = [sys.executable, "-m", "bench.block_commit", "--workload", "erc20", "--txs", "60",
               "--blocks", "3", "--per-sender", "3", "--fresh", "--executor", "native-cpu",
               "--back-to-back", "--pipelined"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    assert out.count("60 ERC-20 transfers (3 per sender, to new addresses)") == 3
    assert "3 blocks back to back, pipelined:" in out and "advance=" in out
