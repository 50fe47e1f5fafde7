"""What only the real libp2p host has: topology, forwarding, restarts, identity, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11

from p2p.checks import CheckLimits, CheckQueue
from p2p.host import HostConfig, Libp2pGossip, load_or_create_identity, peer_id_of
from p2p.scoring import ScoreRules
from p2p.types import Validation
from primitives.clock import ManualClock
from primitives.errors import InvalidInput, RetryLater
from tests.nodeproc import free_port
from tests.p2p.networks import Libp2pNetwork
from tests.p2p.test_gossip_suite import TOPIC, Inbox


@pytest.fixture
def net() -> Iterator[Libp2pNetwork]:
    network = Libp2pNetwork()
    yield network
    network.close()


def test_line_of_three_forwards_accepted_and_drops_rejected(net: Libp2pNetwork) -> None:
    a = net.node()
    b = net.node([a])
    c = net.node([b])
    inboxes = [Inbox().join(node) for node in (a, b, c)]
    net.ready(TOPIC, [a, b, c])
    assert c.peer_id not in a.peers()  # a reaches c only through b
    for data in (b"bad", b"ignored", b"ok sentinel"):
        a.publish(TOPIC, data)
    net.wait_for(lambda: inboxes[2].data() == [b"ok sentinel"], "c gets the sentinel via b")
    assert inboxes[1].data() == [b"ok sentinel"]
    assert inboxes[2].checked == [b"ok sentinel"]  # b forwarded neither the REJECT nor the IGNORE
    assert b.rejections == {a.peer_id: 2}
    c.publish(TOPIC, b"ok from c")
    net.wait_for(lambda: b"ok from c" in inboxes[0].data(), "a gets c's message via b")
    assert inboxes[0].received[-1] == (c.peer_id, b"ok from c")


def test_a_message_waits_for_its_future_verdict_before_it_is_delivered_or_forwarded(
    net: Libp2pNetwork,
) -> None:
    a = net.node()
    b = net.node([a])
    c = net.node([b])
    release = threading.Event()
    queue = CheckQueue("slow-check", CheckLimits(workers=1, max_pending=4))
    checked: list[bytes] = []

    def slow(data: bytes) -> Validation:
        release.wait(30)
        checked.append(data)
        return Inbox().gate(a.peer_id, data)

    inbox_a = Inbox().join(a)
    inbox_b = Inbox()
    b.subscribe(TOPIC, lambda peer, data: queue.submit(peer, lambda: slow(data)), inbox_b.handle)
    inbox_c = Inbox().join(c)
    net.ready(TOPIC, [a, b, c])
    for data in (b"bad", b"ok late"):
        a.publish(TOPIC, data)
    time.sleep(1.5)  # time enough to be delivered and forwarded, were b not waiting
    assert inbox_b.received == [] and inbox_c.checked == [] and checked == []
    release.set()
    net.wait_for(lambda: inbox_c.data() == [b"ok late"], "c gets the accepted one via b")
    assert inbox_b.data() == [b"ok late"]
    assert sorted(checked) == [b"bad", b"ok late"]
    assert inbox_c.checked == [b"ok late"]  # b never forwarded the REJECTed one
    assert b.rejections == {a.peer_id: 1}
    assert inbox_a.received == []


def test_a_peer_sending_invalid_messages_is_banned_disconnected_and_refused_until_it_ends(
    net: Libp2pNetwork,
) -> None:
    clock = ManualClock()
    b = net.node(clock=clock)
    a = net.node([b])  # a keeps redialing b
    Inbox().join(a)
    inbox_b = Inbox().join(b)
    net.ready(TOPIC, [a, b])
    rules = ScoreRules()
    for i in range(int(rules.ban_threshold) - 1):
        a.publish(TOPIC, b"bad %d" % i)
    a.publish(TOPIC, b"ok still heard")
    net.wait_for(lambda: inbox_b.data() == [b"ok still heard"], "b hears a below the threshold")
    assert not b.banned(a.peer_id)
    a.publish(TOPIC, b"bad, once too often")
    net.wait_for(lambda: b.banned(a.peer_id), "b bans a")
    net.wait_for(lambda: a.peer_id not in b.peers(), "b drops a")
    # a redials every 0.2 s: b refuses each time. The wait also outlasts a's message cache
    # (5 heartbeats), whose recent messages 0.8.1 sends again to a peer that subscribes anew:
    # the bad ones would earn a second ban.
    time.sleep(6)
    assert a.peer_id not in b.peers()
    assert b.rejections == {a.peer_id: int(rules.ban_threshold)}
    clock.advance(rules.ban_seconds)
    net.wait_for(lambda: not b.banned(a.peer_id) and a.peer_id in b.peers(), "a back after")
    assert a.peer_id not in b.rejections  # a fresh start
    net.ready(TOPIC, [a, b])
    a.publish(TOPIC, b"ok after the ban")
    net.wait_for(lambda: b"ok after the ban" in inbox_b.data(), "b hears a again")


def test_big_messages_published_while_a_peer_joins_arrive_intact(net: Libp2pNetwork) -> None:
    # Published before the subscriptions are exchanged, they wait in 0.8.1's pending queue,
    # which it flushes with direct writes beside the peer's send queue: 1 MB writes (16
    # yamux frames each) interleaved and b read garbage, unless writes are serialized.
    b = net.node()
    inbox_b = Inbox().join(b)
    a = net.node([b])
    Inbox().join(a)
    net.wait_for(lambda: b.peer_id in a.peers(), "a connected to b")
    sent = [b"ok %d " % i + bytes([i]) * (1 << 20) for i in range(8)]
    for data in sent:
        a.publish(TOPIC, data)
    net.ready(TOPIC, [a, b])
    more = [b"ok more %d " % i + bytes([i]) * (1 << 20) for i in range(8)]
    for data in more:
        a.publish(TOPIC, data)
    net.wait_for(lambda: set(more) <= set(inbox_b.data()), "b gets the later ones", 60)
    assert set(inbox_b.data()) <= set(sent + more)  # the early ones may be lost, never garbled
    assert b.rejections == {} and a.peer_id in b.peers()


def test_an_unreadable_rpc_ends_only_that_peers_stream_and_counts_against_it(
    net: Libp2pNetwork,
) -> None:
    a = net.node()
    b = net.node([a])
    c = net.node([b])
    inbox_b = Inbox().join(b)
    Inbox().join(a)
    Inbox().join(c)
    net.ready(TOPIC, [a, b, c])

    async def send_garbage() -> None:
        stream = await a._host.new_stream(ID.from_base58(b.peer_id), [PROTOCOL_ID_V11])
        garbage = b"\xff" * 64  # a protobuf field tag no RPC has
        await stream.write(bytes([len(garbage)]) + garbage)

    assert a._token is not None
    trio.from_thread.run(send_garbage, trio_token=a._token)
    net.wait_for(lambda: b.rejections.get(a.peer_id) == 1, "b counts it against a")
    c.publish(TOPIC, b"ok, b is still up")
    net.wait_for(lambda: b"ok, b is still up" in inbox_b.data(), "b still hears c")


def test_restarted_peer_keeps_its_id_is_reconnected_and_is_heard(
    net: Libp2pNetwork, tmp_path: Path
) -> None:
    key_file = tmp_path / "p2p.key"
    listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    b = net.node(identity=load_or_create_identity(key_file), listen=listen)
    a = net.node([b])
    inbox_a = Inbox().join(a)
    Inbox().join(b)
    net.ready(TOPIC, [a, b])
    old_id = b.peer_id
    for i in range(100):  # moves b's message counter well past the restart below
        b.publish(TOPIC, b"ok before %d" % i)
    net.wait_for(lambda: len(inbox_a.received) == 100, "a hears b")

    b.stop()
    net.wait_for(lambda: a.peers() == (), "a notices b is gone")
    with pytest.raises(RetryLater):
        b.publish(TOPIC, b"ok while stopped")
    with pytest.raises(RetryLater):
        a.request(old_id, "test/any/1", b"", timeout=5)

    again = Libp2pGossip(load_or_create_identity(key_file), b._config)  # same key, same port
    inbox = Inbox().join(again)
    again.start()
    net.hosts.append(again)
    assert again.peer_id == old_id
    net.wait_for(lambda: a.peers() == (old_id,), "a redials the restarted b")
    net.ready(TOPIC, [a, again])
    a.publish(TOPIC, b"ok after restart")
    net.wait_for(lambda: inbox.data() == [b"ok after restart"], "the restarted b receives")
    again.publish(TOPIC, b"ok, b is back")  # a fresh message id though a still holds old ones
    net.wait_for(lambda: inbox_a.data()[-1] == b"ok, b is back", "a hears the restarted b")


def test_identity_file_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p2p.key"
    first = load_or_create_identity(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert peer_id_of(load_or_create_identity(path)) == peer_id_of(first)
    assert peer_id_of(load_or_create_identity(tmp_path / "other.key")) != peer_id_of(first)
    path.write_text("not hex\n")
    with pytest.raises(InvalidInput):
        load_or_create_identity(path)
    path.write_text("00" * 31 + "\n")
    with pytest.raises(InvalidInput):
        load_or_create_identity(path)


def test_stop_is_quick_and_leaves_no_threads(net: Libp2pNetwork) -> None:
    before = {thread.ident for thread in threading.enumerate()}
    a = net.node()
    b = net.node([a])
    Inbox().join(a)
    Inbox().join(b)
    net.ready(TOPIC, [a, b])
    a.publish(TOPIC, b"ok")
    started = time.monotonic()
    a.stop()
    b.stop()
    assert time.monotonic() - started < 3.0
    left = [
        thread for thread in threading.enumerate()
        if thread.ident not in before and not thread.name.startswith("Trio thread")
    ]  # trio's idle worker-thread cache retires on its own
    assert left == []
    b.stop()  # idempotent


def test_a_host_that_cannot_listen_says_so(net: Libp2pNetwork) -> None:
    a = net.node()
    taken = a.addrs[0].split("/p2p/")[0]
    with pytest.raises(RetryLater, match="in use"):
        net.node(listen=taken)
    with pytest.raises(RetryLater, match="could not listen"):
        net.node(listen="/ip4/192.0.2.1/tcp/0")  # TEST-NET-1: not an address of this machine


def test_four_validators_bootstrapping_to_each_other_all_hear_all(net: Libp2pNetwork) -> None:
    keys = [create_new_key_pair() for _ in range(4)]
    listens = [f"/ip4/127.0.0.1/tcp/{free_port()}" for _ in keys]
    everyone = tuple(f"{listen}/p2p/{peer_id_of(key)}" for key, listen in zip(keys, listens))
    hosts = []
    for key, listen in zip(keys, listens):
        host = Libp2pGossip(key, HostConfig(listen=(listen,), bootstrap=everyone))
        net.hosts.append(host)
        hosts.append((host, Inbox().join(host)))
        host.start()
    started = time.monotonic()
    net.wait_for(lambda: all(len(host.peers()) == 3 for host, _ in hosts), "a full mesh")
    connected = time.monotonic()
    net.ready(TOPIC, [host for host, _ in hosts])
    print(f"connected in {connected - started:.2f} s, meshed {time.monotonic() - connected:.2f} s later")
    for host, _ in hosts:
        host.publish(TOPIC, b"ok from " + host.peer_id.encode())
    sent = {b"ok from " + host.peer_id.encode() for host, _ in hosts}
    net.wait_for(
        lambda: all(len(inbox.data()) == 3 for _, inbox in hosts), "every validator hears 3"
    )
    for host, inbox in hosts:  # once each, though every message reaches it several ways
        assert sorted(inbox.data()) == sorted(sent - {b"ok from " + host.peer_id.encode()})


def test_stop_ends_requests_in_flight_on_both_sides(net: Libp2pNetwork) -> None:
    a = net.node()
    b = net.node([a])
    net.wait_for(lambda: b.peer_id in a.peers(), "connected")
    release = threading.Event()
    b.serve("test/slow/1", lambda _peer, _data: b"late" if release.wait(30) else b"")
    outcome: list[BaseException | bytes] = []

    def ask() -> None:
        try:
            outcome.append(a.request(b.peer_id, "test/slow/1", b"", timeout=30))
        except RetryLater as exc:
            outcome.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    time.sleep(0.5)  # let the request reach b's handler (not asserted on)
    started = time.monotonic()
    b.stop()
    assert time.monotonic() - started < 3.0  # did not wait for the slow handler
    asker.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], RetryLater)
    release.set()
