"""Gossip throughput between two libp2p hosts in two processes (how validators run).

Starts a receiver process, publishes N messages of SIZE bytes as fast as ``publish``
returns, and reports how long the receiver took to get all of them (it prints when the
last one arrives). Prints what it measured and on what machine; never fails for being slow.

    python -m bench.p2p_gossip --messages 2000 --size 200
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time

from libp2p.crypto.ed25519 import create_new_key_pair

from p2p.host import HostConfig, Libp2pGossip
from p2p.types import PeerId, Validation

TOPIC = "bench/1"


def accept(_peer: PeerId, _data: bytes) -> Validation:
    return Validation.ACCEPT


def receive(count: int) -> None:
    """The receiver: print its address, then a line when ``count`` messages arrived."""
    done = threading.Event()
    seen = 0

    def handle(_peer: PeerId, _data: bytes) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    host = Libp2pGossip(create_new_key_pair())
    host.subscribe(TOPIC, accept, handle)
    host.start()
    print(host.addrs[0], flush=True)
    done.wait()
    print(f"received {seen}", flush=True)
    host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=200, help="bytes per message")
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        receive(args.messages)
        return

    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.p2p_gossip", "--receive", "--messages", str(args.messages)],
        stdout=subprocess.PIPE, text=True,
    )
    assert receiver.stdout is not None
    sender = Libp2pGossip(
        create_new_key_pair(), HostConfig(bootstrap=(receiver.stdout.readline().strip(),))
    )
    sender.subscribe(TOPIC, accept, lambda _peer, _data: None)
    sender.start()
    try:
        while not sender.mesh_peers(TOPIC):
            time.sleep(0.01)
        payload = os.urandom(args.size)
        started = time.perf_counter()
        for i in range(args.messages):
            sender.publish(TOPIC, i.to_bytes(4, "big") + payload)
        published = time.perf_counter() - started
        line = receiver.stdout.readline().strip()
        elapsed = time.perf_counter() - started
    finally:
        sender.stop()
        receiver.wait(10)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{args.messages} messages of {args.size + 4} bytes, two processes over 127.0.0.1")
    print(f"publish calls returned after {published:.3f} s; receiver: {line} "
          f"after {elapsed:.2f} s ({args.messages / elapsed:.0f} msg/s, "
          f"{args.messages * (args.size + 4) / elapsed / 1e6:.2f} MB/s)")


if __name__ == "__main__":
    main()
