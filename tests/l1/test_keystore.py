"""Keystore files and password sources (in-process; the CLI is tested in test_anvil_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l1.keystore import (
    LIGHT_SCRYPT_N,
    PASSWORD_ENV,
    parse_private_key,
    read_keystore,
    read_password,
    write_keystore,
)
from node.config import load_config
from primitives.crypto import private_key_to_address
from primitives.errors import InvalidInput
from tests.anvil import DEV_KEYS


def test_light_keystore_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    address = write_keystore(path, DEV_KEYS[3], "pw", light=True)
    assert address.lower() == "0x" + private_key_to_address(DEV_KEYS[3]).hex()
    assert json.loads(path.read_text())["crypto"]["kdfparams"]["n"] == LIGHT_SCRYPT_N
    assert read_keystore(path, "pw") == DEV_KEYS[3]
    with pytest.raises(InvalidInput, match="MAC mismatch"):
        read_keystore(path, "pw2")
    with pytest.raises(InvalidInput, match="not overwriting"):
        write_keystore(path, DEV_KEYS[2], "pw", light=True)


@pytest.mark.parametrize(
    "text, error",
    [("", "cannot read"), ("[]", "not a version 3"), ('{"version": 3}', "malformed"),
     ("{", "cannot read")],
)
def test_malformed_keystores(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=error):
        read_keystore(path, "pw")


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from env")
    file = tmp_path / "pw.txt"
    file.write_text("from file\nsecond line ignored\n")
    assert read_password(file) == "from file"
    assert read_password(None) == "from env"
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(InvalidInput, match=PASSWORD_ENV):
        read_password(None)  # no terminal under pytest
    file.write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        read_password(file)
    with pytest.raises(InvalidInput, match="cannot read password file"):
        read_password(tmp_path / "missing")


@pytest.mark.parametrize("text", ["0x12", "zz" * 32, "00" * 32, "ff" * 32])
def test_bad_private_keys(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_private_key(text)


def test_key_parsing_and_config_paths(tmp_path: Path) -> None:
    assert parse_private_key(" 0x" + DEV_KEYS[0].hex() + "\n") == DEV_KEYS[0]
    config = tmp_path / "conf" / "node.toml"
    config.parent.mkdir()
    config.write_text('[l1]\nposter_keystore = "keys/poster.json"\nposter_password_file = "pw"\n')
    l1 = load_config(config).l1
    assert Path(l1.poster_keystore) == config.parent / "keys" / "poster.json"
    assert Path(l1.poster_password_file) == config.parent / "pw"
