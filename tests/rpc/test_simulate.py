"""eth_simulateV1 on a real node (py-evm reference executor): blocks build on each other,
overrides apply, calls report their outcomes, bad requests get the specification's codes,
and nothing of it is kept."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from primitives.crypto import keccak256
from rpc.server import create_app
from rpc.types import RpcLimits
from tests.node.helpers import USERS
from tests.rpc.conftest import Rpc
from tests.rpc.realnode import RealChain

ME = "0x" + USERS[0].hex()
POOR = "0xc000000000000000000000000000000000000000"
A = "0xc100000000000000000000000000000000000000"
B = "0xc200000000000000000000000000000000000000"
C = "0xc300000000000000000000000000000000000000"
RETURN_WORD = "60005260206000f3"  # MSTORE the top of the stack at 0, RETURN 32 bytes
REVERT_DEADBEEF = "0x63deadbeef60e01b60005260046000fd"
LOOP = "0x5b600056"  # JUMPDEST PUSH1 0 JUMP: burns all its gas
EMIT = "0x60ff60005260206000a000"  # LOG0 of one word, 0xff
FORWARD_VALUE = "0x60006000600060003473" + C[2:] + "5af100"  # CALL C with CALLVALUE


@pytest.fixture(scope="module")
def chain() -> RealChain:
    chain = RealChain()
    chain.send(1, to=A, value=1, gas=21_000)
    chain.mine()
    return chain


def simulate(chain: RealChain, payload: dict[str, Any], block: str = "latest") -> Any:
    return chain.rpc("eth_simulateV1", payload, block)


def error(chain: RealChain, payload: object, *more: object) -> dict[str, Any]:
    return chain.rpc.error("eth_simulateV1", payload, *more)


def word(hex_word: str) -> int:
    return int(hex_word, 16)


def test_blocks_build_on_each_other_and_nothing_is_kept(chain: RealChain) -> None:
    head = chain.rpc("eth_getBlockByNumber", "latest", False)
    blocks = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": {POOR: {"balance": hex(10**18)}},
         "calls": [{"from": POOR, "to": A, "value": hex(1000)}]},
        # A was given 1000 by the block before: it can pass 600 on.
        {"calls": [{"from": A, "to": B, "value": hex(600)},
                   {"from": POOR, "to": B, "value": hex(1)}]},
    ]})
    assert [b["number"] for b in blocks] == [hex(word(head["number"]) + 1),
                                             hex(word(head["number"]) + 2)]
    assert blocks[0]["parentHash"] == head["hash"]
    assert blocks[1]["parentHash"] == blocks[0]["hash"]
    assert [c["status"] for b in blocks for c in b["calls"]] == ["0x1"] * 3
    assert blocks[1]["gasUsed"] == hex(2 * 21_000)
    assert len(blocks[1]["transactions"]) == 2
    assert blocks[0]["stateRoot"] != blocks[1]["stateRoot"] != head["stateRoot"]
    # Without validation the sender's nonce is its state's, and it grows call by call.
    full = simulate(chain, {"returnFullTransactions": True, "blockStateCalls": [
        {"calls": [{"from": ME, "to": A}, {"from": ME, "to": A}]}]})
    assert [tx["nonce"] for tx in full[0]["transactions"]] == ["0x0", "0x1"]
    assert full[0]["transactions"][0]["from"] == ME
    # Nothing was stored.
    assert chain.rpc("eth_getBlockByNumber", "latest", False)["hash"] == head["hash"]
    assert chain.rpc("eth_getBalance", B, "latest") == "0x0"
    assert chain.rpc("eth_getTransactionCount", ME, "latest") == "0x0"


def test_block_overrides_are_what_the_calls_see(chain: RealChain) -> None:
    opcodes = {"number": "43", "time": "42", "feeRecipient": "41", "gasLimit": "45",
               "baseFeePerGas": "48", "prevRandao": "44"}
    code = {f"0x{0xd0 + i:040x}": {"code": "0x" + op + RETURN_WORD}
            for i, op in enumerate(opcodes.values())}
    overrides = {"number": "0x40", "time": "0x7fffffff", "feeRecipient": "0x" + "ab" * 20,
                 "gasLimit": hex(40_000_000), "baseFeePerGas": "0x7", "prevRandao": "0x99"}
    blocks = simulate(chain, {"blockStateCalls": [{
        "blockOverrides": overrides, "stateOverrides": code,
        "calls": [{"from": ME, "to": address} for address in code],
    }]})
    # The numbers skipped up to 0x40 come in between as empty blocks.
    head = word(chain.rpc("eth_blockNumber"))
    assert [word(b["number"]) for b in blocks] == list(range(head + 1, 0x41))
    assert all(not b["calls"] for b in blocks[:-1])
    seen = [word(c["returnData"]) for c in blocks[-1]["calls"]]
    assert seen == [0x40, 0x7FFFFFFF, int("ab" * 20, 16), 40_000_000, 7, 0x99]
    last = blocks[-1]
    assert (last["miner"], last["gasLimit"], last["baseFeePerGas"], last["timestamp"]) == (
        "0x" + "ab" * 20, hex(40_000_000), "0x7", "0x7fffffff")
    # Fee recipient and gas limit hold on in the blocks after (go-ethereum's choice); the base
    # fee and the randomness do not.
    after = simulate(chain, {"blockStateCalls": [
        {"blockOverrides": {"gasLimit": hex(40_000_000), "feeRecipient": "0x" + "ab" * 20}},
        {"blockOverrides": {"prevRandao": "0x99", "baseFeePerGas": "0x7"}}, {}]})
    assert {(b["miner"], b["gasLimit"]) for b in after} == {("0x" + "ab" * 20, hex(40_000_000))}
    assert [(b["mixHash"][-2:], b["baseFeePerGas"]) for b in after] == [
        ("00", "0x0"), ("99", "0x7"), ("00", "0x0")]


def test_max_used_gas_is_before_refunds(chain: RealChain) -> None:
    clear = {A: {"code": "0x600060005500", "stateDiff": {"0x" + "00" * 32: "0x" + "00" * 31 + "01"}}}
    (call,) = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": clear, "calls": [{"from": ME, "to": A}]}]})[0]["calls"]
    used, most = word(call["gasUsed"]), word(call["maxUsedGas"])
    assert most - used == min(4800, most // 5)  # SSTORE's refund for clearing a slot


def test_blockhash_reaches_the_simulated_blocks(chain: RealChain) -> None:
    parent_hash = "0x4360019003" + "40" + RETURN_WORD  # BLOCKHASH(NUMBER - 1)
    blocks = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": {A: {"code": parent_hash}}, "calls": [{"from": ME, "to": A}]},
        {"calls": [{"from": ME, "to": A}]},
    ]})
    assert blocks[0]["calls"][0]["returnData"] == blocks[0]["parentHash"]
    assert blocks[1]["calls"][0]["returnData"] == blocks[0]["hash"]


def test_failed_calls_report_their_error_and_keep_going(chain: RealChain) -> None:
    blocks = simulate(chain, {"blockStateCalls": [{
        "stateOverrides": {A: {"code": REVERT_DEADBEEF}, B: {"code": LOOP},
                           C: {"code": EMIT}},
        "calls": [{"from": ME, "to": A}, {"from": ME, "to": B, "gas": hex(50_000)},
                  {"from": ME, "to": C}],
    }]})
    reverted, halted, emitted = blocks[0]["calls"]
    # A failed call's output is in its error's data (as go-ethereum answers).
    assert reverted["status"] == "0x0" and reverted["returnData"] == "0x"
    assert reverted["error"] == {"code": 3, "message": "execution reverted",
                                 "data": "0xdeadbeef"}
    assert halted["status"] == "0x0" and halted["gasUsed"] == halted["maxUsedGas"] == hex(50_000)
    assert halted["error"] == {"code": -32015, "message": "vm execution error: out of gas"}
    assert emitted["status"] == "0x1"
    (log,) = emitted["logs"]
    assert (log["address"], log["data"], log["logIndex"], log["transactionIndex"]) == (
        C, "0x" + "00" * 31 + "ff", "0x0", "0x2")
    assert log["blockHash"] == blocks[0]["hash"]
    assert log["transactionHash"] == blocks[0]["transactions"][2]


def test_trace_transfers_reports_eth_moves_as_erc20_logs(chain: RealChain) -> None:
    call = {"from": ME, "to": B, "value": "0x64"}
    overrides = {B: {"code": FORWARD_VALUE}}
    plain = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": overrides, "calls": [call]}]})
    assert plain[0]["calls"][0]["logs"] == []
    traced = simulate(chain, {"traceTransfers": True, "blockStateCalls": [
        {"stateOverrides": overrides, "calls": [call]}]})
    logs = traced[0]["calls"][0]["logs"]
    transfer = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
    assert [(log["address"], log["topics"], log["data"], log["logIndex"]) for log in logs] == [
        ("0x" + "ee" * 20, [transfer, "0x" + ME[2:].rjust(64, "0"), "0x" + B[2:].rjust(64, "0")],
         "0x" + "64".rjust(64, "0"), "0x0"),
        ("0x" + "ee" * 20, [transfer, "0x" + B[2:].rjust(64, "0"), "0x" + C[2:].rjust(64, "0")],
         "0x" + "64".rjust(64, "0"), "0x1"),
    ]
    # SELFDESTRUCT's send is a transfer too.
    destruct = {"stateOverrides": {A: {"code": "0x73" + C[2:] + "ff", "balance": "0x2a"}},
                "calls": [{"from": ME, "to": A}]}
    (log,) = simulate(chain, {"traceTransfers": True, "blockStateCalls": [destruct]})[0][
        "calls"][0]["logs"]
    assert (log["topics"][1:], log["data"]) == (
        ["0x" + A[2:].rjust(64, "0"), "0x" + C[2:].rjust(64, "0")], "0x" + "2a".rjust(64, "0"))
    # Traced transfers are not logs of the block: its bloom and receipts root are the same.
    assert traced[0]["logsBloom"] == plain[0]["logsBloom"]
    assert traced[0]["receiptsRoot"] == plain[0]["receiptsRoot"]


def test_validation_checks_calls_as_transactions(chain: RealChain) -> None:
    rich = {POOR: {"balance": hex(10**18)}}
    base_fee = word(chain.rpc("eth_baseFee"))
    priced = {"maxFeePerGas": hex(base_fee * 2), "maxPriorityFeePerGas": "0x1"}

    def rejected(call: dict[str, Any], validation: bool = True) -> int:
        payload = {"validation": validation, "blockStateCalls": [
            {"stateOverrides": rich, "calls": [{"from": POOR, "to": A, **call}]}]}
        code: int = error(chain, payload)["code"]
        return code

    assert rejected({**priced, "nonce": "0x1"}) == -38011
    assert rejected({"nonce": "0x0"}) == -38012  # no fee under a real base fee
    assert rejected({**priced, "gas": hex(20_000)}) == -38013
    assert rejected({**priced, "value": hex(10**19)}) == -38014
    assert rejected({**priced, "gas": hex(10**9)}) == -38015
    assert rejected({"maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}) == -32602
    too_low = {"validation": True, "blockStateCalls": [
        {"stateOverrides": {POOR: {"balance": hex(10**18), "nonce": "0x5"}},
         "calls": [{"from": POOR, "to": A, "nonce": "0x4", **priced}]}]}
    assert error(chain, too_low)["code"] == -38010
    # Without validation the nonce is not checked and no fee is due.
    blocks = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": rich, "calls": [{"from": POOR, "to": A, "nonce": "0x9"}]}]})
    assert blocks[0]["calls"][0]["status"] == "0x1"
    assert blocks[0]["baseFeePerGas"] == "0x0"
    # Without validation a nonce at its maximum wraps to 0, as go-ethereum's uint64 does.
    wrapped = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": {POOR: {"nonce": hex(2**64 - 1)}},
         "calls": [{"from": POOR, "to": A}, {"from": POOR, "to": A}]}], "returnFullTransactions":
        True})
    assert [tx["nonce"] for tx in wrapped[0]["transactions"]] == [hex(2**64 - 1), "0x0"]
    valid = simulate(chain, {"validation": True, "blockStateCalls": [
        {"stateOverrides": rich, "calls": [{"from": POOR, "to": A, "nonce": "0x0", **priced}]}]})
    assert valid[0]["baseFeePerGas"] == hex(base_fee)
    assert valid[0]["calls"][0]["gasUsed"] == hex(21_000)


def test_bad_requests_get_the_specification_codes(chain: RealChain) -> None:
    head = word(chain.rpc("eth_blockNumber"))
    numbers = {"blockStateCalls": [{"blockOverrides": {"number": hex(head + 5)}},
                                   {"blockOverrides": {"number": hex(head + 3)}}]}
    assert error(chain, numbers)["code"] == -38020
    assert error(chain, {"blockStateCalls": [{"blockOverrides": {"number": hex(head)}}]})[
        "code"] == -38020
    times = {"blockStateCalls": [{"blockOverrides": {"time": "0x7fffff00"}},
                                 {"blockOverrides": {"time": "0x7fffff00"}}]}
    assert error(chain, times) == {"code": -38021, "message":
                                   "block timestamps must be in order: 2147483392 <= 2147483392"}
    assert error(chain, {"blockStateCalls": [{}] * 257}) == {"code": -38026,
                                                           "message": "too many blocks"}
    far = {"blockStateCalls": [{"blockOverrides": {"number": hex(head + 257)}}]}
    assert error(chain, far)["code"] == -38026
    assert error(chain, {"blockStateCalls": [{"calls": [{"from": POOR, "to": A, "value": "0x1"}]}]}
                 )["code"] == -38014
    bad: object
    for bad in ({}, {"blockStateCalls": {}}, {"blockStateCalls": [{"calls": [{"gas": "1"}]}]},
                {"blockStateCalls": [{"blockOverrides": {"blobBaseFee": "0x1"}}]},
                {"blockStateCalls": [{"stateOverrides": {A: {"stat": {}}}}]}, []):
        assert error(chain, bad)["code"] == -32602, bad
    assert error(chain, {"blockStateCalls": []}, hex(head + 1))["code"] == -32000
    moved = {"blockStateCalls": [{"stateOverrides": {A: {"movePrecompileToAddress": B}}}]}
    assert error(chain, moved) == {"code": -32000, "message": f"account {A} is not a precompile"}


def test_precompiles_move(chain: RealChain) -> None:
    identity, moved_to = "0x" + "00" * 19 + "04", "0x" + "00" * 18 + "1234"
    blocks = simulate(chain, {"blockStateCalls": [
        {"stateOverrides": {identity: {"movePrecompileToAddress": moved_to}},
         "calls": [{"from": ME, "to": moved_to, "input": "0xabcd"},
                   {"from": ME, "to": identity, "input": "0xabcd"}]},
        {"calls": [{"from": ME, "to": moved_to, "input": "0xabcd"}]}]})
    assert [c["returnData"] for b in blocks for c in b["calls"]] == ["0xabcd", "0x", "0xabcd"]
    # eth_call takes the same override; a code override on a precompile's address runs it.
    moved = {identity: {"movePrecompileToAddress": moved_to}}
    assert chain.rpc("eth_call", {"to": moved_to, "input": "0xabcd"}, "latest", moved) == "0xabcd"
    coded = {identity: {"code": "0x600160005260206000f3"}}  # returns 1
    assert word(chain.rpc("eth_call", {"to": identity, "input": "0xabcd"}, "latest", coded)) == 1


def test_bounded_like_eth_call(chain: RealChain) -> None:
    """All calls share the gas cap, and the call deadline stops the run."""
    limits = RpcLimits(evm_timeout=0.5, gas_cap=100_000)
    rpc = Rpc(TestClient(create_app(chain.backend, limits)))
    looping = {B: {"code": LOOP}}
    burn = {"from": ME, "to": B}
    blocks = rpc("eth_simulateV1", {"blockStateCalls": [
        {"stateOverrides": looping, "calls": [burn]}]}, "latest")
    assert blocks[0]["calls"][0]["gasUsed"] == hex(100_000)
    # The first call used the whole cap: the second has no gas left.
    assert rpc.error("eth_simulateV1", {"blockStateCalls": [
        {"stateOverrides": looping, "calls": [burn, burn]}]}, "latest")["code"] == -38013
    slow = RpcLimits(evm_timeout=0.5, gas_cap=10**9)
    rpc = Rpc(TestClient(create_app(chain.backend, slow)))
    many = [{"from": ME, "to": B, "gas": hex(30_000_000)}]
    assert rpc.error("eth_simulateV1", {"blockStateCalls": [
        {"stateOverrides": looping, "calls": many}] * 3}, "latest") == {
        "code": -32000, "message": "execution aborted (timeout = 0.5s)"}
