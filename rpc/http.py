"""The HTTP connections of the JSON-RPC server: header and idle timeouts, a connection cap.

uvicorn closes an idle keep-alive connection, but only after a response: a connection that
never finishes its headers (slowloris) stays open forever, and each one holds a file
descriptor. Past the process's limit, accept() fails and nobody is served.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rpc.types import RpcLimits

EVICTION_GRACE = 0.2
"""Seconds a new connection has to start its request before a newer one may close it."""
MAX_HEADER_BYTES = 64 * 1024
"""Most bytes of a request line and headers (httptools has no limit: 300 MB of headers
sent within the header timeout took RSS from 60 to 353 MB)."""


def _closing_response(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(text), text)
    )


_BUSY_RESPONSE = _closing_response(
    b"503 Service Unavailable", b"too many open connections, retry later"
)
"""Answer to a connection over the cap, before its request is read."""
_HEADERS_TOO_LARGE = _closing_response(
    b"431 Request Header Fields Too Large", b"request headers too large"
)


def http_protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, closing connections whose request headers take longer
    than ``header_timeout`` seconds, and keeping at most ``max_connections`` open.

    Over the cap a new connection closes the longest-waiting one that has no request under
    way (headers not complete, or idle between requests) and has had EVICTION_GRACE seconds
    to send one: an honest client sends its headers at once and is served, a slow-header
    flood only churns its own connections. Without such a one, the new connection is let in
    while there are fewer than twice ``max_connections`` (the young ones soon finish their
    requests or become old enough to be closed), and gets 503 beyond that.
    """
    waiting: dict[LimitedHttpToolsProtocol, float] = {}
    """Connections without a request under way, oldest first (a dict keeps insertion order),
    with the loop time when they started waiting."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                oldest = next(iter(waiting.items()), None)
                if oldest is not None and self.loop.time() - oldest[1] >= EVICTION_GRACE:
                    oldest[0]._forget()
                    oldest[0].transport.close()
                elif len(self.connections) > 2 * max_connections:
                    # Refused at once: a connection held open here would hold a descriptor.
                    transport.write(_BUSY_RESPONSE)
                    transport.close()
                    return
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            reading_headers = self._header_timer is not None
            super().data_received(data)
            if reading_headers and self._header_timer is not None:  # headers still not done
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                    self._forget()
                    self.transport.write(_HEADERS_TOO_LARGE)
                    self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            # The next request on a keep-alive connection: its headers get their own time.
            if self._header_timer is None:
                self._await_headers()

        def on_headers_complete(self) -> None:
            self._forget()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                waiting[self] = self.loop.time()  # idle until its next request

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            super().connection_lost(exc)

        def _forget(self) -> None:
            """Not waiting any more: a request is under way, or the connection is gone."""
            waiting.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _await_headers(self) -> None:
            waiting.setdefault(self, self.loop.time())
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _headers_late(self) -> None:
            self._header_timer = None
            self._forget()
            if not self.transport.is_closing():
                self.transport.close()

    return LimitedHttpToolsProtocol


def server_config(app: Any, host: str, port: int, limits: RpcLimits, max_connections: int,
                  **options: Any) -> uvicorn.Config:
    """uvicorn's Config for ``app`` with the timeouts and the connection cap of ``limits``
    (``max_connections`` resolved by the caller; ``options`` go to uvicorn as they are)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(limits.header_timeout, max_connections),
        timeout_keep_alive=limits.idle_timeout,  # type: ignore[arg-type]  # a float works
        **options,
    )


def rpc_connection_cap(configured: int) -> int:
    """``configured``, or when 0 a quarter of the open-file limit: LevelDB takes up to half
    of it (node/db/leveldb.py), peers and the L1 some more."""
    if configured:
        return configured
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, soft // 4)
