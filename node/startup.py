"""Checks a node makes before it starts anything: its ports are free (a taken one retried
for a while) and its data dir is usable and its own. Each failure is one InvalidInput line
(the CLI exits 2 with it)."""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from primitives.errors import InvalidInput, RetryLater

log = logging.getLogger("l2node")

LOCK_FILE = "l2node.lock"
"""Held (flock) by the process that uses a data dir, as long as it runs."""
BIND_RETRY_PAUSES = (0.1, 0.2, 0.5, 1.0, 2.0)
"""Waits between bind attempts; the last one repeats."""

_T = TypeVar("_T")


class PortInUse(InvalidInput):
    """A port another socket listens on: a mistake once retry_bind has waited it out."""


def port_error(what: str, host: str, port: int, exc: OSError) -> InvalidInput:
    """The one line that says why ``what`` cannot listen on ``host:port`` (PortInUse when
    another socket holds it)."""
    if exc.errno == errno.EADDRINUSE:
        return PortInUse(
            f"{what} port {port} on {host} is in use (another l2node or program holds it): "
            "stop it or choose another port"
        )
    return InvalidInput(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}")


def bind_tcp(what: str, host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port``, bound now (before any block is produced),
    with ``backlog`` connections queued by the kernel at most."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on connections whose
    # socket says TCP, and with it on a keep-alive answer written in two parts waits out the
    # caller's delayed ACK, 40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As uvicorn does: a port whose last user left sockets in TIME_WAIT can be bound again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise port_error(what, host, port, exc) from None
    return sock


def check_listen_multiaddr(what: str, multiaddr: str) -> None:
    """For a /ip4|ip6/HOST/tcp/PORT multiaddr, that its port is free now (the libp2p host
    binds it moments later); others are left to the host."""
    parts = multiaddr.split("/")
    if len(parts) >= 5 and parts[1] in ("ip4", "ip6") and parts[3] == "tcp" and parts[4].isdigit():
        bind_tcp(what, parts[2], int(parts[4])).close()


def retry_bind(
    what: str,
    attempt: Callable[[], _T],
    give_up_after: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> _T:
    """``attempt()``, tried again with backoff while it raises PortInUse or RetryLater for
    ``give_up_after`` seconds, then InvalidInput with the last reason: a restarted node often
    finds its port held for a moment (a TIME-WAIT self-connection after a kill, a process
    that is just exiting)."""
    give_up = clock() + give_up_after
    pauses = itertools.chain(BIND_RETRY_PAUSES, itertools.repeat(BIND_RETRY_PAUSES[-1]))
    while True:
        try:
            return attempt()
        except (PortInUse, RetryLater) as exc:
            # PortInUse names what it is about; the libp2p host's reasons do not.
            reason = str(exc) if isinstance(exc, PortInUse) else f"{what}: {exc}"
            pause = next(pauses)
            if clock() + pause > give_up:
                raise InvalidInput(reason) from None
            if pause == BIND_RETRY_PAUSES[0]:  # one line, not one per attempt
                log.warning("%s; retrying for up to %g s", reason, give_up_after)
        sleep(pause)


class DataDir:
    """A data dir this process created if needed, checked writable and holds the lock of.

    The lock is an flock on DATA_DIR/l2node.lock: the kernel drops it when the process exits,
    however it exits, so a crashed node never leaves a stale lock behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise InvalidInput(f"data dir {path} exists and is not a directory") from None
        except OSError as exc:
            raise InvalidInput(f"cannot create data dir {path}: {exc.strerror}") from None
        probe = path / f".write-check-{os.getpid()}"
        try:
            # A file created and removed: the lock file may exist from an earlier run, but the
            # database needs to create files here.
            probe.touch()
            probe.unlink()
            self._fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InvalidInput(f"data dir {path} is not writable: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise InvalidInput(
                f"data dir {path} is in use by another l2node process: stop it, or use "
                "another --data-dir"
            ) from None

    def close(self) -> None:
        """Release the lock."""
        os.close(self._fd)
