"""A front: a process that serves the node's public JSON-RPC port beside other fronts, so
that HTTP, JSON and the answers of ``eth_sendRawTransaction`` run on other cores than the
node's interpreter.

A front answers by itself what needs no node state: malformed bodies, and bodies that are
only ``eth_sendRawTransaction`` calls, whose raw transactions it hands the node in one binary
frame (rpc/frames.py) and whose hashes or refusals it answers. Every other request (reads,
mixed batches, /health, /ready) and every WebSocket goes to the node over its private Unix
socket as it came, so filters and subscriptions live in one place and every answer is the
node's own. The node admits a front's transactions as its own RPC's: durably before the
answer, with the same rules and wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Response, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed

from primitives.coalesce import Coalescer
from primitives.errors import InvalidInput
from primitives.types import Hash32
from rpc.errors import SERVER_ERROR, RpcError
from rpc.frames import ADMIT_PATH, FRAME_TYPE, decode_outcomes, encode_raws
from rpc.server import (
    JSON_MEDIA_TYPE,
    NotSends,
    answer_sends,
    app_shell,
    json_response,
    parse_body,
    refusal,
)
from rpc.types import RpcLimits
from rpc.ws import accepted

FRAMES_IN_FLIGHT = 4
"""Frames a front has the node admitting at once (the node admits two at a time)."""
UNAVAILABLE = "node unavailable, retry later"
"""What a caller is told while the node does not answer its front."""


@dataclass(frozen=True)
class Reply:
    """The node's HTTP answer to a forwarded request."""

    status: int
    """HTTP status."""
    content_type: str
    """Its Content-Type ("" when none)."""
    body: bytes
    """Its body."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("l2node", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Upstream:
    """HTTP/1.1 to the node's private socket ``path``, on keep-alive connections kept for
    the threads that use them (blocking calls: run them in worker threads)."""

    def __init__(self, path: str, timeout: float, idle: float) -> None:
        self.path = path
        """The node's private Unix socket."""
        self._timeout = timeout
        self._idle = idle
        self._free: list[tuple[_UnixConnection, float]] = []
        self._lock = threading.Lock()

    def request(self, method: str, target: str, body: bytes | None = None,
                content_type: str = JSON_MEDIA_TYPE) -> Reply:
        """The node's answer; OSError or HTTPException when it gave none.

        Never sent twice: a request may have been acted on (transactions admitted) when its
        answer is lost. A kept connection the node may have closed as idle is not used."""
        connection = self._take()
        try:
            headers = {"Content-Type": content_type} if body is not None else {}
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            reply = Reply(response.status, response.getheader("content-type", ""), response.read())
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._free.append((connection, time.monotonic()))
        return reply

    def admit(self, raws: Sequence[bytes]) -> list[Hash32 | RpcError]:
        """Each raw transaction's hash once the node admitted it, or the error answered for
        it (the node's, or "unavailable" when the node did not answer)."""
        try:
            reply = self.request("POST", ADMIT_PATH, encode_raws(raws), FRAME_TYPE)
            if reply.status != 200:
                raise InvalidInput(f"the node answered {reply.status}: {reply.body[:200]!r}")
            return decode_outcomes(reply.body, len(raws))
        except (OSError, http.client.HTTPException, InvalidInput):
            # Whether the node admitted them is unknown: a retry answers "already known".
            return [RpcError(SERVER_ERROR, UNAVAILABLE)] * len(raws)

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for connection, _ in free:
            connection.close()

    def _take(self) -> _UnixConnection:
        now = time.monotonic()
        with self._lock:
            while self._free:
                connection, since = self._free.pop()
                if now - since < self._idle:
                    return connection
                connection.close()
        return _UnixConnection(self.path, self._timeout)


def create_front_app(upstream: Upstream, limits: RpcLimits, *, cors: Sequence[str] = ("*",),
                     hosts: Sequence[str] = ("*",)) -> FastAPI:
    """The ASGI app of a front to the node behind ``upstream``, with the node's ``limits``
    on what a caller may send, its CORS origins and its accepted Host headers."""

    # Concurrent callers' transactions go to the node together: a wallet sends one at a time,
    # and each frame costs the node's interpreter a request.
    admit = Coalescer(upstream.admit, "front-admit", threads=FRAMES_IN_FLIGHT)

    def answer(body: bytes) -> Response:
        payload = parse_body(body, limits.max_batch)
        if isinstance(payload, bytes):
            return json_response(payload)
        reply = answer_sends(payload, admit)
        if reply is NotSends.NOT_SENDS:
            return forward("POST", "/", body)
        return json_response(reply)

    def forward(method: str, target: str, body: bytes | None = None) -> Response:
        try:
            reply = upstream.request(method, target, body)
        except (OSError, http.client.HTTPException):
            return refusal(503, SERVER_ERROR, UNAVAILABLE)
        return Response(reply.body, status_code=reply.status,
                        media_type=reply.content_type or None)

    async def answer_later(body: bytes) -> Response:
        return await run_in_threadpool(answer, body)

    app = app_shell(limits, cors, hosts, answer_later)

    @app.get("/health")
    async def health() -> Response:
        return await run_in_threadpool(forward, "GET", "/health")

    @app.get("/ready")
    async def ready() -> Response:
        return await run_in_threadpool(forward, "GET", "/ready")

    @app.websocket("/")
    async def websocket(client: WebSocket) -> None:
        if not await accepted(client, cors):
            return
        try:
            # The client's messages are held to the limit by this front's server; the node's
            # (a large eth_getLogs answer, say) are not, as when it serves the port itself.
            async with unix_connect(upstream.path, "ws://l2node/", max_size=None) as node:
                await _relay(client, node)
        except (OSError, ConnectionClosed, TimeoutError):
            with contextlib.suppress(RuntimeError):  # already closed
                await client.close(code=1011)  # the node went away

    return app


async def _relay(client: WebSocket, node: ClientConnection) -> None:
    """Pass messages both ways until either side closes; then close the other, with the
    node's close code when it was the node that closed."""

    async def to_node() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            await node.send(message.get("text") or message.get("bytes") or b"")

    async def to_client() -> None:
        async for message in node:
            if isinstance(message, str):
                await client.send_text(message)
            else:
                await client.send_bytes(message)

    upward, downward = asyncio.create_task(to_node()), asyncio.create_task(to_client())
    try:
        done, _ = await asyncio.wait((upward, downward), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (upward, downward):
            task.cancel()
    # The client left (its disconnect came up) unless the node closed or a send failed.
    client_left = upward in done and upward.exception() is None
    if downward in done:
        downward.exception()  # retrieved: a closed node connection is an end like any other
    if not client_left:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await client.close(code=node.close_code or 1011)
    await node.close()
