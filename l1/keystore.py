"""Ethereum keystore files (the v3 JSON format of geth and eth-account) for the L1 poster key.

A password comes from a file (its first line), else the environment variable
L2NODE_KEYSTORE_PASSWORD, else a prompt when a terminal is attached. Keys never
travel through argv, config files or logs.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, Final

from eth_account import Account

from primitives.errors import InvalidInput

PASSWORD_ENV = "L2NODE_KEYSTORE_PASSWORD"
"""Environment variable read when no password file is given."""
KDF: Final = "scrypt"
"""Key derivation of new keystores (geth's default)."""
LIGHT_SCRYPT_N = 4096
"""scrypt cost of a "light" keystore (geth --lightkdf): fast to open, weaker; test networks only."""


def read_password(password_file: Path | None, *, confirm: bool = False) -> str:
    """The keystore password from ``password_file``, the environment, or a prompt.

    ``confirm``: a prompted password is asked twice (for a new keystore).
    """
    if password_file is not None:
        try:
            lines = password_file.read_text().splitlines()
        except OSError as exc:
            raise InvalidInput(f"cannot read password file {password_file}: {exc}") from exc
        password = lines[0] if lines else ""
    elif PASSWORD_ENV in os.environ:
        password = os.environ[PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = getpass.getpass("Keystore password: ")
        if confirm and getpass.getpass("Repeat password: ") != password:
            raise InvalidInput("the passwords differ")
    else:
        raise InvalidInput(
            f"no keystore password: pass a password file or set {PASSWORD_ENV} "
            "(no terminal to ask on)"
        )
    if not password:
        raise InvalidInput("the keystore password is empty")
    return password


def write_keystore(path: Path, private_key: bytes, password: str, *, light: bool = False) -> str:
    """Encrypt ``private_key`` into a new keystore file at ``path`` (mode 0600); its address.

    Refuses to overwrite an existing file: that could destroy the only copy of a key.
    ``light``: scrypt with LIGHT_SCRYPT_N instead of eth-account's default (2**18).
    """
    _check_key(private_key)
    check_new_file(path)
    keystore = Account.encrypt(
        private_key, password, kdf=KDF, iterations=LIGHT_SCRYPT_N if light else None
    )
    text = json.dumps(keystore, indent=2) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists: not overwriting a keystore") from None
    except OSError as exc:
        raise InvalidInput(f"cannot create {path}: {exc}") from exc
    with os.fdopen(fd, "w") as file:
        file.write(text)
    return "0x" + str(keystore["address"]).removeprefix("0x")


def check_new_file(path: Path) -> None:
    """Fail early (before a password prompt or the slow key derivation) if ``path`` exists."""
    if path.exists():
        raise InvalidInput(f"{path} exists: not overwriting a keystore")


def read_keystore(path: Path, password: str) -> bytes:
    """The private key in the keystore at ``path``; InvalidInput for a wrong password or file."""
    try:
        keystore: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read keystore {path}: {exc}") from exc
    if not isinstance(keystore, dict) or keystore.get("version") != 3:
        raise InvalidInput(f"{path} is not a version 3 Ethereum keystore")
    try:
        return bytes(Account.decrypt(keystore, password))
    except ValueError as exc:
        # eth-account says "MAC mismatch" for a wrong password.
        raise InvalidInput(f"cannot decrypt keystore {path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"keystore {path} is malformed: missing {exc}") from None


def parse_private_key(text: str) -> bytes:
    """A private key written as 64 hex digits (0x optional, surrounding whitespace ignored)."""
    try:
        key = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raise InvalidInput("the private key is not hex") from None
    _check_key(key)
    return key


def _check_key(key: bytes) -> None:
    if len(key) != 32:
        raise InvalidInput(f"a private key is 32 bytes, got {len(key)}")
    try:
        Account.from_key(key)
    except (ValueError, TypeError):
        raise InvalidInput("not a valid secp256k1 private key") from None
