"""RPC limits on the app: call deadlines, slots for expensive calls, the gas cap, body memory."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
from fastapi.testclient import TestClient

from executor_gpu.types import CallMessage, CallResult, Deadline
from primitives.errors import ExecutionAborted
from rpc.methods import ExpensiveMethod, RpcMethods
from rpc.server import create_app
from rpc.types import RpcLimits
from tests.rpc.conftest import Rpc
from tests.rpc.twin import BlockingBackend, TwinBackend

TO = "0x" + "12" * 20


class SlowBackend(TwinBackend):
    """Each eth_call takes ``seconds`` and gives up at its deadline, as the executor does."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.messages: list[CallMessage] = []

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        self.messages.append(message)
        if time.monotonic() + self.seconds > deadline.at:
            time.sleep(max(0.0, deadline.at - time.monotonic()))
            raise ExecutionAborted("past the deadline")
        time.sleep(self.seconds)
        return super().call(message, number, deadline)


def request(method: str, params: list[Any], request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_a_call_past_its_deadline_is_answered_as_geth_does() -> None:
    rpc = Rpc(TestClient(create_app(SlowBackend(1.0), RpcLimits(evm_timeout=0.25))))
    assert rpc.error("eth_call", {"to": TO}, "latest") == {
        "code": -32000, "message": "execution aborted (timeout = 0.25s)",
    }
    assert rpc.error("eth_estimateGas", {"to": TO}) == {
        "code": -32000, "message": "execution aborted (timeout = 0.25s)",
    }


def test_a_call_over_a_websocket_has_the_same_deadline() -> None:
    client = TestClient(create_app(SlowBackend(1.0), RpcLimits(evm_timeout=0.25)))
    with client.websocket_connect("/") as socket:
        socket.send_text(json.dumps(request("eth_call", [{"to": TO}, "latest"])))
        assert json.loads(socket.receive_text())["error"] == {
            "code": -32000, "message": "execution aborted (timeout = 0.25s)",
        }


def test_traces_simulations_and_access_lists_are_expensive() -> None:
    methods = RpcMethods(TwinBackend())
    costly = {"eth_call", "eth_estimateGas", "eth_createAccessList", "eth_fillTransaction",
              "debug_traceCall", "debug_traceTransaction", "debug_traceBlockByNumber",
              "debug_traceBlockByHash", "eth_getLogs", "eth_simulateV1"}
    assert {name for name, method in methods.methods.items()
            if isinstance(method, ExpensiveMethod)} == costly


def test_a_batch_of_calls_shares_one_deadline() -> None:
    backend = SlowBackend(0.2)
    client = TestClient(create_app(backend, RpcLimits(evm_timeout=0.5)))
    batch = [request("eth_call", [{"to": TO}, "latest"], i) for i in range(6)]
    start = time.monotonic()
    replies = client.post("/", json=batch).json()
    assert time.monotonic() - start < 1.5
    assert [("result" in r) for r in replies] == [True, True, False, False, False, False]
    assert {r["error"]["message"] for r in replies[2:]} == {"execution aborted (timeout = 0.5s)"}
    assert len(backend.messages) == 3  # the rest never started


def test_the_gas_cap_is_configured() -> None:
    backend = SlowBackend(0.0)
    rpc = Rpc(TestClient(create_app(backend, RpcLimits(gas_cap=100_000))))
    rpc("eth_call", {"to": TO})
    rpc("eth_call", {"to": TO, "gas": hex(10**9)})
    rpc("eth_call", {"to": TO, "gas": hex(30_000)})
    assert [m.gas for m in backend.messages] == [100_000, 100_000, 30_000]


def test_expensive_calls_over_the_slots_get_busy_and_cheap_ones_are_answered() -> None:
    backend = BlockingBackend()
    app = create_app(backend, RpcLimits(expensive_calls=1, busy_wait=0.3))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpc") as client:
            held = asyncio.create_task(client.post("/", json=request("eth_call", [{"to": TO}])))
            assert await asyncio.to_thread(backend.entered.wait, 10)
            start = time.monotonic()
            busy = (await client.post("/", json=request("eth_call", [{"to": TO}]))).json()
            assert busy["error"] == {
                "code": -32005, "message": "server busy: too many expensive calls, retry later",
            }
            assert 0.25 < time.monotonic() - start < 2
            logs = (await client.post("/", json=request("eth_getLogs", [{}]))).json()
            assert logs["error"]["code"] == -32005
            cheap = (await client.post("/", json=request("eth_chainId", []))).json()
            assert cheap["result"] == hex(backend.chain_id)
            # Escapes hide the name from the server's scan: no slot, so refused as well.
            hidden = b'{"jsonrpc":"2.0","id":7,"method":"eth\\u005fcall","params":[{}]}'
            answer = await client.post("/", content=hidden)
            assert answer.json()["error"]["code"] == -32005
            backend.release.set()
            assert "result" in (await held).json()
            again = (await client.post("/", json=request("eth_call", [{"to": TO}]))).json()
            assert "result" in again

    try:
        asyncio.run(scenario())
    finally:
        backend.release.set()


def test_large_bodies_share_a_memory_budget() -> None:
    app = create_app(TwinBackend(), RpcLimits(body_memory=1_000_000))
    body = json.dumps(request("eth_chainId", ["a" * 600_000])).encode()

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpc") as client:
            alone = await client.post("/", content=body)
            assert alone.json()["error"]["code"] == -32602  # too many params: it was read
            both = await asyncio.gather(*(client.post("/", content=body) for _ in range(3)))
            statuses = sorted(reply.status_code for reply in both)
            assert statuses[0] == 200 and statuses[-1] == 503
            refused = next(reply for reply in both if reply.status_code == 503).json()
            assert refused["error"]["code"] == -32005
            small = await client.post("/", json=request("eth_chainId", []))
            assert small.json()["result"]

    asyncio.run(scenario())


def test_a_trickling_body_is_cut_off() -> None:
    app = create_app(TwinBackend(), RpcLimits(read_timeout=0.3))

    async def trickle() -> Any:
        yield b'{"jsonrpc": "2.0", '
        await asyncio.sleep(5)
        yield b'"id": 1, "method": "eth_chainId"}'

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpc") as client:
            start = time.monotonic()
            reply = await client.post("/", content=trickle())
            assert reply.status_code == 408
            assert reply.json()["error"]["message"] == "request body not received within 0.3 s"
            assert time.monotonic() - start < 2

    asyncio.run(scenario())


def test_threads_are_not_held_by_waiting_calls() -> None:
    """Forty callers waiting for the slot hold no worker thread: eth_chainId stays quick."""
    backend = BlockingBackend()
    app = create_app(backend, RpcLimits(expensive_calls=1, busy_wait=5))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpc") as client:
            calls = [asyncio.create_task(client.post("/", json=request("eth_call", [{}])))
                     for _ in range(60)]
            assert await asyncio.to_thread(backend.entered.wait, 10)
            await asyncio.sleep(0.2)
            start = time.monotonic()
            cheap = (await client.post("/", json=request("eth_chainId", []))).json()
            assert cheap["result"] and time.monotonic() - start < 1
            backend.release.set()
            await asyncio.gather(*calls)

    try:
        asyncio.run(scenario())
    finally:
        backend.release.set()


class SpinningBackend(TwinBackend):
    """eth_call runs until its deadline passes, as an endless loop in the EVM does."""

    def call(self, message: CallMessage, number: int, deadline: Deadline) -> CallResult:
        while not deadline.passed():
            time.sleep(0.01)
        raise ExecutionAborted("past the deadline")


def test_stopping_the_server_stops_running_calls() -> None:
    stopping = threading.Event()
    app = create_app(SpinningBackend(), RpcLimits(evm_timeout=30), stopping)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpc") as client:
            call = asyncio.create_task(client.post("/", json=request("eth_call", [{"to": TO}])))
            await asyncio.sleep(0.3)
            assert not call.done()
            start = time.monotonic()
            stopping.set()
            reply = (await asyncio.wait_for(call, 5)).json()
            assert reply["error"]["message"] == "execution aborted (timeout = 30s)"
            assert time.monotonic() - start < 1

    asyncio.run(scenario())
