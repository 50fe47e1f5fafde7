"""`l2node devnet --validators N`: a local network of N validator processes on 127.0.0.1.

Writes DIR/genesis.json (the devnet preset's chain and funded accounts, N validators of
weight 1) and, per node i, DIR/node<i>.toml, a libp2p key DIR/node<i>/p2p.key, its
LevelDB in DIR/node<i>/ and its log in DIR/node<i>.log. Node i serves JSON-RPC on
BASE_PORT + i and libp2p on BASE_PORT + 100 + i; every node keeps connections to all
others. Ctrl-C or SIGTERM stops every node cleanly. Every ``--epoch-length`` blocks the
validators' weights become the work their GPU challenge proofs show (node/epochs.py);
each computes it for an eighth of an epoch (on the CPU where there is no GPU).

DEVNET ONLY: the validator keys are keccak256("l2node devnet validator <i>") and the
libp2p keys keccak256("l2node devnet p2p <i>"): public, so anyone can sign as them.

L1: when the npm package @foundry-rs/anvil is installed (`npm install`), one anvil runs on
BASE_PORT + 200 with the batch contract deployed for the N validators; node 0 posts
batches, each signed by more than 2/3 of its epoch's weight over `l2/batchsigs/1`, and
each epoch's validator set before that epoch's batches (l1/poster.py). Without anvil, L1
posting is off (the log says so).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from node.config import load_config
from node.genesis import (
    Genesis,
    GenesisValidator,
    chain_genesis,
    development_keys,
    genesis_to_json,
)
from primitives.crypto import keccak256, private_key_to_address
from primitives.errors import InvalidInput

P2P_PORT_OFFSET = 100
"""Node i listens for peers on base port + this + i."""
NODE_LINE = re.compile(r"node (\d+): pid (\d+) rpc (\S+) p2p (\S+) log (\S+)")
"""The line `l2node devnet` prints per node (tests and benchmarks read it)."""
CHALLENGE_SHARE = 8
"""A devnet validator computes its GPU challenge for at most 1/CHALLENGE_SHARE of an epoch's
duration: several nodes share one machine's CPUs. (A cap only lowers what a node earns; the
chain's challenge window bounds it either way.)"""
ANVIL_PORT_OFFSET = 200
"""The devnet's anvil listens on base port + this."""
METRICS_PORT_OFFSET = 300
"""Node i serves Prometheus metrics on base port + this + i."""
POSTER_PASSWORD = "l2node devnet"
"""Password of node 0's L1 poster keystore (DEVNET ONLY, written beside it)."""
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
    metrics_url: str = ""
    """Its Prometheus endpoint."""

    def command(self) -> list[str]:
        """The command line that runs this node."""
        return [sys.executable, "-m", "node.cli", "run", "--config", str(self.config),
                "--data-dir", str(self.data_dir)]


def devnet_genesis(validators: int, epoch_length: int = 0, preset: Path | None = None) -> Genesis:
    """The devnet preset's chain and accounts (overlaid by the ``preset`` file's) with
    ``validators`` validators of weight 1 until GPU weights take over (every ``epoch_length``
    blocks; 0: never)."""
    if validators < 1:
        raise InvalidInput("--validators must be at least 1")
    chain = chain_genesis(load_config(preset))
    return Genesis(
        chain_id=chain.chain_id, timestamp=chain.timestamp, gas_limit=chain.gas_limit,
        base_fee_per_gas=chain.base_fee_per_gas, alloc=chain.alloc,
        # Sorted by address: the order the L1 contract keeps its signers in.
        validators=tuple(sorted(
            (GenesisValidator(private_key_to_address(devnet_validator_key(i)), 1)
             for i in range(validators)),
            key=lambda v: v.address,
        )),
        epoch_length=epoch_length,
    )


def write_devnet(
    directory: Path, validators: int, base_port: int, block_time: float, executor: str,
    hosts: tuple[str, ...] = (), l1: str = "", epoch_length: int = 0, preset: Path | None = None,
) -> list[DevnetNode]:
    """Genesis, keys and per-node configs for ``validators`` nodes (overwritten if present).

    ``hosts`` are the nodes' IPv4 addresses (one per node; default all 127.0.0.1): RPC
    then listens on all interfaces, for nodes in containers or on several machines.
    ``l1``: "<rpc url> <contract address>" of the L1 that node 0 posts to (empty: none).
    ``preset``: a config file (e.g. configs/throughput.toml) whose chain and genesis make the
    devnet's genesis and whose node sections ([mempool], [state]) every node takes.
    """
    from p2p.host import load_or_create_identity, peer_id_of

    if hosts and len(hosts) != validators:
        raise InvalidInput(f"--hosts names {len(hosts)} addresses for {validators} validators")
    addresses = hosts or ("127.0.0.1",) * validators
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    keys = [devnet_validator_key(i) for i in range(validators)]
    genesis = devnet_genesis(validators, epoch_length, preset)
    genesis_path = directory / "genesis.json"
    shared = _node_sections(preset)
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
            metrics_url=f"http://{addresses[i]}:{base_port + METRICS_PORT_OFFSET + i}/metrics",
        ))
    for node, key in zip(nodes, keys):
        others = [other.p2p_addr for other in nodes if other is not node]
        listen = node.p2p_addr.rsplit("/p2p/", 1)[0]
        node.config.write_text(
            f"# devnet node {node.index}: written by `l2node devnet`\n"
            f"[chain]\nblock_time = {block_time}\n\n"
            f"[genesis]\nfile = {json.dumps(str(genesis_path))}\n\n"
            f"[validator]\nprivate_key = \"0x{key.hex()}\"  # DEVNET ONLY: public key material\n"
            # At most an eighth of the epoch: the nodes share this machine.
            f"challenge_seconds = {epoch_length * block_time / CHALLENGE_SHARE:g}\n\n"
            f"[executor]\nkind = \"{executor}\"\n\n"
            f"[rpc]\nhost = \"{'0.0.0.0' if hosts else '127.0.0.1'}\"\n"
            f"port = {base_port + node.index}\n\n"
            f"[metrics]\nenabled = true\nhost = \"{'0.0.0.0' if hosts else '127.0.0.1'}\"\n"
            f"port = {base_port + METRICS_PORT_OFFSET + node.index}\n\n"
            f"[p2p]\nenabled = true\nlisten = \"{listen}\"\n"
            f"identity_file = {json.dumps(str(node.data_dir / 'p2p.key'))}\n"
            f"bootstrap = {json.dumps(others)}\n"
            + (_poster_section(node, l1) if l1 and node.index == 0 else "")
            + shared
        )
    return nodes


DEVNET_SECTIONS = ("chain", "genesis", "validator", "executor", "rpc", "metrics", "p2p", "l1")
"""Config sections `l2node devnet` writes itself (a preset's chain and genesis go to the
genesis file)."""


def _node_sections(preset: Path | None) -> str:
    """The preset's other sections, as TOML for every node's config (empty without one)."""
    if preset is None:
        return ""
    try:
        raw = tomllib.loads(preset.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read preset {preset}: {exc}") from exc
    text = ""
    for section, values in raw.items():
        if section in DEVNET_SECTIONS or not isinstance(values, dict):
            continue
        # JSON's numbers, strings, booleans and lists are TOML's too.
        text += f"\n[{section}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                            for key, value in values.items())
    return text


def _poster_section(node: DevnetNode, l1: str) -> str:
    """Node 0's [l1] section: the endpoint, the contract, a keystore of anvil's account 0."""
    from l1.keystore import write_keystore

    url, contract = l1.split()
    keystore = node.data_dir / "l1-poster.json"
    password = node.data_dir / "l1-password"
    keystore.unlink(missing_ok=True)
    write_keystore(keystore, development_keys(load_config().genesis.mnemonic, 1)[0],
                   POSTER_PASSWORD)
    password.write_text(POSTER_PASSWORD + "\n")
    return (
        f"\n[l1]\nrpc_url = \"{url}\"\ncontract = \"{contract}\"\n"
        f"poster_keystore = {json.dumps(str(keystore))}\n"
        f"poster_password_file = {json.dumps(str(password))}\n"
    )


def find_anvil() -> Path | None:
    """The anvil binary that `npm install` installed beside this checkout, if any."""
    packages = Path(__file__).resolve().parents[1] / "node_modules" / "@foundry-rs"
    found = [p for p in sorted(packages.glob("anvil-*/bin/anvil")) if os.access(p, os.X_OK)]
    return found[0] if found else None


def start_l1(
    directory: Path, port: int, genesis: Genesis
) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start anvil and deploy the batch contract for ``genesis``'s validators:
    (process, "<url> <contract>"); None when anvil is not installed."""
    from web3 import Web3

    from l1.client import deploy_batch_inbox
    from node.deploy import genesis_state_root

    binary = find_anvil()
    if binary is None:
        return None
    with (directory / "anvil.log").open("ab") as log:
        process = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
    deadline = time.monotonic() + 30
    while not w3.is_connected():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise InvalidInput(f"anvil did not start on port {port}: see {directory / 'anvil.log'}")
        time.sleep(0.1)
    root = genesis_state_root(genesis)
    deployer = development_keys(load_config().genesis.mnemonic, 1)[0]
    contract = deploy_batch_inbox(
        w3, deployer, genesis.chain_id, root, [v.address for v in genesis.validators],
        [v.weight for v in genesis.validators],
    )
    return process, f"{url} 0x{contract.hex()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validators", type=int, default=4, help="number of validators (4)")
    parser.add_argument("--base-port", type=int, default=8545,
                        help="RPC of node i on BASE+i, libp2p on BASE+100+i, metrics on "
                        "BASE+300+i (8545)")
    parser.add_argument("--data-dir", type=Path, default=Path(".l2node-devnet"),
                        help="where genesis, configs, databases and logs go")
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds between blocks")
    parser.add_argument("--epoch-length", type=int, default=30,
                        help="blocks per GPU-weight epoch (0: genesis weights forever)")
    parser.add_argument("--executor", default="reference",
                        choices=["reference", "native-cpu", "native-cuda", "auto"])
    parser.add_argument("--hosts", default="",
                        help="comma-separated IPv4 address of each node (containers, machines)")
    parser.add_argument("--preset", type=Path,
                        help="config file whose chain, genesis and node sections the devnet takes "
                        "(e.g. configs/throughput.toml)")
    parser.add_argument("--write-only", action="store_true",
                        help="write genesis, keys and configs, print the nodes, start nothing")


def run(args: argparse.Namespace) -> int:
    hosts = tuple(h for h in args.hosts.split(",") if h)
    anvil = None
    if not args.write_only:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        anvil = start_l1(args.data_dir, args.base_port + ANVIL_PORT_OFFSET,
                         devnet_genesis(args.validators, args.epoch_length, args.preset))
    nodes = write_devnet(args.data_dir, args.validators, args.base_port, args.block_time,
                         args.executor, hosts, l1="" if anvil is None else anvil[1],
                         epoch_length=args.epoch_length, preset=args.preset)
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
    l1_line = "L1 posting off (no anvil: `npm install` installs it)"
    if anvil is not None:
        processes[-1] = anvil[0]
        url, contract = anvil[1].split()
        l1_line = f"L1 anvil {url}, batch contract {contract}, node 0 posts"
    try:
        for node in nodes:
            with node.log.open("ab") as log:
                # A session of its own: a terminal's Ctrl-C reaches us, and we stop the nodes.
                processes[node.index] = subprocess.Popen(
                    node.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            print(f"node {node.index}: pid {processes[node.index].pid} rpc {node.rpc_url} "
                  f"p2p {node.p2p_addr} log {node.log} metrics {node.metrics_url}", flush=True)
        print(f"devnet of {len(nodes)} validators running; {l1_line}; Ctrl-C stops it",
              flush=True)
        while not stopping:
            for index, process in list(processes.items()):
                if process.poll() is not None:
                    what = "anvil" if index < 0 else f"node {index}"
                    print(f"{what} exited with {process.returncode}", flush=True)
                    del processes[index]
            time.sleep(0.2)
    finally:
        _stop_all(processes)
    print("devnet stopped", flush=True)
    return 0


def _stop_all(processes: dict[int, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every node, then to anvil (key -1) once the nodes are down."""
    anvil = processes.pop(-1, None)
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
    if anvil is not None:
        anvil.terminate()
        anvil.wait()
