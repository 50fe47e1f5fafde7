"""The JSON-RPC envelope, raw result shapes, block resolution and error mapping."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from web3 import Web3
from web3.exceptions import ContractLogicError

from executor_gpu.types import CallMessage, CallResult, Deadline
from primitives.errors import Halt, RetryLater
from rpc.methods import MAX_LOG_BLOCK_RANGE
from rpc.server import create_app
from rpc.types import RpcLimits
from tests.nodeproc import free_port
from tests.rpc.conftest import Rpc
from tests.rpc.twin import (
    ADDRESSES,
    BASE_FEE,
    GAS_LIMIT,
    PANICKER,
    REVERTER,
    BlockingBackend,
    TwinBackend,
    build_chain,
    error_string,
)

QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)")
DATA = re.compile(r"0x([0-9a-f]{2})*")

BLOCK_QUANTITIES = {
    "number", "difficulty", "totalDifficulty", "size", "gasLimit", "gasUsed", "timestamp",
    "baseFeePerGas", "blobGasUsed", "excessBlobGas",
}  # fmt: skip
BLOCK_DATA = {
    "hash", "parentHash", "nonce", "mixHash", "sha3Uncles", "logsBloom", "transactionsRoot",
    "stateRoot", "receiptsRoot", "miner", "extraData", "withdrawalsRoot", "parentBeaconBlockRoot",
}  # fmt: skip
TX_QUANTITIES = {
    "blockNumber", "transactionIndex", "type", "nonce", "gas", "gasPrice", "value", "v", "r", "s",
    "chainId", "yParity", "maxFeePerGas", "maxPriorityFeePerGas",
}  # fmt: skip
TX_DATA = {"blockHash", "hash", "from", "to", "input"}
RECEIPT_QUANTITIES = {
    "transactionIndex", "blockNumber", "type", "status", "cumulativeGasUsed", "gasUsed",
    "effectiveGasPrice",
}  # fmt: skip
RECEIPT_DATA = {"transactionHash", "blockHash", "from", "to", "contractAddress", "logsBloom"}
LOG_QUANTITIES = {"blockNumber", "transactionIndex", "logIndex"}
LOG_DATA = {"address", "data", "blockHash", "transactionHash"}


def check_shape(obj: dict[str, Any], quantities: set[str], data: set[str]) -> None:
    for key in quantities & obj.keys():
        assert obj[key] is None or QUANTITY.fullmatch(obj[key]), (key, obj[key])
    for key in data & obj.keys():
        assert obj[key] is None or DATA.fullmatch(obj[key]), (key, obj[key])


def test_block_shape(rpc: Rpc) -> None:
    block = rpc("eth_getBlockByNumber", "0x1", True)
    assert BLOCK_QUANTITIES | BLOCK_DATA | {"transactions", "uncles", "withdrawals"} <= block.keys()
    check_shape(block, BLOCK_QUANTITIES, BLOCK_DATA)
    assert block["difficulty"] == block["totalDifficulty"] == "0x0"
    assert len(block["nonce"]) == 18 and len(block["logsBloom"]) == 2 + 512
    for tx in block["transactions"]:
        check_shape(tx, TX_QUANTITIES, TX_DATA)
    # Only typed transactions carry yParity and accessList; only 1559 ones the fee caps.
    legacy, access, dynamic = block["transactions"]
    assert "accessList" not in legacy and "yParity" not in legacy
    assert "maxFeePerGas" not in access and access["accessList"]
    assert dynamic["to"] is None and "maxFeePerGas" in dynamic
    for log in rpc("eth_getLogs", {"fromBlock": "0x0"}):
        check_shape(log, LOG_QUANTITIES, LOG_DATA)
    for receipt in rpc("eth_getBlockReceipts", "0x1") + rpc("eth_getBlockReceipts", "0x2"):
        check_shape(receipt, RECEIPT_QUANTITIES, RECEIPT_DATA)
        for log in receipt["logs"]:
            check_shape(log, LOG_QUANTITIES, LOG_DATA)


def test_unknown_blocks(rpc: Rpc, chain: TwinBackend) -> None:
    beyond = hex(chain.head_number() + 1)
    unknown = "0x" + "77" * 32
    address = "0x" + ADDRESSES[0].hex()
    assert rpc("eth_getBlockByNumber", beyond, False) is None
    assert rpc("eth_getBlockByHash", unknown, True) is None
    assert rpc("eth_getBlockTransactionCountByNumber", beyond) is None
    assert rpc("eth_getBlockTransactionCountByHash", unknown) is None
    assert rpc("eth_getTransactionByBlockNumberAndIndex", "0x1", "0x3") is None
    assert rpc("eth_getTransactionByBlockHashAndIndex", unknown, "0x0") is None
    assert rpc("eth_getTransactionByHash", unknown) is None
    assert rpc("eth_getBlockReceipts", beyond) is None
    cases: list[tuple[str, list[Any]]] = [
        ("eth_getBalance", [address, beyond]),
        ("eth_getBalance", [address, {"blockHash": unknown}]),
        ("eth_getTransactionCount", [address, unknown]),
        ("eth_getCode", [address, {"blockNumber": beyond}]),
        ("eth_getStorageAt", [address, "0x0", beyond]),
        ("eth_call", [{"to": address}, beyond]),
        ("eth_estimateGas", [{"to": address}, beyond]),
    ]
    for method, params in cases:
        assert rpc.error(method, *params) == {"code": -32001, "message": "header not found"}
    assert rpc.error("eth_getLogs", {"blockHash": unknown})["code"] == -32001
    assert rpc.error("eth_feeHistory", "0x1", beyond)["code"] == -32000


def test_block_references(rpc: Rpc, chain: TwinBackend) -> None:
    address = "0x" + ADDRESSES[0].hex()
    block_hash = "0x" + chain.blocks[1].header.hash.hex()
    at_one = rpc("eth_getBalance", address, "0x1")
    assert rpc("eth_getBalance", address, {"blockNumber": "0x1"}) == at_one
    assert rpc("eth_getBalance", address, {"blockHash": block_hash}) == at_one
    assert (
        rpc("eth_getBalance", address, {"blockHash": block_hash, "requireCanonical": True})
        == at_one
    )
    assert rpc("eth_getBalance", address, block_hash) == at_one
    latest = rpc("eth_getBalance", address)
    assert latest != at_one
    for tag in ("latest", "safe", "finalized", "pending"):
        assert rpc("eth_getBalance", address, tag) == latest
    assert rpc("eth_getBalance", address.upper().replace("0X", "0x")) == latest
    assert rpc("eth_getBlockByNumber", "earliest", False)["number"] == "0x0"
    assert rpc("eth_getStorageAt", address, "0x" + "00" * 32) == "0x" + "00" * 32


def test_revert_errors(rpc: Rpc) -> None:
    error = rpc.error("eth_call", {"to": "0x" + REVERTER.hex()})
    assert error == {
        "code": 3,
        "message": "execution reverted: nope",
        "data": "0x" + error_string("nope").hex(),
    }
    error = rpc.error("eth_estimateGas", {"to": "0x" + PANICKER.hex()}, "latest")
    assert error["code"] == 3
    assert error["message"] == "execution reverted: arithmetic underflow or overflow"


class RecordingBackend(TwinBackend):
    """Remembers the messages eth_call and eth_estimateGas pass on."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[CallMessage] = []

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        self.messages.append(message)
        return super().call(message, number, deadline)


def test_call_messages() -> None:
    backend = RecordingBackend()
    rpc = Rpc(TestClient(create_app(backend)))
    to = "0x" + "12" * 20
    rpc("eth_call", {"to": to})
    rpc("eth_call", {"to": to, "gas": hex(RpcLimits().gas_cap * 2), "gasPrice": "0x5", "input": "0xab"})
    rpc("eth_call", {"from": to, "maxFeePerGas": hex(BASE_FEE + 3), "maxPriorityFeePerGas": "0x9"})
    rpc("eth_call", {"to": to, "maxFeePerGas": hex(2 * BASE_FEE), "maxPriorityFeePerGas": "0x9"})
    rpc("eth_estimateGas", {"to": to})
    free, capped, capped_fee, tipped, estimated = backend.messages
    assert free.gas == RpcLimits().gas_cap and free.gas_price == 0 and free.sender == bytes(20)
    assert capped.gas == RpcLimits().gas_cap and capped.gas_price == 5 and capped.data == b"\xab"
    assert capped_fee.gas_price == BASE_FEE + 3 and capped_fee.to is None
    assert capped_fee.sender == bytes.fromhex("12" * 20)
    assert tipped.gas_price == BASE_FEE + 9
    assert estimated.gas == GAS_LIMIT


def test_log_range_limits(rpc: Rpc, chain: TwinBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    error = rpc.error("eth_getLogs", {"fromBlock": "0x2", "toBlock": "0x1"})
    assert error == {"code": -32602, "message": "invalid block range params"}
    monkeypatch.setattr(chain, "head_number", lambda: 3 * MAX_LOG_BLOCK_RANGE)
    error = rpc.error("eth_getLogs", {"fromBlock": "0x0"})
    assert error["code"] == -32005 and str(MAX_LOG_BLOCK_RANGE) in error["message"]
    error = rpc.error("eth_getLogs", {"fromBlock": "0x0", "toBlock": hex(MAX_LOG_BLOCK_RANGE)})
    assert error["code"] == -32005
    # A range reaching past the head is refused, as the execution-apis spec says.
    monkeypatch.undo()
    for query in ({"fromBlock": "0x2", "toBlock": hex(10 * MAX_LOG_BLOCK_RANGE)},
                  {"fromBlock": hex(chain.head_number() + 1)}):
        assert rpc.error("eth_getLogs", query) == {
            "code": -32602, "message": "block range extends beyond current head block"}
    assert rpc("eth_getLogs", {"fromBlock": "0x2", "toBlock": hex(chain.head_number())})


def test_misc_methods(rpc: Rpc) -> None:
    assert rpc("eth_syncing") is False
    assert rpc("eth_mining") is False
    assert rpc("eth_accounts") == []
    assert rpc("net_listening") is True
    assert rpc("net_peerCount") == "0x0"
    assert rpc("l2_getValidators") == {
        "epoch": "0x0", "seed": "0x" + "5e" * 32,
        "validators": [{"address": "0x" + ADDRESSES[0].hex(), "weight": "0x1"}],
    }
    assert rpc.error("l2_getValidators", "0xffffff")["message"] == "header not found"
    assert rpc.error("eth_coinbase")["code"] == -32000
    assert rpc("l2_getBatch", 1) == rpc("l2_getBatch", "0x1") is not None
    assert rpc("eth_feeHistory", 2, "latest") == rpc("eth_feeHistory", "0x2", "latest")
    assert rpc("eth_feeHistory", "0x0", "latest") == {
        "oldestBlock": "0x0",
        "baseFeePerGas": [],
        "gasUsedRatio": [],
    }


def post(client: TestClient, body: Any) -> Any:
    response = client.post("/", json=body)
    assert response.status_code == 200
    return response.json() if response.content else None


def test_envelope(client: TestClient, chain: TwinBackend) -> None:
    def call(method: str, request_id: Any, *params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}

    head = hex(chain.head_number())
    for request_id in (7, "seven", None, 1.5, 2**70):
        assert post(client, call("eth_blockNumber", request_id)) == {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": head,
        }
    assert post(client, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})["result"]
    notification = {"jsonrpc": "2.0", "method": "eth_blockNumber"}
    assert post(client, notification) is None
    assert post(client, [notification, notification]) is None
    replies = post(
        client,
        [
            call("eth_blockNumber", 1),
            notification,
            call("eth_nope", 2),
            call("eth_getBalance", 3, "0x1"),
            {"jsonrpc": "2.0", "method": "eth_nope"},
            5,
        ],
    )
    assert [r["id"] for r in replies] == [1, 2, 3, None]
    assert replies[0]["result"] == head
    assert replies[1]["error"] == {
        "code": -32601,
        "message": "the method eth_nope does not exist/is not available",
    }
    assert replies[2]["error"]["code"] == -32602
    assert replies[3]["error"]["code"] == -32600
    assert client.get("/health").json() == {"ok": True}


class FailingBackend(TwinBackend):
    def head_number(self) -> int:
        raise RuntimeError("disk on fire")

    def gas_price(self) -> int:
        raise RetryLater("L1 unavailable, retry later")

    def max_priority_fee(self) -> int:
        raise Halt("state root mismatch")


def test_backend_failures(caplog: pytest.LogCaptureFixture) -> None:
    rpc = Rpc(TestClient(create_app(FailingBackend())))
    with caplog.at_level(logging.ERROR, logger="rpc.server"):
        assert rpc.error("eth_blockNumber") == {"code": -32603, "message": "internal error"}
        assert rpc.error("eth_maxPriorityFeePerGas") == {
            "code": -32603,
            "message": "internal error",
        }
    logged = [r for r in caplog.records if r.exc_info]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == [
        "disk on fire",
        "state root mismatch",
    ]
    assert rpc.error("eth_gasPrice") == {"code": -32000, "message": "L1 unavailable, retry later"}
    assert rpc("eth_chainId")


def test_slow_backend_does_not_block_the_server() -> None:
    backend = BlockingBackend()
    app = create_app(backend)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpc") as client:
            slow_body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{}]}
            slow = asyncio.create_task(client.post("/", json=slow_body))
            assert await asyncio.to_thread(backend.entered.wait, 10)
            fast_body = {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId"}
            fast = await asyncio.wait_for(client.post("/", json=fast_body), timeout=10)
            assert fast.json()["result"] == hex(backend.chain_id)
            assert not slow.done()
            backend.release.set()
            assert (await slow).json()["result"] == "0x"

    try:
        asyncio.run(scenario())
    finally:
        backend.release.set()


def test_over_real_http() -> None:
    """uvicorn on a free port, web3.py's HTTPProvider as a wallet would use it."""
    backend = build_chain()
    config = uvicorn.Config(
        create_app(backend, RpcLimits(max_body_bytes=100_000)), host="127.0.0.1", port=free_port(),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        w3 = Web3(Web3.HTTPProvider(url))
        assert w3.eth.chain_id == backend.chain_id
        assert w3.eth.get_block("latest")["number"] == backend.head_number()
        with pytest.raises(ContractLogicError, match="execution reverted: nope"):
            w3.eth.call({"to": Web3.to_checksum_address(REVERTER)})
        too_big = httpx.post(url, content=b" " * 200_000)
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == -32600
        garbage = httpx.post(url, content=b"\x00{]")
        assert garbage.status_code == 200 and garbage.json()["error"]["code"] == -32700
        assert httpx.get(url + "health").json() == {"ok": True}
        assert w3.eth.block_number == backend.head_number()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
