"""`l2node deploy-contract`: deploy BatchInbox on an L1 with the genesis validator set.

The genesis state root is computed as the node computes it (the genesis alloc
applied to an empty state), so the contract's batch 1 continues from the very
state every node and watcher starts with. Prints the contract address.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from l1.keystore import read_keystore, read_password
from node.config import load_config
from node.db.memory import MemoryKV
from node.db.state import StateDB
from node.genesis import Genesis, chain_genesis, load_genesis
from primitives.types import Hash32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--l1-rpc", required=True, help="Ethereum JSON-RPC URL of the L1")
    parser.add_argument("--keystore", type=Path, required=True, help="keystore of the deployer key")
    parser.add_argument(
        "--password-file",
        type=Path,
        help="file whose first line is the keystore password "
        "(default: env L2NODE_KEYSTORE_PASSWORD, else a prompt)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--genesis", type=Path, help="genesis JSON file (node/genesis.py)")
    source.add_argument(
        "--config", type=Path, help="node config whose genesis to use (default: the devnet preset)"
    )


def run(args: argparse.Namespace) -> int:
    from web3 import Web3

    from l1.client import deploy_batch_inbox

    genesis = load_genesis(args.genesis) if args.genesis else chain_genesis(load_config(args.config))
    key = read_keystore(args.keystore, read_password(args.password_file))
    w3 = Web3(Web3.HTTPProvider(args.l1_rpc, request_kwargs={"timeout": 30}))
    address = deploy_batch_inbox(
        w3,
        key,
        genesis.chain_id,
        genesis_state_root(genesis),
        [v.address for v in genesis.validators],
        [v.weight for v in genesis.validators],
    )
    print(Web3.to_checksum_address(address))
    return 0


def genesis_state_root(genesis: Genesis) -> Hash32:
    """The state root of block 0, computed the way the node computes it."""
    kv = MemoryKV()
    return StateDB(kv).genesis(dict(genesis.alloc), kv.write_batch())
