"""debug_trace* on a real node (py-evm reference tracer): the struct logger, callTracer and
prestateTracer in go-ethereum's shapes, checked against the receipts and the state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from executor_gpu.types import TraceOptions
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput
from tests.node.helpers import USERS, VALIDATOR_KEYS
from tests.rpc.realnode import TOKEN_SOURCE, RealChain
from tests.solc import compile_contract

TRACING_SOURCE = Path(__file__).with_name("Tracing.sol")
OTHER = "0x" + "42" * 20


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def word(value: int | str) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:]).rjust(32, b"\0")
    return value.to_bytes(32, "big")


def calldata(signature: str, *args: int | str) -> str:
    return "0x" + (selector(signature) + b"".join(word(a) for a in args)).hex()


@dataclass
class Deployed:
    chain: RealChain
    token: str
    store: str
    relay: str
    transfer: str
    """A token transfer mined in its own block."""
    run: str
    """Relay.run mined with the next transfer in one block."""
    second: str
    """The transfer mined after ``run`` in the same block."""


def deploy(chain: RealChain, source: Path, name: str, *args: int) -> str:
    _, bytecode = compile_contract(source, name)
    tx_hash = chain.send(0, data=bytecode + b"".join(word(a) for a in args).hex(),
                        gas=3_000_000)
    chain.mine()
    receipt = chain.rpc("eth_getTransactionReceipt", tx_hash)
    assert receipt["status"] == "0x1"
    address: str = receipt["contractAddress"]
    return address


@pytest.fixture(scope="module")
def deployed() -> Deployed:
    chain = RealChain()
    token = deploy(chain, TOKEN_SOURCE, "TestToken", 10**24)
    store = deploy(chain, TRACING_SOURCE, "Store")
    relay = deploy(chain, TRACING_SOURCE, "Relay")
    transfer = chain.send(0, to=token, data=calldata("transfer(address,uint256)", OTHER, 7),
                          gas=100_000)
    chain.mine()
    run = chain.send(1, to=relay, data=calldata("run(address,uint256)", store, 9), gas=200_000)
    second = chain.send(0, to=token, data=calldata("transfer(address,uint256)", OTHER, 8),
                        gas=100_000)
    chain.mine()
    return Deployed(chain, token, store, relay, transfer, run, second)


def test_struct_logger(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    receipt = rpc("eth_getTransactionReceipt", deployed.transfer)
    trace = rpc("debug_traceTransaction", deployed.transfer)
    assert trace["gas"] == int(receipt["gasUsed"], 16)
    assert trace["failed"] is False
    assert trace["returnValue"] == "0x" + word(1).hex()
    steps = trace["structLogs"]
    calldata_gas = sum(4 if b == 0 else 16 for b in bytes.fromhex(
        calldata("transfer(address,uint256)", OTHER, 7)[2:]))
    assert steps[0] == {"pc": 0, "op": "PUSH1", "gas": 100_000 - 21_000 - calldata_gas,
                        "gasCost": 3, "depth": 1, "stack": []}
    assert steps[-1]["op"] == "RETURN"
    ops = [step["op"] for step in steps]
    assert "KECCAK256" in ops and "SHA3" not in ops
    for step, after in pairwise(steps):
        assert step["gas"] - step["gasCost"] == after["gas"], step
    stores = [step for step in steps if step["op"] == "SSTORE"]
    assert len(stores) == 2
    # Each SSTORE shows the contract's slots seen so far: both balances at the end.
    last = stores[-1]["storage"]
    assert len(last) == 2 and all(len(k) == len(v) == 64 for k, v in last.items())
    assert int(stores[0]["stack"][-1], 16) in {int(k, 16) for k in last}
    assert "memory" not in steps[0]
    trimmed = rpc("debug_traceTransaction", deployed.transfer,
                  {"disableStack": True, "disableStorage": True, "enableMemory": True})
    mstore = next(step for step in trimmed["structLogs"] if step["op"] == "MSTORE")
    assert "stack" not in mstore and "storage" not in trimmed["structLogs"][-1]
    later = trimmed["structLogs"][trimmed["structLogs"].index(mstore) + 1]
    assert later["memory"] and all(len(chunk) == 64 for chunk in later["memory"])


def test_call_tracer_nested_frames(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    receipt = rpc("eth_getTransactionReceipt", deployed.run)
    config = {"tracer": "callTracer", "tracerConfig": {"withLog": True}}
    root = rpc("debug_traceTransaction", deployed.run, config)
    assert root["type"] == "CALL"
    assert root["from"] == "0x" + USERS[1].hex() and root["to"] == deployed.relay
    assert root["gas"] == hex(200_000) and root["gasUsed"] == receipt["gasUsed"]
    assert root["value"] == "0x0"
    assert root["output"] == "0x" + word(9).hex()
    set_call, fail_call, read_call = root["calls"]
    assert set_call["type"] == "CALL" and set_call["to"] == deployed.store
    assert set_call["input"] == calldata("set(uint256)", 9)
    assert set_call["logs"][0]["topics"] == ["0x" + keccak256(b"Stored(uint256)").hex()]
    assert fail_call["error"] == "execution reverted" and fail_call["revertReason"] == "nope"
    assert "logs" not in fail_call
    assert read_call["type"] == "STATICCALL" and "value" not in read_call
    assert int(set_call["gasUsed"], 16) < int(set_call["gas"], 16)
    top = rpc("debug_traceTransaction", deployed.run,
              {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": True}})
    assert "calls" not in top and top["gasUsed"] == root["gasUsed"]


def test_prestate_tracer(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    block = rpc("eth_getTransactionReceipt", deployed.second)["blockNumber"]
    before = hex(int(block, 16) - 1)
    sender = "0x" + USERS[0].hex()
    pre = rpc("debug_traceTransaction", deployed.second, {"tracer": "prestateTracer"})
    # The state the transaction saw: after block - 1 and after Relay.run (another sender).
    assert pre[sender]["balance"] == rpc("eth_getBalance", sender, before)
    assert pre[sender]["nonce"] == int(rpc("eth_getTransactionCount", sender, before), 16)
    token = pre[deployed.token]
    assert token["code"] == rpc("eth_getCode", deployed.token, before)
    for slot, value in token["storage"].items():
        assert value == rpc("eth_getStorageAt", deployed.token, slot, before)
    assert "0x" + private_key_to_address(VALIDATOR_KEYS[0]).hex() in pre  # the coinbase
    diff = rpc("debug_traceTransaction", deployed.second,
               {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}})
    after = diff["post"]
    assert after[sender]["nonce"] == pre[sender]["nonce"] + 1
    assert int(after[sender]["balance"], 16) < int(pre[sender]["balance"], 16)
    assert "code" not in after[deployed.token]
    for slot, value in after[deployed.token]["storage"].items():
        assert value == rpc("eth_getStorageAt", deployed.token, slot, block)
        assert diff["pre"][deployed.token]["storage"][slot] != value


def test_trace_block_matches_transaction_traces(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    receipt = rpc("eth_getTransactionReceipt", deployed.second)
    config = {"tracer": "callTracer"}
    by_number = rpc("debug_traceBlockByNumber", receipt["blockNumber"], config)
    by_hash = rpc("debug_traceBlockByHash", receipt["blockHash"], config)
    assert by_number == by_hash
    assert [entry["txHash"] for entry in by_number] == [deployed.run, deployed.second]
    assert by_number[1]["result"] == rpc("debug_traceTransaction", deployed.second, config)
    default = rpc("debug_traceBlockByNumber", receipt["blockNumber"])
    assert [entry["result"]["gas"] for entry in default] == [
        int(rpc("eth_getTransactionReceipt", h)["gasUsed"], 16)
        for h in (deployed.run, deployed.second)]


def test_trace_call(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    boom: dict[str, Any] = {"from": "0x" + USERS[2].hex(), "to": deployed.relay,
                            "data": calldata("boom()")}
    logged = rpc("debug_traceCall", boom, "latest")
    assert logged["failed"] is True and logged["structLogs"][-1]["op"] == "REVERT"
    frame = rpc("debug_traceCall", boom, "latest", {"tracer": "callTracer"})
    assert frame["error"] == "execution reverted" and frame["revertReason"] == "boom"
    # stateOverrides: the store's slot 0 read back through Store.value().
    read = {"to": deployed.store, "data": calldata("value()")}
    overridden = rpc("debug_traceCall", read, "latest", {
        "tracer": "callTracer",
        "stateOverrides": {deployed.store: {"stateDiff": {"0x" + word(0).hex(): "0x" + word(
            77).hex()}}}})
    assert overridden["output"] == "0x" + word(77).hex()


def test_trace_errors(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    assert rpc.error("debug_traceTransaction", deployed.transfer, {"tracer": "4byteTracer"})[
        "code"] == -32602
    assert rpc.error("debug_traceTransaction", "0x" + "00" * 32)["message"] == (
        "transaction not found")
    assert rpc.error("debug_traceBlockByNumber", "0x0")["code"] == -32000
    assert rpc.error("debug_traceBlockByNumber", "0xfffff")["code"] == -32000
    assert rpc.error("debug_traceTransaction", deployed.transfer, {"enableMemory": 1})[
        "code"] == -32602
    poor = {"from": "0x" + "99" * 20, "to": OTHER, "value": hex(10**18)}
    error = rpc.error("debug_traceCall", poor, "latest")
    assert error["code"] == -32000 and "insufficient funds" in error["message"]


def test_step_limit(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    full = rpc("debug_traceTransaction", deployed.transfer)
    cut = rpc("debug_traceTransaction", deployed.transfer, {"limit": 5})
    # As geth: the first steps only, the outcome of the whole transaction.
    assert cut["structLogs"] == full["structLogs"][:5]
    assert (cut["gas"], cut["returnValue"]) == (full["gas"], full["returnValue"])


def test_txpool_on_a_real_pool(deployed: Deployed) -> None:
    chain = deployed.chain
    nonce = int(chain.rpc("eth_getTransactionCount", "0x" + USERS[3].hex(), "latest"), 16)
    ready = chain.send(3, to=OTHER, value=1, gas=21_000, nonce=nonce)
    gapped = chain.send(3, to=OTHER, value=1, gas=21_000, nonce=nonce + 2)
    assert chain.rpc("txpool_status") == {"pending": "0x1", "queued": "0x1"}
    mine = chain.rpc("txpool_contentFrom", "0x" + USERS[3].hex())
    assert mine["pending"][str(nonce)]["hash"] == ready
    assert mine["queued"][str(nonce + 2)]["hash"] == gapped


def test_concurrent_traces_do_not_mix(deployed: Deployed) -> None:
    # RPC calls run in a thread pool: traces of different blocks at once, each its own.
    backend = deployed.chain.backend
    options = TraceOptions(struct_logs=True)
    blocks = [int(deployed.chain.rpc("eth_getTransactionReceipt", h)["blockNumber"], 16)
              for h in (deployed.transfer, deployed.run)]
    alone = {number: backend.trace_block(number, options) for number in blocks}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda n: (n, backend.trace_block(n, options)), blocks * 4))
    for number, traces in together:
        assert traces == alone[number]


def test_trace_size_is_bounded(deployed: Deployed) -> None:
    rpc = deployed.chain.rpc
    # Expand memory to 1 MiB, then loop until the gas runs out.
    spinner = "0x" + "5e" * 20
    code = "0x600162100000525b600756"
    call = {"from": "0x" + USERS[2].hex(), "to": spinner, "gas": hex(2_400_000)}
    overrides = {spinner: {"code": code}}
    # Each step would copy the megabyte: refused past the byte budget, not held in memory.
    error = rpc.error("debug_traceCall", call, "latest",
                      {"enableMemory": True, "stateOverrides": overrides})
    assert error["code"] == -32602 and "trace larger than" in error["message"]
    cut = rpc("debug_traceCall", call, "latest", {"limit": 10, "stateOverrides": overrides})
    assert len(cut["structLogs"]) == 10 and cut["failed"] is True
    frame = rpc("debug_traceCall", call, "latest",
                {"tracer": "callTracer", "stateOverrides": overrides})
    assert frame["error"] == "out of gas" and frame["gasUsed"] == hex(2_400_000)


def test_byte_budget_covers_the_whole_block(deployed: Deployed) -> None:
    backend = deployed.chain.backend
    number = int(deployed.chain.rpc("eth_getTransactionReceipt", deployed.run)["blockNumber"], 16)
    full = backend.trace_block(number, TraceOptions(struct_logs=True))
    sizes = [sum(32 * len(step.stack or ()) + 64 * len(step.storage or {}) for step in t.steps)
             for t in full]
    budget = TraceOptions(struct_logs=True, byte_limit=max(sizes) + 1)
    for index in range(len(full)):
        assert backend.trace_block(number, budget, only=index) == [full[index]]
    with pytest.raises(InvalidInput, match="trace larger than"):
        backend.trace_block(number, budget)
