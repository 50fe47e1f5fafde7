"""The anvil test fixture itself: a real L1 that keeps its chain across restarts and reorgs on demand."""

from __future__ import annotations

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from tests.anvil import CHAIN_ID, DEV_KEYS, Anvil


def send_value(w3: Web3, nonce: int) -> HexBytes:
    account = Account.from_key(DEV_KEYS[0])
    tx = account.sign_transaction({
        "nonce": nonce, "to": Account.from_key(DEV_KEYS[1]).address, "value": 1, "gas": 21_000,
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": CHAIN_ID, "type": 2,
    })
    return w3.eth.send_raw_transaction(tx.raw_transaction)


def test_restart_keeps_the_chain(anvil: Anvil) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    assert w3.eth.chain_id == CHAIN_ID
    tx_hash = send_value(w3, 0)
    mined_in = w3.eth.wait_for_transaction_receipt(tx_hash)["blockNumber"]
    anvil.stop()
    assert not anvil.running
    anvil.start()
    assert w3.eth.block_number == mined_in
    assert w3.eth.get_transaction(tx_hash)["blockNumber"] == mined_in
    assert w3.eth.get_transaction_count(Account.from_key(DEV_KEYS[0]).address) == 1


def test_snapshot_revert_drops_blocks(anvil: Anvil) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    snapshot = anvil.snapshot()
    before = anvil.block_number()
    tx_hash = send_value(w3, 0)
    w3.eth.wait_for_transaction_receipt(tx_hash)
    anvil.mine(3)
    assert anvil.block_number() == before + 4
    anvil.revert(snapshot)
    assert anvil.block_number() == before
    assert w3.eth.get_transaction_count(Account.from_key(DEV_KEYS[0]).address) == 0


def test_without_automine_transactions_wait_for_mine(anvil: Anvil) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    anvil.set_automine(False)
    before = anvil.block_number()
    tx_hash = send_value(w3, 0)
    assert anvil.block_number() == before
    anvil.mine()
    assert w3.eth.get_transaction_receipt(tx_hash)["blockNumber"] == before + 1


def test_kill_ends_the_process(anvil: Anvil) -> None:
    process = anvil.process
    assert process is not None
    anvil.kill()
    assert process.poll() is not None and not anvil.running
