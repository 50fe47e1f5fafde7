"""Hostile input against a real node: every bad request gets the right JSON-RPC error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from node.genesis import development_keys
from tests.nodeproc import NodeProcess, post_json, running_node

MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 7331


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with running_node(Path(tmp_path_factory.mktemp("hostile")) / "node") as running:
        yield running


@pytest.fixture(scope="module")
def key() -> bytes:
    return development_keys(MNEMONIC, 1)[0]


def error_of(response: Any) -> tuple[int, str]:
    assert "error" in response, response
    return response["error"]["code"], response["error"]["message"]


def raw_tx(key: bytes, **fields: Any) -> str:
    tx = {
        "chainId": CHAIN_ID, "nonce": 0, "to": "0x" + "11" * 20, "value": 1, "gas": 21_000,
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, **fields,
    }
    return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()


def send(node: NodeProcess, raw: str) -> Any:
    return node.rpc("eth_sendRawTransaction", [raw])


def test_malformed_json(node: NodeProcess) -> None:
    assert error_of(post_json(node.url, None, raw=b'{"jsonrpc": "2.0", "method": '))[0] == -32700
    assert error_of(post_json(node.url, None, raw=b"\xff\xfe garbage"))[0] == -32700


def test_invalid_requests(node: NodeProcess) -> None:
    assert error_of(post_json(node.url, 42))[0] == -32600
    assert error_of(post_json(node.url, []))[0] == -32600
    assert error_of(post_json(node.url, {"jsonrpc": "2.0", "id": 1}))[0] == -32600


def test_unknown_method(node: NodeProcess) -> None:
    code, message = error_of(node.rpc("eth_doesNotExist"))
    assert code == -32601 and "eth_doesNotExist" in message


@pytest.mark.parametrize(
    "method, params",
    [
        ("eth_getBalance", ["0x1234", "latest"]),
        ("eth_getBalance", [12, "latest"]),
        ("eth_getBalance", ["0x" + "zz" * 20, "latest"]),
        ("eth_getBlockByNumber", ["not-a-block", False]),
        ("eth_getBlockByNumber", []),
        ("eth_getStorageAt", ["0x" + "11" * 20, {"x": 1}, "latest"]),
        ("eth_getTransactionByHash", ["0x1234"]),
        ("eth_sendRawTransaction", [123]),
        ("eth_sendRawTransaction", ["0xabc"]),
        ("eth_getLogs", ["latest"]),
    ],
)
def test_wrong_params(node: NodeProcess, method: str, params: list[Any]) -> None:
    assert error_of(node.rpc(method, params))[0] == -32602


def test_batch_mixes_errors_and_results(node: NodeProcess) -> None:
    responses = post_json(node.url, [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x12"]},
    ])
    by_id = {r["id"]: r for r in responses}
    assert by_id[1]["result"] == hex(CHAIN_ID)
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["error"]["code"] == -32602


@pytest.mark.parametrize("raw", ["0x", "0xdeadbeef", "0x02f8", "0xf86c0a8502540be40082520894"])
def test_garbage_and_truncated_transactions(node: NodeProcess, raw: str) -> None:
    code, message = error_of(send(node, raw))
    assert code in (-32000, -32602), message


def test_truncated_valid_transaction(node: NodeProcess, key: bytes) -> None:
    good = raw_tx(key)
    assert error_of(send(node, good[: len(good) - 10]))[0] in (-32000, -32602)


def test_wrong_chain_id(node: NodeProcess, key: bytes) -> None:
    code, message = error_of(send(node, raw_tx(key, chainId=1)))
    assert code == -32000 and "chain id" in message


def test_bad_signature(node: NodeProcess, key: bytes) -> None:
    good = bytes.fromhex(raw_tx(key)[2:])
    # Flip a byte inside s: recovery yields a different sender or fails, never our account.
    tampered = good[:-5] + bytes([good[-5] ^ 0xFF]) + good[-4:]
    response = send(node, "0x" + tampered.hex())
    if "error" in response:  # no sender (1001), or an unfunded stranger (809)
        assert response["error"]["code"] in (809, 1001), response
    else:  # a valid signature of some other, unfunded account
        pytest.fail(f"tampered transaction was accepted: {response}")


def test_nonce_too_low_and_gap(node: NodeProcess, key: bytes) -> None:
    first = send(node, raw_tx(key, nonce=0, value=7))
    assert "result" in first, first
    again = send(node, raw_tx(key, nonce=0, value=7))
    assert error_of(again) == (1000, "already known")
    # Wait until it is mined, then nonce 0 is too low.
    import time

    for _ in range(200):
        receipt = node.rpc("eth_getTransactionReceipt", [first["result"]])["result"]
        if receipt:
            break
        time.sleep(0.05)
    assert error_of(send(node, raw_tx(key, nonce=0, value=8))) == (1, "nonce too low")
    assert error_of(send(node, raw_tx(key, nonce=10_000)))[1] == "nonce too high"


def test_insufficient_funds(node: NodeProcess) -> None:
    pauper = b"\x07" * 32
    code, message = error_of(send(node, raw_tx(pauper)))
    assert (code, message) == (809, "insufficient funds for gas * price + value")


def test_gas_above_block_limit(node: NodeProcess, key: bytes) -> None:
    code, message = error_of(send(node, raw_tx(key, gas=30_000_001)))
    assert (code, message) == (803, "exceeds block gas limit")


def test_fee_cap_below_base_fee(node: NodeProcess, key: bytes) -> None:
    code, message = error_of(send(node, raw_tx(key, nonce=5, maxFeePerGas=0, maxPriorityFeePerGas=0)))
    assert (code, message) in (
        (806, "max fee per gas less than block base fee"), (802, "transaction underpriced"),
    )


def test_blob_transactions_rejected(node: NodeProcess) -> None:
    code, message = error_of(send(node, "0x03" + "c0"))
    assert code == -32000 and "blob" in message


def test_node_still_serves(node: NodeProcess) -> None:
    assert node.rpc("eth_chainId")["result"] == hex(CHAIN_ID)
    assert int(node.rpc("eth_blockNumber")["result"], 16) > 0
