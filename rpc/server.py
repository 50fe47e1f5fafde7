"""The JSON-RPC 2.0 server: POST "/" (single and batch requests) and GET "/health".

Whatever a caller sends gets a JSON-RPC answer: malformed input is an error object, never an
HTTP 500, and an unexpected failure is logged with its traceback and answered "internal error".
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from primitives.errors import InvalidInput, InvalidTransaction, RetryLater, TransactionRejected
from rpc.api import NodeBackend
from rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    SERVER_ERROR,
    RpcError,
)
from rpc.methods import EXPENSIVE_METHODS, RpcMethods
from rpc.types import DEFAULT_LIMITS, RpcLimits

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; real requests need about 6."""

logger = logging.getLogger(__name__)

_JSON_MEDIA_TYPE = "application/json"
_EXPENSIVE_NAMES = re.compile(b"|".join(name.encode() for name in sorted(EXPENSIVE_METHODS)))
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def create_app(backend: NodeBackend, limits: RpcLimits = DEFAULT_LIMITS) -> FastAPI:
    """The ASGI app serving ``backend`` (run it with uvicorn; rpc.http.server_config adds
    the connection limits)."""
    methods = RpcMethods(backend, limits)
    max_body_bytes = limits.max_body_bytes
    slots = asyncio.Semaphore(limits.expensive_calls)
    app = FastAPI(title="l2node JSON-RPC", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/")
    async def rpc(request: Request) -> Response:
        try:
            body = await asyncio.wait_for(_read_body(request, max_body_bytes), limits.read_timeout)
        except ClientDisconnect:  # nobody is left to answer; not a server error
            return Response(status_code=400)
        except TimeoutError:  # a body trickling in would hold its memory and a task forever
            message = f"request body not received within {limits.read_timeout:g} s"
            reply = _encode(_error(None, INVALID_REQUEST, message))
            return Response(reply, status_code=408, media_type=_JSON_MEDIA_TYPE,
                            headers={"connection": "close"})
        if body is None:
            message = f"request body too large: at most {max_body_bytes} bytes"
            reply = _encode(_error(None, INVALID_REQUEST, message))
            return Response(reply, status_code=413, media_type=_JSON_MEDIA_TYPE)
        # Backend calls block (storage, EVM): keep them off the event loop. A request for an
        # expensive method waits here, not in a worker thread, for one of the few slots:
        # waiting threads would fill the pool that cheap requests run in.
        if not _EXPENSIVE_NAMES.search(body):
            # An expensive method spelled with escapes lands here and is refused as busy.
            answer = await run_in_threadpool(handle_body, methods, body, limits.max_batch, True)
        elif await _acquire(slots, limits.busy_wait):
            try:
                answer = await run_in_threadpool(handle_body, methods, body, limits.max_batch)
            finally:
                slots.release()
        else:
            answer = await run_in_threadpool(handle_body, methods, body, limits.max_batch, True)
        return Response(answer or b"", media_type=_JSON_MEDIA_TYPE)

    return app


async def _acquire(slots: asyncio.Semaphore, wait: float) -> bool:
    """True once a slot of ``slots`` is held; False after ``wait`` seconds without one."""
    try:
        async with asyncio.timeout(wait):
            await slots.acquire()
    except TimeoutError:
        return False
    return True


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` (read no further then)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def handle_body(
    methods: RpcMethods, body: bytes, max_batch: int, busy: bool = False
) -> bytes | None:
    """The encoded answer to a request body; None when it held only notifications.

    ``busy``: no slot for expensive calls is held; they are answered "server busy".
    """
    try:
        # Only UTF-8 (RFC 8259): json.loads would also take UTF-16 and UTF-32 bytes, whose
        # brackets the nesting check below does not see.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _encode(_error(None, PARSE_ERROR, "parse error: the body is not UTF-8"))
    if _nesting_depth(body) > MAX_JSON_DEPTH:
        message = f"parse error: nested deeper than {MAX_JSON_DEPTH} levels"
        return _encode(_error(None, PARSE_ERROR, message))
    try:
        payload = json.loads(text)
    except ValueError:
        return _encode(_error(None, PARSE_ERROR, "parse error"))
    if not isinstance(payload, list):
        return _handle_request(methods, payload, busy)
    if not payload:
        return _encode(_error(None, INVALID_REQUEST, "empty batch"))
    if len(payload) > max_batch:
        message = f"batch too large: at most {max_batch} requests"
        return _encode(_error(None, INVALID_REQUEST, message))
    replies = _handle_batch(methods, payload, busy)
    return b"[" + b",".join(replies) + b"]" if replies else None


def _nesting_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text, string contents skipped.

    json.loads recurses in C: py-evm (through py_ecc) raises the recursion limit to 100,000, so
    deeply nested input would overflow a worker thread's stack and kill the process instead of
    raising RecursionError. Checked in C-speed passes, before parsing.
    """
    steps = _JSON_STRING.sub(b"", body).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0)


def _valid_id(request_id: object) -> bool:
    if isinstance(request_id, float):
        return math.isfinite(request_id)
    return request_id is None or (
        isinstance(request_id, (str, int)) and not isinstance(request_id, bool)
    )


SEND_RAW_TRANSACTION = "eth_sendRawTransaction"
"""Batched calls of this method are admitted together (see ``_handle_batch``)."""


@dataclass(frozen=True)
class _Call:
    """One well-formed request object."""

    request_id: object
    """Its id (None also for a notification)."""
    method: str
    """The method's name."""
    params: object
    """Its params as sent."""
    notification: bool
    """True when it has no "id": it gets no answer."""


def _parse_call(request: object) -> _Call | bytes:
    """The call a request object makes, or the encoded error answer to a malformed one."""
    if not isinstance(request, dict):
        return _encode(_error(None, INVALID_REQUEST, "invalid request: expected an object"))
    request_id = request.get("id")
    if not _valid_id(request_id):
        message = "invalid request: id must be a string, a number or null"
        return _encode(_error(None, INVALID_REQUEST, message))
    if request.get("jsonrpc") != "2.0":
        message = 'invalid request: jsonrpc must be "2.0"'
        return _encode(_error(request_id, INVALID_REQUEST, message))
    method = request.get("method")
    if not isinstance(method, str):
        message = "invalid request: method must be a string"
        return _encode(_error(request_id, INVALID_REQUEST, message))
    return _Call(request_id, method, request.get("params"), "id" not in request)


def _handle_request(methods: RpcMethods, request: object, busy: bool) -> bytes | None:
    """The encoded answer to one request object; None for a notification (no "id")."""
    call = _parse_call(request)
    if isinstance(call, bytes):
        return call
    return _answer(call, _run(methods, call, busy))


def _handle_batch(methods: RpcMethods, requests: list[object], busy: bool) -> list[bytes]:
    """The answers to a batch, in order. Its eth_sendRawTransaction calls are admitted
    together: one decoding pass and one durable write for all of them, not one each."""
    calls = [_parse_call(request) for request in requests]
    sends = [c for c in calls if isinstance(c, _Call) and c.method == SEND_RAW_TRANSACTION]
    sent = iter(methods.send_raw_transactions([c.params for c in sends]) if sends else ())
    replies: list[bytes] = []
    for call in calls:
        if isinstance(call, bytes):
            replies.append(call)
            continue
        outcome = (
            next(sent) if call.method == SEND_RAW_TRANSACTION else _run(methods, call, busy)
        )
        reply = _answer(call, outcome)
        if reply is not None:
            replies.append(reply)
    return replies


def _run(methods: RpcMethods, call: _Call, busy: bool) -> object | Exception:
    """The result of ``call``, or the exception it raised."""
    try:
        return methods.dispatch(call.method, call.params, busy)
    except Exception as exc:  # noqa: BLE001 -- every failure becomes an error object
        return exc


def _answer(call: _Call, outcome: object | Exception) -> bytes | None:
    """The encoded answer carrying ``outcome``; None for a notification."""
    if call.notification:
        return None
    if isinstance(outcome, Exception):
        reply = _error(call.request_id, *_error_of(outcome, call.method))
    else:
        reply = {"jsonrpc": "2.0", "id": call.request_id, "result": outcome}
    try:
        return _encode(reply)
    # A result JSON cannot hold (NaN, a cycle) is our bug, not the caller's.
    except ValueError as exc:
        logger.error("cannot encode the result of %s", call.method, exc_info=exc)
        return _encode(_error(call.request_id, INTERNAL_ERROR, "internal error"))


def _error_of(exc: Exception, method: str) -> tuple[int, str, str | None]:
    """JSON-RPC code, message and data for an exception raised while running ``method``."""
    if isinstance(exc, RpcError):
        return exc.code, exc.message, exc.data
    # geth answers rejected transactions with -32000 and its own wording, which wallets match.
    if isinstance(exc, (InvalidTransaction, TransactionRejected, RetryLater)):
        return SERVER_ERROR, str(exc) or type(exc).__name__, None
    if isinstance(exc, InvalidInput):
        return INVALID_PARAMS, str(exc) or "invalid params", None
    logger.error("internal error in %s", method, exc_info=exc)
    return INTERNAL_ERROR, "internal error", None


def _error(
    request_id: object, code: int, message: str, data: str | None = None
) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _encode(reply: dict[str, object]) -> bytes:
    return json.dumps(reply, separators=(",", ":"), allow_nan=False).encode()
