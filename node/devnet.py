"""`l2node devnet --validators N`: a local network of N validator processes on 127.0.0.1.

Writes DIR/genesis.json (the devnet preset's chain and funded accounts, N validators of
weight 1) and, per node i, DIR/node<i>.toml, a libp2p key DIR/node<i>/p2p.key, its
LevelDB in DIR/node<i>/ and its log in DIR/node<i>.log. Node i serves JSON-RPC on
BASE_PORT + i and libp2p on BASE_PORT + 100 + i; every node keeps connections to all
others. Ctrl-C or SIGTERM stops every node cleanly.

DEVNET ONLY: the validator keys are keccak256("l2node devnet validator <i>") and the
libp2p keys keccak256("l2node devnet p2p <i>"): public, so anyone can sign as them.
L1 posting is off in this mode (the validators' batch signatures are not wired yet).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from node.config import load_config
from node.genesis import Genesis, GenesisValidator, chain_genesis, genesis_to_json
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput

P2P_PORT_OFFSET = 100
"""Node i listens for peers on base port + this + i."""
NODE_LINE = re.compile(r"node (\d+): pid (\d+) rpc (\S+) p2p (\S+) log (\S+)")
"""The line `l2node devnet` prints per node (tests and benchmarks read it)."""
STOP_TIMEOUT = 30.0
"""Seconds a node gets to stop after SIGTERM before it is killed."""


def devnet_validator_key(index: int) -> bytes:
    """Validator key i of the devnet (public: never use it for value)."""
    return keccak256(f"l2node devnet validator {index}".encode())


def devnet_p2p_seed(index: int) -> bytes:
    """libp2p key seed of devnet node i (public)."""
    return keccak256(f"l2node devnet p2p {index}".encode())


@dataclass(frozen=True)
class DevnetNode:
    """One validator process of the devnet, as written to disk."""

    index: int
    """Position in the validator list."""
    config: Path
    """Its `l2node run --config` file."""
    data_dir: Path
    """Its LevelDB directory."""
    log: Path
    """Where its output goes."""
    rpc_url: str
    """Its JSON-RPC endpoint."""
    p2p_addr: str
    """Its multiaddr, with its peer id."""

    def command(self) -> list[str]:
        """The command line that runs this node."""
        return [sys.executable, "-m", "node.cli", "run", "--config", str(self.config),
                "--data-dir", str(self.data_dir)]


def write_devnet(
    directory: Path, validators: int, base_port: int, block_time: float, executor: str,
    hosts: tuple[str, ...] = (),
) -> list[DevnetNode]:
    """Genesis, keys and per-node configs for ``validators`` nodes (overwritten if present).

    ``hosts`` are the nodes' IPv4 addresses (one per node; default all 127.0.0.1): RPC
    then listens on all interfaces, for nodes in containers or on several machines.
    """
    from p2p.host import load_or_create_identity, peer_id_of

    if validators < 1:
        raise InvalidInput("--validators must be at least 1")
    if hosts and len(hosts) != validators:
        raise InvalidInput(f"--hosts names {len(hosts)} addresses for {validators} validators")
    addresses = hosts or ("127.0.0.1",) * validators
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    preset = chain_genesis(load_config())
    keys = [devnet_validator_key(i) for i in range(validators)]
    genesis = Genesis(
        chain_id=preset.chain_id, timestamp=preset.timestamp, gas_limit=preset.gas_limit,
        base_fee_per_gas=preset.base_fee_per_gas, alloc=preset.alloc,
        validators=tuple(GenesisValidator(private_key_to_address(k), 1) for k in keys),
    )
    genesis_path = directory / "genesis.json"
    genesis_path.write_text(genesis_to_json(genesis))
    nodes = []
    for i in range(validators):
        data_dir = directory / f"node{i}"
        identity = data_dir / "p2p.key"
        data_dir.mkdir(exist_ok=True)
        identity.write_text(devnet_p2p_seed(i).hex() + "\n")
        peer = peer_id_of(load_or_create_identity(identity))
        nodes.append(DevnetNode(
            index=i,
            config=directory / f"node{i}.toml",
            data_dir=data_dir,
            log=directory / f"node{i}.log",
            rpc_url=f"http://{addresses[i]}:{base_port + i}",
            p2p_addr=f"/ip4/{addresses[i]}/tcp/{base_port + P2P_PORT_OFFSET + i}/p2p/{peer}",
        ))
    for node, key in zip(nodes, keys):
        others = [other.p2p_addr for other in nodes if other is not node]
        listen = node.p2p_addr.rsplit("/p2p/", 1)[0]
        node.config.write_text(
            f"# devnet node {node.index}: written by `l2node devnet`\n"
            f"[chain]\nblock_time = {block_time}\n\n"
            f"[genesis]\nfile = {json.dumps(str(genesis_path))}\n\n"
            f"[validator]\nprivate_key = \"0x{key.hex()}\"  # DEVNET ONLY: public key material\n\n"
            f"[executor]\nkind = \"{executor}\"\n\n"
            f"[rpc]\nhost = \"{'0.0.0.0' if hosts else '127.0.0.1'}\"\n"
            f"port = {base_port + node.index}\n\n"
            f"[p2p]\nenabled = true\nlisten = \"{listen}\"\n"
            f"identity_file = {json.dumps(str(node.data_dir / 'p2p.key'))}\n"
            f"bootstrap = {json.dumps(others)}\n"
        )
    return nodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validators", type=int, default=4, help="number of validators (4)")
    parser.add_argument("--base-port", type=int, default=8545,
                        help="RPC of node i on BASE+i, libp2p on BASE+100+i (8545)")
    parser.add_argument("--data-dir", type=Path, default=Path(".l2node-devnet"),
                        help="where genesis, configs, databases and logs go")
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds between blocks")
    parser.add_argument("--executor", default="reference",
                        choices=["reference", "native-cpu", "native-cuda", "auto"])
    parser.add_argument("--hosts", default="",
                        help="comma-separated IPv4 address of each node (containers, machines)")
    parser.add_argument("--write-only", action="store_true",
                        help="write genesis, keys and configs, print the nodes, start nothing")


def run(args: argparse.Namespace) -> int:
    hosts = tuple(h for h in args.hosts.split(",") if h)
    nodes = write_devnet(args.data_dir, args.validators, args.base_port, args.block_time,
                         args.executor, hosts)
    if args.write_only:
        for node in nodes:
            print(f"node {node.index}: config {node.config} rpc {node.rpc_url} p2p {node.p2p_addr}")
        return 0
    stopping = False

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    processes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for node in nodes:
            with node.log.open("ab") as log:
                # A session of its own: a terminal's Ctrl-C reaches us, and we stop the nodes.
                processes[node.index] = subprocess.Popen(
                    node.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            print(f"node {node.index}: pid {processes[node.index].pid} rpc {node.rpc_url} "
                  f"p2p {node.p2p_addr} log {node.log}", flush=True)
        print(f"devnet of {len(nodes)} validators running; L1 posting off; Ctrl-C stops it",
              flush=True)
        while not stopping:
            for index, process in list(processes.items()):
                if process.poll() is not None:
                    print(f"node {index} exited with {process.returncode}", flush=True)
                    del processes[index]
            time.sleep(0.2)
    finally:
        _stop_all(processes)
    print("devnet stopped", flush=True)
    return 0


def _stop_all(processes: dict[int, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
