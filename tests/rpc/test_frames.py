"""The binary frames between RPC fronts and the node (rpc/frames.py), how many fronts "auto"
runs, and the node's private socket they reach it on."""

from __future__ import annotations

import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from node.config import RpcConfig
from node.front import Fronts, PrivateSocket, front_count
from primitives.coalesce import Coalescer
from primitives.crypto import keccak256
from primitives.errors import InvalidInput
from primitives.types import Hash32
from rpc import front
from rpc.errors import RpcError
from rpc.frames import (
    ADMIT_PATH,
    FRAME_TYPE,
    decode_outcomes,
    decode_raws,
    encode_outcomes,
    encode_raws,
)
from rpc.front import FRAMES_IN_FLIGHT, UNAVAILABLE, Upstream, create_front_app
from rpc.server import create_app
from rpc.types import DEFAULT_LIMITS
from tests.rpc.twin import CHAIN_ID, build_chain


def test_raws_round_trip() -> None:
    raws = [b"", b"\x02" * 300, bytes(range(256)) * 70]
    assert decode_raws(encode_raws(raws)) == raws
    assert decode_raws(b"") == [] and decode_raws(encode_raws([])) == []


@pytest.mark.parametrize("frame", [
    b"\x00\x00",  # a count cut short
    b"\x00\x00\x00\x05abc",  # fewer lengths than the count
    b"\x00\x00\x00\x01a\x00",
    b"\x00\x00\x00\x01\x00\x00\x00\x05abc",  # a transaction cut short
    b"\x00\x00\x00\x01\x00\x00\x00\x01ab",  # bytes after the last one
    b"\x00\x00\x00\x00x",
    b"\xff\xff\xff\xff",  # a count no frame holds
])
def test_truncated_raws_are_refused(frame: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_raws(frame)


def test_outcomes_round_trip() -> None:
    outcomes: list[Hash32 | RpcError] = [
        Hash32(b"\x11" * 32), RpcError(-32000, "nonce too low: address 0x12, tx: 0 state: 1"),
        RpcError(3, "execution reverted", "0x08c379a0"), Hash32(b"\x01" * 32),
    ]
    decoded = decode_outcomes(encode_outcomes(outcomes), len(outcomes))
    assert [o if isinstance(o, bytes) else (o.code, o.message, o.data) for o in decoded] == [
        o if isinstance(o, bytes) else (o.code, o.message, o.data) for o in outcomes
    ]
    admitted = [Hash32(bytes([i]) * 32) for i in range(5)]  # every one a hash: joined at once
    assert decode_outcomes(encode_outcomes(admitted), 5) == admitted
    assert encode_outcomes([]) == b"" and decode_outcomes(b"", 0) == []


@pytest.mark.parametrize("frame, count", [
    (b"\x00" + b"\x11" * 32, 2),  # fewer outcomes than transactions
    (b"\x00" + b"\x11" * 31, 1),  # a truncated hash
    (b"\x02" + b"\x11" * 32, 1),  # an unknown tag
    (b"\x01\x00\x00\x00\x02[]", 1),  # an error without its three fields
    (b"\x01\x00\x00\x00\x03abc", 1),  # an error that is not JSON
])
def test_malformed_outcomes_are_refused(frame: bytes, count: int) -> None:
    with pytest.raises(InvalidInput):
        decode_outcomes(frame, count)


def test_auto_fronts_leave_small_machines_alone() -> None:
    assert [front_count("auto", cores) for cores in (1, 2, 4, 7, 8, 16, 64, 128)] == [0, 0, 0, 0, 1, 3, 8, 8]
    assert front_count(5, 2) == 5


def test_the_private_socket_moves_out_of_a_data_dir_too_deep_for_a_unix_socket(tmp_path: Path) -> None:
    shallow = PrivateSocket(tmp_path)
    assert shallow.path == tmp_path / "rpc.sock" and stat.S_IMODE(shallow.path.stat().st_mode) == 0o600
    shallow.remove()
    assert not shallow.path.exists()
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    moved = PrivateSocket(deep)
    assert moved.path.parent != deep and stat.S_IMODE(moved.path.parent.stat().st_mode) == 0o700
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(moved.path))
    client.close()
    moved.remove()
    assert not moved.path.parent.exists()


def test_a_front_whose_node_does_not_answer_says_so_and_still_answers_malformed_input(tmp_path: Path) -> None:
    client = TestClient(create_front_app(Upstream(str(tmp_path / "gone.sock"), 5, 10), DEFAULT_LIMITS))
    read = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
    assert read.status_code == 503 and read.json()["error"] == {"code": -32000, "message": UNAVAILABLE}
    sent = client.post("/", json=[{"jsonrpc": "2.0", "id": 4, "method": "eth_sendRawTransaction", "params": ["0x02"]}])
    assert sent.json() == [{"jsonrpc": "2.0", "id": 4, "error": {"code": -32000, "message": UNAVAILABLE}}]
    garbage = client.post("/", content=b"{")
    assert garbage.status_code == 200 and garbage.json()["error"]["code"] == -32700
    assert client.get("/ready").status_code == 503


def test_a_front_that_cannot_run_is_restarted_at_most_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("node.front.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("node.front.sys.executable", "/bin/false")  # exits at once
    listener = socket.socket()
    fronts = Fronts(1, listener, tmp_path / "rpc.sock", RpcConfig())
    try:
        for step in range(12):  # the node checks every second
            fronts.start()
            fronts._processes[0].wait(5)  # type: ignore[union-attr]
            clock[0] += 1.0
        restarts = [r for r in caplog.records if "starting it again" in r.getMessage()]
        assert len(restarts) == 2  # at seconds 5 and 10 of 12
    finally:
        listener.close()


def test_node_admits_a_frame_on_its_private_app() -> None:
    """ADMIT_PATH takes a transactions frame and answers an outcomes frame; a malformed
    frame, another method or an oversized body get a plain HTTP error; everything else
    still reaches the JSON-RPC app."""
    limits = replace(DEFAULT_LIMITS, max_body_bytes=10_000)
    client = TestClient(create_app(build_chain(), limits, private=True))
    answer = client.post(ADMIT_PATH, content=encode_raws([b"\x02\xc0", b"junk"]))
    assert answer.status_code == 200 and answer.headers["content-type"] == FRAME_TYPE
    outcomes = decode_outcomes(answer.content, 2)
    assert all(isinstance(outcome, RpcError) for outcome in outcomes)
    assert client.post(ADMIT_PATH, content=b"\x00\x00\x00\x09abc").status_code == 400
    assert client.get(ADMIT_PATH).status_code == 405
    assert client.post(ADMIT_PATH, content=encode_raws([b"\x00" * 10_000])).status_code == 413
    rpc = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert rpc.json()["result"] == hex(CHAIN_ID)
    # Only the node's private app takes frames.
    public = TestClient(create_app(build_chain(), limits))
    assert public.post(ADMIT_PATH, content=encode_raws([b"junk"])).status_code in (404, 405)


class _HeldNode(Upstream):
    """A node behind a front that holds every frame until released; it records them."""

    def __init__(self) -> None:
        super().__init__("unused.sock", 5, 10)
        self.frames: list[list[bytes]] = []
        self.release = threading.Event()

    def admit(self, raws: Sequence[bytes]) -> list[Hash32 | RpcError]:
        self.frames.append(list(raws))
        self.release.wait(10)
        return [Hash32(keccak256(raw)) for raw in raws]


class _CountedCoalescer(Coalescer[bytes, "Hash32 | RpcError"]):
    """The front's coalescer, telling how many transactions wait for a frame."""

    made: ClassVar[list[_CountedCoalescer]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made.append(self)

    def queued(self) -> int:
        with self._cond:
            return sum(len(items) for items, _ in self._queue)


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_front_sends_concurrent_callers_transactions_to_its_node_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While frames are in flight, single-transaction calls queue and go in one frame; each
    caller still gets its own transaction's hash."""
    monkeypatch.setattr(front, "Coalescer", _CountedCoalescer)
    _CountedCoalescer.made.clear()
    node = _HeldNode()
    client = TestClient(create_front_app(node, DEFAULT_LIMITS))
    (admit,) = _CountedCoalescer.made
    raws = [bytes([2, n]) for n in range(12)]
    early, late = raws[:FRAMES_IN_FLIGHT], raws[FRAMES_IN_FLIGHT:]

    def send(raw: bytes) -> object:
        call = {"jsonrpc": "2.0", "id": raw[1], "method": "eth_sendRawTransaction",
                "params": ["0x" + raw.hex()]}
        return client.post("/", json=call).json()

    with ThreadPoolExecutor(len(raws)) as pool:
        answers = []
        for raw in early:  # one frame each, held by the node: every frame slot is taken
            answers.append(pool.submit(send, raw))
            _wait_until(lambda: len(node.frames) == len(answers))
        answers += [pool.submit(send, raw) for raw in late]
        _wait_until(lambda: admit.queued() == len(late))
        node.release.set()
        for raw, answer in zip(raws, answers, strict=True):
            assert answer.result(10) == {"jsonrpc": "2.0", "id": raw[1],
                                         "result": "0x" + keccak256(raw).hex()}
    assert node.frames[:FRAMES_IN_FLIGHT] == [[raw] for raw in early]
    assert len(node.frames) == FRAMES_IN_FLIGHT + 1 and sorted(node.frames[-1]) == late
