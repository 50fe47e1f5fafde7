"""Every method driven by web3.py: its result formatters must accept what the server answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import rlp
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.blocks import CancunBlock, CancunBlockHeader
from eth_typing import BlockNumber
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, ContractPanicError, Web3RPCError
from web3.types import RPCEndpoint

from primitives.crypto import keccak256
from primitives.transactions import Transaction
from primitives.types import Address
from rpc.types import TxLocation
from tests.rpc.twin import (
    ADDRESSES,
    BASE_FEE,
    CHAIN_ID,
    KEYS,
    OUT_OF_GAS,
    PANICKER,
    RECIPIENT,
    REVERTER,
    STORED_VALUE,
    TIP,
    TRANSFER_TOPIC,
    TwinBackend,
    checksum,
    contract_address,
    error_string,
    sign,
)


def token(chain: TwinBackend) -> Address:
    create = chain.blocks[1].transactions[2]
    return contract_address(create.sender, create.nonce)


def test_chain_basics(w3: Web3, chain: TwinBackend) -> None:
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.net.version == str(CHAIN_ID)
    assert w3.net.listening is True
    assert w3.net.peer_count == 0
    assert w3.client_version == chain.client_version
    assert w3.eth.block_number == chain.head_number()
    assert w3.eth.syncing is False
    assert list(w3.eth.accounts) == []
    assert w3.eth.gas_price == chain.gas_price()
    assert w3.eth.max_priority_fee == chain.max_priority_fee()
    sha3 = w3.manager.request_blocking(RPCEndpoint("web3_sha3"), ["0x" + b"hello".hex()])
    assert sha3 == "0x" + keccak256(b"hello").hex()


def check_tx(got: object, tx: Transaction, location: TxLocation | None) -> None:
    assert isinstance(got, Mapping)
    assert bytes(got["hash"]) == tx.hash
    assert got["from"] == checksum(tx.sender)
    assert got["to"] == (None if tx.to is None else checksum(tx.to))
    assert got["nonce"] == tx.nonce
    assert got["value"] == tx.value
    assert got["gas"] == tx.gas_limit
    assert bytes(got["input"]) == tx.data
    assert got["type"] == tx.tx_type
    assert got["chainId"] == tx.chain_id
    assert got["r"] == tx.r.to_bytes(32, "big") and got["s"] == tx.s.to_bytes(32, "big")
    if location is None:
        assert got["blockHash"] is None
        assert got["blockNumber"] is None and got["transactionIndex"] is None
        assert got["gasPrice"] == tx.max_fee_per_gas
    else:
        assert bytes(got["blockHash"]) == location.block_hash
        assert got["blockNumber"] == location.block_number
        assert got["transactionIndex"] == location.index
        assert got["gasPrice"] == tx.effective_gas_price(BASE_FEE)
    if tx.tx_type >= 1:
        assert got["yParity"] == tx.v
        entries = [(e.address, e.storage_keys) for e in tx.access_list]
        assert [
            (bytes.fromhex(e["address"][2:]), tuple(int(k, 16) for k in e["storageKeys"]))
            for e in got["accessList"]
        ] == entries
    if tx.tx_type == 2:
        assert got["maxFeePerGas"] == tx.max_fee_per_gas
        assert got["maxPriorityFeePerGas"] == tx.max_priority_fee_per_gas


@pytest.mark.parametrize("number", [1, 2, 3])
def test_get_block(w3: Web3, chain: TwinBackend, number: int) -> None:
    view = chain.blocks[number]
    header = view.header
    by_number = w3.eth.get_block(number)
    by_hash = w3.eth.get_block(HexBytes(header.hash))
    assert by_number == by_hash
    assert by_number["number"] == number
    assert bytes(by_number["hash"]) == header.hash
    assert bytes(by_number["parentHash"]) == header.parent_hash
    assert bytes(by_number["stateRoot"]) == header.state_root
    assert bytes(by_number["transactionsRoot"]) == header.transactions_root
    assert bytes(by_number["receiptsRoot"]) == header.receipts_root
    assert bytes(by_number["logsBloom"]) == header.logs_bloom
    assert by_number["miner"] == checksum(header.coinbase)
    assert by_number["gasLimit"] == header.gas_limit
    assert by_number["gasUsed"] == header.gas_used
    assert by_number["timestamp"] == header.timestamp
    assert by_number["baseFeePerGas"] == header.base_fee_per_gas
    assert bytes(by_number["extraData"]) == header.extra_data
    assert by_number["withdrawals"] == [] and by_number["uncles"] == []
    assert bytes(by_number["withdrawalsRoot"]) == header.withdrawals_root
    assert by_number["blobGasUsed"] == 0 and by_number["excessBlobGas"] == 0
    assert by_number["transactions"] == [HexBytes(tx.hash) for tx in view.transactions]

    # The header hash and block size as py-evm, the reference, computes them.
    theirs = CancunBlock(
        rlp.decode(header.encode(), sedes=CancunBlockHeader),
        [CancunVM.get_transaction_builder().decode(tx.raw) for tx in view.transactions],
        [],
        [],
    )
    assert bytes(by_number["hash"]) == theirs.hash
    assert bytes(by_number["sha3Uncles"]) == theirs.header.uncles_hash
    assert bytes(by_number["mixHash"]) == theirs.header.mix_hash
    assert bytes(by_number["nonce"]) == theirs.header.nonce
    assert by_number["size"] == len(rlp.encode(theirs))

    full = w3.eth.get_block(number, full_transactions=True)
    assert len(full["transactions"]) == len(view.transactions)
    for index, (got, tx) in enumerate(zip(full["transactions"], view.transactions)):
        check_tx(got, tx, TxLocation(header.hash, number, index, header.timestamp))


def test_get_block_tags(w3: Web3, chain: TwinBackend) -> None:
    head = chain.head_number()
    for tag in ("latest", "safe", "finalized", "pending"):
        assert w3.eth.get_block(tag)["number"] == head
    assert w3.eth.get_block("earliest")["number"] == 0


def test_get_transaction(w3: Web3, chain: TwinBackend) -> None:
    for number in (1, 2):
        for index, tx in enumerate(chain.blocks[number].transactions):
            header = chain.blocks[number].header
            location = TxLocation(header.hash, number, index, header.timestamp)
            check_tx(w3.eth.get_transaction(HexBytes(tx.hash)), tx, location)
            check_tx(w3.eth.get_transaction_by_block(number, index), tx, location)
            by_hash = w3.eth.get_transaction_by_block(
                HexBytes(chain.blocks[number].header.hash), index
            )
            check_tx(by_hash, tx, location)
    (pending,) = chain.pool.values()
    check_tx(w3.eth.get_transaction(HexBytes(pending.hash)), pending, None)
    assert w3.eth.get_block_transaction_count(1) == 3
    assert w3.eth.get_block_transaction_count(HexBytes(chain.blocks[2].header.hash)) == 2


def test_get_transaction_receipt(w3: Web3, chain: TwinBackend) -> None:
    for number in (1, 2):
        block_hash = chain.blocks[number].header.hash
        for index, tx in enumerate(chain.blocks[number].transactions):
            view = chain.receipts[tx.hash]
            got = w3.eth.get_transaction_receipt(HexBytes(tx.hash))
            assert bytes(got["transactionHash"]) == tx.hash
            assert got["transactionIndex"] == index
            assert got["blockNumber"] == number and bytes(got["blockHash"]) == block_hash
            assert got["from"] == checksum(tx.sender)
            assert got["to"] == (None if tx.to is None else checksum(tx.to))
            assert got["status"] == 1
            assert got["type"] == tx.tx_type
            assert got["gasUsed"] == view.gas_used
            assert got["cumulativeGasUsed"] == view.receipt.cumulative_gas_used
            assert got["effectiveGasPrice"] == tx.effective_gas_price(BASE_FEE)
            expected_contract = (
                None if view.contract_address is None else checksum(view.contract_address)
            )
            assert got["contractAddress"] == expected_contract
            assert bytes(got["logsBloom"]) == view.receipt.bloom
            assert len(got["logs"]) == len(view.receipt.logs)
            for i, (log, want) in enumerate(zip(got["logs"], view.receipt.logs)):
                assert log["address"] == checksum(want.address)
                assert [bytes(t) for t in log["topics"]] == list(want.topics)
                assert bytes(log["data"]) == want.data
                assert log["logIndex"] == view.first_log_index + i
                assert log["transactionIndex"] == index
                assert bytes(log["transactionHash"]) == tx.hash
                assert log["blockNumber"] == number and bytes(log["blockHash"]) == block_hash
                assert log["removed"] is False
    # The second call of block 2 follows the first's two logs.
    second = chain.blocks[2].transactions[1]
    assert w3.eth.get_transaction_receipt(HexBytes(second.hash))["logs"][0]["logIndex"] == 2
    (pending,) = chain.pool
    assert (
        w3.manager.request_blocking(
            RPCEndpoint("eth_getTransactionReceipt"), ["0x" + pending.hex()]
        )
        is None
    )


def test_get_block_receipts(w3: Web3, chain: TwinBackend) -> None:
    receipts = w3.eth.get_block_receipts(2)
    expected = [
        w3.eth.get_transaction_receipt(HexBytes(tx.hash)) for tx in chain.blocks[2].transactions
    ]
    assert receipts == expected
    assert w3.eth.get_block_receipts(HexBytes(chain.blocks[2].header.hash)) == expected
    assert w3.eth.get_block_receipts(3) == []


def test_get_logs(w3: Web3, chain: TwinBackend) -> None:
    address = checksum(token(chain))
    all_logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"})
    assert len(all_logs) == 4
    assert [log["logIndex"] for log in all_logs] == [0, 1, 2, 3]
    assert w3.eth.get_logs({"fromBlock": 0, "address": address}) == all_logs
    assert w3.eth.get_logs({"fromBlock": 0, "address": [address, checksum(RECIPIENT)]}) == all_logs
    assert w3.eth.get_logs({"fromBlock": 0, "address": checksum(RECIPIENT)}) == []
    assert w3.eth.get_logs({"blockHash": HexBytes(chain.blocks[2].header.hash)}) == all_logs
    assert w3.eth.get_logs({"fromBlock": 3}) == []
    sender_topic = "0x" + ADDRESSES[0].rjust(32, b"\0").hex()
    first = w3.eth.get_logs({"fromBlock": 1, "topics": [None, sender_topic]})
    assert [bytes(log["transactionHash"]) for log in first] == [
        chain.blocks[2].transactions[0].hash
    ]
    other = "0x" + ADDRESSES[1].rjust(32, b"\0").hex()
    either = w3.eth.get_logs(
        {"fromBlock": 1, "topics": [["0x" + TRANSFER_TOPIC.hex()], [sender_topic, other]]}
    )
    assert len(either) == 2
    assert w3.eth.get_logs({"fromBlock": 1, "topics": ["0x" + TRANSFER_TOPIC.hex()]}) == all_logs


def test_fee_history(w3: Web3, chain: TwinBackend) -> None:
    history = w3.eth.fee_history(3, "latest", [10.0, 90.0])
    head = chain.head_number()
    assert history["oldestBlock"] == head - 2
    assert history["baseFeePerGas"] == [BASE_FEE] * 4
    assert history["gasUsedRatio"] == [
        b.header.gas_used / b.header.gas_limit for b in chain.blocks[1:]
    ]
    # Block 2's calls are capped at BASE_FEE + TIP/2, so they tip half of TIP.
    assert history["reward"] == [[TIP, 2 * TIP], [TIP // 2, TIP // 2], [0, 0]]
    # Counts beyond genesis are cut to the chain's length.
    assert w3.eth.fee_history(100, BlockNumber(1))["oldestBlock"] == 0
    assert "reward" not in w3.eth.fee_history(1, "latest")


def test_state(w3: Web3, chain: TwinBackend) -> None:
    sender = checksum(ADDRESSES[0])
    state1 = chain.states[1].get_account(ADDRESSES[0])
    assert state1 is not None
    assert w3.eth.get_balance(sender) == chain.states[-1].accounts[ADDRESSES[0]].balance
    assert w3.eth.get_balance(sender, 1) == state1.balance
    assert w3.eth.get_balance(sender, HexBytes(chain.blocks[1].header.hash)) == state1.balance
    assert w3.eth.get_balance(sender, "earliest") > state1.balance
    assert w3.eth.get_balance(checksum(b"\x99" * 20)) == 0
    assert w3.eth.get_transaction_count(sender, 0) == 0
    assert w3.eth.get_transaction_count(sender) == 2
    creator = checksum(ADDRESSES[2])
    assert w3.eth.get_transaction_count(creator, "latest") == 1
    assert w3.eth.get_transaction_count(creator, "pending") == 2
    address = checksum(token(chain))
    assert bytes(w3.eth.get_code(address)) == chain.states[-1].code[token(chain)]
    assert bytes(w3.eth.get_code(address, 0)) == b""
    slot0 = w3.eth.get_storage_at(address, 0)
    assert int.from_bytes(slot0, "big") == STORED_VALUE and len(slot0) == 32


def test_call_and_estimate(w3: Web3, chain: TwinBackend) -> None:
    address = checksum(token(chain))
    assert int.from_bytes(w3.eth.call({"to": address}), "big") == STORED_VALUE
    assert w3.eth.call({"to": address}, 0) == bytes(32)
    assert w3.eth.estimate_gas({"to": address, "from": checksum(ADDRESSES[0])}) == 23_000
    with pytest.raises(ContractLogicError) as reverted:
        w3.eth.call({"to": checksum(REVERTER)})
    assert reverted.value.message == "execution reverted: nope"
    assert reverted.value.data == "0x" + error_string("nope").hex()
    with pytest.raises(ContractLogicError) as estimated:
        w3.eth.estimate_gas({"to": checksum(REVERTER)})
    assert estimated.value.message == "execution reverted: nope"
    with pytest.raises(ContractPanicError) as panicked:
        w3.eth.call({"to": checksum(PANICKER)})
    assert panicked.value.data == "0x4e487b71" + (0x11).to_bytes(32, "big").hex()
    with pytest.raises(Web3RPCError) as out_of_gas:
        w3.eth.call({"to": checksum(OUT_OF_GAS)})
    assert out_of_gas.value.rpc_response is not None
    assert out_of_gas.value.rpc_response["error"] == {"code": -32000, "message": "out of gas"}


def test_send_raw_transaction(w3: Web3, chain: TwinBackend) -> None:
    sender = checksum(ADDRESSES[0])
    nonce = w3.eth.get_transaction_count(sender, "pending")
    tx = sign(
        KEYS[0],
        type=2,
        nonce=nonce,
        maxFeePerGas=2 * BASE_FEE,
        maxPriorityFeePerGas=TIP,
        gas=21_000,
        to=checksum(RECIPIENT),
        value=1,
    )
    assert bytes(w3.eth.send_raw_transaction(tx.raw)) == tx.hash
    assert w3.eth.get_transaction_count(sender, "pending") == nonce + 1
    check_tx(w3.eth.get_transaction(HexBytes(tx.hash)), tx, None)

    def rejected(raw: bytes) -> tuple[int, str]:
        with pytest.raises(Web3RPCError) as error:
            w3.eth.send_raw_transaction(raw)
        assert error.value.rpc_response is not None
        body = error.value.rpc_response["error"]
        return body["code"], body["message"]

    assert rejected(tx.raw) == (1000, "already known")
    stale = sign(
        KEYS[0], nonce=0, gasPrice=2 * BASE_FEE, gas=21_000, to=checksum(RECIPIENT), value=1
    )
    assert rejected(stale.raw) == (1, "nonce too low")
    cheap = sign(
        KEYS[1], nonce=5, gasPrice=BASE_FEE - 1, gas=21_000, to=checksum(RECIPIENT), value=1
    )
    assert rejected(cheap.raw) == (806, "max fee per gas less than block base fee")
    rich = sign(
        KEYS[1], nonce=5, gasPrice=BASE_FEE, gas=21_000, to=checksum(RECIPIENT), value=10**30
    )
    assert rejected(rich.raw) == (809, "insufficient funds for gas * price + value")
    foreign = sign(
        KEYS[1], nonce=5, gasPrice=BASE_FEE, gas=21_000, to=checksum(RECIPIENT), chainId=1
    )
    assert rejected(foreign.raw) == (-32000, "invalid chain id for signer")


def test_batch_requests(w3: Web3, chain: TwinBackend) -> None:
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block(1))
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_balance(checksum(ADDRESSES[1])))
        results: list[Any] = batch.execute()
    assert results[0]["number"] == 1
    assert results[1] == chain.head_number()
    assert results[2] == chain.states[-1].accounts[ADDRESSES[1]].balance


def test_l2_batches(w3: Web3, chain: TwinBackend) -> None:
    (view,) = chain.batches
    got = w3.manager.request_blocking(RPCEndpoint("l2_getBatch"), ["0x1"])
    assert got == w3.manager.request_blocking(RPCEndpoint("l2_latestCommittedBatch"), [])
    assert int(got["number"], 16) == view.number
    assert int(got["firstBlock"], 16) == view.first_block
    assert int(got["lastBlock"], 16) == view.last_block
    assert got["stateRoot"] == "0x" + view.state_root.hex()
    assert got["prevStateRoot"] == "0x" + view.prev_state_root.hex()
    assert got["dataHash"] == "0x" + view.data_hash.hex()
    assert got["l1TransactionHash"] == "0x" + (view.l1_tx_hash or b"").hex()
    assert got["l1BlockNumber"] == hex(view.l1_block_number or 0)
    assert w3.manager.request_blocking(RPCEndpoint("l2_getBatch"), ["0x2"]) is None
