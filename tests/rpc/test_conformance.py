"""Every served method of the execution-apis specification, called on a real node, its result
checked against a JSON schema. The schemas here are our own, written from the field lists,
types and patterns of the specification (github.com/ethereum/execution-apis, src/schemas):
which fields are required, which objects admit no others, how quantities, data, hashes and
addresses are spelled."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from primitives.crypto import keccak256
from tests.node.helpers import USER_KEYS, USERS
from tests.rpc.realnode import CHAIN_ID, TOKEN_SOURCE, RealChain
from tests.solc import compile_contract

Schema = dict[str, Any]

UINT: Schema = {"type": "string", "pattern": "^0x(0|[1-9a-f][0-9a-f]*)$"}
UINT64: Schema = {"type": "string", "pattern": "^0x(0|[1-9a-f][0-9a-f]{0,15})$"}
BYTE: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{1,2}$"}
BYTES: Schema = {"type": "string", "pattern": "^0x([0-9a-f][0-9a-f])*$"}
BYTES4: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{8}$"}
BYTES8: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{16}$"}
BLOOM: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{512}$"}
HASH: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
ADDRESS: Schema = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
NULL: Schema = {"type": "null"}
BOOL: Schema = {"type": "boolean"}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None,
        closed: bool = True) -> Schema:
    """An object with these fields (``closed``: no others, as the spec's
    additionalProperties: false)."""
    return {
        "type": "object", "required": list(required),
        "properties": {**required, **(optional or {})}, "additionalProperties": not closed,
    }


def array(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def one_of(*schemas: Schema) -> Schema:
    return {"oneOf": list(schemas)}


ACCESS_LIST = array(obj({"address": ADDRESS, "storageKeys": array(HASH)}))
LOG = obj({
    "removed": BOOL, "logIndex": UINT, "transactionIndex": UINT, "transactionHash": HASH,
    "blockHash": HASH, "blockNumber": UINT, "blockTimestamp": UINT, "address": ADDRESS,
    "data": BYTES, "topics": array(HASH),
})
RECEIPT = obj(
    {"type": BYTE, "transactionHash": HASH, "transactionIndex": UINT, "blockHash": HASH,
     "blockNumber": UINT, "from": ADDRESS, "to": one_of(ADDRESS, NULL),
     "cumulativeGasUsed": UINT, "gasUsed": UINT, "contractAddress": one_of(ADDRESS, NULL),
     "logs": array(LOG), "logsBloom": BLOOM, "status": UINT, "effectiveGasPrice": UINT},
    {"blobGasUsed": UINT, "blobGasPrice": UINT, "root": HASH},
)
_TX_COMMON = {
    "blockHash": HASH, "blockNumber": UINT, "blockTimestamp": UINT, "from": ADDRESS,
    "hash": HASH, "transactionIndex": UINT, "type": BYTE, "nonce": UINT,
    "to": one_of(ADDRESS, NULL), "gas": UINT, "value": UINT, "input": BYTES, "r": UINT,
    "s": UINT, "gasPrice": UINT,
}
TX_LEGACY = obj({**_TX_COMMON, "v": UINT}, {"chainId": UINT}, closed=False)
TX_2930 = obj({**_TX_COMMON, "chainId": UINT, "accessList": ACCESS_LIST, "yParity": UINT},
              {"v": UINT}, closed=False)
TX_1559 = obj({**_TX_COMMON, "chainId": UINT, "accessList": ACCESS_LIST, "yParity": UINT,
               "maxFeePerGas": UINT, "maxPriorityFeePerGas": UINT}, {"v": UINT}, closed=False)
TX_INFO = {"anyOf": [TX_LEGACY, TX_2930, TX_1559]}
_PENDING = {**_TX_COMMON, "blockHash": NULL, "blockNumber": NULL, "blockTimestamp": NULL,
            "transactionIndex": NULL}
PENDING_TX = obj({**_PENDING, "chainId": UINT, "accessList": ACCESS_LIST, "yParity": UINT,
                  "maxFeePerGas": UINT, "maxPriorityFeePerGas": UINT}, {"v": UINT},
                 closed=False)
_HEADER = {
    "hash": HASH, "parentHash": HASH, "sha3Uncles": HASH, "miner": ADDRESS, "stateRoot": HASH,
    "transactionsRoot": HASH, "receiptsRoot": HASH, "logsBloom": BLOOM, "number": UINT,
    "gasLimit": UINT, "gasUsed": UINT, "timestamp": UINT, "extraData": BYTES, "mixHash": HASH,
    "nonce": BYTES8,
}
_HEADER_OPTIONAL = {
    "difficulty": UINT, "baseFeePerGas": UINT, "withdrawalsRoot": HASH, "blobGasUsed": UINT,
    "excessBlobGas": UINT, "parentBeaconBlockRoot": HASH,
}
WITHDRAWALS = array(obj({"index": UINT64, "validatorIndex": UINT64, "address": ADDRESS,
                         "amount": UINT}))
BLOCK = obj({**_HEADER, "size": UINT, "transactions": array(one_of(HASH, TX_INFO)),
             "uncles": array(HASH)}, {**_HEADER_OPTIONAL, "withdrawals": WITHDRAWALS},
            closed=False)
FEE_HISTORY = obj({"oldestBlock": UINT, "baseFeePerGas": array(UINT),
                   "gasUsedRatio": array({"type": "number"})},
                  {"reward": array(array(UINT)), "baseFeePerBlobGas": array(UINT),
                   "blobGasUsedRatio": array({"type": "number"})})
PROOF = obj({"address": ADDRESS, "accountProof": array(BYTES), "balance": UINT,
             "codeHash": HASH, "nonce": UINT64, "storageHash": HASH,
             "storageProof": array(obj({"key": {"type": "string", "pattern":
                                                "^0x[0-9a-f]{0,64}$"},
                                        "value": UINT, "proof": array(BYTES)}))})
ACCESS_LIST_RESULT = obj({"accessList": ACCESS_LIST, "gasUsed": UINT}, {"error": {
    "type": "string"}})
POOL_BY_SENDER = {"type": "object", "additionalProperties": {
    "type": "object", "additionalProperties": PENDING_TX}}
TXPOOL_CONTENT = obj({"pending": POOL_BY_SENDER, "queued": POOL_BY_SENDER})
TXPOOL_FROM = obj({"pending": {"type": "object", "additionalProperties": PENDING_TX},
                   "queued": {"type": "object", "additionalProperties": PENDING_TX}})
RESOURCE = obj({"disabled": BOOL}, {"oldestBlock": UINT, "deleteStrategy": {
    "type": "object"}})
CAPABILITIES = obj({"head": obj({"number": UINT, "hash": HASH}), "state": RESOURCE,
                    "tx": RESOURCE, "logs": RESOURCE, "receipts": RESOURCE,
                    "blocks": RESOURCE, "stateproofs": RESOURCE})
CONFIG_OBJECT = obj({
    "activationTime": {"type": "number"},
    "blobSchedule": obj({"baseFeeUpdateFraction": {"type": "integer", "minimum": 0},
                         "max": {"type": "integer", "minimum": 0},
                         "target": {"type": "integer", "minimum": 0}}),
    "chainId": UINT, "forkId": BYTES4,
    "precompiles": {"type": "object", "additionalProperties": ADDRESS},
    "systemContracts": {"type": "object", "additionalProperties": ADDRESS},
})
CONFIG = obj({"current": CONFIG_OBJECT, "next": one_of(CONFIG_OBJECT, NULL),
              "last": one_of(CONFIG_OBJECT, NULL)})
FILLED = obj({"tx": {"type": "object", "required": ["type", "nonce", "gas", "value", "input",
                                                     "chainId", "gasPrice"]}},
             {"raw": BYTES})
STRUCT_LOG = obj({"pc": {"type": "integer"}, "op": {"type": "string"},
                  "gas": {"type": "integer"}, "gasCost": {"type": "integer"},
                  "depth": {"type": "integer"}},
                 {"stack": array(UINT), "memory": array({"type": "string"}),
                  "storage": {"type": "object"}, "refund": {"type": "integer"},
                  "error": {"type": "string"}, "returnData": BYTES})
STRUCT_TRACE = obj({"gas": {"type": "integer"}, "failed": BOOL, "returnValue": BYTES,
                    "structLogs": array(STRUCT_LOG)})
BLOCK_TRACE = array(obj({"txHash": HASH, "result": STRUCT_TRACE}))


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


def cases(s: Scene) -> list[tuple[str, list[Any], Schema]]:
    """(method, params, result schema) for every served method of the specification."""
    me = s.address(0)
    call = {"from": me, "to": s.token, "data": s.transfer_data}
    return [
        ("eth_chainId", [], UINT),
        ("net_version", [], {"type": "string", "pattern": "^[0-9]+$"}),
        ("eth_syncing", [], {"anyOf": [BOOL, obj({"startingBlock": UINT, "currentBlock": UINT,
                                                   "highestBlock": UINT})]}),
        ("eth_coinbase", [], ADDRESS),  # answered with geth's error: no etherbase
        ("eth_accounts", [], array(ADDRESS)),
        ("eth_blockNumber", [], UINT),
        ("eth_getBlockByNumber", [s.block, True], BLOCK),
        ("eth_getBlockByNumber", ["latest", False], BLOCK),
        ("eth_getBlockByNumber", ["safe", False], BLOCK),
        ("eth_getBlockByHash", [s.block_hash, False], BLOCK),
        ("eth_getBlockTransactionCountByNumber", [s.block], UINT),
        ("eth_getBlockTransactionCountByHash", [s.block_hash], UINT),
        ("eth_getBlockReceipts", [s.block], array(RECEIPT)),
        ("eth_getTransactionByHash", [s.legacy], TX_LEGACY),
        ("eth_getTransactionByHash", [s.typed], TX_2930),
        ("eth_getTransactionByHash", [s.call], TX_1559),
        ("eth_getTransactionByHash", [s.pending], PENDING_TX),
        ("eth_getTransactionByBlockHashAndIndex", [s.block_hash, "0x0"], TX_INFO),
        ("eth_getTransactionByBlockNumberAndIndex", [s.block, "0x2"], TX_INFO),
        ("eth_getTransactionReceipt", [s.call], RECEIPT),
        ("eth_getBalance", [me, "latest"], UINT),
        ("eth_getStorageAt", [s.token, "0x0", "latest"], HASH),
        ("eth_getStorageValues", [{s.token: ["0x0", "0x1"]}, "latest"],
         {"type": "object", "additionalProperties": array(BYTES)}),
        ("eth_getTransactionCount", [me, "latest"], UINT),
        ("eth_getCode", [s.token, "latest"], BYTES),
        ("eth_getProof", [s.token, ["0x0"], "latest"], PROOF),
        ("eth_call", [call, "latest"], BYTES),
        ("eth_estimateGas", [call, "latest"], UINT),
        ("eth_createAccessList", [call, "latest"], ACCESS_LIST_RESULT),
        ("eth_gasPrice", [], UINT),
        ("eth_baseFee", [], UINT),
        ("eth_blobBaseFee", [], UINT),
        ("eth_maxPriorityFeePerGas", [], UINT),
        ("eth_feeHistory", ["0x4", "latest", [25, 75]], FEE_HISTORY),
        ("eth_fillTransaction", [{"from": me, "to": s.address(1), "value": "0x1"}], FILLED),
        ("eth_getLogs", [{"fromBlock": "0x0", "address": s.token}], array(LOG)),
        ("eth_getFilterChanges", [s.log_filter], array(LOG)),
        ("eth_getFilterLogs", [s.log_filter], array(LOG)),
        ("eth_getFilterChanges", [s.block_filter], array(HASH)),
        ("eth_getFilterChanges", [s.pending_filter], array(HASH)),
        ("eth_newFilter", [{"address": s.token}], UINT),
        ("eth_newBlockFilter", [], UINT),
        ("eth_newPendingTransactionFilter", [], UINT),
        ("eth_uninstallFilter", [s.block_filter], BOOL),
        ("eth_sendRawTransaction", [], HASH),  # filled in by the test
        ("eth_capabilities", [], CAPABILITIES),
        ("eth_config", [], CONFIG),
        ("debug_getRawHeader", [s.block], BYTES),
        ("debug_getRawBlock", [s.block], BYTES),
        ("debug_getRawTransaction", [s.call], BYTES),
        ("debug_getRawReceipts", [s.block], array(BYTES)),
        ("debug_traceTransaction", [s.legacy], STRUCT_TRACE),
        ("debug_traceBlockByNumber", [s.block], BLOCK_TRACE),
        ("debug_traceBlockByHash", [s.block_hash], BLOCK_TRACE),
        ("txpool_status", [], obj({"pending": UINT, "queued": UINT})),
        ("txpool_content", [], TXPOOL_CONTENT),
        ("txpool_contentFrom", [s.address(3)], TXPOOL_FROM),
    ]


NOT_SERVED = {
    "eth_sendTransaction", "eth_sign", "eth_signTransaction", "eth_simulateV1",
    "eth_getBlockAccessList", "debug_getRawBlockAccessList", "debug_getBadBlocks",
}
"""The specification's methods this node does not serve (README, "JSON-RPC", says why)."""
ANSWERED_WITH_AN_ERROR = {"eth_coinbase"}
"""Served with geth's answer for a node that mines for nobody: an error object."""


def test_every_served_spec_method_is_schema_valid(scene: Scene) -> None:
    rpc = scene.chain.rpc
    checked: set[str] = set()
    for method, params, schema in cases(scene):
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
            try:
                jsonschema.validate(result, schema)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{method}{params}: {exc.message} at {list(exc.absolute_path)}")
        checked.add(method)
    # 57 methods in the specification: everything but NOT_SERVED is checked here.
    assert len(checked) + len(NOT_SERVED) == 57, sorted(checked)
