"""What an operator watches on real `l2node run` processes: /metrics moves with the chain,
/ready says 503 (with the reasons) once blocks stop, the block log line, the data dir lock."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from node.devnet import METRICS_PORT_OFFSET, P2P_PORT_OFFSET, DevnetNode, write_devnet
from node.genesis import development_keys
from tests.nodeproc import free_port, l2node_command, l2node_env, running_node

MNEMONIC = "test test test test test test test test test test test junk"
RECIPIENT = "0x" + "42" * 20

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET, 503 included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(what: str, condition: Callable[[], bool], timeout: float,
             logs: tuple[Path, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass  # not answering yet
        time.sleep(0.25)
    tails = "".join(f"\n--- {p}\n" + "\n".join(p.read_text().splitlines()[-20:]) for p in logs)
    raise AssertionError(f"timed out waiting for {what}{tails}")


def transfer(key: bytes, nonce: int) -> str:
    tx = {"chainId": 7331, "nonce": nonce, "to": RECIPIENT, "value": 1, "gas": 21_000,
          "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
    raw: bytes = Account.sign_transaction(tx, key).raw_transaction
    return "0x" + raw.hex()


def test_metrics_move_with_transactions_and_the_node_is_ready(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    with running_node(data_dir, metrics_port=free_port()) as node:
        before = scrape(node.metrics_url)
        key = development_keys(MNEMONIC, 1)[0]
        raws = [transfer(key, nonce) for nonce in range(3)]
        hashes = [node.rpc("eth_sendRawTransaction", [raw])["result"] for raw in raws]
        assert node.rpc("eth_sendRawTransaction", [raws[0]])["error"]["message"] == "already known"
        wait_for("the transfers' receipts", lambda: all(
            node.rpc("eth_getTransactionReceipt", [h])["result"] for h in hashes), 60)
        after = scrape(node.metrics_url)

        def moved(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
            return after[(name, labels)] - before.get((name, labels), 0.0)

        assert moved("l2node_head_height") > 0
        assert after[("l2node_finalized_height", ())] == after[("l2node_head_height", ())]
        assert moved("l2node_transactions_total") == 3
        assert moved("l2node_gas_used_total") == 3 * 21_000
        assert moved("l2node_blocks_total") > 0
        assert moved("l2node_txpool_accepted_total") == 3
        assert moved("l2node_txpool_rejected_total", (("reason", "already_known"),)) == 1
        assert after[("l2node_txpool_transactions", (("state", "pending"),))] == 0
        for stage in ("select", "execute", "state", "write", "advance"):
            assert moved("l2node_block_stage_seconds_count", (("stage", stage),)) > 0
        assert moved("l2node_block_finality_seconds_count") > 0
        info = next(labels for name, labels in after if name == "l2node_info")
        assert dict(info) == {"chain_id": "7331", "executor": "reference", "role": "sequencer",
                              "version": "0.1.0"}
        wait_for("a batch on L1", lambda: scrape(node.metrics_url)[
            ("l2node_l1_latest_batch", ())] >= 1, 60)
        l1 = scrape(node.metrics_url)
        assert l1[("l2node_l1_committed_height", ())] >= 4  # 4 blocks per batch in the tests
        assert l1[("l2node_l1_poster_balance_wei", ())] > 0

        # On a busy machine a block may come late (10 block times: 2.5 s) now and then.
        answers: list[tuple[int, dict[str, Any]]] = []

        def ready() -> bool:
            answers.append(get(node.url + "/ready"))
            return answers[-1][0] == 200

        wait_for("ready", ready, 30)
        body = answers[-1][1]
        assert body["ready"] is True and body["reasons"] == [] and body["peers"] == 0, body
        assert body["head"] > 0 and 0 <= body["l1_lag_seconds"] < 600
        assert get(node.url + "/health") == (200, {"ok": True})

        # A second node on the same data dir: one line, exit 2, the running node untouched.
        second = subprocess.run(
            l2node_command("run", "--data-dir", str(data_dir), "--rpc-port", str(free_port()),
                           "--metrics-port", "0"),
            capture_output=True, text=True, timeout=120, env=l2node_env(), check=False)
        assert second.returncode == 2
        (line,) = second.stderr.strip().splitlines()
        assert line.endswith(f"data dir {data_dir} is in use by another l2node process: stop "
                             "it, or use another --data-dir")
        assert "result" in node.rpc("eth_blockNumber")
        receipt = node.rpc("eth_getTransactionReceipt", [hashes[0]])["result"]
    number = int(receipt["blockNumber"], 16)
    block_line = re.compile(
        rf"INFO l2node: block {number} txs=(\d+) gas=(\d+) hash={receipt['blockHash']} round=0 "
        r"proposer=0x[0-9a-f]{40} final=\d+ms root=[0-9a-f]{12} select=\d+ms execute=\d+ms "
        r"state=\d+ms write=\d+ms advance=\d+ms$", re.MULTILINE)
    match = block_line.search(node.log_path.read_text())
    assert match is not None, node.log_tail()
    assert int(match.group(2)) == 21_000 * int(match.group(1))


def _ports_free(base: int, count: int) -> bool:
    for offset in (0, P2P_PORT_OFFSET, METRICS_PORT_OFFSET):
        for port in range(base + offset, base + offset + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    return False
    return True


@contextmanager
def started(nodes: list[DevnetNode]) -> Iterator[dict[int, subprocess.Popen[bytes]]]:
    processes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for node in nodes:
            with node.log.open("ab") as log:
                processes[node.index] = subprocess.Popen(
                    node.command(), stdout=log, stderr=subprocess.STDOUT, env=l2node_env())
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_ready_turns_503_when_a_validator_loses_its_quorum(tmp_path: Path) -> None:
    """Two validators both must precommit: with one killed, the other stops finalizing, and
    its /ready says so (the process itself still answers)."""
    base = next(b for b in (random.randrange(20_000, 31_000) for _ in range(50))
                if _ports_free(b, 2))
    nodes = write_devnet(tmp_path / "devnet", 2, base, 0.25, "reference")
    with started(nodes) as processes:
        first = nodes[0].rpc_url
        logs = tuple(node.log for node in nodes)
        wait_for("validator 0 ready", lambda: get(first + "/ready")[0] == 200, 120, logs)
        wait_for("blocks final and ready", lambda: get(first + "/ready")[1]["head"] >= 3
                 and get(first + "/ready")[0] == 200, 60, logs)
        metrics = scrape(nodes[0].metrics_url)
        assert metrics[("l2node_p2p_peers", ())] == 1
        assert dict(next(labels for name, labels in metrics if name == "l2node_info"))[
            "role"] == "validator"
        accepted = (("result", "accept"), ("topic", "l2/consensus/1"))
        assert metrics[("l2node_p2p_gossip_messages_total", accepted)] > 0
        assert metrics[("l2node_head_height", ())] >= 3

        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait()

        def reasons() -> list[str]:
            status, body = get(first + "/ready")
            assert status == 503 or body["ready"], body
            return list(body["reasons"])

        wait_for("validator 0 not ready", lambda: get(first + "/ready")[0] == 503, 60, logs)
        wait_for("both reasons", lambda: len(reasons()) == 2, 60, logs)
        status, body = get(first + "/ready")
        assert status == 503 and body["ready"] is False and body["peers"] == 0
        head = body["head"]
        stalled, peers = body["reasons"]
        # The age is printed to 0.1 s from the unrounded value (2.7499 -> "2.7", 2.75 -> "2.8").
        match = re.fullmatch(rf"head {head} has not advanced for (\d+\.\d) s \(limit 2\.5 s, "
                             r"10 block times\)", stalled)
        assert match and abs(float(match[1]) - body["head_age_seconds"]) <= 0.051, body
        assert peers == "0 peers connected, a quorum needs 1", body
        assert get(first + "/health") == (200, {"ok": True})  # alive, only not ready
