"""Checks a node makes before it starts anything: its ports are free and its data dir is
usable and its own. Each failure is one InvalidInput line (the CLI exits 2 with it)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from primitives.errors import InvalidInput

LOCK_FILE = "l2node.lock"
"""Held (flock) by the process that uses a data dir, as long as it runs."""


def port_error(what: str, host: str, port: int, exc: OSError) -> InvalidInput:
    """The one line that says why ``what`` cannot listen on ``host:port``."""
    if exc.errno == errno.EADDRINUSE:
        return InvalidInput(
            f"{what} port {port} on {host} is in use (another l2node or program holds it): "
            "stop it or choose another port"
        )
    return InvalidInput(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}")


def bind_tcp(what: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, bound now (before any block is produced)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port whose last user left sockets in TIME_WAIT can be bound again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
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
