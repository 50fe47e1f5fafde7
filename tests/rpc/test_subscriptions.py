"""WebSocket (eth_subscribe), polling filters and CORS on the twin chain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from primitives.clock import ManualClock
from primitives.types import Hash32
from rpc.errors import LIMIT_EXCEEDED, RpcError
from rpc.filters import PENDING, FilterTable
from rpc.server import create_app
from rpc.ws import NEW_HEADS, EventHub, Session, Subscription
from rpc.ws import PENDING as PENDING_TXS
from tests.rpc.conftest import Rpc
from tests.rpc.twin import (
    BASE_FEE,
    KEYS,
    RECIPIENT,
    TIP,
    TRANSFER_TOPIC,
    TwinBackend,
    build_chain,
    checksum,
    contract_address,
    sign,
)


def token_of(chain: TwinBackend) -> str:
    create = chain.blocks[1].transactions[2]
    return "0x" + contract_address(create.sender, create.nonce).hex()


def call_token(chain: TwinBackend, key: bytes, nonce: int) -> Any:
    return sign(key, type=2, nonce=nonce, maxFeePerGas=2 * BASE_FEE, maxPriorityFeePerGas=TIP,
                gas=60_000, to=checksum(bytes.fromhex(token_of(chain)[2:])), value=0, data=b"\x01")


def transfer(key: bytes, nonce: int) -> Any:
    return sign(key, type=2, nonce=nonce, maxFeePerGas=2 * BASE_FEE, maxPriorityFeePerGas=TIP,
                gas=21_000, to=checksum(RECIPIENT), value=1)


class Socket:
    """JSON-RPC over a TestClient WebSocket."""

    def __init__(self, socket: WebSocketTestSession) -> None:
        self.socket = socket
        self.next_id = 0

    def call(self, method: str, *params: Any) -> Any:
        self.next_id += 1
        self.socket.send_text(json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": list(params)}
        ))
        reply = self.receive()
        assert reply.get("id") == self.next_id, reply
        return reply

    def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.socket.receive_text())
        return message

    def notification(self, subscription: str) -> Any:
        message = self.receive()
        assert message["method"] == "eth_subscription", message
        assert message["params"]["subscription"] == subscription
        return message["params"]["result"]


def test_plain_methods_and_batches_over_websocket(client: TestClient, chain: TwinBackend) -> None:
    with client.websocket_connect("/") as raw:
        socket = Socket(raw)
        assert socket.call("eth_chainId")["result"] == hex(chain.chain_id)
        raw.send_text(json.dumps([
            {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber"},
            {"jsonrpc": "2.0", "id": 8, "method": "nope"},
        ]))
        replies = json.loads(raw.receive_text())
        assert replies[0]["result"] == hex(chain.head_number())
        assert replies[1]["error"]["code"] == -32601
        raw.send_text("{not json")
        assert socket.receive()["error"]["code"] == -32700


def test_new_heads_logs_and_pending_subscriptions(client: TestClient, chain: TwinBackend) -> None:
    a, b, _ = KEYS
    with client.websocket_connect("/") as raw:
        socket = Socket(raw)
        heads = socket.call("eth_subscribe", "newHeads")["result"]
        logs = socket.call("eth_subscribe", "logs",
                           {"address": token_of(chain), "topics": [[
                               "0x" + TRANSFER_TOPIC.hex()], "0x" + b"\x07".rjust(32, b"\0").hex()
                           ]})["result"]
        pending = socket.call("eth_subscribe", "newPendingTransactions")["result"]
        full = socket.call("eth_subscribe", "newPendingTransactions", True)["result"]
        assert len({heads, logs, pending, full}) == 4
        sent = transfer(b, 2)
        Rpc(client)("eth_sendRawTransaction", "0x" + sent.raw.hex())
        assert socket.notification(pending) == "0x" + sent.hash.hex()
        whole = socket.notification(full)
        assert whole["hash"] == "0x" + sent.hash.hex() and whole["blockHash"] is None
        assert whole["nonce"] == "0x2" and whole["from"] == "0x" + sent.sender.hex()
        assert socket.call("eth_unsubscribe", full)["result"] is True
        view = chain.add_block([call_token(chain, a, 2)])
        head = socket.notification(heads)
        assert head["hash"] == "0x" + view.header.hash.hex()
        assert head["number"] == hex(view.header.number)
        # The second topic asks for another sender: nothing; the next block's call matches.
        assert socket.call("eth_unsubscribe", logs)["result"] is True
        assert socket.call("eth_unsubscribe", logs)["result"] is False
        assert socket.call("eth_unsubscribe", pending)["result"] is True
        matching = socket.call("eth_subscribe", "logs", {"address": token_of(chain)})["result"]
        view = chain.add_block([call_token(chain, b, 3)])
        assert socket.notification(heads)["number"] == hex(view.header.number)
        first = socket.notification(matching)
        second = socket.notification(matching)
        assert first["address"] == second["address"] == token_of(chain)
        assert first["blockHash"] == "0x" + view.header.hash.hex()
        assert [first["logIndex"], second["logIndex"]] == ["0x0", "0x1"]


def test_bad_subscriptions(client: TestClient, rpc: Rpc) -> None:
    assert rpc.error("eth_subscribe", "newHeads") == {
        "code": -32601, "message": "notifications not supported"}
    with client.websocket_connect("/") as raw:
        socket = Socket(raw)
        assert socket.call("eth_subscribe", "syncing")["error"]["code"] == -32602
        assert socket.call("eth_subscribe", "logs", {"fromBlock": "0x1"})["error"]["code"] == (
            -32602)
        assert socket.call("eth_subscribe")["error"]["code"] == -32602


def test_block_log_and_pending_filters(client: TestClient, rpc: Rpc, chain: TwinBackend) -> None:
    a, b, _ = KEYS
    blocks = rpc("eth_newBlockFilter")
    logs = rpc("eth_newFilter", {"address": token_of(chain)})
    pending = rpc("eth_newPendingTransactionFilter")
    assert rpc("eth_getFilterChanges", blocks) == []
    sent = transfer(b, 2)
    rpc("eth_sendRawTransaction", "0x" + sent.raw.hex())
    assert rpc("eth_getFilterChanges", pending) == ["0x" + sent.hash.hex()]
    assert rpc("eth_getFilterChanges", pending) == []
    first = chain.add_block([call_token(chain, a, 2)])
    second = chain.add_block([])
    assert rpc("eth_getFilterChanges", blocks) == [
        "0x" + first.header.hash.hex(), "0x" + second.header.hash.hex()]
    assert rpc("eth_getFilterChanges", blocks) == []
    changes = rpc("eth_getFilterChanges", logs)
    assert [entry["blockNumber"] for entry in changes] == [hex(first.header.number)] * 2
    assert rpc("eth_getFilterChanges", logs) == []
    # eth_getFilterLogs: everything in the filter's range (fromBlock: latest).
    everything = rpc("eth_newFilter", {"address": token_of(chain), "fromBlock": "0x0"})
    assert len(rpc("eth_getFilterLogs", everything)) == 6  # block 2's four, this test's two
    assert rpc.error("eth_getFilterLogs", blocks)["message"] == "filter not found"
    assert rpc("eth_uninstallFilter", blocks) is True
    assert rpc("eth_uninstallFilter", blocks) is False
    assert rpc.error("eth_getFilterChanges", blocks) == {
        "code": -32000, "message": "filter not found"}
    assert rpc.error("eth_getFilterChanges", 5)["code"] == -32602


def test_filters_expire_after_five_idle_minutes() -> None:
    clock = ManualClock()
    rpc = Rpc(TestClient(create_app(build_chain(), clock=clock)))
    polled, idle = rpc("eth_newBlockFilter"), rpc("eth_newBlockFilter")
    clock.advance(200)
    rpc("eth_getFilterChanges", polled)
    clock.advance(200)
    assert rpc("eth_getFilterChanges", polled) == []
    assert rpc.error("eth_getFilterChanges", idle)["message"] == "filter not found"


def test_filter_count_and_pending_queue_are_bounded() -> None:
    table = FilterTable(ManualClock(), limit=2)
    first = table.install(PENDING, 0)
    table.install(PENDING, 0)
    with pytest.raises(RpcError) as raised:
        table.install(PENDING, 0)
    assert raised.value.code == LIMIT_EXCEEDED
    assert table.pending_filters == 2
    table.add_pending([Hash32(i.to_bytes(32, "big")) for i in range(20_005)])
    queued = table.take_pending(first)
    assert len(queued) == 10_000 and queued[-1] == Hash32((20_004).to_bytes(32, "big"))


def test_cors_preflight_and_headers(client: TestClient) -> None:
    preflight = client.options("/", headers={
        "Origin": "https://dapp.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert client.options("/").status_code == 204
    reply = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                        headers={"Origin": "https://dapp.example"})
    assert reply.headers["access-control-allow-origin"] == "*"


def test_cors_and_hosts_restricted() -> None:
    app = create_app(build_chain(), cors=("https://good.example",), hosts=("localhost",))
    client = TestClient(app, base_url="http://localhost")
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    good = client.post("/", json=body, headers={"Origin": "https://good.example"})
    assert good.headers["access-control-allow-origin"] == "https://good.example"
    bad = client.post("/", json=body, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in bad.headers
    preflight = client.options("/", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 400
    assert client.post("/", json=body, headers={"Host": "evil.example"}).status_code == 400
    # Closed before the handshake completes (uvicorn answers the upgrade with 403).
    with pytest.raises(WebSocketDisconnect) as denied, client.websocket_connect(
        "ws://localhost/", headers={"Origin": "https://evil.example"}
    ):
        pass
    assert denied.value.code == 1008
    with client.websocket_connect("ws://localhost/",
                                 headers={"Origin": "https://good.example"}) as raw:
        assert Socket(raw).call("eth_chainId")["result"]


def test_events_after_the_server_stopped_are_dropped() -> None:
    chain = build_chain()
    hub = EventHub(chain, FilterTable(ManualClock()))

    async def serve() -> None:
        hub.attach()
        session = Session(hub)
        hub.subscribe(Subscription(NEW_HEADS, session, None, active=True))
        hub.subscribe(Subscription(PENDING_TXS, session, None, active=True))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(serve())
    running = asyncio.all_tasks(loop)  # the hub's dispatcher
    for task in running:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*running, return_exceptions=True))
    loop.close()
    chain.subscribe(hub)
    # The node keeps making blocks and admitting transactions: nothing may raise.
    chain.add_block([])
    assert hub.wants_pending()
    hub.new_pending([transfer(KEYS[0], 9)])
