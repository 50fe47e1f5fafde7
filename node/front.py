"""The node's front processes (rpc/front.py): started on the public RPC socket, watched,
restarted when one dies, stopped with the node.

Each front is ``python -m node.front``: it inherits the listening socket (the kernel hands
each new connection to one of the processes accepting on it) and reaches the node on its
private Unix socket in the data dir (or, when that path is too long for a socket, in a
temporary directory), which only the node's user may open.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import uvicorn
from pydantic import TypeAdapter

from node.config import RpcConfig
from node.logs import JsonFormatter, setup_logging
from rpc.front import Upstream, create_front_app
from rpc.http import rpc_connection_cap, server_config

log = logging.getLogger("l2node")

PRIVATE_SOCKET = "rpc.sock"
"""The node's private Unix socket, in the data dir, where its RPC fronts reach it."""
MAX_SOCKET_PATH = 104
"""Longest Unix socket path used (Linux takes 107 bytes, some systems fewer)."""
MOST_AUTO_FRONTS = 8
RESTART_EVERY_S = 5.0
"""Least seconds between two starts of one front."""
STOP_GRACE_S = 10.0
"""Seconds fronts have to finish their requests when the node stops."""
PARENT_CHECK_S = 0.5
"""How often a front checks that its node still runs (it exits when not)."""


def front_count(configured: int | Literal["auto"], cores: int | None = None) -> int:
    """Fronts to run: ``configured``, or for "auto" one per four cores beyond the first
    four (the node's interpreter, its native threads and LevelDB keep those), at most
    MOST_AUTO_FRONTS: none on small machines, where they would only take cores."""
    if configured != "auto":
        return configured
    return min(MOST_AUTO_FRONTS, max(0, ((cores or _usable_cores()) - 4) // 4))


def _usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity on this system
        return os.cpu_count() or 1


class PrivateSocket:
    """The node's private Unix socket, listening, that only this user may connect to (it
    takes transactions with no further check): in ``data_dir`` (a stale one from a killed
    node replaced), or where that path is too long for a Unix socket, in a new directory
    only this user may enter."""

    def __init__(self, data_dir: Path) -> None:
        self._own_dir: Path | None = None
        path = data_dir / PRIVATE_SOCKET
        if len(os.fsencode(path.resolve())) >= MAX_SOCKET_PATH:
            self._own_dir = Path(tempfile.mkdtemp(prefix="l2node-"))
            path = self._own_dir / PRIVATE_SOCKET
        self.path = path
        """Where it is."""
        path.unlink(missing_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        """The listening socket."""
        try:
            old_mask = os.umask(0o177)
            try:
                self.socket.bind(str(path))
            finally:
                os.umask(old_mask)
            self.socket.listen(512)
        except OSError:
            self.remove()
            raise

    def remove(self) -> None:
        """Close it and remove its file (and directory)."""
        self.socket.close()
        self.path.unlink(missing_ok=True)
        if self._own_dir is not None:
            self._own_dir.rmdir()


class Fronts:
    """``count`` front processes on ``listener``, forwarding to the node at ``private``."""

    def __init__(self, count: int, listener: socket.socket, private: Path, rpc: RpcConfig) -> None:
        self._listener = listener
        self._command = [
            sys.executable, "-m", "node.front", "--fd", str(listener.fileno()),
            "--socket", str(private), "--rpc", json.dumps(dataclasses.asdict(rpc)),
            "--log-format", "json" if _json_logs() else "text", "--node", str(os.getpid()),
        ]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self._started = [0.0] * count

    def start(self) -> None:
        """Start every front not running; a front that died is logged and started again, at
        most once per RESTART_EVERY_S (one that cannot run does not flood the log)."""
        now = time.monotonic()
        for index, process in enumerate(self._processes):
            if process is not None and (process.poll() is None or now - self._started[index] < RESTART_EVERY_S):
                continue
            if process is not None:
                log.warning("RPC front %d exited with %s: starting it again", index, process.returncode)
            self._processes[index] = subprocess.Popen(
                [*self._command, "--index", str(index)], pass_fds=(self._listener.fileno(),),
            )
            self._started[index] = now

    def stop(self) -> None:
        """SIGTERM every front, then SIGKILL those still running after STOP_GRACE_S."""
        running = [p for p in self._processes if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _json_logs() -> bool:
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


# --- the front process --------------------------------------------------------------------


def serve_front(listener: socket.socket, private: str, rpc: RpcConfig, node: int) -> None:
    """Serve ``listener`` until SIGTERM or until the node (``node``, this process's parent:
    a node gone before this process got here is seen too) is gone."""
    # Forwarded calls may wait for an expensive-call slot and run to the EVM timeout.
    upstream = Upstream(private, timeout=rpc.read_timeout + rpc.busy_wait + rpc.evm_timeout,
                        idle=rpc.idle_timeout / 2)
    app = create_front_app(upstream, rpc, cors=rpc.cors, hosts=rpc.hosts)
    server = uvicorn.Server(server_config(
        app, rpc.host, rpc.port, rpc, rpc_connection_cap(rpc.max_connections),
        log_level="warning", lifespan="off", log_config=None, ws_max_size=rpc.max_body_bytes,
    ))

    async def watch_parent() -> None:
        while not server.should_exit:
            if os.getppid() != node:
                log.warning("the node is gone: RPC front exiting")
                server.should_exit = True
            await asyncio.sleep(PARENT_CHECK_S)

    async def serve() -> None:
        watcher = asyncio.create_task(watch_parent())
        try:
            await server.serve(sockets=[listener])
        finally:
            watcher.cancel()

    try:
        asyncio.run(serve())
    finally:
        upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one RPC front of an l2node (started by the node)")
    parser.add_argument("--fd", type=int, required=True, help="the public listening socket")
    parser.add_argument("--socket", required=True, help="the node's private Unix socket")
    parser.add_argument("--rpc", required=True, help="the node's [rpc] settings, JSON")
    parser.add_argument("--node", type=int, required=True, help="the node's process id")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    setup_logging(0, args.log_format)
    rpc = TypeAdapter(RpcConfig).validate_json(args.rpc)
    serve_front(socket.socket(fileno=args.fd), args.socket, rpc, args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
