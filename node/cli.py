"""`l2node` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from node.logs import throttle_resource_errors
from primitives.errors import L2NodeError


def _run(args: argparse.Namespace) -> int:
    from node.config import load_config
    from node.run import run_node

    overrides: dict[str, object] = {"data_dir": args.data_dir}
    if args.rpc_port is not None:
        overrides["rpc__port"] = args.rpc_port
    if args.l1_rpc is not None:
        overrides["l1__rpc_url"] = args.l1_rpc
    if args.executor is not None:
        overrides["executor__kind"] = args.executor
    config = load_config(args.config, **overrides)
    run_node(config)
    return 0


# Subcommands other than `run`: each module has add_arguments(parser) and run(args) -> int.
_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("statetest", "node.statetest", "run Ethereum state tests against an executor"),
    ("watch", "node.watch", "rebuild the L2 from L1 alone and check every posted state root"),
    ("devnet", "node.devnet", "run N local validators (genesis, keys, configs written for you)"),
    ("keys", "node.keys", "create or import the L1 poster key into an Ethereum keystore file"),
    ("deploy-contract", "node.deploy", "deploy the L1 batch contract with the genesis validators"),
)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the command it names has its module imported (all of
    them would pull in web3, libp2p and py-evm, seconds of start-up)."""
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="l2node", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a node (default: single-validator devnet)")
    run.add_argument("--config", type=Path, help="TOML file overriding configs/devnet.toml")
    run.add_argument("--data-dir", type=Path, default=Path(".l2node"), help="LevelDB directory")
    run.add_argument("--rpc-port", type=int, help="JSON-RPC port (default 8545)")
    run.add_argument("--l1-rpc", help="Ethereum JSON-RPC URL of the L1 (default: in-process L1)")
    run.add_argument("--executor", choices=["reference", "native-cpu", "native-cuda", "auto"])
    run.set_defaults(handler=_run)

    for name, module_name, help_text in _COMMANDS:
        command = commands.add_parser(name, help=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    throttle_resource_errors(logging.getLogger())
    if not args.verbose:
        # py-libp2p logs every failed dial at ERROR: one line per backoff step while a peer is
        # down. The node reports its peers itself; -v shows libp2p's own lines.
        logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    try:
        return int(args.handler(args))
    except L2NodeError as exc:
        logging.getLogger("l2node").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
