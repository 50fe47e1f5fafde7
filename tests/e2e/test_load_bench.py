"""bench/load.py stays runnable: a tiny load against a real node (and anvil when installed)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bench import load
from node.genesis import development_keys

MNEMONIC = "test test test test test test test test test test test junk"


def test_batches_keep_each_sender_on_one_connection_in_nonce_order() -> None:
    keys = development_keys(MNEMONIC, 6)
    txs = load.build_workload("transfer", keys, 23, 7331).load
    plans = load.plan_batches(txs, connections=3, batch=4)
    lanes: dict[int, int] = {}
    for lane, batches in enumerate(plans):
        order = [i for batch in batches for i in batch.indexes]
        assert order == sorted(order)  # the load is built nonce round by nonce round
        for i in order:
            assert lanes.setdefault(txs[i].sender, lane) == lane
        for batch in batches:
            assert len(json.loads(batch.body)) == len(batch.indexes) <= 4
    assert sorted(i for batches in plans for b in batches for i in b.indexes) == list(range(23))


def test_a_gas_limit_given_is_both_chains_block_gas_limit() -> None:
    preset = load.load_preset(123_456_789)
    config = tomllib.loads(load.node_config(preset, 5, "native-cpu"))
    assert config["chain"]["gas_limit"] == load.chain_settings(preset)["gas_limit"] == 123_456_789
    assert config["genesis"]["accounts"] == 5
    assert load.load_preset()["chain"]["gas_limit"] == 3_000_000_000  # the preset's own


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("workload", "validators"), [("transfer", 1), ("erc20", 1), ("payments", 4)])
def test_tiny_load_is_accepted_and_included(
    workload: str, validators: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    # The devnet's load goes to every validator's RPC (each sender's to one of them).
    argv = ["--workload", workload, "--txs", "300", "--senders", "20", "--connections", "4",
            "--batch", "50", "--timeout", "60", "--json", str(out), "--validators", str(validators),
            "--gas-limit", "900000000",
            *(["--spread", "--keep", str(tmp_path / "run")] if validators > 1 else [])]
    # A devnet of 4 validators is loaded alone: anvil's run is the same as the others'.
    with_anvil = load.anvil_available() and validators == 1
    assert load.main(argv + ([] if with_anvil else ["--no-anvil"])) == 0
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    expected = ["l2node", "anvil"] if with_anvil else ["l2node"]
    assert list(figures["targets"]) == expected
    assert figures["machine"]["cores"] >= 1 and figures["machine"]["commit"]
    assert figures["gas_limit"] == 900_000_000
    for name, result in figures["targets"].items():
        assert result["errors"] == {}, (name, result["errors"])
        assert result["accepted"] == result["included"] == 300, (name, result)
        assert result["failed_receipts_in_sample"] == 0, (name, result)
        assert result["poll_errors"] == 0, result["last_poll_error"]
        assert 0 < result["acceptance_tps"] and 0 < result["inclusion_tps"]
        assert 0 < result["latency_p50_s"] <= result["latency_p99_s"] < 60
        assert 0 < result["cpu_cores"] <= figures["machine"]["cores"] + 0.5
        assert result["peak_rss_mib"] > 5
        assert 1 <= result["blocks"] and result["max_block_txs"] <= 300
        if name == "l2node":  # the native executor's time, read from the node's metrics
            assert result["executor_s"]["load"] > 0 and result["executor_s"]["device kernel"] > 0
            assert set(result["gc_s"]) == {"gc 0", "gc 1", "gc 2"}
            # Its store was measured (what it holds after a load this small is LevelDB's
            # log or a table, whichever the store has at that moment: no bound on it).
            assert isinstance(result["stored_bytes_per_tx"], float)
        else:
            assert result["stored_bytes_per_tx"] is None  # anvil's store is not looked at
    heights = figures["targets"]["l2node"]["heights"]
    if validators > 1:  # where the devnet's heights went, from every validator's log
        assert heights["heights"] == heights["entry_proposed"] + heights["others_proposed"] >= 1
        assert 0 < heights["build_ms_p50"] and heights["final_ms_p50"] > 0
        assert "devnet, the load's" in printed and "spread over their RPC" in printed
        assert figures["targets"]["l2node"]["endpoints"] == validators
        # --keep left the run's folder: each validator's log is there to read.
        assert all((tmp_path / "run" / "devnet" / f"node{i}.log").stat().st_size > 0
                   for i in range(validators))
    else:
        assert heights == {} and figures["targets"]["l2node"]["endpoints"] == 1
    for row in ("acceptance tx/s", "inclusion tx/s", "latency p99 s", "CPU cores"):
        assert row in printed
    if "anvil" in figures["targets"]:
        assert figures["ratio_l2node_to_anvil"]["inclusion_tps"] > 0
        assert "l2node/anvil" in printed


def test_devnet_heights_count_a_height_once_its_proposer_logged_it(tmp_path: Path) -> None:
    def line(height: int, built: bool) -> str:
        stages = "select=3ms execute=9ms state=4ms" if built else "decode=2ms execute=8ms state=4ms"
        return (f"2026-12-07 21:22:51,005 INFO l2node: block {height} txs=300 gas=6300000 hash=0x01"
                f" round=0 proposer=0x02 final=40ms root=2d4a7bba27f2 {stages} write=3ms\n")

    logs = [tmp_path / "node0.log", tmp_path / "node1.log"]
    logs[0].write_text(line(5, built=False))
    logs[1].write_text("")  # node 1 proposed height 5 and has not logged it yet
    waiting = load.devnet_heights(logs, 5)
    assert waiting["heights"] == 0 and waiting["unproposed"] == 1
    logs[1].write_text(line(5, built=True))
    heights = load.devnet_heights(logs, 5)
    assert heights["heights"] == heights["others_proposed"] == 1 and heights["unproposed"] == 0
    assert heights["build_ms_p50"] == 16 and heights["check_ms_p50"] == 14
