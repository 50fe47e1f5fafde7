"""JSON-RPC over WebSocket (same port and path as HTTP) with eth_subscribe / eth_unsubscribe.

``EventHub`` is the server's ChainEvents: the node calls it from its own threads; it feeds the
pending-transaction filters and hands subscription work to the event loop. Each connection has
a bounded outbox: a client that does not read its notifications is disconnected, not buffered
without end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from primitives.blocks import Header, Log
from primitives.transactions import Transaction
from rpc import render
from rpc.api import NodeBackend
from rpc.codec import Args, LogQuery, data, parse_bool, parse_log_query, quantity
from rpc.errors import InvalidParams
from rpc.filters import FilterTable
from rpc.methods import Method, RpcMethods
from rpc.types import LogView

logger = logging.getLogger(__name__)

MAX_OUTBOX = 20_000
"""Messages queued for one connection before it is dropped as too slow."""
MAX_SUBSCRIPTIONS = 1_000
"""Most subscriptions one connection may hold."""
NEW_HEADS = "newHeads"
LOGS = "logs"
PENDING = "newPendingTransactions"


@dataclass
class Subscription:
    """One eth_subscribe of one connection."""

    kind: str
    """NEW_HEADS, LOGS or PENDING."""
    session: Session
    """The connection it belongs to."""
    query: LogQuery | None
    """Address and topic criteria (LOGS)."""
    full: bool = False
    """PENDING: notify whole transaction objects instead of hashes (geth's fullTx)."""
    active: bool = False
    """False until the eth_subscribe answer is queued: no notification may precede it."""


def _matches(log: Log, query: LogQuery) -> bool:
    if query.addresses and log.address not in query.addresses:
        return False
    for position, wanted in enumerate(query.topics):
        if wanted is None:
            continue
        if position >= len(log.topics) or log.topics[position] not in wanted:
            return False
    return True


class Session:
    """One WebSocket connection: its outbox and subscriptions."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.ids: set[str] = set()
        self.created: list[str] = []
        """Subscriptions made by the call being answered; activated once it is."""
        self.overflowed = False

    def send(self, message: str) -> None:
        """Queue ``message`` (on the event loop); a full outbox ends the connection."""
        if self.overflowed:
            return
        if self.outbox.qsize() >= MAX_OUTBOX:
            self.overflowed = True
            self.outbox.put_nowait(None)
            return
        self.outbox.put_nowait(message)

    def notify(self, subscription_id: str, result: object) -> None:
        self.send(json.dumps({
            "jsonrpc": "2.0", "method": "eth_subscription",
            "params": {"subscription": subscription_id, "result": result},
        }, separators=(",", ":")))

    def methods(self) -> dict[str, Method]:
        """eth_subscribe and eth_unsubscribe for this connection."""
        return {
            "eth_subscribe": Method(2, self._subscribe),
            "eth_unsubscribe": Method(1, lambda args: self._hub.unsubscribe(
                self, args.required(0, _subscription_id))),
        }

    def _subscribe(self, args: Args) -> str:
        kind = args.required(0, _kind)
        query = None
        full = False
        if kind == LOGS:
            query = args.optional(1, parse_log_query, parse_log_query({}))
            if query.block_hash is not None or query.from_block.number is not None:
                raise InvalidParams("a logs subscription takes only address and topics")
        elif kind == PENDING:
            full = args.optional(1, parse_bool, False)
        if len(self.ids) >= MAX_SUBSCRIPTIONS:
            raise InvalidParams(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        subscription_id = self._hub.subscribe(Subscription(kind, self, query, full))
        self.ids.add(subscription_id)
        self.created.append(subscription_id)
        return subscription_id


def _kind(value: object) -> str:
    if value not in (NEW_HEADS, LOGS, PENDING):
        raise InvalidParams(f"no such subscription: {value!r} (newHeads, logs, "
                            "newPendingTransactions)")
    assert isinstance(value, str)
    return value


def _subscription_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidParams("invalid subscription id")
    return value


class EventHub:
    """ChainEvents for the RPC server: pending filters and WebSocket subscriptions."""

    def __init__(self, backend: NodeBackend, filters: FilterTable) -> None:
        self._backend = backend
        self._filters = filters
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        self._pending_count = 0
        self._head_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heads: asyncio.Queue[Header] | None = None

    # -- ChainEvents (node threads) ----------------------------------------------------------

    def wants_pending(self) -> bool:
        return self._pending_count > 0 or self._filters.pending_filters > 0

    def new_pending(self, txs: Sequence[Transaction]) -> None:
        if not txs:
            return
        if self._filters.pending_filters:
            self._filters.add_pending([tx.hash for tx in txs])
        if self._pending_count:
            self._hand_over(self._push_pending, tuple(txs))

    def new_head(self, header: Header) -> None:
        if self._head_count and self._heads is not None:
            self._hand_over(self._heads.put_nowait, header)

    def _hand_over(self, work: Callable[[Any], None], item: object) -> None:
        """Run ``work(item)`` on the event loop; nothing when the server is gone (the node
        must not stop because nobody listens any more)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(work, item)
        except RuntimeError:  # the loop is closed: the server stopped
            pass

    # -- subscriptions -----------------------------------------------------------------------

    def attach(self) -> None:
        """Bind to the running event loop (the first connection's) and start the dispatcher."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._heads = asyncio.Queue()
            self._dispatcher = self._loop.create_task(self._dispatch_heads())

    def subscribe(self, subscription: Subscription) -> str:
        subscription_id = quantity(secrets.randbits(128))  # as a filter id: no leading zeros
        with self._lock:
            self._subscriptions[subscription_id] = subscription
            self._recount()
        return subscription_id

    def unsubscribe(self, session: Session, subscription_id: str) -> bool:
        with self._lock:
            found = self._subscriptions.get(subscription_id)
            if found is None or found.session is not session:
                return False
            del self._subscriptions[subscription_id]
            session.ids.discard(subscription_id)
            self._recount()
            return True

    def activate(self, ids: Sequence[str]) -> None:
        with self._lock:
            for subscription_id in ids:
                found = self._subscriptions.get(subscription_id)
                if found is not None:
                    found.active = True

    def drop(self, session: Session) -> None:
        """Forget a closed connection's subscriptions."""
        with self._lock:
            for subscription_id in session.ids:
                self._subscriptions.pop(subscription_id, None)
            self._recount()

    def _recount(self) -> None:
        kinds = [s.kind for s in self._subscriptions.values()]
        self._pending_count = kinds.count(PENDING)
        self._head_count = len(kinds) - self._pending_count

    def _active(self, kind: str) -> list[tuple[str, Subscription]]:
        with self._lock:
            return [(i, s) for i, s in self._subscriptions.items() if s.kind == kind and s.active]

    # -- delivery (event loop) ---------------------------------------------------------------

    def _push_pending(self, txs: tuple[Transaction, ...]) -> None:
        subscriptions = self._active(PENDING)
        hashes = [data(tx.hash) for tx in txs]
        objects = None
        if any(s.full for _, s in subscriptions):
            objects = [render.transaction(tx, None, tx.max_fee_per_gas) for tx in txs]
        for subscription_id, subscription in subscriptions:
            for item in objects if subscription.full and objects is not None else hashes:
                subscription.session.notify(subscription_id, item)

    async def _dispatch_heads(self) -> None:
        assert self._heads is not None
        while True:
            header = await self._heads.get()
            try:
                await self._push_head(header)
            except Exception:
                logger.exception("notifying block %d", header.number)

    async def _push_head(self, header: Header) -> None:
        heads = self._active(NEW_HEADS)
        if heads:
            fields = render.header_fields(header)
            for subscription_id, subscription in heads:
                subscription.session.notify(subscription_id, fields)
        log_subscriptions = self._active(LOGS)
        if not log_subscriptions:
            return
        receipts = await run_in_threadpool(self._backend.block_receipts, header.number)
        for receipt in receipts:
            for offset, entry in enumerate(receipt.receipt.logs):
                wanted = [(i, s) for i, s in log_subscriptions
                          if s.query is not None and _matches(entry, s.query)]
                if not wanted:
                    continue
                rendered = render.log(LogView(
                    entry, receipt.location, receipt.tx.hash, receipt.first_log_index + offset,
                ))
                for subscription_id, subscription in wanted:
                    subscription.session.notify(subscription_id, rendered)


Respond = Callable[[RpcMethods, bytes], Awaitable["bytes | None"]]
"""The server's answer to a message (rpc.server.handle_body with its limits, and a slot
for expensive methods as on HTTP)."""


async def accepted(websocket: WebSocket, origins: Sequence[str]) -> bool:
    """Accept ``websocket`` if its Origin (browsers send one) is one of ``origins``; else
    refuse it (the handshake gets 403) and return False."""
    origin = websocket.headers.get("origin")
    if origin is not None and "*" not in origins and origin not in origins:
        await websocket.close(code=1008)  # before accept: the handshake gets 403
        return False
    await websocket.accept()
    return True


async def serve_websocket(
    websocket: WebSocket, methods: RpcMethods, hub: EventHub, respond: Respond,
    max_message_bytes: int, origins: Sequence[str],
) -> None:
    """Answer JSON-RPC messages on ``websocket`` until it closes, with its subscriptions."""
    if not await accepted(websocket, origins):
        return
    hub.attach()
    session = Session(hub)
    connection = methods.extended(session.methods())
    writer = asyncio.create_task(_write(websocket, session))
    try:
        while not writer.done():
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            body = message.get("bytes") or (message.get("text") or "").encode()
            if len(body) > max_message_bytes:
                await websocket.close(code=1009)
                break
            answer = await respond(connection, body)
            if answer is not None:
                session.send(answer.decode())
            hub.activate(session.created)
            session.created.clear()
    except WebSocketDisconnect:
        pass
    finally:
        hub.drop(session)
        writer.cancel()


async def _write(websocket: WebSocket, session: Session) -> None:
    """Send the outbox in order; a None in it means too slow: close."""
    while True:
        message = await session.outbox.get()
        if message is None:
            logger.warning("closing a WebSocket whose client does not read its notifications")
            await websocket.close(code=1013)
            return
        try:
            await websocket.send_text(message)
        except (WebSocketDisconnect, RuntimeError):
            return
