"""SIGKILL at any moment loses no accepted transaction and leaves the database usable."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from eth_account import Account

from node.genesis import development_keys
from tests.nodeproc import TEST_CONFIG, running_node

MNEMONIC = "test test test test test test test test test test test junk"
# Blocks so rare that the accepted transactions are still in the pool when the node dies.
SLOW_BLOCKS = TEST_CONFIG.replace("block_time = 0.25", "block_time = 3600")


def test_pooled_transactions_survive_sigkill(tmp_path: Path) -> None:
    key = development_keys(MNEMONIC, 3)[2]
    data_dir = tmp_path / "node"
    hashes = []
    with running_node(data_dir, config=SLOW_BLOCKS) as node:
        for nonce in range(5):
            tx = {"chainId": 7331, "nonce": nonce, "to": "0x" + "12" * 20, "value": 1 + nonce,
                  "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
            raw = "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()
            hashes.append(node.rpc("eth_sendRawTransaction", [raw])["result"])
        pending = node.rpc("eth_getTransactionByHash", [hashes[-1]])["result"]
        assert pending is not None and pending["blockNumber"] is None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    with running_node(data_dir) as node:
        # Each one kept through SIGKILL, and included.
        assert all(receipt["status"] == "0x1" for receipt in node.receipts(hashes))
        balance = node.rpc("eth_getBalance", ["0x" + "12" * 20, "latest"])["result"]
        assert int(balance, 16) == sum(1 + n for n in range(5))


def test_sigkill_while_producing_blocks_keeps_database_consistent(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    for _ in range(3):
        with running_node(data_dir) as node:
            time.sleep(1.0)  # several blocks and maybe a batch in flight
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)
    with running_node(data_dir) as node:
        head = int(node.rpc("eth_blockNumber")["result"], 16)
        assert head > 0
        block = node.rpc("eth_getBlockByNumber", [hex(head), False])["result"]
        parent = node.rpc("eth_getBlockByNumber", [hex(head - 1), False])["result"]
        assert block["parentHash"] == parent["hash"]


PIPELINED = TEST_CONFIG + """
[executor]
kind = "native-cpu"
pipelined = true
"""


def test_sigkill_of_a_pipelined_node_loses_no_accepted_transaction(tmp_path: Path) -> None:
    """Blocks in flight (executed, their root and write not done) when the node dies: their
    transactions come back from the pool's records and are included after the restart."""
    key = development_keys(MNEMONIC, 3)[2]
    data_dir = tmp_path / "node"
    hashes = []
    nonce = 0
    for _ in range(3):
        with running_node(data_dir, config=PIPELINED) as node:
            for _ in range(8):
                tx = {"chainId": 7331, "nonce": nonce, "to": "0x" + "34" * 20, "value": 1,
                      "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
                raw = "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()
                answer = node.rpc("eth_sendRawTransaction", [raw])
                assert "result" in answer, answer
                hashes.append(answer["result"])
                nonce += 1
                time.sleep(0.05)
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)
    with running_node(data_dir, config=PIPELINED) as node:
        assert all(receipt["status"] == "0x1" for receipt in node.receipts(hashes))
        balance = node.rpc("eth_getBalance", ["0x" + "34" * 20, "latest"])["result"]
        assert int(balance, 16) == len(hashes)
        head = int(node.rpc("eth_blockNumber")["result"], 16)
        block = node.rpc("eth_getBlockByNumber", [hex(head), False])["result"]
        parent = node.rpc("eth_getBlockByNumber", [hex(head - 1), False])["result"]
        assert block["parentHash"] == parent["hash"]
