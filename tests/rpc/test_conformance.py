"""The execution-apis specification, vendored under tests/spec/execution-apis (SOURCE says
from which commit), checked against a real node: every served method's result validates
against the specification's own result schema, the specification's chain-independent error
exchanges (tests/*.io) get the same error codes, and the error codes we answer are the ones
the specification lists."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from eth_account import Account
from eth_utils.address import to_checksum_address

from primitives.crypto import keccak256
from rpc.errors import TRANSACTION_REJECTIONS
from rpc.simulate import (
    BLOCK_NUMBER_INVALID,
    BLOCK_TIMESTAMP_INVALID,
    CLIENT_LIMIT_EXCEEDED,
    REJECTION_CODES,
    VM_EXECUTION_ERROR,
)
from tests.node.helpers import USER_KEYS, USERS
from tests.rpc.realnode import CHAIN_ID, TOKEN_SOURCE, RealChain
from tests.solc import compile_contract

SPEC = Path(__file__).resolve().parents[1] / "spec" / "execution-apis"
NOT_VENDORED = {"eth_sign", "eth_signTransaction"}
"""src/eth/sign.yaml's methods, not served (the node holds no keys) and not copied."""
SPEC_METHOD_COUNT = 57
"""eth_*, debug_* and txpool_* methods of the specification at the vendored commit."""
NOT_SERVED = NOT_VENDORED | {
    "eth_sendTransaction", "eth_getBlockAccessList", "debug_getRawBlockAccessList",
    "debug_getBadBlocks",
}
"""The specification's methods this node does not serve (README, "JSON-RPC", says why)."""
ANSWERED_WITH_AN_ERROR = {"eth_coinbase"}
"""Served with geth's answer for a node that mines for nobody: an error object."""

Schema = dict[str, Any]


@cache
def spec_methods() -> dict[str, Schema]:
    """The specification's method objects by name."""
    return {
        method["name"]: method
        for group in ("eth", "debug", "txpool")
        for path in sorted((SPEC / "src" / group).glob("*.yaml"))
        for method in yaml.safe_load(path.read_text())
    }


@cache
def spec_schemas() -> Schema:
    """Every named schema of src/schemas, as #/components/schemas resolves them."""
    schemas: Schema = {}
    for path in sorted((SPEC / "src" / "schemas").glob("*.yaml")):
        schemas.update(yaml.safe_load(path.read_text()))
    return schemas


PENDING_SCHEMA: Schema = {"$ref": "#/components/schemas/PendingTransactionInfo"}
"""eth_getTransactionByHash's result schema has no pending transaction (block fields null,
as go-ethereum answers and wallets wait on): that one is checked against the pool's
transaction schema (txpool_content's)."""


def result_validator(method: str, schema: Schema | None = None) -> jsonschema.Validator:
    """A validator of ``method``'s result (or of ``schema``), its $refs resolved within the
    specification."""
    if schema is None:
        schema = spec_methods()[method]["result"]["schema"]
    return jsonschema.Draft202012Validator(
        {**schema, "components": {"schemas": spec_schemas()}}
    )


def error_codes(method: str) -> set[int]:
    """The error codes the specification lists for ``method``, its error groups included."""
    groups: dict[str, Any] = {}
    for path in (SPEC / "src" / "error-groups").glob("*.yaml"):
        groups.update(yaml.safe_load(path.read_text()))
    spec = spec_methods()[method]
    codes = {error["code"] for error in spec.get("errors", [])}
    for ref in spec.get("error-groups", []):
        name = ref["$ref"].rsplit("/", 1)[-1]
        codes |= {error["code"] for error in groups[name]["errors"]}
    return codes


class Scene:
    """A real chain with transactions of every type, a token with logs, and one pending."""

    def __init__(self) -> None:
        self.chain = chain = RealChain()
        _, bytecode = compile_contract(TOKEN_SOURCE, "TestToken")
        deploy = chain.send(0, data=bytecode + (10**24).to_bytes(32, "big").hex(),
                            gas=2_000_000)
        chain.mine()
        self.token = chain.rpc("eth_getTransactionReceipt", deploy)["contractAddress"]
        transfer = "0x" + (keccak256(b"transfer(address,uint256)")[:4] + USERS[1].rjust(32, b"\0")
                           + (5).to_bytes(32, "big")).hex()
        self.legacy = chain.send(1, type=None, gasPrice=10**10, to=self.address(2), value=1,
                                 gas=21_000)
        self.typed = chain.send(2, type=1, gasPrice=10**10, to=self.address(3), value=1,
                                gas=30_000, accessList=[{"address": self.address(3),
                                                         "storageKeys": ["0x" + "00" * 32]}])
        self.call = chain.send(0, to=self.token, data=transfer, gas=100_000)
        self.transfer_data = transfer
        chain.mine()
        self.block = chain.rpc("eth_getTransactionReceipt", self.call)["blockNumber"]
        self.block_hash = chain.rpc("eth_getTransactionReceipt", self.call)["blockHash"]
        self.log_filter = chain.rpc("eth_newFilter", {"address": self.token})
        self.block_filter = chain.rpc("eth_newBlockFilter")
        self.pending_filter = chain.rpc("eth_newPendingTransactionFilter")
        chain.send(0, to=self.token, data=transfer, gas=100_000)
        chain.mine()
        self.pending = chain.send(3, to=self.address(0), value=1, gas=21_000)

    @staticmethod
    def address(user: int) -> str:
        return "0x" + USERS[user].hex()


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene()


def cases(s: Scene) -> list[tuple[str, list[Any]]]:
    """(method, params) for every served method of the specification, several for some."""
    me = s.address(0)
    call = {"from": me, "to": s.token, "data": s.transfer_data}
    too_much = "0x" + (keccak256(b"transfer(address,uint256)")[:4] + USERS[1].rjust(32, b"\0")
                       + (10**30).to_bytes(32, "big")).hex()
    return [
        ("eth_chainId", []),
        ("net_version", []),
        ("eth_syncing", []),
        ("eth_coinbase", []),
        ("eth_accounts", []),
        ("eth_blockNumber", []),
        ("eth_getBlockByNumber", [s.block, True]),
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_getBlockByNumber", ["safe", False]),
        ("eth_getBlockByNumber", ["0xffffff", False]),
        ("eth_getBlockByHash", [s.block_hash, False]),
        ("eth_getBlockByHash", [s.block_hash, True]),
        ("eth_getBlockTransactionCountByNumber", [s.block]),
        ("eth_getBlockTransactionCountByHash", [s.block_hash]),
        ("eth_getBlockReceipts", [s.block]),
        ("eth_getTransactionByHash", [s.legacy]),
        ("eth_getTransactionByHash", [s.typed]),
        ("eth_getTransactionByHash", [s.call]),
        ("eth_getTransactionByHash", [s.pending]),
        ("eth_getTransactionByBlockHashAndIndex", [s.block_hash, "0x0"]),
        ("eth_getTransactionByBlockNumberAndIndex", [s.block, "0x2"]),
        ("eth_getTransactionReceipt", [s.call]),
        ("eth_getTransactionReceipt", [s.legacy]),
        ("eth_getBalance", [me, "latest"]),
        ("eth_getStorageAt", [s.token, "0x0", "latest"]),
        ("eth_getStorageValues", [{s.token: ["0x0", "0x1"]}, "latest"]),
        ("eth_getTransactionCount", [me, "latest"]),
        ("eth_getCode", [s.token, "latest"]),
        ("eth_getProof", [s.token, ["0x0"], "latest"]),
        ("eth_call", [call, "latest"]),
        ("eth_estimateGas", [call, "latest"]),
        ("eth_createAccessList", [call, "latest"]),
        ("eth_createAccessList", [{**call, "data": too_much}, "latest"]),
        ("eth_simulateV1", [{"traceTransfers": True, "blockStateCalls": [
            {"calls": [call, {"from": me, "to": s.address(1), "value": "0x1"}]},
            {"blockOverrides": {"number": hex(int(s.block, 16) + 5)},
             "calls": [{**call, "data": too_much}, {"from": me, "to": s.token, "gas": "0x5300"}]},
        ]}, "latest"]),
        ("eth_simulateV1", [{"returnFullTransactions": True, "validation": True,
                             "blockStateCalls": [{"calls": [{
                                 **call, "maxFeePerGas": hex(10**11),
                                 "maxPriorityFeePerGas": "0x1"}]}]}, "latest"]),
        ("eth_gasPrice", []),
        ("eth_baseFee", []),
        ("eth_blobBaseFee", []),
        ("eth_maxPriorityFeePerGas", []),
        ("eth_feeHistory", ["0x4", "latest", [25, 75]]),
        ("eth_fillTransaction", [{"from": me, "to": s.address(1), "value": "0x1"}]),
        ("eth_getLogs", [{"fromBlock": "0x0", "address": s.token}]),
        ("eth_getFilterChanges", [s.log_filter]),
        ("eth_getFilterLogs", [s.log_filter]),
        ("eth_getFilterChanges", [s.block_filter]),
        ("eth_getFilterChanges", [s.pending_filter]),
        ("eth_newFilter", [{"address": s.token}]),
        ("eth_newBlockFilter", []),
        ("eth_newPendingTransactionFilter", []),
        ("eth_uninstallFilter", [s.block_filter]),
        ("eth_sendRawTransaction", []),  # filled in by the test
        ("eth_capabilities", []),
        ("eth_config", []),
        ("debug_getRawHeader", [s.block]),
        ("debug_getRawBlock", [s.block]),
        ("debug_getRawTransaction", [s.call]),
        ("debug_getRawReceipts", [s.block]),
        ("debug_traceTransaction", [s.legacy]),
        ("debug_traceTransaction", [s.call, {"enableMemory": True, "enableReturnData": True}]),
        ("debug_traceBlockByNumber", [s.block]),
        ("debug_traceBlockByHash", [s.block_hash]),
        ("txpool_status", []),
        ("txpool_content", []),
        ("txpool_contentFrom", [s.address(3)]),
    ]


def test_every_served_spec_method_is_schema_valid(scene: Scene) -> None:
    rpc = scene.chain.rpc
    checked: set[str] = set()
    failures: list[str] = []
    for method, params in cases(scene):
        if method == "eth_sendRawTransaction":
            signed = Account.sign_transaction({
                "chainId": CHAIN_ID, "nonce": int(rpc("eth_getTransactionCount",
                                                      scene.address(1), "pending"), 16),
                "to": to_checksum_address(scene.address(2)), "value": 1, "gas": 21_000,
                "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}, USER_KEYS[1])
            params = ["0x" + bytes(signed.raw_transaction).hex()]
        if method in ANSWERED_WITH_AN_ERROR:
            assert rpc.error(method, *params)["code"] == -32000
        else:
            result = rpc(method, *params)
            validator = result_validator(
                method, PENDING_SCHEMA if params == [scene.pending] else None)
            error = jsonschema.exceptions.best_match(validator.iter_errors(result))
            if error is not None:
                failures.append(f"{method}{json.dumps(params)[:80]}: {error.message[:300]} at "
                                f"{list(error.absolute_path)}")
        checked.add(method)
    assert not failures, "\n".join(failures)
    served = set(spec_methods()) - NOT_SERVED
    assert checked == served, sorted(served ^ checked)
    assert len(spec_methods()) + len(NOT_VENDORED) == SPEC_METHOD_COUNT
    assert len(served) == SPEC_METHOD_COUNT - len(NOT_SERVED) == 51


def exchanges() -> list[tuple[str, Any, Any]]:
    """(file, request, expected answer) of the vendored .io files, in their order."""
    found: list[tuple[str, Any, Any]] = []
    for path in sorted((SPEC / "tests").rglob("*.io")):
        lines = path.read_text().splitlines()
        requests = [json.loads(line[3:]) for line in lines if line.startswith(">> ")]
        answers = [json.loads(line[3:]) for line in lines if line.startswith("<< ")]
        name = f"{path.parent.name}/{path.name}"
        found.extend((name, request, answer) for request, answer in zip(
            requests, answers, strict=True))
    return found


def test_spec_error_exchanges_get_the_same_codes(scene: Scene) -> None:
    """The vendored exchanges are error cases whose outcome does not depend on the spec's
    test chain: the code must be the same (messages are go-ethereum's and may differ)."""
    client = scene.chain.client
    cases = exchanges()
    assert len(cases) >= 30
    wrong = []
    for name, request, expected in cases:
        assert "error" in expected, name
        answer = client.post("/", json=request).json()
        got = answer.get("error", {}).get("code")
        if got != expected["error"]["code"]:
            wrong.append(f"{name}: {expected['error']} but got {answer}")
    assert not wrong, "\n".join(wrong)


def test_our_error_codes_are_the_specification_ones() -> None:
    send_codes = error_codes("eth_sendRawTransaction")
    assert {code for _, code in TRANSACTION_REJECTIONS} <= send_codes
    assert -32000 in send_codes
    simulate_codes = error_codes("eth_simulateV1")
    ours = {code for _, code in REJECTION_CODES} | {
        BLOCK_NUMBER_INVALID, BLOCK_TIMESTAMP_INVALID, CLIENT_LIMIT_EXCEEDED,
        VM_EXECUTION_ERROR, -32603, -32000}
    assert ours <= simulate_codes, ours - simulate_codes
    assert error_codes("eth_call") == error_codes("eth_estimateGas") == {3}


def test_the_schemas_catch_a_wrong_answer(scene: Scene) -> None:
    """The vendored schemas, $refs resolved, do reject what they must (else the test above
    would prove nothing)."""
    rpc = scene.chain.rpc
    block = rpc("eth_getBlockByNumber", scene.block, False)
    assert result_validator("eth_getBlockByNumber").is_valid(block)
    for broken in ({k: v for k, v in block.items() if k != "stateRoot"},
                   {**block, "number": "0x01"}, {**block, "transactions": [7]}):
        assert not result_validator("eth_getBlockByNumber").is_valid(broken)
    simulated = rpc("eth_simulateV1", {"blockStateCalls": [{"calls": [{"to": scene.token}]}]})
    assert result_validator("eth_simulateV1").is_valid(simulated)
    call = simulated[0]["calls"][0]
    for wrong in ({**call, "status": "0x2"}, {k: v for k, v in call.items() if k != "gasUsed"},
                  {**call, "status": "0x0", "error": {"code": -32015, "message": "oops"}}):
        assert not result_validator("eth_simulateV1").is_valid([{**simulated[0],
                                                                  "calls": [wrong]}])
