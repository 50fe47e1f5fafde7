"""bench/l1_gas.py still runs (a tiny setting): its figures come from real anvil receipts."""

from __future__ import annotations

import subprocess
import sys

from tests.nodeproc import ROOT, l2node_env


def test_l1_gas_bench_prints_a_row_per_setting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.l1_gas", "--txs", "10", "--validators", "1", "2",
         "--batches", "1"],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT, env=l2node_env(),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:") and "anvil" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [["10", "1"], ["10", "2"]]
    gas_per_tx = [float(row[-1].replace(",", "")) for row in rows]
    # 21,000 per L1 transaction spread over 10 L2 transactions, plus their calldata.
    assert all(2_100 < gas < 100_000 for gas in gas_per_tx)
    assert gas_per_tx[1] > gas_per_tx[0]  # a second signature costs gas
