"""The JSON-RPC 2.0 server: POST "/" (single and batch requests), WebSocket "/" (the same,
plus eth_subscribe; rpc/ws.py), CORS, GET "/health" (liveness) and GET "/ready" (readiness:
200, or 503 with the reasons).

Whatever a caller sends gets a JSON-RPC answer: malformed input is an error object, never an
HTTP 500, and an unexpected failure is logged with its traceback and answered "internal error".
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import json
import logging
import math
import re
import threading
from array import array
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from executor_gpu.types import Deadline
from primitives.clock import Clock, SystemClock
from primitives.coalesce import Coalescer
from primitives.errors import (
    InvalidInput,
    InvalidTransaction,
    L2NodeError,
    RetryLater,
    TransactionRejected,
)
from primitives.types import Hash32
from rpc.api import NodeBackend
from rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    SERVER_ERROR,
    TRANSACTION_REJECTIONS,
    RpcError,
    code_by_phrase,
)
from rpc.filters import FilterTable
from rpc.frames import ADMIT_PATH, FRAME_TYPE, decode_raws, encode_outcomes
from rpc.methods import Admit, ExpensiveMethod, RpcMethods, send_raw_transactions
from rpc.types import DEFAULT_LIMITS, Readiness, RpcLimits
from rpc.ws import EventHub, serve_websocket

SMALL_BODY_BYTES = 64 * 1024
"""Bodies up to this size do not count against RpcLimits.body_memory."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; real requests need about 6."""

logger = logging.getLogger(__name__)

try:  # glibc: give freed heap memory back to the system
    _malloc_trim: Callable[[int], int] | None = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # another C library: nothing to call
    _malloc_trim = None

JSON_MEDIA_TYPE = "application/json"
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def create_app(
    backend: NodeBackend,
    limits: RpcLimits = DEFAULT_LIMITS,
    stopping: threading.Event | None = None,
    *,
    cors: Sequence[str] = ("*",),
    hosts: Sequence[str] = ("*",),
    clock: Clock | None = None,
    readiness: Callable[[], Readiness] = lambda: Readiness(()),
    private: bool = False,
) -> FastAPI:
    """The ASGI app serving ``backend`` (run it with uvicorn; rpc.http.server_config adds
    the connection limits). Setting ``stopping`` stops running eth_calls at once.

    ``cors``: origins browsers may call from ("*": any); ``hosts``: Host headers accepted
    ("*": any); ``clock`` times out idle filters (default: the system's); ``readiness``
    answers /ready. ``private``: also take the front processes' transactions (ADMIT_PATH,
    rpc/front.py), for an app served only where nobody else can connect.
    """
    filters = FilterTable(clock or SystemClock())
    methods = RpcMethods(backend, limits, stopping, filters)
    hub = EventHub(backend, filters)
    backend.subscribe(hub)
    # Quoted, as a method's name is in JSON: the search then starts only at quotes, 9x faster
    # over a batch of 200 raw transactions (60 KB: 0.06 against 0.54 ms).
    expensive_names = re.compile(b'"(?:' + b"|".join(
        re.escape(name.encode()) for name, method in sorted(methods.methods.items())
        if isinstance(method, ExpensiveMethod)
    ) + b')"')
    max_body_bytes = limits.max_body_bytes
    slots = asyncio.Semaphore(limits.expensive_calls)
    async def answer(body: bytes) -> Response:
        return json_response(await respond(methods, body))

    async def respond(to: RpcMethods, body: bytes) -> bytes | None:
        # Backend calls block (storage, EVM): keep them off the event loop. A request for an
        # expensive method waits here, not in a worker thread, for one of the few slots:
        # waiting threads would fill the pool that cheap requests run in. (Such a method
        # spelled with escapes is not seen here, gets no slot, and is answered "busy".)
        # HTTP requests and WebSocket messages share the slots.
        slot = bool(expensive_names.search(body)) and await _acquire(slots, limits.busy_wait)
        try:
            return await run_in_threadpool(handle_body, to, body, limits.max_batch, slot)
        finally:
            if slot:
                slots.release()

    app = app_shell(limits, cors, hosts, answer)

    @app.websocket("/")
    async def websocket(socket: WebSocket) -> None:
        await serve_websocket(socket, methods, hub, respond, max_body_bytes, cors)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/ready")
    async def ready() -> Response:
        state = readiness()
        body = {"ready": state.ready, "reasons": list(state.reasons), **dict(state.details)}
        return Response(_encode(body), status_code=200 if state.ready else 503,
                        media_type=JSON_MEDIA_TYPE)

    if private:
        # The fronts' callers wait while at most two threads admit what queued up: dozens of
        # admitting threads took the interpreter's lock from the block path.
        app.add_middleware(_AdmitFrames, admit=Coalescer(backend.send_raw_transactions, "admission"),
                           max_bytes=max_body_bytes)

    return app


class _AdmitFrames:
    """POST ADMIT_PATH: a front's transactions frame, answered with their outcomes frame.

    Plain ASGI ahead of the app's routing and middleware: a front sends one such request per
    batch of its callers', and the node's interpreter is the one the block path runs on.
    Any other request goes on to the app."""

    def __init__(self, app: ASGIApp, admit: Admit, max_bytes: int) -> None:
        self._app = app
        self._admit = admit
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ADMIT_PATH:
            await self._app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _reply(send, 405, b"POST only", b"text/plain")
            return
        try:
            body = await Request(scope, receive).body()
        except ClientDisconnect:  # the front went away: nobody to answer
            return
        if len(body) > self._max_bytes:  # a front holds its callers to the limit already
            await _reply(send, 413, b"frame too large", b"text/plain")
            return
        try:
            raws = decode_raws(body)
        except InvalidInput as exc:
            await _reply(send, 400, str(exc).encode(), b"text/plain")
            return
        outcomes = await run_in_threadpool(self._admit, raws)
        await _reply(send, 200, encode_outcomes(admission_answers(outcomes)), _FRAME_TYPE)


_FRAME_TYPE = FRAME_TYPE.encode()


async def _reply(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


def app_shell(
    limits: RpcLimits, cors: Sequence[str], hosts: Sequence[str],
    answer: Callable[[bytes], Awaitable[Response]],
) -> FastAPI:
    """An app with the CORS and Host checks, OPTIONS, and POST "/" answered by ``answer``
    with the request body, read within ``limits``; the caller adds the rest."""
    memory = _BodyMemory(limits.body_memory)
    app = FastAPI(title="l2node JSON-RPC", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"], max_age=600,
    )
    if "*" not in hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))

    @app.options("/")
    async def options() -> Response:
        # A preflight is answered by CORSMiddleware; a bare OPTIONS learns what is allowed.
        return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})

    @app.post("/")
    async def rpc(request: Request) -> Response:
        held = _Held(memory)
        try:
            async with asyncio.timeout(limits.read_timeout):
                body = await _read_body(request, limits.max_body_bytes, held)
            return await answer(body)
        except ClientDisconnect:  # nobody is left to answer; not a server error
            return Response(status_code=400)
        except TimeoutError:  # a body trickling in would hold its memory and a task forever
            message = f"request body not received within {limits.read_timeout:g} s"
            return refusal(408, INVALID_REQUEST, message)
        except _Refused as refused:
            return refusal(refused.status, refused.code, str(refused))
        finally:
            await held.release()

    return app


def json_response(reply: bytes | None) -> Response:
    """An answer's HTTP response (empty for notifications alone)."""
    return Response(reply or b"", media_type=JSON_MEDIA_TYPE)


async def _acquire(slots: asyncio.Semaphore, wait: float) -> bool:
    """True once a slot of ``slots`` is held; False after ``wait`` seconds without one."""
    try:
        async with asyncio.timeout(wait):
            await slots.acquire()
    except TimeoutError:
        return False
    return True


class _Refused(Exception):
    """A request refused before it is parsed: HTTP status, JSON-RPC code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def refusal(status: int, code: int, message: str) -> Response:
    """An HTTP ``status`` answer carrying a JSON-RPC error (id null), closing the connection."""
    reply = _encode(_error(None, code, message))
    return Response(reply, status_code=status, media_type=JSON_MEDIA_TYPE,
                    headers={"connection": "close"})


class _BodyMemory:
    """Bytes of large request bodies held at once, from their reading to their answer.

    Past ``limit`` a further large body is refused "server busy". When the last large one
    is answered, freed memory goes back to the system: glibc keeps freed multi-megabyte
    buffers for reuse (200 bodies of 4.9 MB at once left RSS 350 MB higher for good).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """Most bytes held at once."""
        self.held = 0
        """Bytes held now."""

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes; False when that would pass the limit."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True


class _Held:
    """What one request holds of a _BodyMemory."""

    def __init__(self, memory: _BodyMemory) -> None:
        self._memory = memory
        self.size = 0
        """Bytes held (0 while the body is small)."""

    def add(self, size: int, total: int) -> bool:
        """Account for a chunk of ``size`` that brings the body to ``total`` bytes; small
        bodies are free. False when the memory for it is not there."""
        if total <= SMALL_BODY_BYTES:
            return True
        grown = total - self.size
        if not self._memory.take(grown):
            return False
        self.size += grown
        return True

    async def release(self) -> None:
        if not self.size:
            return
        self._memory.held -= self.size
        self.size = 0
        if self._memory.held == 0 and _malloc_trim is not None:
            await asyncio.to_thread(_malloc_trim, 0)


async def _read_body(request: Request, limit: int, held: _Held) -> bytes:
    """The request body; _Refused when it is longer than ``limit`` (read no further then) or
    no memory for it is left."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refused(413, INVALID_REQUEST, f"request body too large: at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                message = f"request body too large: at most {limit} bytes"
                raise _Refused(413, INVALID_REQUEST, message)
            if not held.add(len(chunk), size):
                message = "server busy: too many large requests, retry later"
                raise _Refused(503, LIMIT_EXCEEDED, message)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        # A raised exception keeps this frame alive through its traceback, and asyncio's
        # exceptions sit in reference cycles that only the cyclic GC frees, at its leisure.
        chunks.clear()


def handle_body(
    methods: RpcMethods, body: bytes, max_batch: int, slot: bool = True
) -> bytes | None:
    """The encoded answer to a request body; None when it held only notifications.

    ``slot``: the caller holds a slot for expensive methods, which share one deadline
    (a batch of them as much as one); without a slot they are answered "server busy".
    """
    payload = parse_body(body, max_batch)
    if isinstance(payload, bytes):
        return payload
    deadline = methods.new_deadline() if slot else None
    if isinstance(payload, list):
        replies = _handle_batch(methods, payload, deadline)
        return b"[" + b",".join(replies) + b"]" if replies else None
    return _handle_request(methods, payload, deadline)


def parse_body(body: bytes, max_batch: int) -> object | bytes:
    """The JSON a request body holds (a batch: a non-empty list of at most ``max_batch``), or
    the encoded error answer (bytes) when it is not one."""
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
        payload: object = json.loads(text)
    except ValueError:
        return _encode(_error(None, PARSE_ERROR, "parse error"))
    if isinstance(payload, list):
        if not payload:
            return _encode(_error(None, INVALID_REQUEST, "empty batch"))
        if len(payload) > max_batch:
            message = f"batch too large: at most {max_batch} requests"
            return _encode(_error(None, INVALID_REQUEST, message))
    return payload


class NotSends(enum.Enum):
    """``answer_sends``'s answer to a body that is not only transactions to admit."""

    NOT_SENDS = "not sends"


def answer_sends(payload: object, admit: Admit) -> bytes | None | NotSends:
    """The encoded answer to ``payload`` (parsed by ``parse_body``) when it is one
    eth_sendRawTransaction call or a batch of nothing else, all well formed, admitted with
    ``admit``; NotSends otherwise (the caller answers it in full)."""
    requests = payload if isinstance(payload, list) else [payload]
    calls = [_parse_call(request) for request in requests]
    sends = [c for c in calls if isinstance(c, _Call) and c.method == SEND_RAW_TRANSACTION]
    if len(sends) != len(calls):
        return NotSends.NOT_SENDS
    replies = [
        reply for call, outcome in zip(sends, send_raw_transactions([c.params for c in sends], admit))
        if (reply := _answer(call, outcome)) is not None
    ]
    if not isinstance(payload, list):
        return replies[0] if replies else None
    return b"[" + b",".join(replies) + b"]" if replies else None


def admission_answers(outcomes: Sequence[Hash32 | L2NodeError]) -> list[Hash32 | RpcError]:
    """The admission ``outcomes`` with each refusal as the error object it is answered with
    (what a front relays)."""
    return [
        outcome if isinstance(outcome, bytes)
        else RpcError(*_error_of(outcome, SEND_RAW_TRANSACTION))
        for outcome in outcomes
    ]


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


def _handle_request(
    methods: RpcMethods, request: object, deadline: Deadline | None
) -> bytes | None:
    """The encoded answer to one request object; None for a notification (no "id")."""
    call = _parse_call(request)
    if isinstance(call, bytes):
        return call
    return _answer(call, _run(methods, call, deadline))


def _handle_batch(
    methods: RpcMethods, requests: list[object], deadline: Deadline | None
) -> list[bytes]:
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
            next(sent) if call.method == SEND_RAW_TRANSACTION else _run(methods, call, deadline)
        )
        reply = _answer(call, outcome)
        if reply is not None:
            replies.append(reply)
    return replies


def _run(methods: RpcMethods, call: _Call, deadline: Deadline | None) -> object | Exception:
    """The result of ``call``, or the exception it raised."""
    try:
        return methods.dispatch(call.method, call.params, deadline)
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
    if isinstance(exc, (InvalidTransaction, TransactionRejected, RetryLater)):
        message = str(exc) or type(exc).__name__
        # A transaction refused keeps geth's wording, which wallets match; its code is the
        # spec catalogue's where it has one (geth answers -32000 for all, as for the rest).
        if method == SEND_RAW_TRANSACTION and not isinstance(exc, RetryLater):
            return code_by_phrase(message, TRANSACTION_REJECTIONS, SERVER_ERROR), message, None
        return SERVER_ERROR, message, None
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
