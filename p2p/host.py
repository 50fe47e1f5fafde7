"""The libp2p implementation of the p2p seam (py-libp2p 0.8.1: TCP + noise + yamux, gossipsub).

py-libp2p runs only under trio, while the node is threads + asyncio. So the host lives
in its own thread running ``trio.run``; calls from other threads cross over with
``TrioToken.run_sync_soon`` (publish, subscribe: never blocks the caller) or
``trio.from_thread`` (request, peers: the caller waits for the answer). Gate validators
and message handlers run on the host's thread; request handlers on trio worker threads.

Gates run in gossipsub's validation hook, before delivery and before forwarding; a gate's
future verdict (a heavy check on its own worker, p2p/checks.py) is awaited there. Each
REJECT counts against the peer that delivered the message (p2p/scoring.py); a banned peer
is disconnected, its messages dropped unread and its connections refused until the ban ends.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import ValidationError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

from p2p.api import GateValidator, MessageHandler, RequestHandler
from p2p.scoring import PeerScores, ScoreRules
from p2p.topics import MAX_MESSAGE, MAX_REQUEST, MAX_RESPONSE
from p2p.types import PeerId, Validation
from primitives.clock import Clock, SystemClock
from primitives.errors import InvalidInput, RetryLater

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTBOUND_QUEUE = 4096
"""Gossip RPCs queued per peer before new ones are dropped (libp2p's default, 32, drops bursts)."""

SUBSCRIPTION_QUEUE = 4096
"""Accepted messages waiting for this node's handler per topic (libp2p's default is 32)."""

GATE_TIMEOUT = 30.0
"""Seconds a message may wait for its gate's future verdict before it is IGNOREd (a
backstop: the check queues are short)."""

_OK, _ERROR = 0, 1
"""First byte of a response frame: an answer follows, or an error text does."""


@dataclass(frozen=True)
class HostConfig:
    """How the libp2p host listens, whom it keeps connected to, and its limits."""

    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    """Multiaddrs to listen on; port 0 picks a free port (read ``Libp2pGossip.addrs``)."""
    bootstrap: tuple[str, ...] = ()
    """Peers to stay connected to, as ``/ip4/.../tcp/PORT/p2p/PEERID``; redialed when lost."""
    reconnect_interval: float = 1.0
    """Seconds between checks that every bootstrap peer is connected."""
    max_redial_interval: float = 10.0
    """Longest wait between dials of a bootstrap peer that stays unreachable."""
    dial_timeout: float = 5.0
    """Seconds one dial may take before it counts as failed (retried next interval)."""
    heartbeat_interval: float = 1.0
    """Gossipsub heartbeat: how often the mesh is repaired and gossip (IHAVE) sent."""
    mesh_degree: int = 8
    """Gossipsub D: mesh peers per topic (D_lo = D - 2, D_hi = 2 * D); 4-100 validators."""
    max_request: int = MAX_REQUEST
    """Largest request body this host sends or serves, in bytes."""
    max_response: int = MAX_RESPONSE
    """Largest response body this host sends or accepts, in bytes."""
    scoring: ScoreRules = field(default_factory=ScoreRules)
    """When a peer whose messages are REJECTed is banned, and for how long."""


# -- identity ---------------------------------------------------------------------------------


def load_or_create_identity(path: Path) -> KeyPair:
    """The node's libp2p key from ``path`` (created on first use), so its peer id is stable.

    The file holds the hex of a 32-byte Ed25519 seed, readable only by its owner.
    """
    if path.exists():
        text = path.read_text().strip()
        try:
            seed = bytes.fromhex(text)
        except ValueError:
            raise InvalidInput(f"{path}: not a hex libp2p key") from None
        if len(seed) != 32:
            raise InvalidInput(f"{path}: a libp2p key is 32 bytes, found {len(seed)}")
        return create_new_key_pair(seed)
    pair = create_new_key_pair()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(_seed(pair).hex() + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)  # a crash leaves the old state or the whole key, never half
    return pair


def _seed(pair: KeyPair) -> bytes:
    key = pair.private_key
    assert isinstance(key, Ed25519PrivateKey)
    return key.to_bytes()


def peer_id_of(pair: KeyPair) -> PeerId:
    """The peer id that a host with this key has (base58)."""
    return PeerId(ID.from_pubkey(pair.public_key).to_base58())


# -- libp2p tuning ----------------------------------------------------------------------------


class _DeepRpcQueue(RpcQueue):
    """A per-peer outbound queue deep enough for bursts, with frames up to MAX_MESSAGE."""

    def __init__(self, max_size: int = OUTBOUND_QUEUE, max_message_size: int = MAX_MESSAGE):
        super().__init__(max_size=max_size, max_message_size=max_message_size)


def _tune_libp2p() -> None:
    """Raise py-libp2p 0.8.1's queue sizes, which are module constants there, not options.

    Process-wide on purpose: every host in this process wants the same limits.
    """
    pubsub_module.RpcQueue = _DeepRpcQueue  # type: ignore[attr-defined]
    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_QUEUE


# -- the host ---------------------------------------------------------------------------------


class Libp2pGossip:
    """A libp2p host in its own thread; implements p2p.api.Gossip.

    Gate validators run inside gossipsub's validation hook, so a message that is not
    ACCEPTed is neither delivered nor forwarded. The hook is a yes/no in 0.8.1: REJECT and
    IGNORE differ in ``rejections`` and ``banned`` (only REJECTs count towards a ban).
    """

    def __init__(
        self, identity: KeyPair, config: HostConfig = HostConfig(), clock: Clock | None = None
    ) -> None:
        self._identity = identity
        self._config = config
        self._id = ID.from_pubkey(identity.public_key)
        self._bootstrap = tuple(
            info_from_p2p_addr(multiaddr.Multiaddr(addr)) for addr in config.bootstrap
        )
        self._lock = threading.Lock()
        self._topics: dict[str, tuple[GateValidator, MessageHandler]] = {}
        self._services: dict[str, RequestHandler] = {}
        self._rejections: Counter[PeerId] = Counter()
        self._scores = PeerScores(clock or SystemClock(), config.scoring)  # under _lock
        self._banned: set[PeerId] = set()
        """Peers banned now: set with the pubsub blacklist, cleared with it (under _lock)."""
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._addrs: tuple[str, ...] = ()
        # Set on the host's thread while it runs:
        self._host: Any = None
        self._pubsub: Pubsub | None = None
        self._router: GossipSub | None = None
        self._nursery: trio.Nursery | None = None
        self._stopping: trio.Event | None = None
        self._outbox: trio.MemorySendChannel[tuple[str, bytes]] | None = None
        self._dialing: set[ID] = set()
        self._redial: dict[ID, tuple[float, float]] = {}
        """Unreachable bootstrap peers: (when to dial next, the wait that was chosen)."""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Listen, connect to the bootstrap peers in the background, and return when listening."""
        if self._thread is not None:
            raise RuntimeError("this host was started already")
        _tune_libp2p()
        for addr in self._config.listen:
            _check_port_free(addr)
        self._thread = threading.Thread(target=self._run, name=f"libp2p-{self.peer_id[-6:]}")
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RetryLater(f"the libp2p host did not start within {timeout} s")
        if self._failure is not None:
            self._thread.join()
            cause = self._failure
            while isinstance(cause, BaseExceptionGroup):  # trio nurseries wrap what they raise
                cause = cause.exceptions[0]
            raise RetryLater(f"the libp2p host failed to start: {cause}") from self._failure

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and end the host's thread (idempotent)."""
        thread, token, stopping = self._thread, self._token, self._stopping
        if thread is None:
            return
        if token is not None and stopping is not None and thread.is_alive():
            try:
                token.run_sync_soon(stopping.set)
            except trio.RunFinishedError:
                pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("libp2p host %s did not stop within %s s", self.peer_id, timeout)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to start(); a running host logs its own end
            if not self._ready.is_set():
                self._failure = exc
            else:
                log.exception("libp2p host %s failed", self.peer_id)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        noise = NoiseTransport(self._identity, noise_privkey=create_x25519_key_pair().private_key)
        host = new_host(
            key_pair=self._identity,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_preference="YAMUX",
            disable_identify_address_discovery=True,
        )
        degree = self._config.mesh_degree
        router = GossipSub(
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=degree,
            degree_low=max(1, degree - 2),
            degree_high=2 * degree,
            heartbeat_interval=self._config.heartbeat_interval,  # type: ignore[arg-type]
            # Off: its per-peer 10 msg/s per topic drops bursts; our gates judge messages.
            spam_protection_enabled=False,
            # Off: it grafts by IP diversity, meaningless for a devnet on one address.
            eclipse_protection_enabled=False,
        )
        pubsub = _GatedPubsub(
            self._gate, lambda peer: self._count(peer, Validation.REJECT, "an unreadable RPC"),
            host, router, max_inbound_rpc_size=MAX_MESSAGE + 64 * 1024,
        )
        # Message ids are (origin, seqno) and 0.8.1 starts seqno at the current second:
        # a host restarted within a burst would reuse ids its peers still hold as seen.
        pubsub.counter = time.time_ns()
        listen = [multiaddr.Multiaddr(addr) for addr in self._config.listen]
        self._host, self._pubsub, self._router = host, pubsub, router
        try:
            await self._serve_until_stopped(host, pubsub, router, listen)
        finally:
            self._token = None
            pubsub.seen_messages.stop()  # 0.8.1 starts a sweeper thread per Pubsub and never stops it

    async def _serve_until_stopped(
        self, host: Any, pubsub: Pubsub, router: GossipSub, listen: list[multiaddr.Multiaddr]
    ) -> None:
        outbox, inbox = trio.open_memory_channel[tuple[str, bytes]](math.inf)
        async with (
            host.run(listen_addrs=listen),
            background_trio_service(pubsub),
            background_trio_service(router),
        ):
            await pubsub.wait_until_ready()
            if len(host.get_transport_addrs()) < len(listen):  # 0.8.1 only logs failures
                raise RetryLater(f"could not listen on every one of {self._config.listen}")
            async with trio.open_nursery() as nursery:
                self._nursery, self._outbox = nursery, outbox
                host.get_network().register_notifee(_RefuseBanned(self))
                self._stopping = trio.Event()
                with self._lock:  # later subscribe()/serve() calls come through the token
                    topics, protocols = list(self._topics), list(self._services)
                    self._token = trio.lowlevel.current_trio_token()
                for protocol in protocols:
                    host.set_stream_handler(_protocol_id(protocol), self._answer)
                for topic in topics:
                    await self._follow(topic)
                nursery.start_soon(self._send_published, inbox)
                nursery.start_soon(self._keep_connected)
                nursery.start_soon(self._forget_old_messages)
                nursery.start_soon(self._lift_bans)
                self._addrs = tuple(
                    f"{addr}/p2p/{self._id.to_base58()}" for addr in host.get_transport_addrs()
                )
                self._ready.set()
                await self._stopping.wait()
                with trio.move_on_after(2):  # leaving host.run() alone leaves sockets open
                    await host.close()
                nursery.cancel_scope.cancel()

    # -- the Gossip seam ----------------------------------------------------------------------

    @property
    def peer_id(self) -> PeerId:
        return PeerId(self._id.to_base58())

    @property
    def addrs(self) -> tuple[str, ...]:
        """Where peers can dial this host (``/ip4/.../tcp/PORT/p2p/PEERID``), once started."""
        return self._addrs

    @property
    def rejections(self) -> dict[PeerId, int]:
        """Messages not ACCEPTed by a gate, per forwarding peer (for metrics and tests;
        forgotten when a ban ends)."""
        with self._lock:
            return dict(self._rejections)

    def banned(self, peer: PeerId) -> bool:
        """Whether ``peer`` is banned now (for RPC, metrics and tests)."""
        with self._lock:
            return peer in self._banned

    def mesh_peers(self, topic: str) -> tuple[PeerId, ...]:
        """Peers in this host's gossipsub mesh for ``topic`` (they get its messages at once)."""
        if self._token is None or self._router is None:
            return ()
        return tuple(PeerId(peer.to_base58()) for peer in list(self._router.mesh.get(topic, ())))

    def subscribe(self, topic: str, validator: GateValidator, handler: MessageHandler) -> None:
        with self._lock:
            self._topics[topic] = (validator, handler)
            token = self._token
        if token is not None:
            token.run_sync_soon(self._start_soon, self._follow, topic)

    def publish(self, topic: str, data: bytes) -> None:
        if len(data) > MAX_MESSAGE:
            raise InvalidInput(f"gossip message of {len(data)} bytes exceeds {MAX_MESSAGE}")
        token, outbox = self._token, self._outbox
        if token is None or outbox is None:
            raise RetryLater("the libp2p host is not running")
        try:
            token.run_sync_soon(outbox.send_nowait, (topic, data))
        except trio.RunFinishedError:
            raise RetryLater("the libp2p host has stopped") from None

    def peers(self) -> tuple[PeerId, ...]:
        # Read without waiting for the host's thread, so a caller holding a lock that a
        # handler wants cannot deadlock: copying a dict's items is atomic under the GIL.
        if self._token is None:
            return ()
        connections = list(self._host.get_network().connections.items())
        return tuple(PeerId(peer.to_base58()) for peer, conns in connections if conns)

    def serve(self, protocol: str, handler: RequestHandler) -> None:
        with self._lock:
            self._services[protocol] = handler
            token = self._token
        if token is not None:
            self._on_host_thread(
                lambda: self._host.set_stream_handler(_protocol_id(protocol), self._answer)
            )

    def request(self, peer: PeerId, protocol: str, data: bytes, timeout: float) -> bytes:
        if len(data) > self._config.max_request:
            raise InvalidInput(f"request of {len(data)} bytes exceeds {self._config.max_request}")
        token = self._token
        if token is None:
            raise RetryLater("the libp2p host is not running")
        try:
            return trio.from_thread.run(
                self._ask, ID.from_base58(peer), protocol, data, timeout, trio_token=token
            )
        except (trio.RunFinishedError, trio.Cancelled):
            raise RetryLater("the libp2p host has stopped") from None

    # -- on the host's thread -----------------------------------------------------------------

    def _start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def _on_host_thread(self, fn: Callable[[], T]) -> T:
        token = self._token
        if token is None:
            raise RetryLater("the libp2p host is not running")
        if threading.current_thread() is self._thread:
            return fn()
        try:
            return trio.from_thread.run_sync(fn, trio_token=token)
        except trio.RunFinishedError:
            raise RetryLater("the libp2p host has stopped") from None

    async def _follow(self, topic: str) -> None:
        """Join ``topic`` (its gate is in gossipsub's hook), and hand accepted messages over."""
        assert self._pubsub is not None and self._nursery is not None
        subscription = await self._pubsub.subscribe(topic)
        self._nursery.start_soon(self._deliver, topic, subscription)

    async def _gate(self, topic: str, forwarder: ID, message: rpc_pb2.Message) -> bool:
        """Whether a message may be delivered and forwarded. Awaits only a future verdict, so
        messages with an immediate one keep their order."""
        if forwarder == self._id:
            return True  # our own publication: the node checked it before publishing
        gate = self._topics.get(topic)
        if gate is None:
            return False  # a topic we do not follow
        peer = PeerId(forwarder.to_base58())
        try:
            checked = gate[0](peer, message.data)
            verdict = checked if isinstance(checked, Validation) else await _verdict(checked)
        except Exception:  # a gate must answer; one that crashes on input rejects it
            log.exception("gate for %s raised on a message from %s", topic, peer)
            verdict = Validation.REJECT
        if verdict is not Validation.ACCEPT:
            self._count(forwarder, verdict, topic)
        return verdict is Validation.ACCEPT

    def _count(self, forwarder: ID, verdict: Validation, what: str) -> None:
        """Count a message that was not ACCEPTed; ban its peer when REJECTs add up."""
        peer = PeerId(forwarder.to_base58())
        with self._lock:
            self._rejections[peer] += 1
            banned = verdict is Validation.REJECT and self._scores.rejected(peer)
            if banned:
                self._banned.add(peer)
        if banned:
            log.warning("banning peer %s: too many invalid messages (last on %s)", peer, what)
            assert self._pubsub is not None and self._nursery is not None
            self._pubsub.add_to_blacklist(forwarder)  # its messages are dropped unread
            self._nursery.start_soon(self._host.disconnect, forwarder)

    async def _lift_bans(self) -> None:
        """Let peers whose ban has ended connect and publish again.

        Connections are refused by ``banned``, which changes here together with the pubsub
        blacklist: a peer let in while still blacklisted would never get a pubsub stream.
        """
        assert self._pubsub is not None
        while True:
            await trio.sleep(1)
            with self._lock:
                ended = self._scores.expired()
                for peer in ended:  # bounded by the bans, however many identities a flood uses
                    self._rejections.pop(peer, None)
                    self._banned.discard(peer)
            for peer in ended:
                log.info("ban of peer %s ended", peer)
                self._pubsub.remove_from_blacklist(ID.from_base58(peer))

    def _refuse_if_banned(self, peer: ID) -> None:
        """Close a new connection from a banned peer (the swarm's gate knows only addresses)."""
        if self.banned(PeerId(peer.to_base58())) and self._nursery is not None:
            self._nursery.start_soon(self._host.disconnect, peer)

    async def _deliver(self, topic: str, subscription: Any) -> None:
        while True:
            message = await subscription.get()
            origin = ID(message.from_id)
            if origin == self._id:
                continue  # gossipsub hands a node its own publications too
            _, handler = self._topics[topic]
            try:
                handler(PeerId(origin.to_base58()), message.data)
            except Exception:  # one bad message must not end delivery for the topic
                log.exception("handler for %s failed on a message from %s", topic, origin)

    async def _send_published(self, inbox: trio.MemoryReceiveChannel[tuple[str, bytes]]) -> None:
        assert self._pubsub is not None
        async for topic, data in inbox:
            await self._pubsub.publish(topic, data)

    async def _keep_connected(self) -> None:
        """Dial every bootstrap peer that is not connected, again and again (restarts, drops).

        A peer that stays unreachable is dialed less often (doubling up to
        ``max_redial_interval``); once connected, its next loss is redialed at once.
        """
        assert self._nursery is not None
        while True:
            connected = set(self._host.get_connected_peers())
            now = trio.current_time()
            for info in self._bootstrap:
                peer = info.peer_id
                if peer == self._id or peer in self._dialing or self.banned(
                    PeerId(peer.to_base58())
                ):
                    continue
                if peer in connected:
                    self._redial.pop(peer, None)
                elif self._redial.get(peer, (0.0, 0.0))[0] <= now:
                    self._dialing.add(peer)
                    self._nursery.start_soon(self._dial, info)
            await trio.sleep(self._config.reconnect_interval)

    async def _dial(self, info: PeerInfo) -> None:
        peer = info.peer_id
        # 0.8.1's swarm refuses to dial a peer for 60 s after one failed dial; our own
        # backoff decides instead, so a restarted peer is found within max_redial_interval.
        self._host.get_network().unblock_peer(peer)
        try:
            with trio.move_on_after(self._config.dial_timeout):
                await self._host.connect(info)
        except Exception as exc:  # noqa: BLE001 - unreachable peers are normal; retried
            log.debug("dial %s failed: %s", peer, exc)
        finally:
            self._dialing.discard(peer)
        if peer not in self._host.get_connected_peers():
            wait = self._redial.get(peer, (0.0, self._config.reconnect_interval / 2))[1] * 2
            wait = min(wait, self._config.max_redial_interval)
            self._redial[peer] = (trio.current_time() + wait, wait)

    async def _forget_old_messages(self) -> None:
        """Bound gossipsub 0.8.1's equivocation table, which keeps every message forever.

        A repeated (origin, seqno) is dropped by the seen cache before that table is read,
        so it only ever judged repeats older than the seen window; our gates judge content
        (consensus equivocation is evidence in sequencer/, not a transport matter).
        """
        assert self._router is not None
        while True:
            await trio.sleep(10)
            self._router.equivocation_detection.clear()

    # -- request/response ---------------------------------------------------------------------

    async def _ask(self, peer: ID, protocol: str, data: bytes, timeout: float) -> bytes:
        answer: tuple[int, bytes] | None = None
        try:
            with trio.fail_after(timeout):
                stream = await self._host.new_stream(peer, [_protocol_id(protocol)])
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._cancel_when_gone, peer, nursery.cancel_scope)
                        await stream.write(_frame(data))
                        status = (await _read_exactly(stream, 1))[0]
                        answer = status, await _read_frame(stream, self._config.max_response)
                        nursery.cancel_scope.cancel()
                finally:
                    with trio.CancelScope(deadline=trio.current_time() + 1, shield=True):
                        await stream.close()
        except trio.TooSlowError:
            raise RetryLater(f"peer {peer} did not answer {protocol} within {timeout} s") from None
        except RetryLater:
            raise
        except Exception as exc:  # libp2p raises many kinds for a peer that is gone or deaf
            raise RetryLater(f"request {protocol} to {peer} failed: {exc!r}") from exc
        if answer is None:
            raise RetryLater(f"peer {peer} disconnected during {protocol}")
        status, body = answer
        if status != _OK:
            raise RetryLater(f"peer {peer} refused {protocol}: {body.decode(errors='replace')}")
        return body

    async def _cancel_when_gone(self, peer: ID, scope: trio.CancelScope) -> None:
        """0.8.1 leaves a stream read hanging when its connection closes: watch the connection."""
        while self._host.get_network().connections.get(peer):
            await trio.sleep(0.1)
        scope.cancel()

    async def _answer(self, stream: Any) -> None:
        protocol = str(stream.get_protocol()).lstrip("/")
        handler = self._services.get(protocol)
        peer = PeerId(stream.muxed_conn.peer_id.to_base58())
        try:
            request = await _read_frame(stream, self._config.max_request)
            status, body = _ERROR, b"not served"
            if handler is not None:
                status, body = await trio.to_thread.run_sync(
                    self._run_handler, handler, peer, request,
                    abandon_on_cancel=True,  # type: ignore[call-arg]  # stubs predate trio 0.23
                )  # stop() must not wait for a slow handler
            if len(body) > self._config.max_response:
                status, body = _ERROR, f"answer of {len(body)} bytes exceeds the cap".encode()
            await stream.write(bytes([status]) + _frame(body))
        except Exception as exc:  # noqa: BLE001 - a bad requester loses only its stream
            log.debug("request %s from %s failed: %r", protocol, peer, exc)
        finally:
            await stream.close()

    def _run_handler(self, handler: RequestHandler, peer: PeerId, request: bytes) -> tuple[int, bytes]:
        try:
            return _OK, handler(peer, request)
        except InvalidInput as exc:
            return _ERROR, str(exc).encode()
        except Exception:
            log.exception("request handler failed for %s", peer)
            return _ERROR, b"internal error"


class _GatedPubsub(Pubsub):
    """0.8.1's Pubsub, fixed where a peer could break it, with our gates in its hook.

    - Our gates replace its topic validators, whose async form always yields (reordering
      messages: trio runs ready tasks in random order) and caches verdicts by message id
      (our gates remember what they need).
    - Writes to one peer's stream are serialized. 0.8.1 writes from several tasks (the
      peer's send queue; directly, messages published before the peer's subscriptions
      arrived and recent messages for a new subscriber) and yamux sends a write over 64 KB
      as several frames: two writes interleaved and the peer read garbage (seen with
      470 KB messages published right after connecting).
    - An unreadable RPC (protobuf DecodeError) ends that peer's stream and counts against
      it; 0.8.1 let it end the whole host.
    """

    def __init__(
        self, gate: Callable[[str, ID, rpc_pb2.Message], Awaitable[bool]],
        unreadable: Callable[[ID], None], *args: Any, **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate
        self._unreadable = unreadable
        self._write_locks: weakref.WeakKeyDictionary[INetStream, trio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def validate_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        for topic in msg.topicIDs:
            if not await self._gate(topic, msg_forwarder, msg):
                raise ValidationError(f"the gate of {topic} did not accept the message")

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            return await super().write_msg(stream, rpc_msg)

    async def stream_handler(self, stream: INetStream) -> None:
        try:
            await super().stream_handler(stream)
        except Exception as exc:  # noqa: BLE001 - whatever a peer sends must not end the host
            peer = stream.muxed_conn.peer_id
            log.warning("dropping the pubsub stream of %s: %r", peer, exc)
            self._unreadable(peer)
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer)


class _RefuseBanned(INotifee):
    """Hears of every new connection, so the host can close those of banned peers."""

    def __init__(self, host: Libp2pGossip) -> None:
        self._host = host

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._host._refuse_if_banned(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        pass

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, addr: multiaddr.Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, addr: multiaddr.Multiaddr) -> None:
        pass


async def _verdict(future: Future[Validation]) -> Validation:
    """Wait on the host's thread, without blocking it, for a verdict decided on another."""
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def wake(_future: Future[Validation]) -> None:
        try:
            token.run_sync_soon(done.set)
        except trio.RunFinishedError:
            pass  # the host stopped meanwhile

    future.add_done_callback(wake)
    with trio.move_on_after(GATE_TIMEOUT):
        await done.wait()
        return future.result()
    return Validation.IGNORE


def _check_port_free(addr: str) -> None:
    """Refuse a TCP port some socket listens on: 0.8.1 listens with SO_REUSEPORT, so a second
    host on one port would silently share it and half the dials would reach the wrong node."""
    address = multiaddr.Multiaddr(addr)
    protocols = {protocol.name for protocol in address.protocols()}
    if "tcp" not in protocols or not {"ip4", "ip6"} & protocols:
        return
    port = int(address.value_for_protocol("tcp"))
    if port == 0:
        return
    ip6 = "ip6" in protocols
    ip = address.value_for_protocol("ip6" if ip6 else "ip4")
    with socket.socket(socket.AF_INET6 if ip6 else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((ip, port))
        except OSError as exc:
            raise RetryLater(f"cannot listen on {addr}: {exc.strerror}") from None


def _protocol_id(protocol: str) -> TProtocol:
    """libp2p protocol ids are paths: ``l2/sync/1`` is served as ``/l2/sync/1``."""
    return TProtocol("/" + protocol.lstrip("/"))


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


async def _read_frame(stream: Any, cap: int) -> bytes:
    size = int.from_bytes(await _read_exactly(stream, 4), "big")
    if size > cap:
        raise InvalidInput(f"frame of {size} bytes exceeds the cap of {cap}")
    return await _read_exactly(stream, size)


async def _read_exactly(stream: Any, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = await stream.read(size - len(buffer))
        if not chunk:
            raise RetryLater("the stream ended early")
        buffer += chunk
    return bytes(buffer)
