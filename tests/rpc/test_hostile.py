"""Hostile input: each gets the right JSON-RPC error, and the server keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import eth  # noqa: F401  -- as in the node: py-evm raises the recursion limit to 100,000
import pytest
import rlp
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpc.errors import TRANSACTION_REJECTIONS
from rpc.methods import RpcMethods
from rpc.server import create_app
from rpc.types import RpcLimits
from tests.rpc.conftest import Rpc
from tests.rpc.twin import BASE_FEE, KEYS, RECIPIENT, TwinBackend, build_chain, checksum, sign

ADDRESS = "0x" + "11" * 20


def still_serving(client: TestClient) -> None:
    reply = client.post("/", json={"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"}).json()
    assert reply["result"] == "0x539"


def deep_params(depth: int) -> bytes:
    """A request whose arrays and objects nest ``depth`` levels deep."""
    request = b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": '
    return request + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def error_of(client: TestClient, body: bytes) -> tuple[int, Any, str]:
    response = client.post("/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["jsonrpc"] == "2.0" and "result" not in reply
    return reply["error"]["code"], reply["id"], reply["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code", "request_id"),
    [
        (b"{", -32700, None),
        (b"", -32700, None),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"', -32700, None),
        (b"\xff\xfe\x00garbage", -32700, None),
        # json.loads reads UTF-16 too: its brackets would pass the nesting check unseen.
        (('["' + "\u4e22" + "\u4e5d" * 2000 + '",' + "[" * 2000).encode("utf-16-le"), -32700, None),
        ('{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}'.encode("utf-16"), -32700, None),
        (b"[" * 100_000 + b"]" * 100_000, -32700, None),
        (deep_params(32), -32602, 1),
        (deep_params(33), -32700, None),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, -32700, None),
        (b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "eth_chainId"}', -32700, None),
        (b"42", -32600, None),
        (b'"eth_chainId"', -32600, None),
        (b"null", -32600, None),
        (b"[]", -32600, None),
        (b'{"id": 1, "method": "eth_chainId"}', -32600, 1),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}', -32600, 1),
        (b'{"jsonrpc": 2.0, "id": 1, "method": "eth_chainId"}', -32600, 1),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600, 1),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 7}', -32600, 1),
        (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": true, "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": 1e999, "method": "eth_chainId"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_nope"}', -32601, 1),
        (b'{"jsonrpc": "2.0", "id": 1, "method": ""}', -32601, 1),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {"a": 1}}', -32602, 1),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": "x"}', -32602, 1),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [1]}', -32602, 1),
    ],
)
def test_malformed_envelopes(client: TestClient, body: bytes, code: int, request_id: Any) -> None:
    got_code, got_id, _ = error_of(client, body)
    assert (got_code, got_id) == (code, request_id)
    still_serving(client)


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        ("eth_getBalance", [], "missing value for required argument 0"),
        ("eth_getBalance", [None], "missing value for required argument 0"),
        ("eth_getBalance", [ADDRESS, "latest", "extra"], "too many arguments, want at most 2"),
        ("eth_getBalance", [1234], "invalid argument 0: expected a 0x-prefixed hex string"),
        ("eth_getBalance", ["0x" + "1" * 39], "invalid argument 0: hex string of odd length"),
        ("eth_getBalance", ["0x" + "11" * 19], "invalid argument 0: hex string has length 38"),
        ("eth_getBalance", ["0x" + "zz" * 20], "invalid argument 0: invalid hex string"),
        ("eth_getBalance", ["11" * 20], "invalid argument 0: hex string without 0x prefix"),
        ("eth_getBalance", [ADDRESS, "-0x1"], "invalid argument 1: hex string without 0x prefix"),
        ("eth_getBalance", [ADDRESS, "0x01"], "invalid argument 1: hex number with leading zero"),
        ("eth_getBalance", [ADDRESS, 5], "invalid argument 1"),
        ("eth_getBalance", [ADDRESS, "newest"], "invalid argument 1"),
        ("eth_getBalance", [ADDRESS, {"blockNumber": "latest", "blockHash": "0x"}], "argument 1"),
        ("eth_getBlockByNumber", ["0x1"], "missing value for required argument 1"),
        ("eth_getBlockByNumber", ["0x1", "true"], "invalid argument 1: expected a boolean"),
        ("eth_getBlockByNumber", [hex(2**64), False], "invalid argument 0: hex number > 64 bits"),
        ("eth_getBlockByHash", ["0x1234", False], "invalid argument 0: hex string has length 4"),
        ("eth_getStorageAt", [ADDRESS, "0x" + "0" * 65], "invalid argument 1"),
        ("eth_getTransactionByHash", [["0x" + "00" * 32]], "invalid argument 0: expected"),
        ("eth_sendRawTransaction", ["0x0"], "invalid argument 0: hex string of odd length"),
        ("eth_sendRawTransaction", [b"\x00".hex()], "invalid argument 0: hex string without 0x"),
        ("eth_call", [], "missing value for required argument 0"),
        ("eth_call", [{"to": ADDRESS, "value": "-0x1"}], "invalid argument 0: value:"),
        ("eth_call", [{"to": ADDRESS, "gas": "0x" + "f" * 17}], "invalid argument 0: gas:"),
        ("eth_getLogs", [{"topics": [["0x12"]]}], "invalid argument 0: topics:"),
        (
            "eth_getLogs",
            [{"fromBlock": "earliest", "toBlock": True}],
            "invalid argument 0: toBlock",
        ),
        ("eth_feeHistory", ["0x1"], "missing value for required argument 1"),
        ("eth_feeHistory", [-1, "latest"], "invalid argument 0: count out of range"),
        ("eth_feeHistory", ["0x1", "latest", [90, 10]], "invalid argument 2"),
        ("web3_sha3", ["hello"], "invalid argument 0: hex string without 0x prefix"),
        ("l2_getBatch", ["one"], "invalid argument 0"),
    ],
)
def test_invalid_params(rpc: Rpc, method: str, params: list[Any], fragment: str) -> None:
    error = rpc.error(method, *params)
    assert error["code"] == -32602
    assert fragment in error["message"]
    still_serving(rpc.client)


def valid_raw() -> bytes:
    tx = sign(KEYS[0], type=2, nonce=2, maxFeePerGas=2 * BASE_FEE, maxPriorityFeePerGas=1,
              gas=21_000, to=checksum(RECIPIENT), value=1)  # fmt: skip
    return tx.raw


def tx_variants() -> Iterator[tuple[str, bytes]]:
    raw = valid_raw()
    yield "empty", b""
    yield "garbage", b"\xde\xad\xbe\xef" * 10
    yield "type 3", b"\x03" + raw[1:]
    yield "type 0x7f", b"\x7f" + raw[1:]
    for cut in (1, 2, len(raw) // 2, len(raw) - 1):
        yield f"truncated to {cut}", raw[:cut]
    yield "trailing byte", raw + b"\x00"
    fields = rlp.decode(raw[1:])
    fields[-1] = fields[-1][:-1] + bytes([fields[-1][-1] ^ 1])
    yield "bad signature", raw[:1] + rlp.encode(fields)
    fields = rlp.decode(raw[1:])
    yield "eleven fields", raw[:1] + rlp.encode(fields[:-1])
    yield "legacy list of lists", rlp.encode([[b"\x01"]] * 9)


@pytest.mark.parametrize(
    "raw", [raw for _, raw in tx_variants()], ids=[name for name, _ in tx_variants()]
)
def test_bad_transaction_bytes(rpc: Rpc, raw: bytes) -> None:
    error = rpc.error("eth_sendRawTransaction", "0x" + raw.hex())
    # Malformed bytes are -32000; a signature that recovers no sender is 1001 (invalid
    # sender), one that recovers a stranger without funds 809 (insufficient funds).
    assert error["code"] in (-32000, 809, 1001), error
    still_serving(rpc.client)


def nested_rlp(depth: int) -> bytes:
    encoded = b"\x80"  # the empty string
    for _ in range(depth):
        encoded = bytes(rlp.codec.length_prefix(len(encoded), 0xC0)) + encoded
    return encoded


def test_deeply_nested_rlp_transaction(rpc: Rpc) -> None:
    error = rpc.error("eth_sendRawTransaction", "0x" + nested_rlp(150_000).hex())
    still_serving(rpc.client)
    assert error["code"] == -32000, error


def test_wallet_rejections(rpc: Rpc) -> None:
    nonce_gap_ok = sign(KEYS[1], nonce=9, gasPrice=BASE_FEE, gas=21_000, to=checksum(RECIPIENT))
    assert (
        rpc("eth_sendRawTransaction", "0x" + nonce_gap_ok.raw.hex())
        == "0x" + nonce_gap_ok.hash.hex()
    )
    again = rpc.error("eth_sendRawTransaction", "0x" + nonce_gap_ok.raw.hex())
    assert again == {"code": 1000, "message": "already known"}


def test_oversize_body() -> None:
    client = TestClient(create_app(build_chain(), RpcLimits(max_body_bytes=1000)))
    big = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": ["0x" + "00" * 600]}
    )
    response = client.post("/", content=big.encode())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600
    assert "too large" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(20):
            yield b" " * 100

    response = client.post("/", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    still_serving(client)
    fits = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": ["0x" + "00" * 400]}
    )
    assert client.post("/", content=fits.encode()).json()["result"]


def test_huge_batch(client: TestClient) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    response = client.post("/", json=[request] * (RpcLimits().max_batch + 1))
    assert response.status_code == 200
    reply = response.json()
    assert isinstance(reply, dict) and reply["error"]["code"] == -32600
    assert str(RpcLimits().max_batch) in reply["error"]["message"]
    full = client.post("/", json=[request] * RpcLimits().max_batch).json()
    assert len(full) == RpcLimits().max_batch
    still_serving(client)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=300))
def test_fuzz_raw_transactions(client: TestClient, raw: bytes) -> None:
    code, _, message = error_of(client, json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
    ).encode())  # fmt: skip
    assert code == -32000, message


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(min_size=1, max_size=300), flips=st.lists(st.integers(0, 10_000), max_size=4))
def test_fuzz_mutated_transactions(client: TestClient, raw: bytes, flips: list[int]) -> None:
    mutated = bytearray(valid_raw())
    for flip in flips:
        mutated[flip % len(mutated)] ^= 1 + flip % 255
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
            "params": ["0x" + bytes(mutated).hex()]}  # fmt: skip
    reply = client.post("/", json=body).json()
    # Refused as a transaction (a catalogue code or -32000), never an internal error.
    refusals = {-32000} | {code for _, code in TRANSACTION_REJECTIONS}
    assert reply.get("error", {}).get("code", -32000) in refusals, reply


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["latest", "pending", "earliest", "0x", "0x0", "0x1", "0x" + "11" * 20, "0x" + "22" * 32])
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["to", "from", "data", "input", "gas", "value", "fromBlock", "toBlock",
                         "blockHash", "blockNumber", "address", "topics"]),
        inner, max_size=4),
    max_leaves=10,
)  # fmt: skip


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=st.sampled_from(sorted(RpcMethods(TwinBackend()).methods)), params=json_values)
def test_fuzz_params_never_crash(client: TestClient, method: str, params: Any) -> None:
    response = client.post(
        "/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    )
    assert response.status_code == 200
    reply = response.json()
    assert reply["id"] == 1
    assert "result" in reply or reply["error"]["code"] != -32603, (method, params, reply)
