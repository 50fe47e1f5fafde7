"""`l2node run` with RPC fronts ([rpc] fronts): the public port answers as the node itself
does, transactions the fronts admit are the node's (durable, in blocks), WebSocket
subscriptions pass through, a dead front is started again, and fronts do not outlive their
node."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from eth_account import Account
from websockets.sync.client import connect

from node.genesis import development_keys
from tests.nodeproc import TEST_CONFIG, NodeProcess, post_json, running_node

MNEMONIC = "test test test test test test test test test test test junk"
FRONTS_CONFIG = TEST_CONFIG + "[rpc]\nfronts = 2\n"
RARE_BLOCKS = FRONTS_CONFIG.replace("block_time = 0.25", "block_time = 3600")


def _front_pids(node: NodeProcess) -> list[int]:
    """The node's front processes, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == node.process.pid and b"node.front" in command:
            pids.append(int(entry.name))
    return sorted(pids)


def _private(data_dir: Path, body: bytes, target: str = "/") -> tuple[int, bytes]:
    """POST ``body`` to the node itself, on its private socket (what its fronts do)."""
    connection = http.client.HTTPConnection("l2node")
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.connect(str(data_dir / "rpc.sock"))
    connection.request("POST", target, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    reply = response.status, response.read()
    connection.close()
    return reply


def _public(node: NodeProcess, body: bytes) -> tuple[int, bytes]:
    host, port = node.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    reply = response.status, response.read()
    connection.close()
    return reply


def _transfer(key: bytes, nonce: int, value: int = 1) -> str:
    tx = {"chainId": 7331, "nonce": nonce, "to": "0x" + "34" * 20, "value": value, "gas": 21_000,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()


@contextmanager
def _fronted(tmp_path: Path, config: str) -> Iterator[tuple[NodeProcess, Path]]:
    data_dir = tmp_path / "node"
    with running_node(data_dir, config=config) as node:
        deadline = time.monotonic() + 30
        while len(_front_pids(node)) < 2:
            assert time.monotonic() < deadline, f"fronts did not start:\n{node.log_tail()}"
            time.sleep(0.1)
        yield node, data_dir


@pytest.fixture
def fronted(tmp_path: Path) -> Iterator[tuple[NodeProcess, Path]]:
    with _fronted(tmp_path, FRONTS_CONFIG) as running:
        yield running


@pytest.fixture
def fronted_no_blocks(tmp_path: Path) -> Iterator[tuple[NodeProcess, Path]]:
    """Blocks so rare that what was sent stays pending: the same body gets the same answer
    from a front and from the node, whichever asks first."""
    with _fronted(tmp_path, RARE_BLOCKS) as running:
        yield running


def test_fronts_answer_as_the_node_does(fronted_no_blocks: tuple[NodeProcess, Path]) -> None:
    node, data_dir = fronted_no_blocks
    key = development_keys(MNEMONIC, 4)[3]
    # Answered by a front alone: malformed bodies and transactions; the node's own answer to
    # the same body (on its private socket) is the same, byte for byte.
    for body in [
        b"garbage", b"[]", b'{"jsonrpc":"2.0","id":7,"method":"eth_sendRawTransaction","params":["0x02"]}',
        (b'[{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0xzz"]},'
         b'{"jsonrpc":"2.0","id":"b","method":"eth_sendRawTransaction"}]'),
        b'{"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["0x02"]}',  # notification
        json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                     "params": [_transfer(key, 0, 10**30)]}]).encode(),  # more than it has
    ]:
        assert _public(node, body) == _private(data_dir, body), body

    raw = _transfer(key, 0)
    sent = post_json(node.url, {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]})
    tx_hash = sent["result"]
    again = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": [raw]}).encode()
    assert _public(node, again) == _private(data_dir, again)
    assert b"already known" in _public(node, again)[1]
    # Reads and mixed batches are the node's: the transaction is pending, then in a block.
    mixed = post_json(node.url, [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [_transfer(key, 1)]},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getTransactionCount", "params": ["0x" + Account.from_key(key).address[2:], "pending"]},
    ])
    assert "result" in mixed[0] and mixed[1]["result"] == "0x2", mixed
    pending = node.rpc("eth_getTransactionByHash", [tx_hash])["result"]
    assert pending["hash"] == tx_hash and pending["blockNumber"] is None
    with urllib.request.urlopen(node.url + "/ready", timeout=30) as ready:
        assert json.loads(ready.read())["ready"] is True


def test_websocket_subscriptions_pass_through_a_front(fronted: tuple[NodeProcess, Path]) -> None:
    node, _ = fronted
    with connect(node.url.replace("http://", "ws://"), open_timeout=10) as socket_:
        socket_.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
        subscription = json.loads(socket_.recv(timeout=10))["result"]
        head = json.loads(socket_.recv(timeout=10))
        assert head["params"]["subscription"] == subscription
        assert int(head["params"]["result"]["number"], 16) > 0
        socket_.send("not json")
        assert json.loads(socket_.recv(timeout=10))["error"]["code"] == -32700


def test_a_dead_front_is_started_again_and_fronts_die_with_the_node(fronted: tuple[NodeProcess, Path]) -> None:
    node, _ = fronted
    first = _front_pids(node)
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while len(now := _front_pids(node)) < 2 or first[0] in now:
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.1)
    assert "RPC front 0 exited" in node.log_tail() or "RPC front 1 exited" in node.log_tail()
    for _ in range(20):  # whichever process takes the connection answers
        assert "result" in node.rpc("eth_blockNumber")
    fronts = _front_pids(node)
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and b"node.front" in Path(f"/proc/{pid}/cmdline").read_bytes()
              for pid in fronts):
        assert time.monotonic() < deadline, "a front outlived its node"
        time.sleep(0.1)


def test_transactions_a_front_accepted_survive_sigkill_of_the_node(tmp_path: Path) -> None:
    key = development_keys(MNEMONIC, 5)[4]
    data_dir = tmp_path / "node"
    with running_node(data_dir, config=RARE_BLOCKS) as node:
        sent = post_json(node.url, [
            {"jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction", "params": [_transfer(key, n, 1 + n)]}
            for n in range(5)
        ])
        hashes = [reply["result"] for reply in sent]
        node.process.send_signal(signal.SIGKILL)  # the fronts answered: the node wrote them
        node.process.wait(timeout=10)

    with running_node(data_dir) as node:  # no fronts: the node alone, from its database
        # Each one kept through SIGKILL, and included.
        assert all(receipt["status"] == "0x1" for receipt in node.receipts(hashes))
