"""`l2node` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from node.logs import setup_logging
from node.version import version
from primitives.errors import L2NodeError


def _run(args: argparse.Namespace) -> int:
    from node.config import load_config

    overrides: dict[str, object] = {"data_dir": args.data_dir}
    if args.rpc_port is not None:
        overrides["rpc__port"] = args.rpc_port
    if args.metrics_port == 0:
        overrides["metrics__enabled"] = False
    elif args.metrics_port is not None:
        overrides["metrics__port"] = args.metrics_port
        overrides["metrics__enabled"] = True
    if args.l1_rpc is not None:
        overrides["l1__rpc_url"] = args.l1_rpc
    if args.executor is not None:
        overrides["executor__kind"] = args.executor
    config = load_config(args.config, **overrides)
    from node.run import run_node  # after the config is checked: it takes seconds to import

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


def _logging_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """-v and --log-format, accepted before and after the subcommand (the subcommand's own
    copies have no defaults, so they do not undo what was given before it)."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=0 if defaults else argparse.SUPPRESS,
        help="debug logging (-vv: also web3, urllib3, libp2p and asyncio)",
    )
    parser.add_argument(
        "--log-format", choices=["text", "json"],
        default="text" if defaults else argparse.SUPPRESS,
        help="text lines, or one JSON object per line",
    )


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the command it names has its module imported (all of
    them would pull in web3, libp2p and py-evm, seconds of start-up)."""
    names = {"run", *(name for name, _, _ in _COMMANDS)}
    chosen = next((arg for arg in argv if arg in names), None)
    parser = argparse.ArgumentParser(prog="l2node", description=__doc__)
    parser.add_argument("--version", action="version", version=f"l2node {version()}")
    _logging_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a node (default: single-validator devnet)")
    _logging_options(run, defaults=False)
    run.add_argument("--config", type=Path, help="TOML file overriding configs/devnet.toml")
    run.add_argument("--data-dir", type=Path, default=Path(".l2node"), help="LevelDB directory")
    run.add_argument("--rpc-port", type=int, help="JSON-RPC port (default 8545)")
    run.add_argument("--l1-rpc", help="Ethereum JSON-RPC URL of the L1 (default: in-process L1)")
    run.add_argument("--executor", choices=["reference", "native-cpu", "native-cuda", "auto"])
    run.add_argument("--metrics-port", type=int,
                     help="serve Prometheus metrics on this port (0: off; default: [metrics])")
    run.set_defaults(handler=_run)

    for name, module_name, help_text in _COMMANDS:
        command = commands.add_parser(name, help=help_text)
        _logging_options(command, defaults=False)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    setup_logging(args.verbose, args.log_format)
    try:
        return int(args.handler(args))
    except L2NodeError as exc:
        # Bad input (config, ports, data dir, arguments): one line per mistake, nothing started.
        for line in str(exc).splitlines() or [type(exc).__name__]:
            logging.getLogger("l2node").error("%s", line)
        return 2


if __name__ == "__main__":
    sys.exit(main())
