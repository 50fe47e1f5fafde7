"""`l2node keys new|import`: Ethereum keystore files for the L1 poster key.

`new` makes a fresh random key; `import` reads a hex key from --key-file or
standard input (never from the command line, where other users and shell history
see it). Both write a v3 keystore and print the address to fund; never the key.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from l1.keystore import check_new_file, parse_private_key, read_password, write_keystore
from primitives.errors import InvalidInput


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_action", required=True)
    new = actions.add_parser("new", help="create a random key in a new keystore file")
    imported = actions.add_parser("import", help="encrypt an existing key into a keystore file")
    imported.add_argument(
        "--key-file", type=Path, help="file holding the hex private key (default: standard input)"
    )
    for action in (new, imported):
        action.add_argument("--out", type=Path, required=True, help="keystore file to create")
        action.add_argument(
            "--light-kdf",
            action="store_true",
            help="cheap scrypt (as geth --lightkdf): opens fast, resists guessing less; test networks",
        )
        action.add_argument(
            "--password-file",
            type=Path,
            help="file whose first line is the password "
            "(default: env L2NODE_KEYSTORE_PASSWORD, else a prompt)",
        )


def run(args: argparse.Namespace) -> int:
    check_new_file(args.out)
    if args.keys_action == "new":
        key = secrets.token_bytes(32)
    else:
        key = parse_private_key(_read_key_text(args.key_file))
    password = read_password(args.password_file, confirm=True)
    address = write_keystore(args.out, key, password, light=args.light_kdf)
    print(f"{address} {args.out}")
    return 0


def _read_key_text(key_file: Path | None) -> str:
    if key_file is None:
        if sys.stdin.isatty():
            return getpass.getpass("Private key (hex, not echoed): ")
        return sys.stdin.readline()
    try:
        return key_file.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read key file {key_file}: {exc}") from exc
