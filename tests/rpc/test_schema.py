"""Result fields and methods the execution-apis spec asks for: blockTimestamp, safe/finalized,
txpool_*, eth_blobBaseFee, debug_getRaw*."""

from __future__ import annotations

import zlib

import rlp

from primitives.blocks import Header, ordered_trie_root
from primitives.crypto import keccak256
from rpc.types import BatchView
from tests.rpc.conftest import Rpc
from tests.rpc.twin import (
    ADDRESSES,
    BASE_FEE,
    KEYS,
    RECIPIENT,
    TIP,
    TwinBackend,
    checksum,
    contract_address,
    sign,
)


def test_block_timestamp_in_transactions_and_logs(rpc: Rpc, chain: TwinBackend) -> None:
    header = chain.blocks[2].header
    block = rpc("eth_getBlockByNumber", "0x2", True)
    assert {tx["blockTimestamp"] for tx in block["transactions"]} == {hex(header.timestamp)}
    tx_hash = "0x" + chain.blocks[2].transactions[0].hash.hex()
    assert rpc("eth_getTransactionByHash", tx_hash)["blockTimestamp"] == hex(header.timestamp)
    receipt = rpc("eth_getTransactionReceipt", tx_hash)
    assert {log["blockTimestamp"] for log in receipt["logs"]} == {hex(header.timestamp)}
    logs = rpc("eth_getLogs", {"fromBlock": "0x2", "toBlock": "0x2"})
    assert logs and {log["blockTimestamp"] for log in logs} == {hex(header.timestamp)}
    pending = next(iter(chain.pool))
    assert rpc("eth_getTransactionByHash", "0x" + pending.hex())["blockTimestamp"] is None


def test_safe_and_finalized_follow_l1(rpc: Rpc, chain: TwinBackend) -> None:
    first = chain.batches[0]
    # The first batch (blocks 1-3) is final on L1; a second one (blocks 4-5) only committed.
    chain.add_block([])
    chain.add_block([])
    chain.batches.append(BatchView(2, 4, 5, first.state_root, first.state_root, first.data_hash,
                                   first.l1_tx_hash, 29))
    chain.add_block([])
    assert rpc("eth_blockNumber") == "0x6"
    assert rpc("eth_getBlockByNumber", "safe", False)["number"] == "0x5"
    assert rpc("eth_getBlockByNumber", "finalized", False)["number"] == "0x3"
    assert rpc("eth_getBalance", "0x" + RECIPIENT.hex(), "finalized") == rpc(
        "eth_getBalance", "0x" + RECIPIENT.hex(), "0x3")


def test_txpool(rpc: Rpc, chain: TwinBackend) -> None:
    _, _, c = KEYS
    (pending,) = chain.pool.values()
    gapped = sign(c, type=2, nonce=pending.nonce + 2, maxFeePerGas=2 * BASE_FEE,
                  maxPriorityFeePerGas=TIP, gas=21_000, to=checksum(RECIPIENT), value=1)
    rpc("eth_sendRawTransaction", "0x" + gapped.raw.hex())
    assert rpc("txpool_status") == {"pending": "0x1", "queued": "0x1"}
    sender = checksum(pending.sender)
    content = rpc("txpool_content")
    assert content["pending"][sender][str(pending.nonce)]["hash"] == "0x" + pending.hash.hex()
    assert content["queued"][sender][str(gapped.nonce)]["hash"] == "0x" + gapped.hash.hex()
    mine = rpc("txpool_contentFrom", sender)
    assert list(mine["pending"]) == [str(pending.nonce)]
    assert list(mine["queued"]) == [str(gapped.nonce)]
    assert rpc("txpool_contentFrom", "0x" + "00" * 20) == {"pending": {}, "queued": {}}
    line = rpc("txpool_inspect")["pending"][sender][str(pending.nonce)]
    assert line == f"{checksum(RECIPIENT)}: 1 wei + 21000 gas × {2 * BASE_FEE} wei"


def test_blob_base_fee(rpc: Rpc) -> None:
    assert rpc("eth_blobBaseFee") == "0x1"


def test_raw_encodings(rpc: Rpc, chain: TwinBackend) -> None:
    view = chain.blocks[1]
    tx = view.transactions[1]
    assert rpc("debug_getRawTransaction", "0x" + tx.hash.hex()) == "0x" + tx.raw.hex()
    assert rpc("debug_getRawTransaction", "0x" + "00" * 32) == "0x"
    raw_header = bytes.fromhex(rpc("debug_getRawHeader", "0x1")[2:])
    assert keccak256(raw_header) == view.header.hash
    assert Header.decode(raw_header) == view.header
    raw_block = bytes.fromhex(rpc("debug_getRawBlock", "0x" + view.header.hash.hex())[2:])
    header, txs, ommers, withdrawals = rlp.decode(raw_block)
    assert keccak256(rlp.encode(header)) == view.header.hash
    assert len(txs) == len(view.transactions) and ommers == withdrawals == []
    receipts = [bytes.fromhex(r[2:]) for r in rpc("debug_getRawReceipts", "0x1")]
    assert ordered_trie_root(receipts) == view.header.receipts_root
    assert rpc.error("debug_getRawHeader", "0x99")["message"] == "header not found"


def test_base_fee_and_storage_values(rpc: Rpc, chain: TwinBackend) -> None:
    assert rpc("eth_baseFee") == hex(chain.next_base_fee())
    token = chain.blocks[1].transactions[2]
    address = "0x" + contract_address(token.sender, token.nonce).hex()
    other = "0x" + RECIPIENT.hex()
    values = rpc("eth_getStorageValues", {address: ["0x0", "0x1"], other: []}, "latest")
    assert values == {address: ["0x" + (42).to_bytes(32, "big").hex(), "0x" + "00" * 32],
                      other: []}
    assert values[address][0] == rpc("eth_getStorageAt", address, "0x0", "latest")
    assert rpc.error("eth_getStorageValues", {address: ["0x0"] * 1025})["code"] == -32602
    assert rpc.error("eth_getStorageValues", {address: "0x0"})["code"] == -32602


def test_capabilities_and_config(rpc: Rpc, chain: TwinBackend) -> None:
    head = chain.blocks[-1].header
    capabilities = rpc("eth_capabilities")
    assert capabilities["head"] == {"number": hex(head.number), "hash": "0x" + head.hash.hex()}
    assert capabilities["stateproofs"] == {"disabled": False, "oldestBlock": "0x0"}
    config = rpc("eth_config")
    genesis = chain.blocks[0].header
    assert config["next"] is None and config["last"] is None
    current = config["current"]
    assert current["activationTime"] == genesis.timestamp
    assert current["chainId"] == hex(chain.chain_id)
    assert current["forkId"] == "0x" + zlib.crc32(genesis.hash).to_bytes(4, "big").hex()
    assert current["precompiles"]["ECREC"] == "0x" + "00" * 19 + "01"
    assert len(current["precompiles"]) == 10 and current["systemContracts"] == {}


def test_fill_transaction(rpc: Rpc, chain: TwinBackend) -> None:
    sender = ADDRESSES[1]
    filled = rpc("eth_fillTransaction", {"from": "0x" + sender.hex(), "to": "0x" + RECIPIENT.hex(),
                                          "value": "0x7"})
    tx = filled["tx"]
    assert tx["type"] == "0x2" and tx["nonce"] == hex(chain.pending_nonce(sender))
    assert tx["chainId"] == hex(chain.chain_id) and tx["gas"] == hex(23_000)
    assert tx["maxFeePerGas"] == hex(2 * BASE_FEE + TIP)
    raw = bytes.fromhex(filled["raw"][2:])
    assert raw[0] == 2 and rlp.decode(raw[1:])[-3:] == [b"", b"", b""]
    signed = sign(KEYS[1], type=2, nonce=int(tx["nonce"], 16), gas=int(tx["gas"], 16),
                  maxFeePerGas=int(tx["maxFeePerGas"], 16),
                  maxPriorityFeePerGas=int(tx["maxPriorityFeePerGas"], 16),
                  to=checksum(RECIPIENT), value=7)
    assert rpc("eth_sendRawTransaction", "0x" + signed.raw.hex()) == "0x" + signed.hash.hex()
    legacy = rpc("eth_fillTransaction", {"from": "0x" + sender.hex(), "gas": "0x5208",
                                          "gasPrice": hex(BASE_FEE)})["tx"]
    assert legacy["type"] == "0x0" and legacy["gasPrice"] == hex(BASE_FEE)
