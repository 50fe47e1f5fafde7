"""A wallet's view of a real `l2node run` process: transfers, a token, restart, L1 commitments."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from web3 import Web3
from web3.types import TxParams

from node.genesis import development_keys
from tests.nodeproc import free_port, running_node
from tests.solc import compile_contract

MNEMONIC = "test test test test test test test test test test test junk"
GENESIS_BALANCE = 10_000 * 10**18
TOKEN_SOURCE = Path(__file__).with_name("TestToken.sol")


def wait_receipts(w3: Web3, hashes: list[Any], timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    receipts = []
    for tx_hash in hashes:
        while True:
            receipt = w3.eth.get_transaction_receipt(tx_hash) if _known(w3, tx_hash) else None
            if receipt is not None:
                receipts.append(receipt)
                break
            assert time.monotonic() < deadline, f"no receipt for {tx_hash.hex()}"
            time.sleep(0.1)
    return receipts


def _known(w3: Web3, tx_hash: Any) -> bool:
    tx = w3.eth.get_transaction(tx_hash)
    return tx["blockNumber"] is not None


def send(w3: Web3, account: Any, **fields: Any) -> Any:
    tx = {
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "maxFeePerGas": 2 * w3.eth.get_block("latest")["baseFeePerGas"] + w3.eth.max_priority_fee,
        "maxPriorityFeePerGas": w3.eth.max_priority_fee,
        **fields,
    }
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(cast(TxParams, {k: v for k, v in tx.items() if k != "nonce"} | {"from": account.address}))
    signed = account.sign_transaction(tx)
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def test_wallet_flow_restart_and_l1_commitment(tmp_path: Path) -> None:
    keys = development_keys(MNEMONIC, 10)
    accounts = [Account.from_key(k) for k in keys]
    senders, recipient = accounts[:5], Web3.to_checksum_address("0x" + "42" * 20)
    port = free_port()
    data_dir = tmp_path / "node"

    with running_node(data_dir, port) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        assert w3.eth.chain_id == 7331
        assert w3.eth.get_balance(accounts[9].address) == GENESIS_BALANCE

        # 50 transfers from 5 senders, each a nonce chain built from the "pending" count.
        hashes = []
        for round_ in range(10):
            for sender in senders:
                hashes.append(send(w3, sender, to=recipient, value=10**15 + round_, gas=21_000))
        for sender in senders:
            assert w3.eth.get_transaction_count(sender.address, "pending") == 10
        receipts = wait_receipts(w3, hashes)
        assert all(r["status"] == 1 for r in receipts)
        assert w3.eth.get_balance(recipient) == sum(5 * (10**15 + i) for i in range(10))
        for sender in senders:
            assert w3.eth.get_transaction_count(sender.address) == 10
            mine = [r for r in receipts if r["from"] == sender.address]
            fees = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in mine)
            sent = sum(10**15 + i for i in range(10))
            assert w3.eth.get_balance(sender.address) == GENESIS_BALANCE - sent - fees

        # An ERC-20: deploy, transfer, read the receipt's logs and query them back.
        abi, bytecode = compile_contract(TOKEN_SOURCE, "TestToken")
        deployer, holder = accounts[5], accounts[6]
        supply = 1_000_000 * 10**18
        token_factory = w3.eth.contract(abi=abi, bytecode=bytecode)
        deploy_data = token_factory.constructor(supply).build_transaction(
            {"from": deployer.address, "gas": 2_000_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0}
        )["data"]
        (deploy_receipt,) = wait_receipts(w3, [send(w3, deployer, data=deploy_data)])
        assert deploy_receipt["status"] == 1
        token = w3.eth.contract(address=deploy_receipt["contractAddress"], abi=abi)
        assert w3.eth.get_code(token.address) != b""
        assert token.functions.balanceOf(deployer.address).call() == supply
        transfer_data = token.functions.transfer(holder.address, 1234).build_transaction(
            {"from": deployer.address, "gas": 100_000, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0}
        )["data"]
        (transfer_receipt,) = wait_receipts(w3, [send(w3, deployer, to=token.address, data=transfer_data)])
        assert transfer_receipt["status"] == 1
        (event,) = token.events.Transfer().process_receipt(transfer_receipt)
        assert event["args"]["to"] == holder.address and event["args"]["value"] == 1234
        assert token.functions.balanceOf(holder.address).call() == 1234
        logs = w3.eth.get_logs({
            "fromBlock": 0, "toBlock": "latest", "address": token.address,
            "topics": [None, None, "0x" + "00" * 12 + holder.address[2:].lower()],
        })
        assert [log["transactionHash"] for log in logs] == [transfer_receipt["transactionHash"]]
        assert logs[0]["logIndex"] == transfer_receipt["logs"][0]["logIndex"]

        # L1: a commitment whose state root is the L2 state root of its last block.
        batch = wait_for_batch(node, covering=transfer_receipt["blockNumber"])
        committed_block = w3.eth.get_block(int(batch["lastBlock"], 16))
        assert batch["stateRoot"] == "0x" + committed_block["stateRoot"].hex().removeprefix("0x")

        head = w3.eth.get_block("latest")
        assert node.stop() == 0, node.log_tail()

    with running_node(data_dir, port) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        again = w3.eth.get_block(head["number"])
        assert again["hash"] == head["hash"] and again["stateRoot"] == head["stateRoot"]
        assert w3.eth.block_number >= head["number"]
        assert w3.eth.get_balance(recipient, head["number"]) == sum(5 * (10**15 + i) for i in range(10))
        assert token.functions.balanceOf(holder.address).call(block_identifier=head["number"]) == 1234
        (tx_receipt,) = wait_receipts(w3, [send(w3, holder, to=recipient, value=1, gas=21_000)])
        assert tx_receipt["status"] == 1


def wait_for_batch(node: Any, covering: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = node.rpc("l2_latestCommittedBatch").get("result")
        if batch is not None and int(batch["lastBlock"], 16) >= covering:
            return batch  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"no L1 batch covers block {covering}:\n{node.log_tail()}"
        time.sleep(0.25)
